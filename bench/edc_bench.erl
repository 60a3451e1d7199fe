%% @doc `make bench': the same driver (bench/bench_drv.c) loaded natively
%% with erl_ddll and through erl_driver_compat in one VM, measured in the
%% same run with interleaved rounds.
%%
%% For every case and backend, one run is N iterations of the operation
%% in a tight loop timed with erlang:monotonic_time/1; N is calibrated so
%% that a run takes about ?RUN_MS ms. After a warm-up round, ?ROUNDS
%% rounds alternate which backend goes first; the table shows the median
%% ns/op. This is a measurement, not a test: no time is ever asserted.
%%
%% Started by scripts/bench.sh as
%% `erl -noshell -pa EBIN -pa bench/build -run edc_bench main DriverDir'.
-module(edc_bench).

-export([main/1]).

-define(DRV, "bench_drv").
-define(ROUNDS, 9).
-define(RUN_MS, 60).
-define(MIN_N, 2000).
-define(MAX_N, 2000000).
-define(CALIBRATE_N, 2000).
-define(PAYLOAD, <<"01234567">>).
-define(CALL_TERM, {ok, 42}).
-define(BENCH_TIMEOUT_MS, 120000).

-type kind() :: native | compat.
-type bench_case() :: control | command | call | term | timer | other_sender.

%%====================================================================
%% Entry point
%%====================================================================

-spec main([string()]) -> no_return().
main(Args) ->
    Dir = case Args of
              [D | _] -> D;
              [] -> "bench/build"
          end,
    Watchdog = spawn(fun() ->
                             receive stop -> ok
                             after ?BENCH_TIMEOUT_MS ->
                                     io:format("bench: gave up after ~p s~n",
                                               [?BENCH_TIMEOUT_MS div 1000]),
                                     halt(2)
                             end
                     end),
    Status = try run(Dir) of
                 ok -> 0
             catch
                 Class:Reason:Stack ->
                     io:format("~nbench failed: ~tp:~tp~n  ~tp~n", [Class, Reason, Stack]),
                     1
             end,
    Watchdog ! stop,
    halt(Status).

run(Dir) ->
    ok = erl_ddll:load_driver(Dir, ?DRV),
    ok = erl_driver_compat:load_driver(Dir, ?DRV),
    Ports = #{native => erlang:open_port({spawn, ?DRV}, [binary]),
              compat => erl_driver_compat:open_port({spawn, ?DRV}, [binary])},
    sanity(Ports),
    Cases = [control, command, call, term, timer, other_sender],
    header(),
    Ns = maps:from_list([{C, calibrate(C, Ports)} || C <- Cases]),
    %% Warm-up round (JIT, caches, allocators), not counted.
    _ = round(Cases, Ports, Ns, 0),
    Rounds = [round(Cases, Ports, Ns, R) || R <- lists:seq(1, ?ROUNDS)],
    table(Cases, Ns, Rounds),
    _ = erlang:port_close(maps:get(native, Ports)),
    _ = erl_driver_compat:port_close(maps:get(compat, Ports)),
    ok.

%% Both backends must answer the same before we time them.
sanity(Ports) ->
    lists:foreach(
      fun(Kind) ->
              P = maps:get(Kind, Ports),
              Ctl = control(Kind, P, ?PAYLOAD),
              Cmd = command_rt(Kind, P, ?PAYLOAD),
              Call = call(Kind, P, ?CALL_TERM),
              Term = run_case(term, Kind, P, 1),
              Timer = run_case(timer, Kind, P, 1),
              Want = {?PAYLOAD, ?PAYLOAD, ?CALL_TERM, ok, ok},
              case {Ctl, Cmd, Call, Term, Timer} of
                  Want -> ok;
                  Got -> erlang:error({unexpected_replies, Kind, Got, Want})
              end
      end, [native, compat]).

header() ->
    io:format("erl_driver_compat benchmark: ~s loaded natively (erl_ddll) and through~n"
              "erl_driver_compat in the same VM, measured in the same run.~n~n", [?DRV]),
    io:format("OTP ~s (erts ~s), ~p schedulers, emu flavor ~p; ~p rounds of N iterations~n"
              "after one warm-up round, alternating which backend runs first; "
              "median ns/op.~n~n",
              [erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online), erlang:system_info(emu_flavor),
               ?ROUNDS]).

%%====================================================================
%% Rounds
%%====================================================================

