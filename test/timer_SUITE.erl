%% The port timer and time measurement (lc_timer_drv): driver_set_timer,
%% driver_cancel_timer, driver_read_timer and the timeout callback;
%% driver_get_now, erl_drv_monotonic_time, erl_drv_time_offset and
%% erl_drv_convert_time_unit.
%%
%% Every case in all/0 is differential: the same scenario runs against the
%% native port and the compat pseudo-port; the native result must be the
%% expected value (measured on OTP 25) and the compat result equal to it.
%% Timings are never asserted, only the presence and order of timeouts.
%% That a timer did *not* fire is shown by the order of messages: a
%% sentinel port whose timer expires later is waited for, and everything
%% received until then is the result.
%%
%% The group `scale' (not in all/0: it opens 100,000 ports; run it with
%% `rebar3 ct --suite test/timer_SUITE --group scale') holds 100,000
%% concurrent timers, one per pseudo-port, and checks that each fires once,
%% never early, and in the order of the deadlines; it logs the time and
%% memory it took (and the same for native ports, as many as the port
%% limit allows).
-module(timer_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([fires/1,
         set_in_start/1,
         set_from_other_process/1,
         cancel/1,
         replace_with_later/1,
         replace_with_earlier/1,
         read_timer/1,
         huge_times/1,
         rearm_in_timeout/1,
         zero_runs_before_next_call/1,
         rearm_zero_in_timeout/1,
         fail_in_timeout/1,
         set_then_port_close/1,
         set_in_stop/1,
         set_then_failure/1,
         timer_after_failure/1,
         order_across_ports/1,
         many_ports_in_order/1]).
-export([get_now/1,
         monotonic_time/1,
         time_offset/1,
         convert_time_unit/1]).
-export([timers_100k/1]).

-compile({nowarn_deprecated_function, [{erlang, now, 0}]}).

-define(DRV, "lc_timer_drv").

-define(OP_SET, 1).
-define(OP_CANCEL, 2).
-define(OP_READ, 3).
-define(OP_REARM, 4).
-define(OP_FAIL_TIMEOUT, 5).
-define(OP_GET_NOW, 6).
-define(OP_MONOTONIC, 7).
-define(OP_OFFSET, 8).
-define(OP_CONVERT, 9).
-define(OP_SET_IN_STOP, 10).
-define(OP_SET_FAIL, 11).
-define(OP_READ_IN_TMO, 12).
-define(OP_NOT_EARLY, 13).
-define(OP_FAIL_THEN, 14).

-define(TIME_ERROR, -9223372036854775808).
-define(UNITS, [second, millisecond, microsecond, nanosecond]).

all() ->
    [{group, timer},
     {group, time}].

groups() ->
    [{timer, [], [fires,
                  set_in_start,
                  set_from_other_process,
                  cancel,
                  replace_with_later,
                  replace_with_earlier,
                  read_timer,
                  huge_times,
                  rearm_in_timeout,
                  zero_runs_before_next_call,
                  rearm_zero_in_timeout,
                  fail_in_timeout,
                  set_then_port_close,
                  set_in_stop,
                  set_then_failure,
                  timer_after_failure,
                  order_across_ports,
                  many_ports_in_order]},
     {time, [], [get_now,
                 monotonic_time,
                 time_offset,
                 convert_time_unit]},
     {scale, [], [timers_100k]}].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(B) ->
    edc_diff:call(B, open_port, [{spawn, ?DRV}, []]).

ctl(B, P, Op, Data) ->
    edc_diff:parse_term(edc_diff:call(B, port_control, [P, Op, Data])).

set(B, P, Ms) ->
    ctl(B, P, ?OP_SET, integer_to_list(Ms)).

%% Opens a port whose timer expires in Ms: everything received until its
%% timeout is what happened before.
sentinel(B, Ms) ->
    S = open(B),
    0 = set(B, S, Ms),
    S.

%% The messages received until the first timeout of port S (included),
%% with port data parsed.
until_timeout_of(S) ->
    receive
        {S, {data, Data}} = M ->
            Parsed = edc_diff:parse_term(Data),
            case Parsed of
                {timeout, _} -> [{S, Parsed}];
                _ -> [parsed(M) | until_timeout_of(S)]
            end;
        M ->
            [parsed(M) | until_timeout_of(S)]
    after 10000 ->
            [{no_timeout_of, S}]
    end.

parsed({P, {data, Data}}) -> {P, edc_diff:parse_term(Data)};
parsed(M) -> M.

%%--------------------------------------------------------------------
%% The timer
%%--------------------------------------------------------------------

%% A timer fires once: timeout runs and its output reaches the owner.
fires(_Config) ->
    edc_diff:expect("fires",
                    fun(B) ->
                            P = open(B),
                            R = set(B, P, 10),
                            {R, until_timeout_of(sentinel(B, 150))}
                    end,
                    {0, [{{port, 1}, {timeout, 1}}, {{port, 2}, {timeout, 1}}]}).

%% A timer set from start fires (natively the port is set up before
%% start runs "to allow setting timers in the start function").
set_in_start(_Config) ->
    edc_diff:expect("set in start",
                    fun(B) ->
                            _ = edc_diff:call(B, open_port, [{spawn, ?DRV ++ " 10"}, []]),
                            until_timeout_of(sentinel(B, 150))
                    end,
                    [{{port, 1}, {timeout, 1}}, {{port, 2}, {timeout, 1}}]).

%% A timer set by another process (which exits at once) fires for the
%% port: its output reaches the connected process.
set_from_other_process(_Config) ->
    edc_diff:expect("set from another process",
                    fun(B) ->
                            P = open(B),
                            Self = self(),
                            {Pid, MRef} = spawn_monitor(fun() -> Self ! {set, set(B, P, 10)} end),
                            receive {'DOWN', MRef, process, Pid, normal} -> ok end,
                            R = receive {set, Ret} -> Ret end,
                            {R, until_timeout_of(sentinel(B, 150))}
                    end,
                    {0, [{{port, 1}, {timeout, 1}}, {{port, 2}, {timeout, 1}}]}).

%% A cancelled timer never fires; cancelling without a timer is fine.
cancel(_Config) ->
    edc_diff:expect("cancel",
                    fun(B) ->
                            P = open(B),
                            R0 = ctl(B, P, ?OP_CANCEL, ""),
                            R1 = set(B, P, 20),
                            R2 = ctl(B, P, ?OP_CANCEL, ""),
                            {R0, R1, R2, until_timeout_of(sentinel(B, 150))}
                    end,
                    {0, 0, 0, [{{port, 2}, {timeout, 1}}]}).

%% Setting a timer replaces the one set: pushed later, it fires once, at
%% the later time (after a sentinel that expires in between) ...
replace_with_later(_Config) ->
    edc_diff:expect("replace with a later time",
                    fun(B) ->
                            P = open(B),
                            0 = set(B, P, 10),
                            0 = set(B, P, 100),
                            _ = sentinel(B, 40),
                            until_timeout_of(sentinel(B, 250))
                    end,
                    [{{port, 2}, {timeout, 1}}, {{port, 1}, {timeout, 1}},
                     {{port, 3}, {timeout, 1}}]).

%% ... brought earlier, it fires once, at the earlier time, and the
%% replaced time passes without a second timeout.
replace_with_earlier(_Config) ->
    edc_diff:expect("replace with an earlier time",
                    fun(B) ->
                            P = open(B),
                            0 = set(B, P, 200),
                            0 = set(B, P, 10),
                            _ = sentinel(B, 100),
                            until_timeout_of(sentinel(B, 350))
                    end,
                    [{{port, 1}, {timeout, 1}}, {{port, 2}, {timeout, 1}},
                     {{port, 3}, {timeout, 1}}]).

%% driver_read_timer: the ms left (at most the time set); 0 when no timer
%% is set: never set, cancelled, inside timeout, after it fired.
read_timer(_Config) ->
    edc_diff:expect("read timer",
                    fun(B) ->
                            P = open(B),
                            Never = ctl(B, P, ?OP_READ, ""),
                            0 = set(B, P, 10000),
                            {0, Left} = ctl(B, P, ?OP_READ, ""),
                            0 = ctl(B, P, ?OP_CANCEL, ""),
                            Cancelled = ctl(B, P, ?OP_READ, ""),
                            ok = ctl(B, P, ?OP_READ_IN_TMO, ""),
                            0 = set(B, P, 10),
                            InTimeout = receive {P, {data, D}} -> edc_diff:parse_term(D)
                                        after 10000 -> no_timeout
                                        end,
                            Fired = ctl(B, P, ?OP_READ, ""),
                            {Never, Left =< 10000 andalso Left > 9000, Cancelled,
                             InTimeout, Fired}
                    end,
                    {{0, 0}, true, {0, 0}, {timeout, 1, {0, 0}}, {0, 0}}).

%% Times the VM's timers cannot hold: 2^62 ms reads back as set; 2^63 ms
%% and more (negative as a signed 64-bit time) fire at once.
huge_times(_Config) ->
    edc_diff:expect("huge times",
                    fun(B) ->
                            P = open(B),
                            0 = set(B, P, 1 bsl 62),
                            {0, Left} = ctl(B, P, ?OP_READ, ""),
                            0 = set(B, P, 1 bsl 63),
                            Now = ctl(B, P, ?OP_READ, ""),
                            First = until_timeout_of(P),
                            0 = set(B, P, (1 bsl 64) - 1),
                            Second = until_timeout_of(P),
                            {Left =< 1 bsl 62 andalso Left > (1 bsl 62) - 1000, Now,
                             First, Second}
                    end,
                    {true, {0, 0}, [{{port, 1}, {timeout, 1}}], [{{port, 1}, {timeout, 2}}]}).

%% timeout may set the timer again: it fires again, as often as re-armed.
rearm_in_timeout(_Config) ->
    edc_diff:expect("re-arm in timeout",
                    fun(B) ->
                            P = open(B),
                            ok = ctl(B, P, ?OP_REARM, "3 5"),
                            0 = set(B, P, 5),
                            until_timeout_of(sentinel(B, 300))
                    end,
                    [{{port, 1}, {timeout, N}} || N <- [1, 2, 3, 4]]
                    ++ [{{port, 2}, {timeout, 1}}]).

%% A 0 ms timer's timeout is the port's next task: it has run, and its
%% output is in the caller's mailbox, when the caller's next call to the
%% port returns; setting the timer again right away loses no timeout
%% (measured natively: 2000 of 2000). Before timeouts of 0 ms ran in the
%% caller, most were still on their way to the port process, and a
%% re-armed timer made the pending one stale.
zero_runs_before_next_call(_Config) ->
    N = 2000,
    edc_diff:expect("0 ms timeout before the next call",
                    fun(B) ->
                            P = open(B),
                            Seen = [begin
                                        0 = set(B, P, 0),
                                        {0, 0} = ctl(B, P, ?OP_READ, ""),
                                        receive
                                            {P, {data, D}} -> edc_diff:parse_term(D)
                                        after 0 -> none
                                        end
                                    end || _ <- lists:seq(1, N)],
                            Seen -- [{timeout, I} || I <- lists:seq(1, N)]
                    end,
                    []).

%% A driver that re-arms 0 ms timers from timeout gets every timeout, in
%% order, and the call that set the first one returns.
rearm_zero_in_timeout(_Config) ->
    edc_diff:expect("re-arm 0 ms in timeout",
                    fun(B) ->
                            P = open(B),
                            ok = ctl(B, P, ?OP_REARM, "50 0"),
                            0 = set(B, P, 0),
                            until_timeout_of(sentinel(B, 300))
                    end,
                    [{{port, 1}, {timeout, N}} || N <- lists:seq(1, 51)]
                    ++ [{{port, 2}, {timeout, 1}}]).

%% timeout may fail the port: its output comes first, then the exit.
fail_in_timeout(_Config) ->
    edc_diff:expect("driver_failure in timeout",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            ok = ctl(B, P, ?OP_FAIL_TIMEOUT, ""),
                            0 = set(B, P, 10),
                            until_timeout_of(sentinel(B, 150))
                    end,
                    [{{port, 1}, {timeout, 1}}, {'EXIT', {port, 1}, timeout_failed},
                     {{port, 2}, {timeout, 1}}]).

%% No timeout after the port closed.
set_then_port_close(_Config) ->
    edc_diff:expect("set, then port_close",
                    fun(B) ->
                            P = open(B),
                            0 = set(B, P, 20),
                            true = edc_diff:call(B, port_close, [P]),
                            until_timeout_of(sentinel(B, 150))
                    end,
                    [{{port, 2}, {timeout, 1}}]).

%% A timer set from stop (the port is closing) succeeds and never fires.
set_in_stop(_Config) ->
    edc_diff:expect("set in stop",
                    fun(B) ->
                            P = open(B),
                            ok = ctl(B, P, ?OP_SET_IN_STOP, ""),
                            true = edc_diff:call(B, port_close, [P]),
                            until_timeout_of(sentinel(B, 150))
                    end,
                    [{{port, 1}, {stop_set, 0}}, {{port, 2}, {timeout, 1}}]).

%% A timer set just before driver_failure never fires.
set_then_failure(_Config) ->
    edc_diff:expect("set, then driver_failure",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            R = (catch ctl(B, P, ?OP_SET_FAIL, "10")),
                            {R, until_timeout_of(sentinel(B, 150))}
                    end,
                    {ok, [{'EXIT', {port, 1}, failed}, {{port, 2}, {timeout, 1}}]}).

%% After driver_failure in the same callback the timer functions fail
%% (-1) and no timer fires.
timer_after_failure(_Config) ->
    edc_diff:expect("timer functions after driver_failure",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B),
                            R = (catch ctl(B, P, ?OP_FAIL_THEN, "")),
                            {R, until_timeout_of(sentinel(B, 150))}
                    end,
                    {{-1, -1, -1}, [{'EXIT', {port, 1}, failed}, {{port, 2}, {timeout, 1}}]}).

