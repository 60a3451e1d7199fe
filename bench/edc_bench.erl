%% @doc `make bench': the same drivers (bench/bench_drv.c,
%% bench/bench_v_drv.c) loaded natively with erl_ddll and through
%% erl_driver_compat in one VM, measured in the same run with interleaved
%% rounds.
%%
%% Timing rows: one run is N iterations of the operation in a tight loop
%% timed with erlang:monotonic_time/1; N is calibrated so that a run takes
%% about ?RUN_MS ms. After a warm-up round, ?ROUNDS rounds alternate which
%% backend goes first; the table shows the median ns/op and the spread
%% (min..max). Scale rows: opening and closing many ports, the bytes each
%% open port costs (erlang:memory(total) before and after, the port's
%% process included, once idle port processes have hibernated), and
%% many live timers.
%%
%% Results are printed and written as JSON. This is a measurement, not a
%% test: no time is ever asserted.
%%
%% Started by scripts/bench.sh as
%% `erl -noshell -pa EBIN -pa bench/build -run edc_bench main DriverDir
%% ResultsFile ScalePorts'.
-module(edc_bench).

-export([main/1]).

-define(ROUNDS, 9).
-define(RUN_MS, 30).
-define(MIN_N, 100).
-define(MAX_N, 1000000).
-define(CALIBRATE_N, 100).
-define(SMALL_PORTS, 10000).
-define(SCALE_REPS, 5).
-define(BENCH_TIMEOUT_MS, 170000).
-define(SIZES, [8, 1024, 65536]).


%%====================================================================
%% Entry point
%%====================================================================

-spec main([string()]) -> no_return().
main(Args) ->
    {Dir, Out, ScalePorts} =
        case Args of
            [D, O, S | _] -> {D, O, list_to_integer(S)};
            [D, O] -> {D, O, 100000};
            [D] -> {D, "_build/bench/results.json", 100000};
            [] -> {"bench/build", "_build/bench/results.json", 100000}
        end,
    Self = self(),
    Watchdog = spawn(fun() ->
                             receive stop -> ok
                             after ?BENCH_TIMEOUT_MS ->
                                     io:format("bench: gave up after ~p s~n",
                                               [?BENCH_TIMEOUT_MS div 1000]),
                                     exit(Self, kill),
                                     halt(2)
                             end
                     end),
    Status = try run(Dir, Out, ScalePorts) of
                 ok -> 0
             catch
                 Class:Reason:Stack ->
                     io:format("~nbench failed: ~tp:~tp~n  ~tp~n", [Class, Reason, Stack]),
                     1
             end,
    Watchdog ! stop,
    halt(Status).

run(Dir, Out, ScalePorts) ->
    [begin
         ok = erl_ddll:load_driver(Dir, Drv),
         ok = erl_driver_compat:load_driver(Dir, Drv)
     end || Drv <- ["bench_drv", "bench_v_drv"]],
    Ports = #{native => open_set(native), compat => open_set(compat)},
    Cases = only(cases()),
    sanity(Cases, Ports),
    header(ScalePorts),
    Ns = maps:from_list([{C, calibrate(C, Ports)} || C <- Cases]),
    %% Warm-up round (JIT, caches, allocators), not counted.
    _ = round(Cases, Ports, Ns, 0),
    Rounds = [round(Cases, Ports, Ns, R) || R <- lists:seq(1, ?ROUNDS)],
    [close_set(K, maps:get(K, Ports)) || K <- [native, compat]],
    Timing = timing_rows(Cases, Ns, Rounds),
    print_timing(Timing),
    Scale = case os:getenv("BENCH_ONLY") of
                false -> scale_rows(ScalePorts);
                _ -> []
            end,
    print_scale(Scale),
    ok = write_json(Out, Timing, Scale),
    io:format("~nResults written to ~ts~n", [Out]),
    ok.

open_set(Kind) ->
    #{bin => open(Kind, "bench_drv"), bin2 => open(Kind, "bench_drv"),
      list => open(Kind, "bench_drv list"), v => open(Kind, "bench_v_drv")}.

open(native, Cmd) -> erlang:open_port({spawn, Cmd}, [binary]);
open(compat, Cmd) -> erl_driver_compat:open_port({spawn, Cmd}, [binary]).

close(native, P) -> erlang:port_close(P);
close(compat, P) -> erl_driver_compat:port_close(P).

close_set(Kind, Set) ->
    [close(Kind, P) || P <- maps:values(Set)].

%%====================================================================
%% The timing rows
%%====================================================================

