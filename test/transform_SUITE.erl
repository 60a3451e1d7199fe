%% erl_driver_compat_transform: application code written against erl_ddll
%% and the port BIFs (test/fixtures/transform/*.erl.in: .erl.in because
%% rebar3 eunit would take a .erl under test/ for a test module of its own)
%% is compiled twice, as
%% it is (module tf_X_native: native ports) and with the parse transform
%% (module tf_X_compat: pseudo-ports), and the same scenario must give the
%% same results with both. The drivers are loaded only by the fixtures'
%% own erl_ddll calls.
-module(transform_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([calls_are_redirected/1,
         gen_server_owning_a_port/1,
         port_exit_stops_the_server/1,
         handover_with_port_connect/1,
         dispatch_with_is_port_guards/1,
         monitoring_with_port_info/1,
         guards_decided_exactly/1,
         own_functions_kept/1,
         imported_functions_redirected/1,
         closed_pseudo_port_limit/1]).

all() ->
    [calls_are_redirected, gen_server_owning_a_port, port_exit_stops_the_server,
     handover_with_port_connect, dispatch_with_is_port_guards, monitoring_with_port_info,
     guards_decided_exactly, own_functions_kept, imported_functions_redirected,
     closed_pseudo_port_limit].

-define(FIXTURES, [tf_echo_server, tf_dispatch, tf_monitor]).

init_per_suite(Config) ->
    Dir = fixtures_dir(),
    Beams = [compile_fixture(filename:join(Dir, atom_to_list(M) ++ ".erl.in"), M, Kind)
             || M <- ?FIXTURES, Kind <- [native, compat]],
    [{beams, Beams}, {drivers, edc_diff:drivers_dir()} | Config].

end_per_suite(_Config) ->
    [begin code:purge(mod(M, K)), code:delete(mod(M, K)) end
     || M <- ?FIXTURES, K <- [native, compat]],
    ok.

fixtures_dir() ->
    %% test/ of the source tree, next to edc_diff.erl's drivers/ (the
    %% suite runs from a copy under _build).
    Drivers = edc_diff:drivers_dir(),
    filename:join(filename:dirname(filename:dirname(Drivers)), "fixtures/transform").

mod(M, Kind) -> list_to_atom(atom_to_list(M) ++ "_" ++ atom_to_list(Kind)).

%% Compiles File as module Name_Kind (every occurrence of the module's
%% name, ?MODULE included, renamed), with the transform for compat, with
%% warnings as errors; loads it; returns the beam.
compile_fixture(File, M, Kind) ->
    {ok, Forms} = epp:parse_file(File, []),
    New = mod(M, Kind),
    Renamed = rename(Forms, M, New),
    Opts = [binary, return_errors, return_warnings, warnings_as_errors, debug_info]
        ++ [{parse_transform, erl_driver_compat_transform} || Kind =:= compat],
    case compile:forms(Renamed, Opts) of
        {ok, New, Beam, []} ->
            {module, New} = code:load_binary(New, File, Beam),
            {New, Beam};
        Other ->
            ct:fail({compile, File, Kind, Other})
    end.

rename({atom, A, Old}, Old, New) -> {atom, A, New};
rename({attribute, A, module, Old}, Old, New) -> {attribute, A, module, New};
rename(T, Old, New) when is_tuple(T) -> list_to_tuple(rename(tuple_to_list(T), Old, New));
rename(L, Old, New) when is_list(L) -> [rename(E, Old, New) || E <- L];
rename(X, _, _) -> X.

%% Runs Scenario(Module, DriversDir) for both compilations, each in a fresh
%% process; the result is {Ports, Value}: Value normalised with Ports
%% (edc_diff:normalise/2). Returns {NativeValue, CompatValue, NativePorts,
%% CompatPorts}.
both(Config, Scenario) ->
    Dir = ?config(drivers, Config),
    Run = fun(Kind) ->
                  Parent = self(),
                  Ref = make_ref(),
                  {Pid, MRef} = spawn_monitor(
                                  fun() ->
                                          {Ports, Value} = Scenario(fun(M) -> mod(M, Kind) end, Dir),
                                          Parent ! {Ref, Ports, edc_diff:normalise(Value, Ports)}
                                  end),
                  receive
                      {Ref, Ports, Value} ->
                          erlang:demonitor(MRef, [flush]),
                          {Value, Ports};
                      {'DOWN', MRef, process, Pid, Reason} ->
                          ct:fail({scenario_died, Kind, Reason})
                  after 10000 ->
                          exit(Pid, kill),
                          ct:fail({scenario_timeout, Kind})
                  end
          end,
    {Native, NativePorts} = Run(native),
    {Compat, CompatPorts} = Run(compat),
    ct:log("native: ~p~ncompat: ~p", [Native, Compat]),
    {Native, Compat, NativePorts, CompatPorts}.

%% Same value both ways, the native ports being ports and the compat ones
%% pseudo-ports (pids): the transform redirected the calls.
same(Config, Scenario) ->
    {Native, Compat, NativePorts, CompatPorts} = both(Config, Scenario),
    true = lists:all(fun erlang:is_port/1, NativePorts),
    true = lists:all(fun erlang:is_pid/1, CompatPorts),
    Native = Compat,
    Native.

%%--------------------------------------------------------------------

%% The compat beams call erl_driver_compat instead of erl_ddll and the
%% port BIFs (their import tables); the native ones call the originals.
calls_are_redirected(Config) ->
    Beams = ?config(beams, Config),
    Redirected = [{erl_ddll, load, 2}, {erl_ddll, load_driver, 2}, {erl_ddll, unload, 1},
                  {erl_ddll, unload_driver, 1}, {erlang, open_port, 2},
                  {erlang, port_command, 2}, {erlang, port_command, 3},
                  {erlang, port_control, 3}, {erlang, port_call, 3}, {erlang, port_close, 1},
                  {erlang, port_connect, 2}, {erlang, port_info, 1}, {erlang, port_info, 2},
                  {erlang, is_port, 1}],
    Imports = fun(M, Kind) ->
                      Beam = proplists:get_value(mod(M, Kind), Beams),
                      {ok, {_, [{imports, I}]}} = beam_lib:chunks(Beam, [imports]),
                      I
              end,
    All = fun(Kind) -> lists:usort(lists:append([Imports(M, Kind) || M <- ?FIXTURES])) end,
    NativeUsed = [MFA || MFA <- Redirected, lists:member(MFA, All(native))],
    CompatUsed = [MFA || MFA <- Redirected, lists:member(MFA, All(compat))],
    Targets = [{erl_driver_compat, F, A} || {_, F, A} <- NativeUsed],
    ct:log("native uses ~p~ncompat imports ~p", [NativeUsed, All(compat)]),
    %% The fixtures use every redirected function but is_port/1 (only in
    %% guards, compiled to a test instruction natively).
    [] = (Redirected -- [{erlang, is_port, 1}]) -- NativeUsed,
    [] = CompatUsed,
    [] = Targets -- All(compat),
    ok.

gen_server_owning_a_port(Config) ->
    R = same(Config, fun(Mod, Dir) ->
        {ok, S} = (Mod(tf_echo_server)):start(Dir),
        M = Mod(tf_echo_server),
        Port = M:port(S),
        Echo = M:echo(S, [<<"he">>, "llo"]),
        ok = M:send(S, <<"async">>),
        Control = M:control(S, "ctl"),
        Call = M:call(S, {ok, 42}),
        Received = M:received(S),
        Stats = M:stats(S),
        Keys = M:info_keys(S),
        ok = M:stop(S),
        {[Port], {Echo, Control, Call, Received, Stats, Keys,
                  erl_driver_compat:port_info(Port)}}
    end),
    {{ok, <<"hello">>}, <<"ctl">>, {ok, 42}, [<<"async">>],
     [{name, "echo_drv"}, {connected, pid}, {input, 10}, {output, 10}],
     [name, links, id, connected, input, output, os_pid], undefined} = R.

%% exit(Port, kill): the owner (trapping exits) gets {'EXIT', Port,
%% killed} and stops; its terminate unloads the driver.
port_exit_stops_the_server(Config) ->
    R = same(Config, fun(Mod, Dir) ->
        M = Mod(tf_echo_server),
        {ok, S} = M:start(Dir),
        Port = M:port(S),
        Ref = erlang:monitor(process, S),
        exit(Port, kill),
        Down = receive {'DOWN', Ref, process, S, Why} -> Why after 5000 -> timeout end,
        {[Port], Down}
    end),
    {port_exit, killed} = R.

handover_with_port_connect(Config) ->
    R = same(Config, fun(Mod, Dir) ->
        M = Mod(tf_echo_server),
        {ok, S} = M:start(Dir),
        Port = M:port(S),
        Self = self(),
        ok = M:handover(S, Self),
        %% (Native ports go to the BIF.)
        {connected, Self} = erl_driver_compat:port_info(Port, connected),
        Port ! {self(), {command, <<"mine">>}},
        Data = receive {Port, {data, D}} -> D after 5000 -> timeout end,
        %% (Closed first: the server's terminate unloads the driver, which
        %% would kill the port and its new owner, as natively.)
        Closed = (Mod(tf_dispatch)):close_all([Port]),
        ok = M:stop(S),
        {[Port], {Data, Closed}}
    end),
    {<<"mine">>, [true]} = R.

dispatch_with_is_port_guards(Config) ->
    R = same(Config, fun(Mod, Dir) ->
        M = Mod(tf_dispatch),
        ok = M:load(Dir),
        P = M:open(),
        Self = self(),
        Delivered = M:deliver(P, "hi"),
        Data = M:wait_data(P),
        Sent = M:deliver(self(), note),
        Note = receive note -> note after 1000 -> timeout end,
        Kinds = [M:kind(P), M:kind(Self), M:kind(a)],
        KindsIf = [M:kind_if(P), M:kind_if(Self), M:kind_if(1)],
        Filtered = M:kinds([P, Self, 1]),
        Described = [M:describe(P), M:describe(Self)],
        Checked = [M:checked_send(P, "c"), M:wait_data(P), M:checked_send(Self, "x")],
        Applied = [M:command_apply(P, "ap"), M:wait_data(P)],
        NotPort = [M:not_port(P), M:not_port(Self)],
        Closed = M:close_all([P]),
        ok = M:unload(),
        {[P], {Delivered, Data, Sent, Note, Kinds, KindsIf, Filtered, Described, Checked,
               Applied, NotPort, Closed}}
    end),
    {true, "hi", sent, note, [port, pid, other], [port, local_pid, other], [{port, 1}],
     [{port, {name, "echo_drv"}}, not_a_port], [true, "c", badarg], [true, "ap"],
     [false, true], [true]} = R.

monitoring_with_port_info(Config) ->
    R = same(Config, fun(Mod, Dir) ->
        D = Mod(tf_dispatch),
        ok = D:load(Dir),
        P1 = D:open(),
        P2 = D:open(),
        true = D:deliver(P1, "12345"),
        "12345" = D:wait_data(P1),
        Mon = (Mod(tf_monitor)):start([P1, P2, self(), x]),
        Samples = (Mod(tf_monitor)):snapshot(Mon),
        ok = (Mod(tf_monitor)):stop(Mon),
        [true, true] = D:close_all([P1, P2]),
        ok = D:unload(),
        {[P1, P2], Samples}
    end),
    [{"echo_drv", self, 5, 5}, {"echo_drv", self, 0, 0}, not_a_port, not_a_port] = R.

%% is_port/1 in guards is decided by erl_driver_compat:is_port/1 after the
%% weaker guard: a process's pid falls through to the following clauses
%% as it would natively, also in funs, `if' and `try ... of'; in a
%% `receive' only the weaker guard is possible (documented).
guards_decided_exactly(_Config) ->
    Src = "-module(tf_guards).\n"
          "-export([f/1, g/1, h/1, r/1, n/2, k/1]).\n"
          "f(X) when is_port(X) -> port; f(X) when is_pid(X) -> pid; f(_) -> other.\n"
          "g(X) -> case {X, 1} of {P, N} when N > 0, erlang:is_port(P); P =:= a -> pa;"
          " {P, _} when is_pid(P), not is_port(P) -> pid end.\n"
          "h(X) -> F = fun Self(0, Y) when is_port(Y) -> port; Self(0, _) -> no;"
          " Self(N, Y) -> Self(N - 1, Y) end, F(3, X).\n"
          "r(X) -> self() ! {X, m}, receive {P, m} when is_port(P) -> port after 0 -> none end.\n"
          "n(X, Y) when is_port(X) orelse is_port(Y) -> one; n(_, _) -> none.\n"
          "k(X) when is_port(X) -> port.\n",
    Mod = compile_string(Src),
    %% The transform given twice transforms once.
    {ok, _, Twice, []} = compile:file(
                            filename:join(edc_diff:private_dir(), "tf_guards.erl"),
                            [binary, return_errors, return_warnings, warnings_as_errors,
                             {parse_transform, erl_driver_compat_transform},
                             {parse_transform, erl_driver_compat_transform}]),
    Pseudo = pseudo_port(),
    code:purge(tf_guards),
    {module, tf_guards} = code:load_binary(tf_guards, "tf_guards.erl", Twice),
    [port, pid] = [tf_guards:f(X) || X <- [Pseudo, self()]],
    Native = hd(erlang:ports()),
    Self = self(),
    [port, port, pid, other] = [Mod:f(X) || X <- [Pseudo, Native, Self, 1]],
    [pa, pa, pid, pa] = [Mod:g(X) || X <- [Pseudo, Native, Self, a]],
    {'EXIT', {{case_clause, {1, 1}}, _}} = catch Mod:g(1),
    [port, port, no] = [Mod:h(X) || X <- [Pseudo, Native, Self]],
    %% receive: the weaker guard only (any pid counts as a port there).
    [port, port, port] = [Mod:r(X) || X <- [Pseudo, Native, Self]],
    [one, one, none] = [Mod:n(Self, Pseudo), Mod:n(Native, 1), Mod:n(Self, 1)],
    port = Mod:k(Pseudo),
    %% No clause: function_clause with the function and its arguments on
    %% top of the stack trace, as natively.
    {'EXIT', {function_clause, [{Mod, k, [Self], _} | _]}} = catch Mod:k(Self),
    true = erl_driver_compat:port_close(Pseudo),
    ok.

%% A module's own function of the name of an auto-imported BIF is kept.
own_functions_kept(_Config) ->
    Src = "-module(tf_own).\n"
          "-compile({no_auto_import, [port_close/1]}).\n"
          "-export([t/1]).\n"
          "t(P) -> {port_close(P), erlang:port_close(P)}.\n"
          "port_close(_) -> mine.\n",
    Mod = compile_string(Src),
    {mine, true} = Mod:t(pseudo_port()),
    ok.

%% -import(erl_ddll, ...) and -import(erlang, ...): local calls of the
%% imported functions are redirected too.
imported_functions_redirected(_Config) ->
    Src = "-module(tf_imports).\n"
          "-import(erl_ddll, [load_driver/2, unload_driver/1]).\n"
          "-import(erlang, [port_info/2]).\n"
          "-export([t/1]).\n"
          "t(Dir) -> ok = load_driver(Dir, \"echo_drv\"),\n"
          "    P = open_port({spawn, \"echo_drv\"}, []),\n"
          "    Name = port_info(P, name), true = port_close(P),\n"
          "    {is_pid(P), Name, unload_driver(\"echo_drv\")}.\n",
    Mod = compile_string(Src),
    {true, {name, "echo_drv"}, ok} = Mod:t(edc_diff:drivers_dir()),
    ok.

%% Documented limit: erl_driver_compat:is_port/1 is false for a closed
%% pseudo-port (natively is_port/1 is true for a closed port), so guards
%% take a closed pseudo-port for a pid.
closed_pseudo_port_limit(Config) ->
    {Native, Compat, _, _} = both(Config, fun(Mod, Dir) ->
        M = Mod(tf_dispatch),
        ok = M:load(Dir),
        P = M:open(),
        [true] = M:close_all([P]),
        ok = M:unload(),
        {[P], M:kind(P)}
    end),
    {port, pid} = {Native, Compat},
    ok.

%%--------------------------------------------------------------------

compile_string(Src) ->
    {match, [Name]} = re:run(Src, "-module\\(([a-z_]+)\\)", [{capture, all_but_first, list}]),
    File = filename:join(edc_diff:private_dir(), Name ++ ".erl"),
    ok = file:write_file(File, Src),
    {ok, Mod, Beam, []} = compile:file(File, [binary, return_errors, return_warnings,
                                              warnings_as_errors,
                                              {parse_transform, erl_driver_compat_transform}]),
    code:purge(Mod),
    {module, Mod} = code:load_binary(Mod, File, Beam),
    Mod.

%% A pseudo-port of echo_drv owned by the test process (the driver is
%% loaded by this process until the test ends).
pseudo_port() ->
    ok = erl_driver_compat:load_driver(edc_diff:drivers_dir(), "echo_drv"),
    erl_driver_compat:open_port({spawn, "echo_drv"}, [binary]).