%% One round: every case, both backends, in an order that alternates
%% between rounds. Returns #{{Case, Kind} => ns/op}.
round(Cases, Ports, Ns, R) ->
    Order = case R rem 2 of
                0 -> [native, compat];
                1 -> [compat, native]
            end,
    maps:from_list([{{C, K}, measure(C, K, maps:get(K, Ports), maps:get(C, Ns))}
                    || C <- Cases, K <- Order]).

calibrate(Case, Ports) ->
    Slowest = lists:max([measure(Case, K, maps:get(K, Ports), ?CALIBRATE_N)
                         || K <- [native, compat]]),
    N = round(?RUN_MS * 1.0e6 / max(Slowest, 1.0)),
    max(?MIN_N, min(?MAX_N, N)).

%% ns/op of N iterations.
-spec measure(bench_case(), kind(), port() | pid(), pos_integer()) -> float().
measure(Case, Kind, P, N) ->
    flush(),
    erlang:garbage_collect(),
    T0 = erlang:monotonic_time(nanosecond),
    run_case(Case, Kind, P, N),
    T1 = erlang:monotonic_time(nanosecond),
    (T1 - T0) / N.

run_case(control, native, P, N) -> native_control(P, ?PAYLOAD, N);
run_case(control, compat, P, N) -> compat_control(P, ?PAYLOAD, N);
run_case(command, native, P, N) -> native_command(P, ?PAYLOAD, N);
run_case(command, compat, P, N) -> compat_command(P, ?PAYLOAD, N);
run_case(call, native, P, N) -> native_call(P, ?CALL_TERM, N);
run_case(call, compat, P, N) -> compat_call(P, ?CALL_TERM, N);
run_case(term, native, P, N) -> native_term(P, N);
run_case(term, compat, P, N) -> compat_term(P, N);
run_case(timer, native, P, N) -> native_timer(P, N);
run_case(timer, compat, P, N) -> compat_timer(P, N);
run_case(other_sender, Kind, P, N) -> other_sender(Kind, P, ?PAYLOAD, N).

%%====================================================================
%% The loops: one per backend so that both pay the same loop overhead
%% and nothing else (no fun calls, no backend dispatch).
%%====================================================================

native_control(_P, _D, 0) -> ok;
native_control(P, D, N) ->
    _ = erlang:port_control(P, 1, D),
    native_control(P, D, N - 1).

compat_control(_P, _D, 0) -> ok;
compat_control(P, D, N) ->
    _ = erl_driver_compat:port_control(P, 1, D),
    compat_control(P, D, N - 1).

native_command(_P, _D, 0) -> ok;
native_command(P, D, N) ->
    true = erlang:port_command(P, D),
    receive {P, {data, _}} -> ok end,
    native_command(P, D, N - 1).

compat_command(_P, _D, 0) -> ok;
compat_command(P, D, N) ->
    true = erl_driver_compat:port_command(P, D),
    receive {P, {data, _}} -> ok end,
    compat_command(P, D, N - 1).

native_call(_P, _T, 0) -> ok;
native_call(P, T, N) ->
    _ = erlang:port_call(P, 1, T),
    native_call(P, T, N - 1).

compat_call(_P, _T, 0) -> ok;
compat_call(P, T, N) ->
    _ = erl_driver_compat:port_call(P, 1, T),
    compat_call(P, T, N - 1).

native_term(_P, 0) -> ok;
native_term(P, N) ->
    _ = erlang:port_control(P, 2, <<>>),
    receive {term, P, 42} -> ok end,
    native_term(P, N - 1).

compat_term(_P, 0) -> ok;
compat_term(P, N) ->
    _ = erl_driver_compat:port_control(P, 2, <<>>),
    receive {term, P, 42} -> ok end,
    compat_term(P, N - 1).

native_timer(_P, 0) -> ok;
native_timer(P, N) ->
    _ = erlang:port_control(P, 3, <<>>),
    receive {P, {data, _}} -> ok end,
    native_timer(P, N - 1).

compat_timer(_P, 0) -> ok;
compat_timer(P, N) ->
    _ = erl_driver_compat:port_control(P, 3, <<>>),
    receive {P, {data, _}} -> ok end,
    compat_timer(P, N - 1).

%% Another process sends N commands; the owner (we) receives the N
%% replies. Natively the reply goes straight to the owner's queue; through
%% erl_driver_compat it is the enif_send path (the caller is not the
%% receiver). Throughput, not a round trip: the sender does not wait.
other_sender(Kind, P, D, N) ->
    Sender = spawn_link(fun() ->
                                receive go -> ok end,
                                send_loop(Kind, P, D, N)
                        end),
    Sender ! go,
    receive_n(P, N).