%% Ports fire in the order of their times, whatever the order they were
%% set in.
order_across_ports(_Config) ->
    Delays = [210, 30, 150, 0, 90, 180, 60, 120],
    edc_diff:expect("order across ports",
                    fun(B) ->
                            Ports = [open(B) || _ <- Delays],
                            [0 = set(B, P, D) || {P, D} <- lists:zip(Ports, Delays)],
                            [receive {P, {data, Data}} -> {P, edc_diff:parse_term(Data)}
                             after 10000 -> missing
                             end || _ <- Delays]
                    end,
                    [{{port, N}, {timeout, 1}} || N <- [4, 2, 7, 5, 8, 3, 6, 1]]).

%% The small version of the scale test: 1,000 ports, 5 deadlines (spread
%% over the ports in turn), each timer once, never early, in order.
many_ports_in_order(_Config) ->
    edc_diff:expect("1,000 ports in order",
                    fun(B) -> summary(scale_run(B, 1000, 5, 100, 500)) end,
                    #{fired => 1000, inversions => 0, duplicates => 0, early => 0,
                      missing => 0}).

%%--------------------------------------------------------------------
%% Time measurement
%%--------------------------------------------------------------------

%% driver_get_now: an erlang:now/0 timestamp, unique and increasing
%% together with erlang:now/0 (strictly between the values it gives before
%% and after).
get_now(_Config) ->
    edc_diff:expect("driver_get_now",
                    fun(B) ->
                            P = open(B),
                            Before = now_us(erlang:now()),
                            {0, M1, S1, U1} = ctl(B, P, ?OP_GET_NOW, ""),
                            {0, M2, S2, U2} = ctl(B, P, ?OP_GET_NOW, ""),
                            After = now_us(erlang:now()),
                            T1 = now_us({M1, S1, U1}),
                            T2 = now_us({M2, S2, U2}),
                            {Before < T1, T1 < T2, T2 < After, U1 < 1000000, S1 < 1000000}
                    end,
                    {true, true, true, true, true}).

