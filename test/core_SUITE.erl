%% Differential tests of the core's port bookkeeping: drivers without a
%% start callback, a port closed from another port's callback, output
%% emitted by stop.
-module(core_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         init_per_suite/1,
         end_per_suite/1]).

-export([no_start_spawn/1,
         no_start_spawn_driver/1,
         sibling_failure_then_unload_and_reload/1,
         sibling_exit_then_unload_and_reload/1,
         stop_output_on_port_close/1,
         stop_output_on_close_message/1,
         stop_output_trapping_port_close/1,
         stop_output_trapping_close_message/1,
         stop_output_trapping_sibling_failure/1,
         stop_output_trapping_exit_signal/1,
         line_mode_partial_line_dropped_on_close/1,
         line_mode_stop_output_completes_line/1,
         idle_port_process_hibernates/1]).

-define(CORE, "lc_core_drv").
-define(NOSTART, "lc_nostart_drv").

all() ->
    [no_start_spawn,
     no_start_spawn_driver,
     sibling_failure_then_unload_and_reload,
     sibling_exit_then_unload_and_reload,
     stop_output_on_port_close,
     stop_output_on_close_message,
     stop_output_trapping_port_close,
     stop_output_trapping_close_message,
     stop_output_trapping_sibling_failure,
     stop_output_trapping_exit_signal,
     line_mode_partial_line_dropped_on_close,
     line_mode_stop_output_completes_line,
     idle_port_process_hibernates].

