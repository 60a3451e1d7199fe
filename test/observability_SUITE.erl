%% erl_driver_compat:info/0 (live counts of drivers, pseudo-ports, driver
%% binaries, timers, async jobs, selected descriptors and monitors),
%% port_info/2 items, and the structured log report of a driver's API
%% misuse.
%%
%% Compat only: native ports have no such counts. The counts are global, so
%% each case compares them with those taken at its start (the suites run
%% one after the other; nothing else uses drivers meanwhile). No count is
%% awaited by polling: each change is checked after a call or a message
%% that happens after it.
-module(observability_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([drivers_and_ports/1,
         binaries/1,
         binaries_held_by_erlang/1,
         timers/1,
         async_jobs/1,
         selected_fds/1,
         monitors/1,
         misuse_is_a_structured_report/1,
         port_info_items/1]).
%% logger handler (forwards log events to the test case)
-export([log/2]).

all() ->
    [drivers_and_ports,
     binaries,
     binaries_held_by_erlang,
     timers,
     async_jobs,
     selected_fds,
     monitors,
     misuse_is_a_structured_report,
     port_info_items].

-define(DRIVERS, ["echo_drv", "bin_refc_drv", "lc_timer_drv", "lc_async_drv",
                  "lc_select_drv", "lc_monitor_drv"]).

init_per_suite(Config) ->
    Dir = edc_diff:drivers_dir(),
    %% A holder process keeps the drivers loaded for the whole suite.
    Self = self(),
    Holder = spawn(fun() ->
                           [ok = erl_driver_compat:load_driver(Dir, D) || D <- ?DRIVERS],
                           %% For port_info_items: a native port to compare.
                           ok = erl_ddll:load_driver(Dir, "echo_drv"),
                           Self ! {self(), loaded},
                           receive stop -> ok end
                   end),
    receive {Holder, loaded} -> ok end,
    [{holder, Holder}, {dir, Dir} | Config].

end_per_suite(Config) ->
    Holder = ?config(holder, Config),
    Ref = erlang:monitor(process, Holder),
    Holder ! stop,
    receive {'DOWN', Ref, process, Holder, _} -> ok end.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

%% Fails unless the counts that changed since `Before' are exactly those
%% of `Expected' (differences).
same(Expected, Before) ->
    case delta(Before) of
        Expected -> ok;
        Delta -> ct:fail({counts, {expected, Expected}, {changed, Delta}})
    end.

%% The counts that changed since `Before', as differences.
delta(Before) ->
    After = erl_driver_compat:info(),
    maps:filter(fun(_, D) -> D =/= 0 end,
                maps:map(fun(K, V) -> V - maps:get(K, Before) end, After)).

open(Command) ->
    erl_driver_compat:open_port({spawn, Command}, []).

ctl(P, Op, Arg) ->
    edc_diff:parse_term(erl_driver_compat:port_control(P, Op, Arg)).

%% The next data message of P, parsed.
recv(P) ->
    receive {P, {data, Data}} -> edc_diff:parse_term(Data)
    after 5000 -> {no_message_from, P}
    end.

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

%% info/0 has every key, and drivers and ports go up and down as they are
%% loaded, opened, closed and unloaded.
drivers_and_ports(Config) ->
    Info = erl_driver_compat:info(),
    [drivers, ports, binaries, binary_bytes, timers, async_jobs, selected_fds, monitors] =
        lists:sort(fun(A, B) -> key_order(A) =< key_order(B) end, maps:keys(Info)),
    true = lists:all(fun(V) -> is_integer(V) andalso V >= 0 end, maps:values(Info)),
    true = maps:get(drivers, Info) >= length(?DRIVERS),
    Before = erl_driver_compat:info(),
    ok = erl_driver_compat:load_driver(?config(dir, Config), "lc_min_drv"),
    same(#{drivers => 1}, Before),
    P1 = open("echo_drv"),
    P2 = open("echo_drv"),
    same(#{drivers => 1, ports => 2}, Before),
    true = erl_driver_compat:port_close(P1),
    same(#{drivers => 1, ports => 1}, Before),
    true = erl_driver_compat:port_close(P2),
    ok = erl_driver_compat:unload_driver("lc_min_drv"),
    same(#{}, Before),
    ok.

key_order(K) ->
    string:str("drivers ports binaries binary_bytes timers async_jobs selected_fds monitors",
               atom_to_list(K)).

-define(BIN_ALLOC, 1).
-define(BIN_OUTPUT, 3).
-define(BIN_REALLOC, 6).
-define(BIN_FREE, 7).
-define(BIN_FREE_TWICE, 13).

%% driver_alloc_binary, driver_realloc_binary and driver_free_binary move
%% the count of live binaries and their bytes.
binaries(_Config) ->
    Before = erl_driver_compat:info(),
    P = open("bin_refc_drv"),
    1 = ctl(P, ?BIN_ALLOC, "100"),
    same(#{ports => 1, binaries => 1, binary_bytes => 100}, Before),
    {1, 200, true} = ctl(P, ?BIN_REALLOC, "200"),
    same(#{ports => 1, binaries => 1, binary_bytes => 200}, Before),
    1 = ctl(P, ?BIN_FREE, ""),
    same(#{ports => 1}, Before),
    true = erl_driver_compat:port_close(P),
    same(#{}, Before),
    ok.

%% `binaries' counts the references drivers hold: a binary sent to Erlang
%% with driver_output_binary is a VM binary, which Erlang keeps alive after
%% the driver frees it (its port's stop does) and which shows in
%% erlang:memory(binary), not here; the receiver still has its bytes. (A
%% binary of more than 64 bytes: smaller ones are copied into the message.)
binaries_held_by_erlang(_Config) ->
    Before = erl_driver_compat:info(),
    Self = self(),
    Holder = spawn_link(fun() -> holder(Self) end),
    P = erl_driver_compat:open_port({spawn, "bin_refc_drv"}, [binary]),
    true = erl_driver_compat:port_connect(P, Holder),
    1 = ctl(P, ?BIN_ALLOC, "100"),
    {0, 2} = ctl(P, ?BIN_OUTPUT, "0 100"),
    {held, 100} = receive {Holder, H} -> H after 5000 -> no_binary end,
    true = erl_driver_compat:port_close(P),
    true = erlang:garbage_collect(),
    same(#{}, Before),
    Holder ! check,
    {intact, 100} = receive {Holder, I} -> I after 5000 -> not_intact end,
    Holder ! drop,
    dropped = receive {Holder, D} -> D after 5000 -> not_dropped end,
    same(#{}, Before),
    unlink(Holder),
    Holder ! stop,
    ok.

%% Holds the binary of the first data message it gets until told to drop
%% it; then garbage collects.
holder(Test) ->
    Bin = receive {_Port, {data, B}} -> B end,
    Test ! {self(), {held, byte_size(Bin)}},
    receive check -> ok end,
    %% bin_refc_drv fills its binaries with a, b, c, ... z, a, ...
    Expected = << <<($a + I rem 26)>> || I <- lists:seq(0, byte_size(Bin) - 1) >>,
    Test ! {self(), {intact, case Bin of Expected -> byte_size(Bin); _ -> Bin end}},
    receive drop -> ok end,
    true = erlang:garbage_collect(),
    Test ! {self(), dropped},
    receive stop -> ok end.

-define(TMR_SET, 1).
-define(TMR_CANCEL, 2).

%% driver_set_timer counts a pending timer until it expires (the timeout
%% callback runs), is cancelled, or its port closes.
timers(_Config) ->
    Before = erl_driver_compat:info(),
    P = open("lc_timer_drv"),
    0 = ctl(P, ?TMR_SET, "60000"),
    same(#{ports => 1, timers => 1}, Before),
    %% Set again: still one timer.
    0 = ctl(P, ?TMR_SET, "50000"),
    same(#{ports => 1, timers => 1}, Before),
    0 = ctl(P, ?TMR_CANCEL, ""),
    same(#{ports => 1}, Before),
    0 = ctl(P, ?TMR_SET, "1"),
    {timeout, _} = recv(P),
    same(#{ports => 1}, Before),
    0 = ctl(P, ?TMR_SET, "60000"),
    same(#{ports => 1, timers => 1}, Before),
    true = erl_driver_compat:port_close(P),
    same(#{}, Before),
    ok.

-define(ASYNC_BLOCK, 3).
-define(ASYNC_RELEASE, 4).
-define(ASYNC_RESET, 6).

%% A driver_async job is pending from driver_async until its ready_async
%% has run.
async_jobs(_Config) ->
    Before = erl_driver_compat:info(),
    P = open("lc_async_drv"),
    ok = ctl(P, ?ASYNC_RESET, ""),
    true = ctl(P, ?ASYNC_BLOCK, ""),
    true = ctl(P, ?ASYNC_BLOCK, ""),
    same(#{ports => 1, async_jobs => 2}, Before),
    ok = ctl(P, ?ASYNC_RELEASE, ""),
    {done, 0, 0} = recv(P),
    {done, 0, 0} = recv(P),
    same(#{ports => 1}, Before),
    ok = ctl(P, ?ASYNC_RESET, ""),
    true = erl_driver_compat:port_close(P),
    same(#{}, Before),
    ok.

-define(SEL_PIPE, 1).
-define(SEL_SELECT, 3).
%% ERL_DRV_READ, ERL_DRV_WRITE, ERL_DRV_USE
-define(READ, 1).
-define(WRITE, 2).
-define(USE, 4).

%% A descriptor counts from its first driver_select until it is deselected
%% with ERL_DRV_USE or its port closes.
selected_fds(_Config) ->
    Before = erl_driver_compat:info(),
    P = open("lc_select_drv obs"),
    ok = ctl(P, ?SEL_PIPE, ""),
    0 = ctl(P, ?SEL_SELECT, select_arg(0, ?READ bor ?USE, 1)),
    same(#{ports => 1, selected_fds => 1}, Before),
    0 = ctl(P, ?SEL_SELECT, select_arg(1, ?WRITE bor ?USE, 1)),
    same(#{ports => 1, selected_fds => 2}, Before),
    0 = ctl(P, ?SEL_SELECT, select_arg(0, ?READ bor ?USE, 0)),
    same(#{ports => 1, selected_fds => 1}, Before),
    true = erl_driver_compat:port_close(P),
    same(#{}, Before),
    ok.

select_arg(Which, Mode, On) ->
    lists:flatten(io_lib:format("~b ~b ~b", [Which, Mode, On])).

-define(MON_CALLER, 1).
-define(MON_REMEMBER, 3).
-define(MON_DEMONITOR, 5).

%% A driver monitor counts until it is demonitored, the process exits (the
%% process_exit callback has run) or the port closes.
monitors(_Config) ->
    Before = erl_driver_compat:info(),
    P = open("lc_monitor_drv"),
    {0, 0} = ctl(P, ?MON_CALLER, ""),
    same(#{ports => 1, monitors => 1}, Before),
    0 = ctl(P, ?MON_DEMONITOR, "0"),
    same(#{ports => 1}, Before),
    %% A process monitored by the port exits.
    Self = self(),
    Other = spawn(fun() ->
                          Self ! {self(), ctl(P, ?MON_CALLER, "")},
                          receive stop -> ok end
                  end),
    {0, 1} = receive {Other, R} -> R end,
    same(#{ports => 1, monitors => 1}, Before),
    Other ! stop,
    {process_exit, 1, Other} = receive {process_exit, _, _} = Exit -> Exit
                               after 5000 -> no_process_exit
                               end,
    %% The monitor is forgotten after process_exit returns, under the
    %% port's lock: a control call takes the lock after that.
    ok = ctl(P, ?MON_REMEMBER, ""),
    same(#{ports => 1}, Before),
    %% A monitor left when the port closes.
    {0, 2} = ctl(P, ?MON_CALLER, ""),
    same(#{ports => 1, monitors => 1}, Before),
    true = erl_driver_compat:port_close(P),
    same(#{}, Before),
    ok.

%% A driver's API misuse is logged as a structured report naming the
%% driver, the port and the function, with a report_cb giving its text.
misuse_is_a_structured_report(_Config) ->
    ok = logger:add_handler(edc_obs_capture, ?MODULE,
                            #{level => error, config => #{pid => self()}}),
    try
        process_flag(trap_exit, true),
        P = open("bin_refc_drv"),
        1 = ctl(P, ?BIN_ALLOC, "16"),
        _ = (catch erl_driver_compat:port_control(P, ?BIN_FREE_TWICE, "")),
        {driver_api_misuse, driver_free_binary} =
            receive {'EXIT', P, Why} -> Why after 5000 -> no_exit end,
        Events = [E || {edc_log_event, E} <- edc_diff:flush(0)],
        [#{msg := {report, Report}, meta := Meta}] =
            [E || #{msg := {report, #{what := driver_api_misuse}}} = E <- Events],
        ct:pal("report: ~p", [Report]),
        #{driver := "bin_refc_drv", port := P, function := driver_free_binary,
          detail := Detail} = Report,
        true = string:find(Detail, "driver_free_binary") =/= nomatch,
        #{report_cb := Cb, domain := [erl_driver_compat]} = Meta,
        {Format, Args} = Cb(Report),
        Text = lists:flatten(io_lib:format(Format, Args)),
        ct:pal("text: ~ts", [Text]),
        true = string:find(Text, "bin_refc_drv") =/= nomatch,
        true = string:find(Text, pid_to_list(P)) =/= nomatch,
        true = string:find(Text, Detail) =/= nomatch,
        ok
    after
        ok = logger:remove_handler(edc_obs_capture)
    end.

%% logger handler callback: forwards the event to the test case.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {edc_log_event, Event},
    ok.

%% port_info/2 answers every item erlang:port_info/2 has for a native port
%% in OTP 25, in the same shape.
port_info_items(_Config) ->
    Items = [registered_name, id, connected, links, name, input, output, os_pid,
             monitors, monitored_by, memory, queue_size, locking, parallelism],
    Native = erlang:open_port({spawn, "echo_drv"}, []),
    Compat = open("echo_drv"),
    try
        lists:foreach(
          fun(Item) ->
                  N = erlang:port_info(Native, Item),
                  C = erl_driver_compat:port_info(Compat, Item),
                  ct:pal("~p: native ~p, compat ~p", [Item, N, C]),
                  true = shape(Item, N) =:= shape(Item, C)
          end, Items)
    after
        erlang:port_close(Native),
        erl_driver_compat:port_close(Compat)
    end,
    ok.

shape(_Item, []) -> [];
shape(Item, {Item, V}) when is_integer(V) -> {Item, integer};
shape(Item, {Item, V}) when is_list(V) -> {Item, list};
shape(Item, {Item, V}) when is_pid(V) -> {Item, pid};
shape(Item, {Item, V}) when is_atom(V) -> {Item, V};
shape(Item, {Item, V}) when is_boolean(V) -> {Item, V};
shape(Item, Other) -> {Item, Other}.