%% {Id, Size}: what runs, on which payload size (0: none).
cases() ->
    [{ctl_bin, S} || S <- ?SIZES] ++
        [{ctl_list, S} || S <- ?SIZES] ++
        [{call, S} || S <- ?SIZES] ++
        [{cmd_output, S} || S <- ?SIZES] ++
        [{cmd_outputv, S} || S <- ?SIZES] ++
        [{out_binary, S} || S <- ?SIZES] ++
        [{term, 0}, {timer, 0}] ++
        [{queue, S} || S <- ?SIZES] ++
        [{async, 0}, {select, 0}, {two_ports, 8}, {one_port, 8}].

%% `BENCH_ONLY=ctl_bin,call make bench`: only the rows of those case ids
%% (and no scale rows), for measuring one change quickly.
only(Cases) ->
    case os:getenv("BENCH_ONLY") of
        false ->
            Cases;
        Ids ->
            Wanted = [list_to_atom(Id) || Id <- string:lexemes(Ids, ", ")],
            [C || {Id, _} = C <- Cases, lists:member(Id, Wanted)]
    end.

label({ctl_bin, _}) -> "port_control echo, binary reply";
label({ctl_list, _}) -> "port_control echo, list reply";
label({call, _}) -> "port_call echo (binary term)";
label({cmd_output, _}) -> "port_command -> {data,_} via output";
label({cmd_outputv, _}) -> "port_command -> {data,_} via outputv";
label({out_binary, _}) -> "driver_output_binary round trip";
label({term, _}) -> "driver_output_term round trip";
label({timer, _}) -> "driver_set_timer(0) -> timeout round trip";
label({queue, _}) -> "driver_enq + driver_deq (via control)";
label({async, _}) -> "driver_async job round trip";
label({select, _}) -> "driver_select pipe readiness round trip";
label({two_ports, _}) -> "2 processes on 2 ports, control echo (*)";
label({one_port, _}) -> "2 processes on 1 port, control echo (*)".

size_label(0) -> "-";
size_label(S) when S >= 1024 -> integer_to_list(S div 1024) ++ " KiB";
size_label(S) -> integer_to_list(S) ++ " B".

payload(S) -> binary:copy(<<"x">>, S).

%% Both backends must answer the same before we time them.
sanity(Cases, Ports) ->
    [begin
         D = payload(S),
         Native = once(native, maps:get(native, Ports), D),
         Compat = once(compat, maps:get(compat, Ports), D),
         case Native =:= Compat of
             true -> ok;
             false -> erlang:error({unexpected_replies, S, Native, Compat})
         end
     end || S <- ?SIZES],
    %% Every case completes on both (a hang stops at the watchdog).
    [ok = run_case(C, K, maps:get(K, Ports), 3) || C <- Cases, K <- [native, compat]],
    ok.

once(Kind, #{bin := B, list := L, v := V}, D) ->
    {ctl(Kind, B, 1, D), ctl(Kind, L, 1, D), call(Kind, B, D),
     cmd_rx(Kind, B, D), cmd_rx(Kind, V, D)}.

ctl(native, P, Op, D) -> erlang:port_control(P, Op, D);
ctl(compat, P, Op, D) -> erl_driver_compat:port_control(P, Op, D).

call(native, P, D) -> erlang:port_call(P, 1, D);
call(compat, P, D) -> erl_driver_compat:port_call(P, 1, D).

cmd_rx(Kind, P, D) ->
    true = case Kind of
               native -> erlang:port_command(P, D);
               compat -> erl_driver_compat:port_command(P, D)
           end,
    receive {P, {data, R}} -> iolist_to_binary(R) after 5000 -> no_reply end.

header(ScalePorts) ->
    io:format("erl_driver_compat benchmark: bench_drv and bench_v_drv loaded natively~n"
              "(erl_ddll) and through erl_driver_compat in the same VM, same run.~n~n"),
    io:format("Machine: ~ts, ~p cores; OTP ~s (erts ~s), ~p schedulers, emu flavor ~p.~n"
              "Timing rows: ~p rounds of N iterations after one warm-up round, alternating~n"
              "which backend runs first; median ns/op (min..max over the rounds).~n"
              "Scale rows: ~p ports (open+close also at ~p, ~p repetitions).~n~n",
              [cpu_model(), erlang:system_info(logical_processors_available),
               erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online), erlang:system_info(emu_flavor),
               ?ROUNDS, ScalePorts, ?SMALL_PORTS, ?SCALE_REPS]).

cpu_model() ->
    case file:read_file("/proc/cpuinfo") of
        {ok, Info} ->
            case re:run(Info, "model name\\s*:\\s*([^\\n]*)", [{capture, [1], list}]) of
                {match, [M]} -> M;
                nomatch -> "unknown CPU"
            end;
        _ -> "unknown CPU"
    end.