now_us({Mega, Sec, Micro}) ->
    (Mega * 1000000 + Sec) * 1000000 + Micro.

%% erl_drv_monotonic_time(U) lies between erlang:monotonic_time(U) before
%% and after; a bad unit gives ERL_DRV_TIME_ERROR.
monotonic_time(_Config) ->
    edc_diff:expect("erl_drv_monotonic_time",
                    fun(B) ->
                            P = open(B),
                            Within = [begin
                                          Before = erlang:monotonic_time(Unit),
                                          T = ctl(B, P, ?OP_MONOTONIC, integer_to_list(U)),
                                          After = erlang:monotonic_time(Unit),
                                          Before =< T andalso T =< After
                                      end || {U, Unit} <- lists:zip([0, 1, 2, 3], ?UNITS)],
                            {Within, [ctl(B, P, ?OP_MONOTONIC, U) || U <- ["4", "-1", "17"]]}
                    end,
                    {[true, true, true, true], [?TIME_ERROR, ?TIME_ERROR, ?TIME_ERROR]}).

%% erl_drv_time_offset(U) is erlang:time_offset(U) (between the values
%% read before and after); a bad unit gives ERL_DRV_TIME_ERROR.
time_offset(_Config) ->
    edc_diff:expect("erl_drv_time_offset",
                    fun(B) ->
                            P = open(B),
                            Within = [begin
                                          Before = erlang:time_offset(Unit),
                                          T = ctl(B, P, ?OP_OFFSET, integer_to_list(U)),
                                          After = erlang:time_offset(Unit),
                                          min(Before, After) =< T andalso T =< max(Before, After)
                                      end || {U, Unit} <- lists:zip([0, 1, 2, 3], ?UNITS)],
                            {Within, [ctl(B, P, ?OP_OFFSET, U) || U <- ["4", "-1", "17"]]}
                    end,
                    {[true, true, true, true], [?TIME_ERROR, ?TIME_ERROR, ?TIME_ERROR]}).

