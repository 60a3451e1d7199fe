%% Asynchronous jobs (lc_async_drv): driver_async with and without a key,
%% ready_async, async_free, driver_async_port_key, the async_threads field
%% of driver_system_info, and the seed's driver_async_cancel.
%%
%% The differential cases run the same scenario against the native port
%% and the compat pseudo-port; the native result must be the expected
%% value (measured on OTP 25) and the compat result equal to it. Jobs of a
%% port that is gone are observed through a WAITER job of another port: it
%% waits in the pool (plain pthreads in the driver) until the driver's
%% counters show the expected completions and reports them with its
%% ready_async, so nothing here sleeps.
%%
%% Two cases are compat only, because OTP 25 cannot run them: a
%% driver_async with a NULL port crashes the VM natively (measured:
%% segmentation fault; the seed runtimes returned -1, as we do), and
%% driver_async_cancel is not exported by OTP 25 (the driver imports it
%% weakly and finds it absent natively, which the case checks).
-module(async_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([ready_async_in_order/1,
         keys_in_order_on_one_thread/1,
         close_with_pending_jobs/1,
         close_while_jobs_finish/1,
         many_ports_close_half/1,
         port_key/1,
         async_threads/1,
         null_port/1,
         cancel/1,
         async_threads_setting/1]).
-export([in_peer/0]).

-define(DRV, "lc_async_drv").

-define(OP_SUBMIT, 1).
-define(OP_LOG, 2).
-define(OP_BLOCK, 3).
-define(OP_RELEASE, 4).
-define(OP_WAIT, 5).
-define(OP_RESET, 6).
-define(OP_NULLPORT, 7).
-define(OP_PORTKEY, 8).
-define(OP_THREADS, 9).
-define(OP_CANCEL, 10).
-define(OP_ONE, 11).

all() ->
    [{group, differential},
     {group, compat_only}].

groups() ->
    [{differential, [], [ready_async_in_order,
                         keys_in_order_on_one_thread,
                         close_with_pending_jobs,
                         close_while_jobs_finish,
                         many_ports_close_half,
                         port_key,
                         async_threads]},
     {compat_only, [], [null_port,
                        cancel,
                        async_threads_setting]}].

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

%% The next output of port P, parsed.
data(P) ->
    receive {P, {data, D}} -> edc_diff:parse_term(D)
    after 15000 -> {no_data_from, P}
    end.

%% The VM's async thread pool size (+A): ours by default.
threads() ->
    erlang:system_info(thread_pool_size).

%% Waits (through a WAITER job of port W) until N jobs completed; returns
%% {counts, Ready, Freed, Invoked}.
counts(B, W, N) ->
    ok = ctl(B, W, ?OP_WAIT, integer_to_list(N)),
    data(W).

%%--------------------------------------------------------------------
%% Differential cases
%%--------------------------------------------------------------------

%% Jobs with one key run in order, on one thread; each one's ready_async
%% outputs its result to the owner, in order. driver_async returns
%% increasing positive ids and leaves key rem +A in the key.
ready_async_in_order(_Config) ->
    edc_diff:expect("ready_async in order",
                    fun(B) ->
                            P = open(B),
                            Ret = ctl(B, P, ?OP_SUBMIT, "3 5"),
                            Done = [data(P) || _ <- lists:seq(1, 5)],
                            {Ret, Done, ctl(B, P, ?OP_LOG, "3")}
                    end,
                    {{true, true, 3 rem threads()},
                     [{done, 3, S} || S <- lists:seq(1, 5)],
                     {[1, 2, 3, 4, 5], true}}).

%% Jobs of several keys, submitted interleaved: per key, they run in
%% submission order on one thread, and their ready_async calls come in
%% that order.
keys_in_order_on_one_thread(_Config) ->
    Keys = [0, 1, 2, 5],
    Rounds = 3,
    PerRound = 4,
    Seqs = lists:append(lists:duplicate(Rounds, lists:seq(1, PerRound))),
    edc_diff:expect("keys in order on one thread",
                    fun(B) ->
                            P = open(B),
                            Arg = fun(K) -> io_lib:format("~b ~b", [K, PerRound]) end,
                            _ = [{true, true, _} = ctl(B, P, ?OP_SUBMIT, Arg(K))
                                 || _ <- lists:seq(1, Rounds), K <- Keys],
                            Done = [data(P) || _ <- lists:seq(1, Rounds * PerRound * length(Keys))],
                            [{K,
                              [S || {done, K1, S} <- Done, K1 =:= K],
                              ctl(B, P, ?OP_LOG, integer_to_list(K))}
                             || K <- Keys]
                    end,
                    [{K, Seqs, {Seqs, true}} || K <- Keys]).

%% A port closed with jobs pending (blocked in the pool): each job still
%% runs async_invoke once unblocked, then is freed with async_free; no
%% ready_async runs for the closed port (its owner gets no output).
close_with_pending_jobs(_Config) ->
    edc_diff:expect("close with pending jobs",
                    fun(B) ->
                            W = open(B),
                            ok = ctl(B, W, ?OP_RESET, ""),
                            P = open(B),
                            Blocked = [ctl(B, P, ?OP_BLOCK, "") || _ <- [1, 2, 3]],
                            true = edc_diff:call(B, port_close, [P]),
                            ok = ctl(B, W, ?OP_RELEASE, ""),
                            Counts = counts(B, W, 3),
                            {Blocked, Counts, [M || {P1, _} = M <- edc_diff:drain(), P1 =:= P]}
                    end,
                    {[true, true, true], {counts, 0, 3, 3}, []}).

%% A port closed while its jobs finish: every job ends exactly once, in
%% ready_async (before the close: its output reached the owner) or in
%% async_free (after).
close_while_jobs_finish(_Config) ->
    N = 40,
    edc_diff:expect("close while jobs finish",
                    fun(B) ->
                            W = open(B),
                            ok = ctl(B, W, ?OP_RESET, ""),
                            P = open(B),
                            {true, true, _} = ctl(B, P, ?OP_SUBMIT, "1 " ++ integer_to_list(N)),
                            true = edc_diff:call(B, port_close, [P]),
                            {counts, Ready, Freed, Invoked} = counts(B, W, N),
                            Outputs = [M || {P1, {data, _}} = M <- edc_diff:drain(), P1 =:= P],
                            {Ready + Freed, Invoked, length(Outputs) =:= Ready}
                    end,
                    {N, N, true}).

%% Ten ports with jobs on different keys, every other one closed at once:
%% every job ends once; the open ports get all their results, in order.
many_ports_close_half(_Config) ->
    Jobs = 30,
    Ports = 10,
    edc_diff:expect("many ports, half closed",
                    fun(B) ->
                            W = open(B),
                            ok = ctl(B, W, ?OP_RESET, ""),
                            Ps = [{I, open(B)} || I <- lists:seq(1, Ports)],
                            Arg = fun(I) -> io_lib:format("~b ~b", [I rem 8, Jobs]) end,
                            _ = [{true, true, _} = ctl(B, P, ?OP_SUBMIT, Arg(I)) || {I, P} <- Ps],
                            _ = [true = edc_diff:call(B, port_close, [P])
                                 || {I, P} <- Ps, I rem 2 =:= 1],
                            {counts, Ready, Freed, Invoked} = counts(B, W, Ports * Jobs),
                            Open = [[data(P) || _ <- lists:seq(1, Jobs)]
                                    || {I, P} <- Ps, I rem 2 =:= 0],
                            {Ready + Freed, Invoked,
                             [[S || {done, _, S} <- Done] =:= lists:seq(1, Jobs) || Done <- Open]}
                    end,
                    {Ports * Jobs, Ports * Jobs, lists:duplicate(Ports div 2, true)}).

%% driver_async_port_key: the same key for one port, another for another
%% port.
port_key(_Config) ->
    edc_diff:expect("driver_async_port_key",
                    fun(B) ->
                            P1 = open(B),
                            P2 = open(B),
                            K1 = ctl(B, P1, ?OP_PORTKEY, ""),
                            K2 = ctl(B, P2, ?OP_PORTKEY, ""),
                            {K1 =:= ctl(B, P1, ?OP_PORTKEY, ""), K1 =/= K2, is_integer(K1)}
                    end,
                    {true, true, true}).

%% driver_system_info's async_threads is the pool driver_async uses: +A.
async_threads(_Config) ->
    edc_diff:expect("async_threads",
                    fun(B) -> ctl(B, open(B), ?OP_THREADS, "") end,
                    threads()).

%%--------------------------------------------------------------------
%% Compat only
%%--------------------------------------------------------------------

%% The application environment setting async_threads sizes the pool (in a
%% peer VM whose +A is 1, the setting made before the library loads):
%% driver_system_info reports it and keys are spread over its threads.
async_threads_setting(_Config) ->
    {ok, Peer, _} = peer:start_link(#{connection => standard_io,
                                      args => ["-pa" | code:get_path()]}),
    try
        {1, 3, {true, true, 2}, {done, 5, 1}} = peer:call(Peer, ?MODULE, in_peer, [], 30000)
    after
        peer:stop(Peer)
    end.

