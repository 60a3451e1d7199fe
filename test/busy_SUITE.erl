%% Busy ports and flow control (lc_busy_drv, lc_busy_soft_drv,
%% lc_busy_nomsgq_drv): set_busy_port, port_command/3 with `nosuspend' and
%% `force', callers waiting on a busy port and the order they resume in,
%% command messages to a busy port, what a close or a failure does to the
%% waiting callers, and erl_drv_busy_msgq_limits with the
%% `{busy_limits_msgq, _}' option.
%%
%% Every case is differential: the same scenario runs against the native
%% port and the compat pseudo-port; the native result must be the
%% expected value (measured on OTP 25) and the compat result equal to it.
%% A caller waiting on a busy port is observed by polling its status
%% (natively `suspended', here `waiting' in a receive), with a bound; no
%% sleep is used to wait for an event.
-module(busy_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([nosuspend_on_busy/1,
         force_needs_soft_busy/1,
         force_on_soft_busy/1,
         caller_waits_until_unbusy/1,
         callers_resume_in_native_order/1,
         resumed_caller_makes_port_busy_again/1,
         busy_from_output/1,
         unbusy_from_timeout/1,
         killed_waiter_is_skipped/1,
         command_message_waits/1,
         command_messages_keep_their_order/1,
         foreign_command_message_waits/1,
         control_while_busy/1,
         connect_and_close_messages_while_busy/1,
         close_with_waiting_callers/1,
         failure_with_waiting_callers/1,
         exit_with_waiting_callers/1,
         msgq_limits_default/1,
         msgq_limits_requests/1,
         msgq_limits_disabled_stays/1,
         msgq_limits_option/1,
         msgq_limits_no_busy_msgq/1]).

-define(DRV, "lc_busy_drv").
-define(SOFT, "lc_busy_soft_drv").
-define(NOMSGQ, "lc_busy_nomsgq_drv").

-define(OP_BUSY, 1).
-define(OP_UNBUSY, 2).
-define(OP_COUNT, 3).
-define(OP_LIMITS, 4).
-define(OP_TIMER, 5).
-define(OP_FAIL_ATOM, 6).
-define(OP_EXIT, 7).

%% ERL_DRV_BUSY_MSGQ_DISABLED on a 64-bit machine.
-define(DIS, 18446744073709551615).

all() ->
    [nosuspend_on_busy,
     force_needs_soft_busy,
     force_on_soft_busy,
     caller_waits_until_unbusy,
     callers_resume_in_native_order,
     resumed_caller_makes_port_busy_again,
     busy_from_output,
     unbusy_from_timeout,
     killed_waiter_is_skipped,
     command_message_waits,
     command_messages_keep_their_order,
     foreign_command_message_waits,
     control_while_busy,
     connect_and_close_messages_while_busy,
     close_with_waiting_callers,
     failure_with_waiting_callers,
     exit_with_waiting_callers,
     msgq_limits_default,
     msgq_limits_requests,
     msgq_limits_disabled_stays,
     msgq_limits_option,
     msgq_limits_no_busy_msgq].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV, ?SOFT, ?NOMSGQ])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(B) ->
    open(B, ?DRV, []).

open(B, Drv, Opts) ->
    edc_diff:call(B, open_port, [{spawn, Drv}, Opts]).

ctl(B, P, Op) ->
    ctl(B, P, Op, "").

ctl(B, P, Op, Data) ->
    edc_diff:parse_term(edc_diff:call(B, port_control, [P, Op, Data])).

busy(B, P) -> ok = ctl(B, P, ?OP_BUSY).

unbusy(B, P) -> ok = ctl(B, P, ?OP_UNBUSY).

count(B, P) -> ctl(B, P, ?OP_COUNT).