%% erl_drv_convert_time_unit rounds down (also for negative values), as
%% erlang:convert_time_unit/3 does; a bad unit gives ERL_DRV_TIME_ERROR.
convert_time_unit(_Config) ->
    Cases = [{1500, 1, 0}, {-1500, 1, 0}, {-1, 3, 0}, {-1000, 1, 0}, {7, 0, 3},
             {123456789, 3, 2}, {-123456789, 3, 2}, {42, 2, 2}],
    edc_diff:expect("erl_drv_convert_time_unit",
                    fun(B) ->
                            P = open(B),
                            Convert = fun(V, F, T) ->
                                              ctl(B, P, ?OP_CONVERT,
                                                  io_lib:format("~b ~b ~b", [V, F, T]))
                                      end,
                            Values = [Convert(V, F, T) || {V, F, T} <- Cases],
                            AsErlang = [erlang:convert_time_unit(V, lists:nth(F + 1, ?UNITS),
                                                                 lists:nth(T + 1, ?UNITS))
                                        || {V, F, T} <- Cases],
                            {Values, Values =:= AsErlang,
                             [Convert(5, 4, 1), Convert(5, 1, -1)]}
                    end,
                    {[1, -2, -1, -1, 7000000000, 123456, -123457, 42], true,
                     [?TIME_ERROR, ?TIME_ERROR]}).

