%% A driver ending its port from inside control, call and output (from the
%% owner or another process), with every failure function
%% (driver_failure, driver_failure_atom, driver_failure_posix, driver_exit,
%% driver_failure_eof, the last with and without the `eof' option and in
%% line mode): what the caller gets back, what the owner and another
%% linked process receive, and that `stop' runs once. lc_fail_drv (see
%% there) performs the failure named by its argument, then outputs
%% "after". Failures while callers wait on a busy port are in busy_SUITE,
%% failures in `timeout' in timer_SUITE.
%%
%% Every case is differential: the same scenario runs against the native
%% port and the compat pseudo-port; the native result must be the
%% expected value (measured on OTP 25) and the compat result equal to it.
-module(failure_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([exit_in_control/1,
         exit_zero_in_control/1,
         exit_in_call/1,
         atom_in_control/1,
         posix_in_call/1,
         failure_in_control_from_other_process/1,
         failure_in_command_from_other_process/1,
         eof_in_control_with_eof_option/1,
         eof_in_call_without_eof_option/1,
         eof_line_mode_with_eof_option/1,
         eof_line_mode_without_eof_option/1,
         eof_binary_line_mode_with_eof_option/1,
         exit_in_command_message/1,
         eof_in_command_message_with_eof_option/1]).

-define(DRV, "lc_fail_drv").

all() ->
    [exit_in_control,
     exit_zero_in_control,
     exit_in_call,
     atom_in_control,
     posix_in_call,
     failure_in_control_from_other_process,
     failure_in_command_from_other_process,
     eof_in_control_with_eof_option,
     eof_in_call_without_eof_option,
     eof_line_mode_with_eof_option,
     eof_line_mode_without_eof_option,
     eof_binary_line_mode_with_eof_option,
     exit_in_command_message,
     eof_in_command_message_with_eof_option].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

%% Runs Act(B, P) on a port opened by the scenario process (which traps
%% exits) with Opts, with a second process linked to the port. Waits
%% until the port is gone (or, with `open', does not). Result:
%% {Reply, OwnerMessages, WatcherMessages, {ActionRc, AfterRc, Stops}}.
fail_scenario(Opts, Ends, Act) ->
    fun(B) ->
            process_flag(trap_exit, true),
            Probe = open(B, []),
            {_, _, Stops0} = stats(B, Probe),
            P = open(B, Opts),
            W = watcher(P),
            Reply = strip(edc_diff:attempt(fun() -> Act(B, P) end)),
            case Ends of
                ends -> wait_port_gone(P);
                open -> ok
            end,
            WMsgs = watcher_messages(W),
            {A, O, Stops} = stats(B, Probe),
            Msgs = [M || M <- edc_diff:flush(), not is_probe(M, Probe)],
            {Reply, Msgs, WMsgs, {A, O, Stops - Stops0}}
    end.

open(B, Opts) ->
    edc_diff:call(B, open_port, [{spawn, ?DRV}, Opts]).

stats(B, Probe) ->
    [A, O, S] = string:lexemes(edc_diff:call(B, port_control, [Probe, 2, []]), " "),
    {list_to_integer(A), list_to_integer(O), list_to_integer(S)}.

is_probe({Probe, _}, Probe) -> true;
is_probe(_, _) -> false.

%% Stack traces differ between the backends: keep class and reason.
strip({error, {Reason, _Stack}}) -> {error, Reason};
strip(Outcome) -> Outcome.

%% A process linked to the port, trapping exits, that keeps what it gets.
watcher(P) ->
    Parent = self(),
    W = spawn(fun() ->
                      process_flag(trap_exit, true),
                      link(P),
                      Parent ! {self(), linked},
                      watch([])
              end),
    receive {W, linked} -> W after 5000 -> error(watcher_timeout) end.

watch(Acc) ->
    receive
        {sync, From} -> From ! {self(), lists:reverse(Acc)};
        {'EXIT', _, _} = M -> watch([M | Acc])
    end.