%% One round: every case, both backends, in an order that alternates
%% between rounds. Returns #{{Case, Kind} => ns/op}.
round(Cases, Ports, Ns, R) ->
    Order = case R rem 2 of
                0 -> [native, compat];
                1 -> [compat, native]
            end,
    maps:from_list([{{C, K}, measure(C, K, maps:get(K, Ports), maps:get(C, Ns))}
                    || C <- Cases, K <- Order]).

%% Two steps: ?CALIBRATE_N iterations (which may include JIT and cache
%% warm-up) give a first N for ~1/10 of a run, whose time gives N.
calibrate(Case, Ports) ->
    N0 = n_for(Case, Ports, ?CALIBRATE_N, ?RUN_MS / 10),
    n_for(Case, Ports, N0, ?RUN_MS).

n_for(Case, Ports, N, Ms) ->
    Slowest = lists:max([measure(Case, K, maps:get(K, Ports), N)
                         || K <- [native, compat]]),
    max(?MIN_N, min(?MAX_N, round(Ms * 1.0e6 / max(Slowest, 1.0)))).

%% ns/op of N iterations.
measure(Case, Kind, Ports, N) ->
    flush(),
    erlang:garbage_collect(),
    T0 = erlang:monotonic_time(nanosecond),
    ok = run_case(Case, Kind, Ports, N),
    T1 = erlang:monotonic_time(nanosecond),
    (T1 - T0) / N.

run_case({Id, S}, Kind, Ports, N) ->
    D = payload(S),
    #{bin := B, bin2 := B2, list := L, v := V} = Ports,
    case {Id, Kind} of
        {ctl_bin, native} -> nctl(B, 1, D, N);
        {ctl_bin, compat} -> cctl(B, 1, D, N);
        {ctl_list, native} -> nctl(L, 1, D, N);
        {ctl_list, compat} -> cctl(L, 1, D, N);
        {call, native} -> ncall(B, D, N);
        {call, compat} -> ccall(B, D, N);
        {cmd_output, native} -> ncmd(B, D, N);
        {cmd_output, compat} -> ccmd(B, D, N);
        {cmd_outputv, native} -> ncmd(V, D, N);
        {cmd_outputv, compat} -> ccmd(V, D, N);
        {out_binary, native} -> nctl_rx(B, 4, D, N);
        {out_binary, compat} -> cctl_rx(B, 4, D, N);
        {term, native} -> nterm(B, N);
        {term, compat} -> cterm(B, N);
        {timer, native} -> nctl_rx(B, 3, D, N);
        {timer, compat} -> cctl_rx(B, 3, D, N);
        {queue, native} -> nctl(B, 5, D, N);
        {queue, compat} -> cctl(B, 5, D, N);
        {async, native} -> nctl_rx(B, 6, D, N);
        {async, compat} -> cctl_rx(B, 6, D, N);
        {select, native} -> nctl_rx(B, 7, D, N);
        {select, compat} -> cctl_rx(B, 7, D, N);
        {two_ports, _} -> parallel(Kind, [B, B2], D, N);
        {one_port, _} -> parallel(Kind, [B, B], D, N)
    end.

%% Two processes each run N div 2 control echoes on their port; ns/op is
%% the wall time over all N operations.
parallel(Kind, Ps, D, N) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               receive go -> ok end,
                               ok = case Kind of
                                        native -> nctl(P, 1, D, N div 2);
                                        compat -> cctl(P, 1, D, N div 2)
                                    end,
                               Self ! {done, self()}
                       end) || P <- Ps],
    [Pid ! go || Pid <- Pids],
    [receive {done, Pid} -> ok end || Pid <- Pids],
    ok.

%%====================================================================
%% The loops: one per backend so that both pay the same loop overhead
%% and nothing else (no fun calls, no backend dispatch).
%%====================================================================

nctl(_P, _Op, _D, 0) -> ok;
nctl(P, Op, D, N) ->
    _ = erlang:port_control(P, Op, D),
    nctl(P, Op, D, N - 1).

cctl(_P, _Op, _D, 0) -> ok;
cctl(P, Op, D, N) ->
    _ = erl_driver_compat:port_control(P, Op, D),
    cctl(P, Op, D, N - 1).

nctl_rx(_P, _Op, _D, 0) -> ok;
nctl_rx(P, Op, D, N) ->
    _ = erlang:port_control(P, Op, D),
    receive {P, {data, _}} -> ok end,
    nctl_rx(P, Op, D, N - 1).

