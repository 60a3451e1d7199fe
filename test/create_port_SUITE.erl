%% driver_create_port (lc_create_drv, port-level locking): a port's control
%% callback creates ports of the same driver; they take commands, emit
%% output, fail and close like opened ports.
%%
%% Every case is differential: the same scenario runs against the native
%% port and the compat pseudo-port; the native result must be the expected
%% value (measured on OTP 25) and the compat result equal to it. What was
%% measured natively: the created port is linked to and connected to the
%% owner given (also when it is not the caller), its `name' is the name
%% given, it is in list mode whatever the creating port's mode (flags 0),
%% its locking is the driver's (port_level), `start' is not called and
%% `stop' is; closing the creating port leaves it open; an owner that has
%% ended gives the invalid handle (-1); output or failure of the new port
%% inside the creating callback reach the owner after what the callback
%% sent before.
-module(create_port_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([created_port_info/1,
         commands/1,
         close_created/1,
         fail_created/1,
         output_in_creating_callback/1,
         failure_in_creating_callback/1,
         owner_other_than_caller/1,
         owner_ended/1,
         creator_closed/1,
         owner_exit_closes/1,
         many_created/1,
         burst_in_one_callback/1]).

-define(DRV, "lc_create_drv").

-define(OP_CREATE, 1).
-define(OP_CREATE_CONNECTED, 2).
-define(OP_SAVE_CALLER, 3).
-define(OP_CREATE_SAVED, 4).
-define(OP_CREATE_OUTPUT, 5).
-define(OP_CREATE_FAIL, 6).
-define(OP_WHOAMI, 7).
-define(OP_FAIL, 8).
-define(OP_STOPS, 9).
-define(OP_BURST, 10).

all() ->
    [created_port_info,
     commands,
     close_created,
     fail_created,
     output_in_creating_callback,
     failure_in_creating_callback,
     owner_other_than_caller,
     owner_ended,
     creator_closed,
     owner_exit_closes,
     many_created,
     burst_in_one_callback].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(B) ->
    edc_diff:call(B, open_port, [{spawn, ?DRV}, [binary]]).

ctl(B, P, Op, Data) ->
    edc_diff:parse_term(binary_to_list(iolist_to_binary(
                                         edc_diff:call(B, port_control, [P, Op, Data])))).

%% Creates a port from P's control callback (operation Op, name Name) and
%% returns {Reply, CreatedPort} (the port is tracked for normalisation).
create(B, P, Op, Name) ->
    Reply = ctl(B, P, Op, Name),
    receive
        {created, C} ->
            edc_diff:track(C),
            {Reply, C}
    after 5000 ->
            {Reply, no_port}
    end.

stops(B, P) ->
    ctl(B, P, ?OP_STOPS, "").

info(B, C, Items) ->
    [edc_diff:call(B, port_info2, [C, I]) || I <- Items].

monitor_port(C) when is_port(C) -> erlang:monitor(port, C);
monitor_port(C) -> erlang:monitor(process, C).

down_reason(Ref) ->
    receive
        {'DOWN', Ref, _, _, Reason} -> Reason
    after 5000 ->
            no_down
    end.

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

%% The created port: named as given, connected and linked to the caller,
%% list mode (the creating port is binary), the driver's locking, an open
%% port; the caller is linked to it.
created_port_info(_Config) ->
    edc_diff:expect("created port info",
                    fun(B) ->
                            P = open(B),
                            {ok, C} = create(B, P, ?OP_CREATE, "kid"),
                            {links, Links} = process_info(self(), links),
                            {info(B, C, [name, connected, links, locking]),
                             lists:member(C, Links),
                             edc_diff:call(B, is_port, [C]),
                             ctl(B, C, ?OP_WHOAMI, "")}
                    end,
                    {[{name, "kid"}, {connected, self}, {links, [self]},
                      {locking, port_level}],
                     true, true, {"kid", 0}}).

%% Commands to the created port, by port_command and by message, reach its
%% output callback; its output reaches its owner.
commands(_Config) ->
    edc_diff:expect("commands",
                    fun(B) ->
                            P = open(B),
                            {ok, C} = create(B, P, ?OP_CREATE, "kid"),
                            true = edc_diff:call(B, port_command, [C, "abc"]),
                            C ! {self(), {command, <<"m">>}},
                            M1 = edc_diff:recv(5000),
                            M2 = edc_diff:recv(5000),
                            {M1, M2, info(B, C, [output, input])}
                    end,
                    {{{port, 2}, {data, "kid:abc"}}, {{port, 2}, {data, "kid:m"}},
                     [{output, 4}, {input, 12}]}).

%% port_close of a created port runs its stop; the creating port stays.
close_created(_Config) ->
    edc_diff:expect("close created",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            Before = stops(B, P),
                            {ok, C} = create(B, P, ?OP_CREATE, "kid"),
                            true = edc_diff:call(B, port_close, [C]),
                            Exit = edc_diff:recv(5000),
                            {Exit, stops(B, P) - Before,
                             edc_diff:call(B, port_info, [C]),
                             ctl(B, P, ?OP_WHOAMI, "")}
                    end,
                    {{'EXIT', {port, 2}, normal}, 1, undefined, {"parent", 1}}).

%% driver_failure_atom on a created port closes it with that reason.
fail_created(_Config) ->
    edc_diff:expect("fail created",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            Before = stops(B, P),
                            {ok, C} = create(B, P, ?OP_CREATE, "kid"),
                            R = ctl(B, C, ?OP_FAIL, ""),
                            Exit = edc_diff:recv(5000),
                            {R, Exit, stops(B, P) - Before,
                             edc_diff:call(B, port_info, [C])}
                    end,
                    {ok, {'EXIT', {port, 2}, failed}, 1, undefined}).

%% driver_output to the new port inside the creating callback reaches the
%% owner after what the callback sent before.
output_in_creating_callback(_Config) ->
    edc_diff:expect("output in the creating callback",
                    fun(B) ->
                            P = open(B),
                            {R, C} = create(B, P, ?OP_CREATE_OUTPUT, "k2"),
                            M = edc_diff:recv(5000),
                            {R, M, ctl(B, C, ?OP_WHOAMI, "")}
                    end,
                    {ok, {{port, 2}, {data, "early"}}, {"k2", 0}}).

%% A failure of the new port inside the creating callback: the owner gets
%% the port, then its exit signal.
failure_in_creating_callback(_Config) ->
    edc_diff:expect("failure in the creating callback",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            Before = stops(B, P),
                            {R, C} = create(B, P, ?OP_CREATE_FAIL, "k3"),
                            Exit = edc_diff:recv(5000),
                            {R, Exit, stops(B, P) - Before,
                             edc_diff:call(B, port_info, [C])}
                    end,
                    {ok, {'EXIT', {port, 2}, early_failure}, 1, undefined}).

%% Another process makes the call; the creating port's connected process
%% owns the new port: linked, connected, gets its output.
owner_other_than_caller(_Config) ->
    edc_diff:expect("owner other than the caller",
                    fun(B) ->
                            P = open(B),
                            Self = self(),
                            {Helper, MRef} =
                                spawn_monitor(
                                  fun() ->
                                          R = ctl(B, P, ?OP_CREATE_CONNECTED, "k5"),
                                          receive {created, C} -> Self ! {R, C} end
                                  end),
                            {R, C} = receive {_, _} = Got -> Got end,
                            edc_diff:track(C),
                            normal = down_reason(MRef),
                            _ = Helper,
                            {links, Links} = process_info(self(), links),
                            true = edc_diff:call(B, port_command, [C, "x"]),
                            {R, lists:member(C, Links),
                             info(B, C, [connected, links]),
                             edc_diff:recv(5000)}
                    end,
                    {ok, true, [{connected, self}, {links, [self]}],
                     {{port, 2}, {data, "k5:x"}}}).

%% An owner that has ended: the invalid handle, no port.
owner_ended(_Config) ->
    edc_diff:expect("owner ended",
                    fun(B) ->
                            P = open(B),
                            {Pid, MRef} = spawn_monitor(fun() -> ok = ctl(B, P, ?OP_SAVE_CALLER, "") end),
                            normal = down_reason(MRef),
                            _ = Pid,
                            R = ctl(B, P, ?OP_CREATE_SAVED, "k4"),
                            {R, edc_diff:drain()}
                    end,
                    {invalid, []}).

%% Closing the creating port leaves the created one open and working.
creator_closed(_Config) ->
    edc_diff:expect("creator closed",
                    fun(B) ->
                            P = open(B),
                            {ok, C} = create(B, P, ?OP_CREATE, "k6"),
                            true = edc_diff:call(B, port_close, [P]),
                            true = edc_diff:call(B, port_command, [C, "y"]),
                            {edc_diff:recv(5000), info(B, C, [name, connected])}
                    end,
                    {{{port, 2}, {data, "k6:y"}}, [{name, "k6"}, {connected, self}]}).

%% The owner's exit closes the created port with the owner's reason (the
%% link), and runs its stop.
owner_exit_closes(_Config) ->
    edc_diff:expect("owner exit closes",
                    fun(B) ->
                            P = open(B),
                            Before = stops(B, P),
                            Self = self(),
                            Helper = spawn(fun() ->
                                                   R = ctl(B, P, ?OP_CREATE, "k7"),
                                                   receive {created, C} -> Self ! {R, C} end,
                                                   receive go -> exit(bye) end
                                           end),
                            {R, C} = receive {_, _} = Got -> Got end,
                            edc_diff:track(C),
                            Ref = monitor_port(C),
                            Helper ! go,
                            Reason = down_reason(Ref),
                            {R, Reason, stops(B, P) - Before}
                    end,
                    {ok, bye, 1}).

%% Many ports created one after the other (more than the pool of idle
%% processes holds at first) all work.
many_created(_Config) ->
    N = 100,
    edc_diff:expect("many created",
                    fun(B) ->
                            P = open(B),
                            Cs = [element(2, {ok, _} = create(B, P, ?OP_CREATE,
                                                               "m" ++ integer_to_list(I)))
                                  || I <- lists:seq(1, N)],
                            Names = [ctl(B, C, ?OP_WHOAMI, "") || C <- Cs],
                            [true = edc_diff:call(B, port_close, [C]) || C <- Cs],
                            {length(lists:usort(Cs)),
                             Names =:= [{"m" ++ integer_to_list(I), 0} || I <- lists:seq(1, N)]}
                    end,
                    {N, true}).

%% Ten ports created in one callback (within the pool of idle processes a
%% compat callback can take from; see the README for larger bursts), each
%% named and working.
burst_in_one_callback(_Config) ->
    N = 10,
    edc_diff:expect("burst in one callback",
                    fun(B) ->
                            P = open(B),
                            R = ctl(B, P, ?OP_BURST, integer_to_list(N)),
                            Cs = [receive {created, C} -> edc_diff:track(C), C end
                                  || _ <- lists:seq(1, N)],
                            Names = [ctl(B, C, ?OP_WHOAMI, "") || C <- Cs],
                            [true = edc_diff:call(B, port_close, [C]) || C <- Cs],
                            {R, Names}
                    end,
                    {N, [{"b" ++ integer_to_list(I), 0} || I <- lists:seq(1, N)]}).