init_per_suite(Config) ->
    Holder = edc_diff:start_holder([?NOSTART]),
    %% lc_core_drv is loaded by the scenarios themselves (they unload it),
    %% from a directory of this suite's own.
    Dir = filename:join(?config(priv_dir, Config), "core_drivers"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    {ok, _} = file:copy(filename:join(edc_diff:drivers_dir(), ?CORE ++ ".so"),
                        filename:join(Dir, ?CORE ++ ".so")),
    [{holder, Holder}, {core_dir, Dir} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

ctl(B, P, Op, Data) ->
    edc_diff:call(B, port_control, [P, Op, Data]).

%% Natively a driver without `start' opens; its callbacks get NULL.
no_start_spawn(_Config) ->
    edc_diff:expect("no start, spawn", fun(B) -> no_start(B, {spawn, ?NOSTART}) end,
                    {"null", true, true, undefined}).

no_start_spawn_driver(_Config) ->
    edc_diff:expect("no start, spawn_driver",
                    fun(B) -> no_start(B, {spawn_driver, ?NOSTART ++ " args"}) end,
                    {"null", true, true, undefined}).

no_start(B, Name) ->
    P = edc_diff:call(B, open_port, [Name, [binary]]),
    Reply = ctl(B, P, 1, ""),
    Sent = edc_diff:call(B, port_command, [P, <<"data">>]),
    Closed = edc_diff:call(B, port_close, [P]),
    {Reply, Sent, Closed, edc_diff:call(B, port_info2, [P, id])}.

%% A port closed by a driver_failure* from another port's callback counts
%% as closed: the last unload then finishes the driver, and it loads again.
sibling_failure_then_unload_and_reload(Config) ->
    Dir = ?config(core_dir, Config),
    edc_diff:expect("sibling failure",
                    fun(B) -> sibling(B, Dir, 2) end,
                    {"done", [{'EXIT', {port, 2}, sibling_failed}], undefined,
                     ok, ok, "0", ok}).

%% The same with driver_exit (the owner is unlinked: no exit signal).
sibling_exit_then_unload_and_reload(Config) ->
    Dir = ?config(core_dir, Config),
    edc_diff:expect("sibling exit",
                    fun(B) -> sibling(B, Dir, 3) end,
                    {"done", [], undefined, ok, ok, "0", ok}).

sibling(B, Dir, Op) ->
    process_flag(trap_exit, true),
    ok = edc_diff:call(B, load_driver, [Dir, ?CORE]),
    P1 = edc_diff:call(B, open_port, [{spawn, ?CORE}, []]),
    P2 = edc_diff:call(B, open_port, [{spawn, ?CORE}, []]),
    Slot2 = ctl(B, P2, 1, ""),
    Done = ctl(B, P1, Op, Slot2),
    Signals = case Op of
                  2 -> [receive {'EXIT', P2, R} -> {'EXIT', P2, R} after 5000 -> no_exit end];
                  3 -> edc_diff:flush()
              end,
    Info = edc_diff:call(B, port_info2, [P2, id]),
    true = edc_diff:call(B, port_close, [P1]),
    Unloaded = edc_diff:call(B, unload_driver, [?CORE]),
    Reloaded = edc_diff:call(B, load_driver, [Dir, ?CORE]),
    P3 = edc_diff:call(B, open_port, [{spawn, ?CORE}, []]),
    %% A fresh driver instance: the first port gets slot 0 again.
    Slot3 = ctl(B, P3, 1, ""),
    true = edc_diff:call(B, port_close, [P3]),
    {Done, Signals, Info, Unloaded, Reloaded, Slot3,
     edc_diff:call(B, unload_driver, [?CORE])}.

%% Output from `stop' reaches the connected process (natively too).
stop_output_on_port_close(Config) ->
    Dir = ?config(core_dir, Config),
    edc_diff:expect("stop output, port_close",
                    fun(B) ->
                            P = open_core(B, Dir),
                            "ok" = ctl(B, P, 4, ""),
                            true = edc_diff:call(B, port_close, [P]),
                            edc_diff:flush()
                    end,
                    [{{port, 1}, {data, "bye\n"}}]).

stop_output_on_close_message(Config) ->
    Dir = ?config(core_dir, Config),
    edc_diff:expect("stop output, close message",
                    fun(B) ->
                            P = open_core(B, Dir),
                            "ok" = ctl(B, P, 4, ""),
                            P ! {self(), close},
                            edc_diff:flush()
                    end,
                    [{{port, 1}, {data, "bye\n"}}, {{port, 1}, closed}]).

%% Loaded by the scenario process (dropped when it ends).
open_core(B, Dir) ->
    ok = edc_diff:call(B, load_driver, [Dir, ?CORE]),
    edc_diff:call(B, open_port, [{spawn, ?CORE}, []]).

%% Natively the port's exit signals come first, then what stop emitted,
%% then {Port, closed}.
stop_output_trapping_port_close(Config) ->
    edc_diff:expect("stop output after EXIT, port_close",
                    fun(B) ->
                            P = trapping_bye(B, ?config(core_dir, Config)),
                            true = edc_diff:call(B, port_close, [P]),
                            edc_diff:flush()
                    end,
                    [{'EXIT', {port, 1}, normal}, {{port, 1}, {data, "bye\n"}}]).

stop_output_trapping_close_message(Config) ->
    edc_diff:expect("stop output after EXIT, close message",
                    fun(B) ->
                            P = trapping_bye(B, ?config(core_dir, Config)),
                            P ! {self(), close},
                            edc_diff:flush()
                    end,
                    [{'EXIT', {port, 1}, normal}, {{port, 1}, {data, "bye\n"}},
                     {{port, 1}, closed}]).

stop_output_trapping_sibling_failure(Config) ->
    edc_diff:expect("stop output after EXIT, sibling failure",
                    fun(B) ->
                            P1 = trapping_bye(B, ?config(core_dir, Config)),
                            P2 = edc_diff:call(B, open_port, [{spawn, ?CORE}, []]),
                            "done" = ctl(B, P2, 2, ctl(B, P1, 1, "")),
                            true = edc_diff:call(B, port_close, [P2]),
                            edc_diff:flush()
                    end,
                    [{'EXIT', {port, 1}, sibling_failed}, {{port, 1}, {data, "bye\n"}},
                     {'EXIT', {port, 2}, normal}]).

stop_output_trapping_exit_signal(Config) ->
    edc_diff:expect("stop output after EXIT, exit signal",
                    fun(B) ->
                            P = trapping_bye(B, ?config(core_dir, Config)),
                            exit(P, going_away),
                            edc_diff:flush()
                    end,
                    [{'EXIT', {port, 1}, going_away}, {{port, 1}, {data, "bye\n"}}]).

trapping_bye(B, Dir) ->
    process_flag(trap_exit, true),
    P = open_core(B, Dir),
    "ok" = ctl(B, P, 4, ""),
    P.

%% {line, L}: natively a partial line still buffered when the port closes
%% is dropped (only driver_failure_eof flushes it as noeol) ...
line_mode_partial_line_dropped_on_close(Config) ->
    edc_diff:expect("partial line at close",
                    fun(B) ->
                            ok = edc_diff:call(B, load_driver, [?config(core_dir, Config), ?CORE]),
                            P = edc_diff:call(B, open_port, [{spawn, ?CORE}, [{line, 10}]]),
                            true = edc_diff:call(B, port_command, [P, "abc"]),
                            true = edc_diff:call(B, port_close, [P]),
                            edc_diff:flush()
                    end,
                    []).

%% ... and output from stop continues it.
line_mode_stop_output_completes_line(Config) ->
    edc_diff:expect("stop output completes the line",
                    fun(B) ->
                            ok = edc_diff:call(B, load_driver, [?config(core_dir, Config), ?CORE]),
                            P = edc_diff:call(B, open_port, [{spawn, ?CORE}, [{line, 10}]]),
                            "ok" = ctl(B, P, 4, ""),
                            true = edc_diff:call(B, port_command, [P, "abc"]),
                            true = edc_diff:call(B, port_close, [P]),
                            edc_diff:flush()
                    end,
                    [{{port, 1}, {data, {eol, "abcbye"}}}]).

%% Compat only (a native port is no process): an idle pseudo-port's
%% process hibernates (its heap shrinks to the minimum) and wakes up for
%% the next message.
idle_port_process_hibernates(Config) ->
    ok = erl_driver_compat:load_driver(?config(core_dir, Config), ?CORE),
    P = erl_driver_compat:open_port({spawn, ?CORE}, []),
    ok = wait_until(fun() ->
                            erlang:process_info(P, current_function)
                                =:= {current_function, {erlang, hibernate, 3}}
                    end, 100),
    P ! {self(), {command, "abc"}},
    receive {P, {data, "abc"}} -> ok after 5000 -> ct:fail(no_echo_after_hibernation) end,
    true = erl_driver_compat:port_close(P),
    ok = erl_driver_compat:unload_driver(?CORE).

%% Polls F every 50 ms, at most N times (a bounded wait for a state no
%% message announces).
wait_until(F, 0) ->
    F() orelse ct:fail(condition_never_held),
    ok;
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> receive after 50 -> wait_until(F, N - 1) end
    end.