cctl_rx(_P, _Op, _D, 0) -> ok;
cctl_rx(P, Op, D, N) ->
    _ = erl_driver_compat:port_control(P, Op, D),
    receive {P, {data, _}} -> ok end,
    cctl_rx(P, Op, D, N - 1).

ncmd(_P, _D, 0) -> ok;
ncmd(P, D, N) ->
    true = erlang:port_command(P, D),
    receive {P, {data, _}} -> ok end,
    ncmd(P, D, N - 1).

ccmd(_P, _D, 0) -> ok;
ccmd(P, D, N) ->
    true = erl_driver_compat:port_command(P, D),
    receive {P, {data, _}} -> ok end,
    ccmd(P, D, N - 1).

ncall(_P, _T, 0) -> ok;
ncall(P, T, N) ->
    _ = erlang:port_call(P, 1, T),
    ncall(P, T, N - 1).

ccall(_P, _T, 0) -> ok;
ccall(P, T, N) ->
    _ = erl_driver_compat:port_call(P, 1, T),
    ccall(P, T, N - 1).

nterm(_P, 0) -> ok;
nterm(P, N) ->
    _ = erlang:port_control(P, 2, <<>>),
    receive {term, P, 42} -> ok end,
    nterm(P, N - 1).

cterm(_P, 0) -> ok;
cterm(P, N) ->
    _ = erl_driver_compat:port_control(P, 2, <<>>),
    receive {term, P, 42} -> ok end,
    cterm(P, N - 1).

flush() ->
    receive _ -> flush() after 0 -> ok end.

timing_rows(Cases, Ns, Rounds) ->
    [begin
         Nat = [maps:get({C, native}, R) || R <- Rounds],
         Com = [maps:get({C, compat}, R) || R <- Rounds],
         {Id, S} = C,
         #{row => Id, label => label(C), size => S, n => maps:get(C, Ns),
           native_ns => median(Nat), compat_ns => median(Com),
           native_min => lists:min(Nat), native_max => lists:max(Nat),
           compat_min => lists:min(Com), compat_max => lists:max(Com),
           ratio => median(Nat) / median(Com)}
     end || C <- Cases].

print_timing(Rows) ->
    Header = ["case", "size", "N", "native ns/op", "compat ns/op", "ratio",
              "native min..max", "compat min..max"],
    Body = [[L, size_label(S), integer_to_list(N), num(Nat), num(Com), ratio(R),
             num(NMin) ++ ".." ++ num(NMax), num(CMin) ++ ".." ++ num(CMax)]
            || #{label := L, size := S, n := N, native_ns := Nat, compat_ns := Com,
                 ratio := R, native_min := NMin, native_max := NMax,
                 compat_min := CMin, compat_max := CMax} <- Rows],
    print_table(Header, Body, [left, right, right, right, right, right, right, right]),
    io:format("~nratio = native ns/op / compat ns/op: above 1 means erl_driver_compat "
              "is faster.~n"
              "(*) wall time over the operations of both processes.~n~n").

%%====================================================================
%% Scale rows
%%====================================================================

%% In a fresh process that does not trap exits (the usual owner of a
%% port): a trapping owner gets an {'EXIT', Port, normal} per closed port,
%% and a long mailbox slows down every selective receive.
scale_rows(Big) ->
    Self = self(),
    Ref = make_ref(),
    {Pid, Mon} = spawn_monitor(fun() -> Self ! {Ref, scale_rows_here(Big)} end),
    receive
        {Ref, Rows} -> erlang:demonitor(Mon, [flush]), Rows;
        {'DOWN', Mon, process, Pid, Reason} -> erlang:error({scale_rows, Reason})
    end.

scale_rows_here(Big) ->
    Small = [scale_open_close(K, ?SMALL_PORTS) || K <- [native, compat]],
    BigRows = [scale_big(K, Big) || K <- [native, compat]],
    [NS, CS] = Small,
    [NB, CB] = BigRows,
    [row(open_close, "open+close of one port (" ++ integer_to_list(?SMALL_PORTS) ++ " ports)",
         ?SMALL_PORTS, "ns/port", NS, CS),
     row(open_close_big, "open+close of one port (" ++ integer_to_list(Big) ++ " ports)",
         Big, "ns/port", maps:get(open_close, NB), maps:get(open_close, CB)),
     row(memory, "bytes per open port (with its process), " ++ integer_to_list(Big) ++ " open",
         Big, "bytes", maps:get(bytes, NB), maps:get(bytes, CB)),
     row(rss, "resident bytes per open port (RSS, malloc included)",
         Big, "bytes", maps:get(rss, NB), maps:get(rss, CB)),
     row(timers, "driver_set_timer, " ++ integer_to_list(Big) ++ " live timers",
         Big, "ns/timer", maps:get(timer_set, NB), maps:get(timer_set, CB))].