%% What the watcher got until now (the port's exit signal was sent before
%% the port was gone).
watcher_messages(W) ->
    W ! {sync, self()},
    receive {W, Msgs} -> Msgs after 5000 -> error(watcher_timeout) end.

%% Waits (at most 5 s) until the port P is gone.
wait_port_gone(P) ->
    Ref = case is_port(P) of
              true -> erlang:monitor(port, P);
              false -> erlang:monitor(process, P)
          end,
    receive {'DOWN', Ref, _, _, _} -> ok
    after 5000 -> erlang:demonitor(Ref, [flush]), erlang:error(port_still_open)
    end.

ctl(B, P, Action) ->
    edc_diff:call(B, port_control, [P, 1, Action]).

call(B, P, Action) ->
    edc_diff:call(B, port_call, [P, 1, Action]).

%% Runs F in a new process; returns its outcome.
elsewhere(F) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> Parent ! {Ref, strip(edc_diff:attempt(F))} end),
    receive {Ref, R} -> R after 5000 -> timeout end.

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

%% driver_exit unlinks the owner first: it gets nothing, other linked
%% processes get the errno's atom; the control reply still arrives.
exit_in_control(_Config) ->
    edc_diff:expect("driver_exit(5) in control",
                    fail_scenario([], ends, fun(B, P) -> ctl(B, P, "exit 5") end),
                    {{ok, "ctl_ok"}, [], [{'EXIT', {port, 2}, eio}], {0, -1, 1}}).

exit_zero_in_control(_Config) ->
    edc_diff:expect("driver_exit(0) in control",
                    fail_scenario([], ends, fun(B, P) -> ctl(B, P, "exit 0") end),
                    {{ok, "ctl_ok"}, [], [{'EXIT', {port, 2}, normal}], {0, -1, 1}}).

exit_in_call(_Config) ->
    edc_diff:expect("driver_exit(5) in call",
                    fail_scenario([], ends, fun(B, P) -> call(B, P, "exit 5") end),
                    {{ok, ok}, [], [{'EXIT', {port, 2}, eio}], {0, -1, 1}}).

atom_in_control(_Config) ->
    edc_diff:expect("driver_failure_atom in control",
                    fail_scenario([], ends, fun(B, P) -> ctl(B, P, "atom foo") end),
                    {{ok, "ctl_ok"}, [{'EXIT', {port, 2}, foo}], [{'EXIT', {port, 2}, foo}],
                     {0, -1, 1}}).

%% port_call returns the driver's reply although the port died in it.
posix_in_call(_Config) ->
    edc_diff:expect("driver_failure_posix in call",
                    fail_scenario([], ends, fun(B, P) -> call(B, P, "posix 2") end),
                    {{ok, ok}, [{'EXIT', {port, 2}, enoent}], [{'EXIT', {port, 2}, enoent}],
                     {0, -1, 1}}).

%% The reply goes to the process that called, the exit signal to the
%% owner.
failure_in_control_from_other_process(_Config) ->
    edc_diff:expect("driver_failure in control called by another process",
                    fail_scenario([], ends,
                                  fun(B, P) -> elsewhere(fun() -> ctl(B, P, "fail 4") end) end),
                    {{ok, {ok, "ctl_ok"}}, [{'EXIT', {port, 2}, 4}], [{'EXIT', {port, 2}, 4}],
                     {0, -1, 1}}).

failure_in_command_from_other_process(_Config) ->
    edc_diff:expect("driver_failure in output called by another process",
                    fail_scenario([], ends,
                                  fun(B, P) ->
                                          elsewhere(fun() ->
                                                            edc_diff:call(B, port_command,
                                                                          [P, "fail 4"])
                                                    end)
                                  end),
                    {{ok, {ok, true}}, [{'EXIT', {port, 2}, 4}], [{'EXIT', {port, 2}, 4}],
                     {0, -1, 1}}).