%%--------------------------------------------------------------------
%% Scale
%%--------------------------------------------------------------------

%% 100,000 concurrent timers, one per pseudo-port; the same scenario on as
%% many native ports as the port limit allows, for comparison.
timers_100k(_Config) ->
    N = list_to_integer(os:getenv("EDC_TIMER_PORTS", "100000")),
    Compat = run_scale(compat, N),
    ct:pal("compat, ~b ports: ~p", [N, Compat]),
    NativeN = min(N, erlang:system_info(port_limit) - 1000),
    Native = run_scale(native, NativeN),
    ct:pal("native, ~b ports: ~p", [NativeN, Native]),
    #{fired := N, inversions := 0, duplicates := 0, early := 0, missing := 0} = summary(Compat),
    #{fired := NativeN, inversions := 0, duplicates := 0, early := 0, missing := 0} =
        summary(Native),
    ok.

%% Runs scale_run/5 in a fresh process (its ports close when it ends).
run_scale(Kind, N) ->
    Self = self(),
    Ref = make_ref(),
    {Pid, MRef} = spawn_monitor(fun() ->
                                        B = edc_diff:backend(Kind),
                                        Self ! {Ref, scale_run(B, N, 10, 300, 4000)}
                                end),
    receive
        {Ref, Result} ->
            erlang:demonitor(MRef, [flush]),
            Result;
        {'DOWN', MRef, process, Pid, Reason} ->
            ct:fail({scale_run_died, Kind, Reason})
    end.

