%% The driver thread API (lc_thread_drv): erl_drv_thread_create/join/
%% exit/self/equal_tids/name, erl_drv_thread_opts_create/destroy,
%% mutexes (trylock included), condition variables (signal, broadcast,
%% wait; OTP 25's erl_driver.h declares no timed wait), rwlocks (try
%% variants included), thread-specific data, the *_name functions, and
%% driver_system_info's thread fields.
%%
%% Every case but `misuse_is_reported' is differential: the same scenario
%% runs against the native port and the compat pseudo-port; the native
%% result must be the expected value (measured on OTP 25) and the compat
%% result equal to it. Each port_control starts the threads it needs and
%% joins them before replying, so the reply is the whole outcome: no
%% sleeps. `misuse_is_reported' runs only through compat: natively the
%% same calls abort the VM.
-module(thread_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([mutex_counter/1,
         mutex_trylock/1,
         cond_producer_consumer/1,
         cond_broadcast/1,
         rwlock_readers_writers/1,
         rwlock_try/1,
         tsd_per_thread/1,
         self_and_equal_tids/1,
         names/1,
         exit_value_read_by_join/1,
         opts_stack_size/1,
         output_from_created_thread/1,
         system_info_thread_support/1,
         misuse_is_reported/1]).

-define(DRV, "lc_thread_drv").

-define(OP_COUNTER, 1).
-define(OP_PRODCONS, 2).
-define(OP_BROADCAST, 3).
-define(OP_RWLOCK, 4).
-define(OP_RWTRY, 5).
-define(OP_TRYLOCK, 6).
-define(OP_TSD, 7).
-define(OP_SELF, 8).
-define(OP_NAMES, 9).
-define(OP_EXIT, 10).
-define(OP_OPTS, 11).
-define(OP_SYSINFO, 12).
-define(OP_THREAD_SEND, 13).
-define(OP_MISUSE, 14).

-define(EBUSY, 16).
-define(EINVAL, 22).

all() ->
    [{group, locks},
     {group, conds},
     {group, tsd},
     {group, threads},
     {group, misuse}].

groups() ->
    [{locks, [], [mutex_counter,
                  mutex_trylock,
                  rwlock_readers_writers,
                  rwlock_try]},
     {conds, [], [cond_producer_consumer,
                  cond_broadcast]},
     {tsd, [], [tsd_per_thread]},
     {threads, [], [self_and_equal_tids,
                    names,
                    exit_value_read_by_join,
                    opts_stack_size,
                    output_from_created_thread,
                    system_info_thread_support]},
     {misuse, [], [misuse_is_reported]}].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

%% The parsed reply of operation Op on a fresh port.
op(B, Op, Arg) ->
    P = edc_diff:call(B, open_port, [{spawn, ?DRV}, []]),
    edc_diff:parse_term(edc_diff:call(B, port_control, [P, Op, Arg])).

scenario(Op, Arg) ->
    fun(B) -> op(B, Op, Arg) end.

%%--------------------------------------------------------------------
%% Locks
%%--------------------------------------------------------------------

%% 4 threads each increment a shared counter 20,000 times under one
%% mutex: no increment is lost; join gives each thread's return value.
mutex_counter(_Config) ->
    edc_diff:expect("mutex counter", scenario(?OP_COUNTER, "4 20000"),
                    {80000, 80000, 0}).

%% trylock of a mutex another thread holds is EBUSY, of a free one 0.
mutex_trylock(_Config) ->
    edc_diff:expect("mutex trylock", scenario(?OP_TRYLOCK, ""), {?EBUSY, 0}).

%% 3 readers and 2 writers (20,000 rounds each): readers never see a
%% half-done update; no update is lost.
rwlock_readers_writers(_Config) ->
    edc_diff:expect("rwlock readers and writers",
                    scenario(?OP_RWLOCK, "3 2 20000"),
                    {0, 40000, 40000}).

%% tryrlock/tryrwlock from another thread while the callback holds the
%% read lock ({0, EBUSY}), the write lock ({EBUSY, EBUSY}), nothing
%% ({0, 0}).
rwlock_try(_Config) ->
    edc_diff:expect("rwlock try", scenario(?OP_RWTRY, ""),
                    {{0, ?EBUSY}, {?EBUSY, ?EBUSY}, {0, 0}}).

%%--------------------------------------------------------------------
%% Condition variables
%%--------------------------------------------------------------------

%% 1..1000 pass from a producer thread to a consumer thread through a
%% one-slot buffer (cond_wait, cond_signal both ways).
cond_producer_consumer(_Config) ->
    edc_diff:expect("producer/consumer", scenario(?OP_PRODCONS, "1000"),
                    {500500, 1000}).

%% One broadcast wakes all 8 waiters.
cond_broadcast(_Config) ->
    edc_diff:expect("broadcast", scenario(?OP_BROADCAST, "8"), {8, 0}).

%%--------------------------------------------------------------------
%% Thread-specific data
%%--------------------------------------------------------------------

%% 6 threads set their own value for one key, meet, and each reads back
%% its own (NULL before setting); the callback's thread too.
tsd_per_thread(_Config) ->
    edc_diff:expect("tsd per thread", scenario(?OP_TSD, "6"), {6, 1, 1}).

%%--------------------------------------------------------------------
%% Threads
%%--------------------------------------------------------------------

%% erl_drv_thread_self twice gives equal ids; in a created thread it is
%% equal to the id erl_drv_thread_create gave, not to the callback's, and
%% to itself; joining a thread not created by erl_drv_thread_create (the
%% callback's) is EINVAL.
self_and_equal_tids(_Config) ->
    edc_diff:expect("self and equal_tids", scenario(?OP_SELF, ""),
                    {1, 1, 1, 1, ?EINVAL}).

%% Names are copies of what was given (also the OS thread name); NULL
%% names read back as "unknown", as does the callback thread's; the
%% *_name functions give NULL for NULL.
names(_Config) ->
    edc_diff:expect("names", scenario(?OP_NAMES, ""),
                    {"lc_mutex", "lc_cond", "lc_rwlock",
                     "lc_named_thread", "lc_named_thread", "lc_named_thread",
                     {"unknown", "unknown", "unknown", "unknown", "unknown"},
                     "unknown",
                     {1, 1, 1, 1}}).

%% erl_drv_thread_exit(42) two calls deep ends the thread (the code after
%% it never runs) and join gives 42; a thread returning 43 gives 43.
exit_value_read_by_join(_Config) ->
    edc_diff:expect("exit value read by join", scenario(?OP_EXIT, "42"),
                    {0, 42, 0, 0, 43}).

%% erl_drv_thread_opts_create gives suggested_stack_size -1; a thread
%% created with 16 kilo-words gets a stack of at least 16 * 1024 words,
%% smaller than the default one (NULL options, or default options). The
%% sizes themselves are only logged: glibc may hand a new thread a cached
%% stack up to four times the size asked for, so exact sizes depend on
%% the threads that ended before (measured equal here: 139264 bytes with
%% 16 kilo-words, 8388608 by default, natively and through compat).
opts_stack_size(_Config) ->
    ct:log("stack sizes: native ~p, compat ~p",
           [edc_diff:run(K, scenario(?OP_OPTS, "16")) || K <- [native, compat]]),
    Word = erlang:system_info(wordsize),
    edc_diff:expect("stack size honoured",
                    fun(B) ->
                            {Default, WithS, WithNull, WithDefault} =
                                op(B, ?OP_OPTS, "16"),
                            {Default, WithS >= 16 * 1024 * Word,
                             WithS < WithNull, WithNull =:= WithDefault}
                    end,
                    {-1, true, true, true}).

%% A thread made by erl_drv_thread_create sends terms with
%% erl_drv_output_term; they reach the owner in order.
output_from_created_thread(_Config) ->
    edc_diff:expect("output from a created thread",
                    fun(B) ->
                            P = edc_diff:call(B, open_port, [{spawn, ?DRV}, []]),
                            Ret = edc_diff:parse_term(
                                    edc_diff:call(B, port_control,
                                                  [P, ?OP_THREAD_SEND, "3"])),
                            {Ret, [receive {thread_msg, _, _} = M -> M
                                   after 5000 -> timeout
                                   end || _ <- [1, 2, 3]]}
                    end,
                    {0, [{thread_msg, {port, 1}, I} || I <- [1, 2, 3]]}).

%% driver_system_info: thread_support and smp_support are set (threads
%% are provided), async_threads and scheduler_threads are the VM's.
system_info_thread_support(_Config) ->
    edc_diff:expect("driver_system_info thread fields",
                    scenario(?OP_SYSINFO, ""),
                    {1, 1, erlang:system_info(thread_pool_size),
                     erlang:system_info(schedulers)}).

%%--------------------------------------------------------------------
%% Misuse (compat only)
%%--------------------------------------------------------------------

%% NULL and destroyed handles, a double join, erl_drv_thread_exit on a
%% thread not created, destroying a locked mutex: each is reported and
%% answered with EINVAL, 0 or NULL (natively the VM aborts); the port
%% keeps working.
misuse_is_reported(_Config) ->
    Result = edc_diff:run(compat,
                          fun(B) ->
                                  P = edc_diff:call(B, open_port, [{spawn, ?DRV}, []]),
                                  Ctl = fun(Op, Arg) ->
                                                edc_diff:parse_term(
                                                  edc_diff:call(B, port_control,
                                                                [P, Op, Arg]))
                                        end,
                                  {Ctl(?OP_MISUSE, ""), Ctl(?OP_COUNTER, "2 10")}
                          end),
    Expected = {{?EINVAL, ?EINVAL, ?EINVAL, ?EINVAL, ?EINVAL, ?EINVAL,
                 0, 1, 1, ?EINVAL, 1, ?EINVAL},
                {20, 20, 0}},
    case Result of
        Expected -> ok;
        _ -> ct:fail({misuse, [{compat, Result}, {expected, Expected}]})
    end.