row(Id, Label, Count, Unit, Nat, Com) ->
    #{row => Id, label => Label, count => Count, unit => Unit,
      native => Nat, compat => Com, ratio => Nat / Com}.

%% Median ns per port of opening and closing Count ports, ?SCALE_REPS times.
scale_open_close(Kind, Count) ->
    Ts = [begin
              erlang:garbage_collect(),
              T0 = erlang:monotonic_time(nanosecond),
              Ps = [open(Kind, "bench_drv") || _ <- lists:seq(1, Count)],
              [close(Kind, P) || P <- Ps],
              (erlang:monotonic_time(nanosecond) - T0) / Count
          end || _ <- lists:seq(1, ?SCALE_REPS)],
    median(Ts).

%% Count ports open at once: the time to open and close them, the memory
%% each costs, and a live timer on each.
scale_big(Kind, Count) ->
    erlang:garbage_collect(),
    settle_memory(),
    M0 = erlang:memory(total),
    R0 = rss(),
    T0 = erlang:monotonic_time(nanosecond),
    Ps = [open(Kind, "bench_drv") || _ <- lists:seq(1, Count)],
    T1 = erlang:monotonic_time(nanosecond),
    erlang:garbage_collect(),
    settle_memory(),
    M1 = erlang:memory(total),
    R1 = rss(),
    [_ = ctl(Kind, P, 8, <<>>) || P <- Ps],
    T2 = erlang:monotonic_time(nanosecond),
    [_ = ctl(Kind, P, 9, <<>>) || P <- Ps],
    T3 = erlang:monotonic_time(nanosecond),
    [close(Kind, P) || P <- Ps],
    T4 = erlang:monotonic_time(nanosecond),
    #{open_close => ((T1 - T0) + (T4 - T3)) / Count,
      bytes => (M1 - M0) / Count,
      rss => (R1 - R0) / Count,
      timer_set => (T2 - T1) / Count}.

%% The VM's resident set size in bytes (what erlang:memory/1 does not
%% see: memory the NIF library allocates with malloc).
rss() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s*([0-9]+) kB", [{capture, [1], list}]),
    list_to_integer(Kb) * 1024.

%% Lets the port processes reach their idle state (hibernation) before
%% memory is read: a round trip through every scheduler's run queue.
settle_memory() ->
    Ref = make_ref(),
    Self = self(),
    [spawn(fun() -> Self ! {Ref, I} end) || I <- lists:seq(1, 100)],
    [receive {Ref, I} -> ok end || I <- lists:seq(1, 100)],
    timer:sleep(1200).

print_scale(Rows) ->
    Header = ["scale case", "unit", "native", "compat", "ratio"],
    Body = [[L, U, num(N), num(C), ratio(R)]
            || #{label := L, unit := U, native := N, compat := C, ratio := R} <- Rows],
    print_table(Header, Body, [left, left, right, right, right]).

%%====================================================================
%% Output
%%====================================================================

write_json(File, Timing, Scale) ->
    ok = filelib:ensure_dir(File),
    Machine = #{cpu => cpu_model(),
                cores => erlang:system_info(logical_processors_available),
                otp => erlang:system_info(otp_release),
                erts => erlang:system_info(version),
                schedulers => erlang:system_info(schedulers_online),
                rounds => ?ROUNDS},
    Json = ["{\"machine\": ", json(Machine), ",\n \"timing\": [\n  ",
            lists:join(",\n  ", [json(R) || R <- Timing]), "],\n \"scale\": [\n  ",
            lists:join(",\n  ", [json(R) || R <- Scale]), "]}\n"],
    file:write_file(File, unicode:characters_to_binary(Json)).

json(M) when is_map(M) ->
    ["{", lists:join(", ", [[json(atom_to_binary(K)), ": ", json(V)]
                            || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(B) when is_binary(B) -> [$", B, $"];
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 2}]);
json(L) when is_list(L) -> json(unicode:characters_to_binary(L)).

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

ratio(R) -> lists:flatten(io_lib:format("~.2f", [R])).

median(Xs) ->
    S = lists:sort(Xs),
    L = length(S),
    case L rem 2 of
        1 -> lists:nth(L div 2 + 1, S);
        0 -> (lists:nth(L div 2, S) + lists:nth(L div 2 + 1, S)) / 2
    end.