summary(Result) ->
    maps:with([fired, inversions, duplicates, early, missing], Result).

%% Opens N ports and gives port I a timer that expires at
%% T0 + Base + (I rem Buckets) * Gap, where T0 is when the setting starts
%% (each port's delay is computed from the time it is set, so that every
%% timer of a bucket expires at the same time whatever the order of
%% setting). Then receives every timeout: each must come once, not early
%% (the driver checks with erl_drv_monotonic_time), and no timeout of a
%% bucket may come after one of a later bucket. Returns the counts, and
%% the times and memory it took (for the log).
scale_run(B, N, Buckets, Gap, Base) ->
    Mem0 = erlang:memory(total),
    {OpenUs, Ports} = timer:tc(fun() -> open_checked(B, N) end),
    Mem1 = erlang:memory(total),
    T0 = erlang:monotonic_time(millisecond),
    Buckets0 = lists:zip(Ports, [I rem Buckets || I <- lists:seq(0, N - 1)]),
    {SetUs, ok} = timer:tc(fun() -> set_buckets(B, Buckets0, T0, Base, Gap) end),
    SetDone = erlang:monotonic_time(millisecond) - T0,
    Mem2 = erlang:memory(total),
    BucketOf = maps:from_list(Buckets0),
    S = receive_timeouts(BucketOf, N, T0, Base, Gap),
    S#{open_ms => OpenUs div 1000,
       set_ms => SetUs div 1000,
       set_done_before_first_deadline => SetDone < Base,
       memory_mb => #{before => Mem0 div 1000000, opened => Mem1 div 1000000,
                      timers_set => Mem2 div 1000000}}.

open_checked(B, N) ->
    Open = maps:get(open_port, B),
    Control = maps:get(port_control, B),
    [begin
         P = Open({spawn, ?DRV}, [binary]),
         "ok" = Control(P, ?OP_NOT_EARLY, ""),
         P
     end || _ <- lists:seq(1, N)].

set_buckets(B, PortBuckets, T0, Base, Gap) ->
    Control = maps:get(port_control, B),
    lists:foreach(
      fun({P, K}) ->
              Delay = T0 + Base + K * Gap - erlang:monotonic_time(millisecond),
              "0" = Control(P, ?OP_SET, integer_to_list(max(Delay, 0)))
      end, PortBuckets).

receive_timeouts(BucketOf, N, T0, Base, Gap) ->
    Acc = #{fired => 0, inversions => 0, duplicates => 0, early => 0,
            top => 0, max_late_ms => 0, seen => #{}},
    Done = receive_loop(BucketOf, N, T0, Base, Gap, Acc),
    #{seen := Seen} = Done,
    Missing = N - map_size(Seen),
    maps:without([seen, top], Done#{missing => Missing}).

receive_loop(_BucketOf, 0, _T0, _Base, _Gap, Acc) ->
    Acc;
receive_loop(BucketOf, Left, T0, Base, Gap, Acc) ->
    receive
        {P, {data, <<"{timeout,1,", Flag/binary>>}} when is_map_key(P, BucketOf) ->
            Now = erlang:monotonic_time(millisecond),
            K = maps:get(P, BucketOf),
            #{fired := F, inversions := I, duplicates := D, early := E, top := Top,
              max_late_ms := Late, seen := Seen} = Acc,
            Acc1 = Acc#{fired := F + 1,
                        inversions := I + bool(K < Top),
                        duplicates := D + bool(is_map_key(P, Seen)),
                        early := E + bool(Flag =/= <<"true}">>),
                        top := max(K, Top),
                        max_late_ms := max(Late, Now - (T0 + Base + K * Gap)),
                        seen := Seen#{P => true}},
            receive_loop(BucketOf, Left - 1, T0, Base, Gap, Acc1);
        {_P, {data, _}} ->
            #{duplicates := D} = Acc,
            receive_loop(BucketOf, Left, T0, Base, Gap, Acc#{duplicates := D + 1})
    after 30000 ->
            Acc
    end.

bool(true) -> 1;
bool(false) -> 0.