%% @private Runs in the peer VM of async_threads_setting/1.
-spec in_peer() -> tuple().
in_peer() ->
    ok = application:load(erl_driver_compat),
    ok = application:set_env(erl_driver_compat, async_threads, 3),
    ok = edc_diff:load(?DRV),
    B = edc_diff:backend(compat),
    P = open(B),
    {threads(), ctl(B, P, ?OP_THREADS, ""), ctl(B, P, ?OP_SUBMIT, "5 1"), data(P)}.

%% driver_async with a NULL port returns -1 and neither runs nor frees
%% the job (the seed runtimes' behaviour; OTP 25 crashes).
null_port(_Config) ->
    Result = edc_diff:run(compat,
                          fun(B) ->
                                  P = open(B),
                                  ok = ctl(B, P, ?OP_RESET, ""),
                                  Ret = ctl(B, P, ?OP_NULLPORT, ""),
                                  %% A job queued after it on the same
                                  %% thread(s) has run: the NULL one would
                                  %% have been invoked by then.
                                  {true, true, _} = ctl(B, P, ?OP_SUBMIT, "0 1"),
                                  {done, 0, 1} = data(P),
                                  {Ret, counts(B, P, 1)}
                          end),
    {-1, {counts, 1, 0, 1}} = Result.

%% driver_async_cancel (seed semantics): a queued job is removed, its
%% async_free runs and its ready_async never does (1); a job that ran or
%% an unknown id gives 0. Natively OTP 25 does not have the function.
cancel(_Config) ->
    absent = edc_diff:run(native, fun(B) -> ctl(B, open(B), ?OP_CANCEL, "1") end),
    Result = edc_diff:run(compat,
                          fun(B) ->
                                  P = open(B),
                                  ok = ctl(B, P, ?OP_RESET, ""),
                                  true = ctl(B, P, ?OP_BLOCK, ""),
                                  %% Key 0: queued behind the blocked job.
                                  Id = ctl(B, P, ?OP_ONE, "0"),
                                  Arg = integer_to_list(Id),
                                  First = ctl(B, P, ?OP_CANCEL, Arg),
                                  Again = ctl(B, P, ?OP_CANCEL, Arg),
                                  ok = ctl(B, P, ?OP_RELEASE, ""),
                                  Blocked = data(P),
                                  Late = ctl(B, P, ?OP_CANCEL, integer_to_list(Id - 1)),
                                  {First, Again, Blocked, Late, counts(B, P, 2),
                                   edc_diff:drain()}
                          end),
    {1, 0, {done, 0, 0}, 0, {counts, 1, 1, 1}, []} = Result.