%% Starts a process that sends Data to the port with port_command/2 and
%% reports `{Tag, Outcome}' to the scenario process; returns once that
%% process waits on the busy port.
caller(B, P, Tag, Data) ->
    Self = self(),
    Pid = spawn(fun() ->
                        Outcome = edc_diff:attempt(
                                    fun() -> edc_diff:call(B, port_command, [P, Data]) end),
                        Self ! {Tag, strip(Outcome)}
                end),
    blocked = until_blocked(Pid),
    Pid.

%% Stack traces differ between the backends: keep class and reason.
strip({error, {Reason, _Stack}}) -> {error, Reason};
strip(Outcome) -> Outcome.

%% Waits (bounded) until Pid waits on the busy port: natively it is
%% suspended, through us it waits in a receive. `ended' when it ran to
%% its end instead (a message to a port never blocks through us).
until_blocked(Pid) ->
    until_blocked(Pid, 5000).

until_blocked(_Pid, 0) ->
    not_blocked;
until_blocked(Pid, N) ->
    case erlang:process_info(Pid, status) of
        {status, S} when S =:= suspended; S =:= waiting -> blocked;
        undefined -> ended;
        _ ->
            receive after 1 -> until_blocked(Pid, N - 1) end
    end.

%% The next N `{P, {data, D}}' of port P, in order, as D.
data(P, N) ->
    [receive {P, {data, D}} -> D after 5000 -> timeout end || _ <- lists:seq(1, N)].

%% The reports of callers with these tags, sorted.
reports(Tags) ->
    lists:sort([receive {Tag, Outcome} -> {Tag, Outcome} after 5000 -> {Tag, timeout} end
                || Tag <- Tags]).

%%--------------------------------------------------------------------
%% port_command/3
%%--------------------------------------------------------------------

%% nosuspend on a busy port returns false and the driver gets nothing
%% (even bad data: busy is looked at first); once not busy it returns
%% true.
nosuspend_on_busy(_Config) ->
    edc_diff:expect("nosuspend on a busy port",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            R1 = edc_diff:call(B, port_command3, [P, "a", [nosuspend]]),
                            R2 = edc_diff:call(B, port_command3, [P, [foo], [nosuspend]]),
                            C1 = count(B, P),
                            unbusy(B, P),
                            R3 = edc_diff:call(B, port_command3, [P, "b", [nosuspend]]),
                            {R1, R2, C1, R3, data(P, 1), count(B, P)}
                    end,
                    {false, false, 0, true, ["b"], 1}).

force_needs_soft_busy(_Config) ->
    edc_diff:expect("force without ERL_DRV_FLAG_SOFT_BUSY",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            F = fun(Opts) ->
                                        strip(edc_diff:attempt(
                                                fun() ->
                                                        edc_diff:call(B, port_command3,
                                                                      [P, "a", Opts])
                                                end))
                                end,
                            {F([force]), F([force, nosuspend]), count(B, P)}
                    end,
                    {{error, notsup}, {error, notsup}, 0}).

force_on_soft_busy(_Config) ->
    edc_diff:expect("force with ERL_DRV_FLAG_SOFT_BUSY",
                    fun(B) ->
                            P = open(B, ?SOFT, []),
                            busy(B, P),
                            R1 = edc_diff:call(B, port_command3, [P, "f1", [force]]),
                            R2 = edc_diff:call(B, port_command3, [P, "n", [nosuspend]]),
                            R3 = edc_diff:call(B, port_command3, [P, "f2", [force, nosuspend]]),
                            {R1, R2, R3, data(P, 2), count(B, P)}
                    end,
                    {true, false, true, ["f1", "f2"], 2}).

%%--------------------------------------------------------------------
%% Waiting callers
%%--------------------------------------------------------------------

%% port_command/2 and port_command/3 without nosuspend wait; control
%% still works meanwhile; clearing busy lets the command run and the
%% caller gets true.
caller_waits_until_unbusy(_Config) ->
    edc_diff:expect("a caller waits until the port is not busy",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            Self = self(),
                            C = spawn(fun() ->
                                              R = edc_diff:call(B, port_command3, [P, "c", []]),
                                              Self ! {c, R}
                                      end),
                            Blocked = until_blocked(C),
                            Count = count(B, P),
                            unbusy(B, P),
                            {Blocked, Count, data(P, 1), reports([c]), count(B, P)}
                    end,
                    {blocked, 0, ["c"], [{c, true}], 1}).

%% Natively every suspended caller is resumed at once and they run in the
%% order second, third, ..., first.
callers_resume_in_native_order(_Config) ->
    edc_diff:expect("waiting callers resume in the native order",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            Tags = [c1, c2, c3, c4, c5],
                            [caller(B, P, T, atom_to_list(T)) || T <- Tags],
                            unbusy(B, P),
                            {data(P, 5), reports(Tags)}
                    end,
                    {["c2", "c3", "c4", "c5", "c1"],
                     [{c1, {ok, true}}, {c2, {ok, true}}, {c3, {ok, true}},
                      {c4, {ok, true}}, {c5, {ok, true}}]}).

%% The first resumed caller makes the port busy again: the others wait
%% again, and resume (rotated once more) when it is cleared.
resumed_caller_makes_port_busy_again(_Config) ->
    edc_diff:expect("a resumed caller makes the port busy again",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            caller(B, P, c1, "x1"),
                            caller(B, P, c2, "busy"),
                            caller(B, P, c3, "x3"),
                            unbusy(B, P),
                            First = data(P, 1),
                            [{c2, {ok, true}}] = reports([c2]),
                            unbusy(B, P),
                            {First, data(P, 2), reports([c1, c3])}
                    end,
                    {["busy"], ["x1", "x3"], [{c1, {ok, true}}, {c3, {ok, true}}]}).

%% A command that makes the port busy returns true; the next one waits.
busy_from_output(_Config) ->
    edc_diff:expect("busy set inside output",
                    fun(B) ->
                            P = open(B),
                            R = edc_diff:call(B, port_command, [P, "busy"]),
                            caller(B, P, c, "next"),
                            unbusy(B, P),
                            {R, data(P, 2), reports([c])}
                    end,
                    {true, ["busy", "next"], [{c, {ok, true}}]}).

%% The driver clears busy from its timeout (run by the port itself).
unbusy_from_timeout(_Config) ->
    edc_diff:expect("busy cleared in timeout",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            caller(B, P, c, "c"),
                            ok = ctl(B, P, ?OP_TIMER, "5"),
                            {data(P, 2), reports([c])}
                    end,
                    {["timeout", "c"], [{c, {ok, true}}]}).

%% A waiting caller that is killed never sends its command.
killed_waiter_is_skipped(_Config) ->
    edc_diff:expect("a killed waiting caller is skipped",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            C1 = caller(B, P, c1, "c1"),
                            caller(B, P, c2, "c2"),
                            edc_diff:until_down(begin exit(C1, kill), C1 end),
                            unbusy(B, P),
                            {data(P, 1), reports([c2]), count(B, P)}
                    end,
                    {["c2"], [{c2, {ok, true}}], 1}).

%% Port ! {Owner, {command, D}} on a busy port: natively the sender is
%% suspended; through us the message waits in the port. Either way the
%% command runs when busy is cleared, in the native order among the
%% waiting callers (the message was first: it runs last).
command_message_waits(_Config) ->
    edc_diff:expect("a command message to a busy port waits",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            Self = self(),
                            S = spawn(fun() -> P ! {Self, {command, "m"}} end),
                            Sender = until_blocked(S),
                            caller(B, P, c, "c"),
                            Count = count(B, P),
                            unbusy(B, P),
                            {Sender =/= not_blocked, Count, data(P, 2), reports([c])}
                    end,
                    {true, 0, ["c", "m"], [{c, {ok, true}}]}).

%% A command message naming another process than the owner waits too
%% (natively its sender is suspended), and is a bad signal (badsig to the
%% owner) only when it runs: after the caller that waited behind it.
foreign_command_message_waits(_Config) ->
    edc_diff:expect("a command message from a non-owner to a busy port",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            busy(B, P),
                            S = spawn(fun() -> P ! {self(), {command, "m"}} end),
                            _ = until_blocked(S),
                            caller(B, P, c, "c"),
                            unbusy(B, P),
                            Got = [receive {P, _} = M -> M; {'EXIT', P, _} = M -> M
                                   after 5000 -> timeout
                                   end || _ <- [1, 2]],
                            {Got, reports([c]), count(B, P)}
                    end,
                    {[{{port, 1}, {data, "c"}}, {'EXIT', {port, 1}, badsig}],
                     [{c, {ok, true}}], 1}).

%% What follows a waiting command message from its sender runs after it,
%% in order, a close included.
command_messages_keep_their_order(_Config) ->
    edc_diff:expect("messages after a waiting command message",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            busy(B, P),
                            Self = self(),
                            S = spawn(fun() ->
                                              P ! {Self, {command, "m1"}},
                                              P ! {Self, {command, "m2"}},
                                              P ! {Self, close}
                                      end),
                            Sender = until_blocked(S),
                            Count = count(B, P),
                            unbusy(B, P),
                            Data = data(P, 3),
                            Closed = receive {P, closed} -> closed after 5000 -> timeout end,
                            {Sender =/= not_blocked, Count, Data, Closed}
                    end,
                    {true, 0, ["m1", "m2", "stop"], closed}).

%% Only commands wait: connect and close messages are handled at once.
connect_and_close_messages_while_busy(_Config) ->
    edc_diff:expect("connect and close messages to a busy port",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            Self = self(),
                            Other = spawn(fun() -> receive stop -> ok end end),
                            P ! {Self, {connect, Other}},
                            Connected = receive {P, connected} -> connected
                                        after 5000 -> timeout
                                        end,
                            Owner = edc_diff:call(B, port_info2, [P, connected]),
                            Other ! stop,
                            P2 = open(B),
                            busy(B, P2),
                            P2 ! {Self, close},
                            Closed = receive {P2, closed} -> closed after 5000 -> timeout end,
                            {Connected, Owner =:= {connected, Other}, Closed, edc_diff:flush()}
                    end,
                    {connected, true, closed, [{{port, 2}, {data, "stop"}}]}).

control_while_busy(_Config) ->
    edc_diff:expect("port_control on a busy port",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            {count(B, P), ctl(B, P, ?OP_LIMITS, "0 0")}
                    end,
                    {0, {4096, 8192}}).

%%--------------------------------------------------------------------
%% The end of a port with waiting callers: they resume and fail with
%% badarg (their command never reaches the driver).
%%--------------------------------------------------------------------

close_with_waiting_callers(_Config) ->
    edc_diff:expect("port_close with waiting callers",
                    fun(B) ->
                            P = open(B),
                            busy(B, P),
                            caller(B, P, c1, "c1"),
                            caller(B, P, c2, "c2"),
                            true = edc_diff:call(B, port_close, [P]),
                            {reports([c1, c2]), edc_diff:flush()}
                    end,
                    {[{c1, {error, badarg}}, {c2, {error, badarg}}],
                     [{{port, 1}, {data, "stop"}}]}).

failure_with_waiting_callers(_Config) ->
    edc_diff:expect("driver_failure_atom with waiting callers",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            busy(B, P),
                            caller(B, P, c1, "c1"),
                            Self = self(),
                            S = spawn(fun() -> P ! {Self, {command, "m"}} end),
                            _ = until_blocked(S),
                            ok = ctl(B, P, ?OP_FAIL_ATOM, "boom"),
                            {reports([c1]), edc_diff:flush()}
                    end,
                    {[{c1, {error, badarg}}],
                     [{'EXIT', {port, 1}, boom}, {{port, 1}, {data, "stop"}}]}).

%% driver_exit: the owner is unlinked first and gets no signal.
exit_with_waiting_callers(_Config) ->
    edc_diff:expect("driver_exit with waiting callers",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            busy(B, P),
                            caller(B, P, c1, "c1"),
                            ok = ctl(B, P, ?OP_EXIT, "5"),
                            {reports([c1]), edc_diff:flush()}
                    end,
                    {[{c1, {error, badarg}}], [{{port, 1}, {data, "stop"}}]}).

%%--------------------------------------------------------------------
%% erl_drv_busy_msgq_limits
%%--------------------------------------------------------------------

msgq_limits_default(_Config) ->
    edc_diff:expect("default message queue limits",
                    fun(B) -> ctl(B, open(B), ?OP_LIMITS, "0 0") end,
                    {4096, 8192}).

%% A low limit above the high one raises it; a high one below the low one
%% lowers it; a request with DISABLED reads back the request.
msgq_limits_requests(_Config) ->
    Dis = integer_to_list(?DIS),
    edc_diff:expect("message queue limit requests",
                    fun(B) ->
                            P = open(B),
                            Seq = [ctl(B, P, ?OP_LIMITS, A)
                                   || A <- ["10 20", "0 0", "30 0", "0 5", "50 40"]],
                            Fresh = [ctl(B, open(B), ?OP_LIMITS, A)
                                     || A <- [Dis ++ " 10", "7 " ++ Dis]],
                            {Seq, Fresh}
                    end,
                    {[{10, 20}, {10, 20}, {30, 30}, {5, 5}, {40, 40}],
                     [{?DIS, 10}, {7, ?DIS}]}).

%% Once disabled, the limits read DISABLED whatever is asked.
msgq_limits_disabled_stays(_Config) ->
    Dis = integer_to_list(?DIS),
    edc_diff:expect("disabled message queue limits",
                    fun(B) ->
                            P = open(B),
                            _ = ctl(B, P, ?OP_LIMITS, Dis ++ " " ++ Dis),
                            [ctl(B, P, ?OP_LIMITS, A) || A <- ["0 0", "7 9", "0 3"]]
                    end,
                    [{?DIS, ?DIS}, {?DIS, ?DIS}, {?DIS, ?DIS}]).

%% The option is applied to the defaults as a request; the last one
%% counts; `disabled' disables.
msgq_limits_option(_Config) ->
    edc_diff:expect("the busy_limits_msgq option",
                    fun(B) ->
                            L = fun(Opts) -> ctl(B, open(B, ?DRV, Opts), ?OP_LIMITS, "0 0") end,
                            [L([{busy_limits_msgq, {100, 200}}]),
                             L([{busy_limits_msgq, {300, 200}}]),
                             L([{busy_limits_msgq, {1, 1}}]),
                             L([{busy_limits_msgq, disabled}]),
                             L([{busy_limits_msgq, disabled}, {busy_limits_msgq, {5, 6}}]),
                             L([{busy_limits_msgq, {5, 6}}, {busy_limits_msgq, disabled}])]
                    end,
                    [{100, 200}, {200, 200}, {1, 1}, {?DIS, ?DIS}, {5, 6}, {?DIS, ?DIS}]).

%% ERL_DRV_FLAG_NO_BUSY_MSGQ: the limits read DISABLED and the option is
%% refused.
msgq_limits_no_busy_msgq(_Config) ->
    edc_diff:expect("ERL_DRV_FLAG_NO_BUSY_MSGQ",
                    fun(B) ->
                            Read = ctl(B, open(B, ?NOMSGQ, []), ?OP_LIMITS, "10 20"),
                            Opt = strip(edc_diff:attempt(
                                          fun() ->
                                                  open(B, ?NOMSGQ,
                                                       [{busy_limits_msgq, {100, 200}}])
                                          end)),
                            Disabled = ctl(B, open(B, ?NOMSGQ, [{busy_limits_msgq, disabled}]),
                                           ?OP_LIMITS, "0 0"),
                            {Read, Opt, Disabled}
                    end,
                    {{?DIS, ?DIS}, {error, badarg}, {?DIS, ?DIS}}).
