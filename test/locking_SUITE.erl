%% Locking modes (lc_lock_drv): driver-level locking by default (no two
%% callbacks of the driver overlap), port-level locking with
%% ERL_DRV_FLAG_USE_PORT_LOCKING (no two callbacks of one port overlap),
%% and driver_lock_driver (the driver stays loaded for the VM's life).
%%
%% The stress cases run twice as many calling processes as there are
%% schedulers, each making a few thousand calls (port_control, port_command,
%% timers through driver_set_timer, async jobs through driver_async, bytes
%% written into a pipe each port selects for reading) against
%% one port and against the ports of one driver, while the driver counts the
%% callbacks running at once (see lc_lock_drv.c). They are differential: the
%% native ports must show no overlap (measured: none), and the compat
%% pseudo-ports the same; nothing sleeps: the end of the timers, async
%% jobs and pipe reads is a last timeout, ready_async and ready_input that
%% emit a message.
%%
%% The locking mode is chosen by the driver when it is loaded, from the
%% emulator's environment: each group loads the driver afresh (natively
%% and through us) and unloads it at its end. The group `permanent' runs
%% last: after it the driver can no longer be unloaded.
-module(locking_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_group/2,
         end_per_group/2]).
-export([locking_mode/1,
         stress_one_port/1,
         stress_one_driver/1,
         lock_driver_keeps_loaded/1]).

-define(DRV, "lc_lock_drv").

-define(OP_NOTHING, 1).
-define(OP_TIMER, 2).
-define(OP_ASYNC, 3).
-define(OP_REPORT, 4).
-define(OP_TIMER_DONE, 5).
-define(OP_ASYNC_DONE, 6).
-define(OP_LOCK_DRIVER, 7).
-define(OP_SELECT, 8).
-define(OP_SELECT_DONE, 9).

%% Calls per calling process.
-define(CALLS, 10000).

all() ->
    [{group, driver_level},
     {group, port_level},
     {group, permanent}].

groups() ->
    Stress = [locking_mode, stress_one_port, stress_one_driver],
    [{driver_level, [], Stress},
     {port_level, [], Stress},
     {permanent, [], [lock_driver_keeps_loaded]}].

init_per_group(permanent, Config) ->
    os:putenv("LC_LOCK_DRV_PORT_LOCKING", "0"),
    Config;
init_per_group(Group, Config) ->
    os:putenv("LC_LOCK_DRV_PORT_LOCKING", case Group of
                                              port_level -> "1";
                                              driver_level -> "0"
                                          end),
    [{holder, start_holder()} | Config].

end_per_group(permanent, _Config) ->
    ok;
end_per_group(_Group, Config) ->
    stop_holder(?config(holder, Config)).

%% A process that loads the driver both ways and, when stopped, unloads it
%% both ways before replying (the next group loads it afresh, so that
%% driver_init reads the environment again).
start_holder() ->
    Parent = self(),
    Pid = spawn(fun() ->
                        edc_diff:load(?DRV),
                        Parent ! {self(), loaded},
                        receive
                            {stop, From} ->
                                From ! {self(), {erl_ddll:unload_driver(?DRV),
                                                 erl_driver_compat:unload_driver(?DRV)}}
                        end
                end),
    receive {Pid, loaded} -> Pid after 10000 -> ct:fail(holder_timeout) end.

stop_holder(Pid) ->
    Pid ! {stop, self()},
    receive {Pid, {ok, ok}} -> ok after 10000 -> ct:fail(unload_timeout) end.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(B) ->
    edc_diff:call(B, open_port, [{spawn, ?DRV}, []]).

ctl(B, P, Op) ->
    edc_diff:parse_term(edc_diff:call(B, port_control, [P, Op, ""])).

%% Callers processes, each making ?CALLS calls spread over Ports (caller I
%% starts at port I); returns {AsyncJobs, PipeBytes} submitted per port
%% (in the order of Ports).
stress(B, Ports, Callers) ->
    Self = self(),
    N = length(Ports),
    Tuple = list_to_tuple(Ports),
    Pids = [spawn_link(fun() -> Self ! {self(), caller(B, Tuple, N, I, 0, #{})} end)
            || I <- lists:seq(1, Callers)],
    Submitted = lists:foldl(fun(Pid, Acc) ->
                                    receive
                                        {Pid, Counts} ->
                                            maps:fold(fun(K, V, A) ->
                                                              maps:update_with(K, fun(X) -> X + V end,
                                                                               V, A)
                                                      end, Acc, Counts)
                                    end
                            end, #{}, Pids),
    [{maps:get({async, P}, Submitted, 0), maps:get({select, P}, Submitted, 0)} || P <- Ports].

caller(_B, _Ports, _N, _I, ?CALLS, Submitted) ->
    Submitted;
caller(B, Ports, N, I, Call, Submitted) ->
    P = element((I + Call) rem N + 1, Ports),
    Submitted1 = case Call rem 10 of
                     0 ->
                         0 = ctl(B, P, ?OP_TIMER),
                         Submitted;
                     5 ->
                         true = ctl(B, P, ?OP_ASYNC),
                         maps:update_with({async, P}, fun(X) -> X + 1 end, 1, Submitted);
                     7 ->
                         ok = ctl(B, P, ?OP_SELECT),
                         maps:update_with({select, P}, fun(X) -> X + 1 end, 1, Submitted);
                     3 ->
                         true = edc_diff:call(B, port_command, [P, "x"]),
                         Submitted;
                     _ ->
                         ok = ctl(B, P, ?OP_NOTHING),
                         Submitted
                 end,
    caller(B, Ports, N, I, Call + 1, Submitted1).

%% Waits for each port's last timeout (one timer per port: it replaces
%% any pending one) and for the ready_async of every job (the one that
%% brings the port's count to Submitted + 1 reports it: natively
%% ready_async calls do not always come in submission order), then reads
%% the counts, once every byte written into its pipe was read by
%% ready_input: [{DriverMax, PortMax, Timeouts, Readies}].
finish(B, Ports, Submitted) ->
    [begin
         0 = ctl(B, P, ?OP_TIMER_DONE),
         true = edc_diff:parse_term(
                  edc_diff:call(B, port_control,
                                [P, ?OP_ASYNC_DONE, integer_to_list(S + 1)])),
         ok = edc_diff:parse_term(
                edc_diff:call(B, port_control,
                              [P, ?OP_SELECT_DONE, integer_to_list(W)]))
     end || {P, {S, W}} <- lists:zip(Ports, Submitted)],
    [receive {P, {data, "timer_done"}} -> ok end || P <- Ports],
    [receive {P, {data, "async_done"}} -> ok end || P <- Ports],
    [receive {P, {data, "select_done"}} -> ok end || P <- Ports],
    [ctl(B, P, ?OP_REPORT) || P <- Ports].

callers() ->
    2 * erlang:system_info(schedulers_online).

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

%% The driver's flag decides the port's locking.
locking_mode(Config) ->
    Expected = case proplists:get_value(name, ?config(tc_group_properties, Config)) of
                   driver_level -> driver_level;
                   port_level -> port_level
               end,
    edc_diff:expect("locking mode",
                    fun(B) -> edc_diff:call(B, port_info2, [open(B), locking]) end,
                    {locking, Expected}).

%% Callers, timeouts, ready_asyncs and ready_inputs on one port never
%% overlap, in either mode; every async job's ready_async ran.
stress_one_port(_Config) ->
    Callers = callers(),
    edc_diff:expect("stress one port",
                    fun(B) ->
                            P = open(B),
                            [{Submitted, _} = S] = stress(B, [P], Callers),
                            [{DriverMax, PortMax, Timeouts, Readies}] = finish(B, [P], [S]),
                            {DriverMax, PortMax, Timeouts >= 1, Readies - Submitted}
                    end,
                    {1, 1, true, 1}).

%% As many ports as callers, each caller going round them: no two
%% callbacks of a port overlap; with driver-level locking no two callbacks
%% of the driver do. (With port-level locking callbacks of different ports
%% may run at once: the driver's count is logged, not compared.)
stress_one_driver(Config) ->
    Callers = callers(),
    Group = proplists:get_value(name, ?config(tc_group_properties, Config)),
    Scenario =
        fun(B) ->
                Ports = [open(B) || _ <- lists:seq(1, Callers)],
                Submitted = stress(B, Ports, Callers),
                Reports = finish(B, Ports, Submitted),
                DriverMax = lists:max([D || {D, _, _, _} <- Reports]),
                ct:pal("~p, ~p: at most ~p callbacks of the driver at once",
                       [Group, maps:get(kind, B), DriverMax]),
                {case Group of
                     driver_level -> DriverMax;
                     port_level -> not_compared
                 end,
                 lists:usort([M || {_, M, _, _} <- Reports]),
                 lists:usort([T >= 1 || {_, _, T, _} <- Reports]),
                 lists:usort([R - S || {{_, _, _, R}, {S, _}} <- lists:zip(Reports, Submitted)])}
        end,
    edc_diff:expect("stress one driver", Scenario,
                    {case Group of
                         driver_level -> 1;
                         port_level -> not_compared
                     end,
                     [1], [true], [1]}).

%% After driver_lock_driver the last unload leaves the driver loaded: its
%% port keeps working and finish does not run (natively unload_driver
%% would otherwise kill the port and run finish before returning), and
%% the driver is still listed. That unload, and any later load_driver or
%% unload_driver of the name (by any process), return {error, permanent}
%% (measured natively). (One run per backend: natively a locked driver
%% cannot be loaded again.)
lock_driver_keeps_loaded(_Config) ->
    Native = edc_diff:run(native, fun locked_unload/1),
    Compat = edc_diff:run(compat, fun locked_unload/1),
    ct:pal("native: ~p~ncompat: ~p", [Native, Compat]),
    {ok, {error, enoent}, true, {{error, permanent}, {error, permanent}}} = Native,
    case Compat of
        Native -> ok;
        _ -> ct:fail({differs, [{native, Native}, {compat, Compat}]})
    end.

%% Loads the driver (the only reference), locks it from a port, unloads
%% it: {Port still works, finish file, still loaded, {unload result, the
%% result of loading it again}}.
locked_unload(B) ->
    Kind = maps:get(kind, B),
    Dir = edc_diff:private_dir(),
    File = filename:join(Dir, atom_to_list(Kind) ++ "_finished"),
    _ = file:delete(File),
    os:putenv("LC_LOCK_DRV_FINISH_FILE", File),
    %% The private copy edc_diff:load/1 makes (when this group runs alone).
    Copy = filename:join(Dir, ?DRV ++ ".so"),
    filelib:is_regular(Copy) orelse
        ({ok, _} = file:copy(filename:join(edc_diff:drivers_dir(), ?DRV ++ ".so"), Copy)),
    ok = edc_diff:call(B, load_driver, [Dir, ?DRV]),
    P = open(B),
    0 = ctl(B, P, ?OP_LOCK_DRIVER),
    Unload = edc_diff:call(B, unload_driver, [?DRV]),
    Works = edc_diff:attempt(fun() -> ctl(B, P, ?OP_NOTHING) end),
    Finished = file:read_file(File),
    {ok, Loaded} = case Kind of
                       native -> erl_ddll:loaded_drivers();
                       compat -> erl_driver_compat:loaded_drivers()
                   end,
    Reload = edc_diff:call(B, load_driver, [Dir, ?DRV]),
    {case Works of {ok, W} -> W; Other -> Other end,
     Finished, lists:member(?DRV, Loaded), {Unload, Reload}}.