send_loop(_Kind, _P, _D, 0) -> ok;
send_loop(native, P, D, N) ->
    true = erlang:port_command(P, D),
    send_loop(native, P, D, N - 1);
send_loop(compat, P, D, N) ->
    true = erl_driver_compat:port_command(P, D),
    send_loop(compat, P, D, N - 1).

receive_n(_P, 0) -> ok;
receive_n(P, N) ->
    receive {P, {data, _}} -> receive_n(P, N - 1) end.

%% Single operations, for the sanity check.
control(native, P, D) -> erlang:port_control(P, 1, D);
control(compat, P, D) -> erl_driver_compat:port_control(P, 1, D).

command_rt(Kind, P, D) ->
    true = case Kind of
               native -> erlang:port_command(P, D);
               compat -> erl_driver_compat:port_command(P, D)
           end,
    receive {P, {data, R}} -> R after 1000 -> no_reply end.

call(native, P, T) -> erlang:port_call(P, 1, T);
call(compat, P, T) -> erl_driver_compat:port_call(P, 1, T).

flush() ->
    receive _ -> flush() after 0 -> ok end.

%%====================================================================
%% Output
%%====================================================================

label(control) -> "port_control, 8-byte echo (binary mode)";
label(command) -> "port_command + receive {Port,{data,_}}";
label(call) -> "port_call, small term {ok,42}";
label(term) -> "erl_drv_output_term {term,Port,42} round trip";
label(timer) -> "driver_set_timer(0) -> timeout -> output";
label(other_sender) -> "port_command by another process (*)".

table(Cases, Ns, Rounds) ->
    Header = ["case", "N", "native ns/op", "compat ns/op", "ratio"],
    Rows = [begin
                Nat = median([maps:get({C, native}, R) || R <- Rounds]),
                Com = median([maps:get({C, compat}, R) || R <- Rounds]),
                [label(C), integer_to_list(maps:get(C, Ns)), num(Nat), num(Com),
                 io_lib:format("~.2f", [Nat / Com])]
            end || C <- Cases],
    print_table(Header, Rows, [left, right, right, right, right]),
    io:format("~nratio = native ns/op / compat ns/op: above 1 means erl_driver_compat "
              "is faster.~n"
              "(*) throughput: a second process sends N commands without waiting, the~n"
              "    owner receives the N replies; through erl_driver_compat this is the~n"
              "    enif_send path, since the caller is not the receiver.~n~n"),
    io:format("Spread over the ~p rounds (min .. max ns/op):~n", [?ROUNDS]),
    Spread = [[label(C)] ++
                  [begin
                       Xs = [maps:get({C, K}, R) || R <- Rounds],
                       num(lists:min(Xs)) ++ " .. " ++ num(lists:max(Xs))
                   end || K <- [native, compat]]
              || C <- Cases],
    print_table(["case", "native", "compat"], Spread, [left, right, right]).

print_table(Header, Rows, Align) ->
    All = [Header | [[lists:flatten(Cell) || Cell <- Row] || Row <- Rows]],
    Widths = [lists:max([string:length(Cell) || Cell <- Col]) || Col <- columns(All)],
    Line = fun(Cells) ->
                   Padded = [pad(Cell, W, A) || {Cell, W, A} <- lists:zip3(Cells, Widths, Align)],
                   io:format("  ~ts~n", [string:trim(lists:join(" | ", Padded), trailing)])
           end,
    [H | Body] = All,
    Line(H),
    io:format("  ~ts~n", [lists:join("-+-", [lists:duplicate(W, $-) || W <- Widths])]),
    lists:foreach(Line, Body).

columns([[] | _]) -> [];
columns(Rows) -> [[hd(R) || R <- Rows] | columns([tl(R) || R <- Rows])].

pad(Cell, W, left) -> string:pad(Cell, W, trailing);
pad(Cell, W, right) -> string:pad(Cell, W, leading).

num(X) when X >= 100 -> integer_to_list(round(X));
num(X) -> lists:flatten(io_lib:format("~.1f", [X])).

median(Xs) ->
    S = lists:sort(Xs),
    L = length(S),
    case L rem 2 of
        1 -> lists:nth(L div 2 + 1, S);
        0 -> (lists:nth(L div 2, S) + lists:nth(L div 2 + 1, S)) / 2
    end.