%% With the eof option the port stays open and the owner gets {Port, eof}
%% (before the reply of control is returned).
eof_in_control_with_eof_option(_Config) ->
    edc_diff:expect("driver_failure_eof in control, eof option",
                    fail_scenario([eof], open,
                                  fun(B, P) ->
                                          R = ctl(B, P, "eof"),
                                          {R, edc_diff:call(B, port_info2, [P, connected])}
                                  end),
                    {{ok, {"ctl_ok", {connected, self}}},
                     [{{port, 2}, eof}, {{port, 2}, {data, "after"}}], [], {0, 0, 0}}).

eof_in_call_without_eof_option(_Config) ->
    edc_diff:expect("driver_failure_eof in call, no eof option",
                    fail_scenario([], ends, fun(B, P) -> call(B, P, "eof") end),
                    {{ok, ok}, [{'EXIT', {port, 2}, normal}], [{'EXIT', {port, 2}, normal}],
                     {0, -1, 1}}).

%% Line mode: "after" (no newline) stays buffered; driver_failure_eof
%% delivers the partial line first, as {noeol, Line}.
eof_line_mode_with_eof_option(_Config) ->
    edc_diff:expect("driver_failure_eof in line mode, eof option",
                    fail_scenario([{line, 10}, eof], open,
                                  fun(B, P) ->
                                          true = edc_diff:call(B, port_command, [P, "x"]),
                                          true = edc_diff:call(B, port_command, [P, "eof"]),
                                          true = edc_diff:call(B, port_command, [P, "eof"])
                                  end),
                    {{ok, true},
                     [{{port, 2}, {data, {noeol, "after"}}}, {{port, 2}, eof},
                      {{port, 2}, {data, {noeol, "after"}}}, {{port, 2}, eof}],
                     [], {0, 0, 0}}).

eof_line_mode_without_eof_option(_Config) ->
    edc_diff:expect("driver_failure_eof in line mode, no eof option",
                    fail_scenario([{line, 10}], ends,
                                  fun(B, P) ->
                                          true = edc_diff:call(B, port_command, [P, "x"]),
                                          edc_diff:call(B, port_command, [P, "eof"])
                                  end),
                    {{ok, true},
                     [{{port, 2}, {data, {noeol, "after"}}}, {'EXIT', {port, 2}, normal}],
                     [{'EXIT', {port, 2}, normal}], {0, -1, 1}}).

%% Lines longer than the limit are cut ({noeol, _} pieces); the piece
%% left over is delivered at the eof, the next one stays buffered.
eof_binary_line_mode_with_eof_option(_Config) ->
    edc_diff:expect("driver_failure_eof in binary line mode, eof option",
                    fail_scenario([{line, 3}, eof, binary], open,
                                  fun(B, P) ->
                                          true = edc_diff:call(B, port_command, [P, "x"]),
                                          edc_diff:call(B, port_command, [P, "eof"])
                                  end),
                    {{ok, true},
                     [{{port, 2}, {data, {noeol, <<"aft">>}}},
                      {{port, 2}, {data, {noeol, <<"er">>}}},
                      {{port, 2}, eof},
                      {{port, 2}, {data, {noeol, <<"aft">>}}}],
                     [], {0, 0, 0}}).

%% A command message runs in the port: driver_exit from there.
exit_in_command_message(_Config) ->
    edc_diff:expect("driver_exit(5) from a command message",
                    fail_scenario([], ends,
                                  fun(_B, P) -> P ! {self(), {command, "exit 5"}}, sent end),
                    {{ok, sent}, [], [{'EXIT', {port, 2}, eio}], {0, -1, 1}}).

%% ... and driver_failure_eof with the eof option: the owner gets
%% {Port, eof}, then "after"; the port stays open.
eof_in_command_message_with_eof_option(_Config) ->
    edc_diff:expect("driver_failure_eof from a command message, eof option",
                    fail_scenario([eof], open,
                                  fun(B, P) ->
                                          P ! {self(), {command, "eof"}},
                                          Got = [receive {P, _} = M -> M after 5000 -> timeout end
                                                 || _ <- [eof, data]],
                                          {Got, edc_diff:call(B, port_info2, [P, connected])}
                                  end),
                    {{ok, {[{{port, 2}, eof}, {{port, 2}, {data, "after"}}], {connected, self}}},
                     [], [], {0, 0, 0}}).
