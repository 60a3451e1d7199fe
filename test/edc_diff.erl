%% @doc Differential test harness: runs one scenario against a driver
%% loaded natively (`erl_ddll' + `erlang' port BIFs) and through
%% erl_driver_compat, and compares what the scenario observed.
%%
%% A scenario is `fun(B) -> Result' where `B' is a backend map (see
%% {@link backend/1}); it must use only the functions in `B' to work with
%% ports. Each run happens in a fresh process (so that links, exits and
%% mailboxes do not leak between runs). Results are normalised before
%% comparison: the ports the scenario opened become `{port, N}' (N = order
%% of opening), the scenario process becomes `self', other pids `pid'.
-module(edc_diff).

-export([drivers_dir/0,
         load/1,
         backend/1,
         run/2,
         run/3,
         compare/2,
         compare/3,
         expect/3,
         call/3,
         parse_term/1,
         flush/0,
         flush/1,
         recv/1,
         normalise/2,
         start_holder/1,
         stop_holder/1,
         private_dir/0,
         attempt/1,
         drain/0,
         until_down/1,
         track/1]).

-type backend() :: #{kind := native | compat, atom() => term()}.
-export_type([backend/0]).

%% @doc Directory of the compiled test drivers.
-spec drivers_dir() -> string().
drivers_dir() ->
    case os:getenv("EDC_TEST_DRIVERS") of
        false ->
            Here = filename:dirname(code:which(?MODULE)),
            find_build_dir(Here);
        Dir ->
            Dir
    end.

find_build_dir(Dir) ->
    Candidate = filename:join([Dir, "drivers", "build"]),
    Root = filename:join([Dir, "test", "drivers", "build"]),
    case {filelib:is_dir(Candidate), filelib:is_dir(Root), filename:dirname(Dir)} of
        {true, _, _} -> Candidate;
        {_, true, _} -> Root;
        {_, _, Dir} -> erlang:error({test_drivers_not_built, Dir});
        {_, _, Parent} -> find_build_dir(Parent)
    end.

%% @doc Loads `Name' natively and through the compat layer in the calling
%% process (drivers stay loaded while that process lives).
-spec load(string()) -> ok.
load(Name) ->
    %% Load from a private copy: rebar3 copies the test tree again on every
    %% run, overwriting the .so files in place, which corrupts a mapping
    %% erl_ddll still uses.
    Dir = private_dir(),
    Src = filename:join(drivers_dir(), Name ++ ".so"),
    Dst = filename:join(Dir, Name ++ ".so"),
    case filelib:is_regular(Dst) of
        true -> ok;
        false -> {ok, _} = file:copy(Src, Dst)
    end,
    ok = erl_ddll:load_driver(Dir, Name),
    ok = erl_driver_compat:load_driver(Dir, Name).

%% @doc The directory {@link load/1} loads the drivers from (a private copy
%% of the build directory, one per VM).
-spec private_dir() -> string().
private_dir() ->
    Dir = filename:join(["/tmp", "edc_diff_drivers_" ++ os:getpid()]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

%% @doc Starts a process that loads the named drivers both ways and keeps
%% them loaded until {@link stop_holder/1}.
-spec start_holder([string()]) -> pid().
start_holder(Names) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        lists:foreach(fun load/1, Names),
                        Parent ! {self(), loaded},
                        receive stop -> ok end
                end),
    receive {Pid, loaded} -> Pid after 10000 -> erlang:error(holder_timeout) end.

%% @doc Stops a holder (its driver references are dropped).
-spec stop_holder(pid()) -> ok.
stop_holder(Pid) ->
    Pid ! stop,
    ok.

%% @doc The backend map for `native' or `compat'.
-spec backend(native | compat) -> backend().
backend(native) ->
    #{kind => native,
      load_driver => fun erl_ddll:load_driver/2,
      unload_driver => fun erl_ddll:unload_driver/1,
      open_port => fun erlang:open_port/2,
      port_command => fun erlang:port_command/2,
      port_command3 => fun erlang:port_command/3,
      port_control => fun erlang:port_control/3,
      port_call => fun erlang:port_call/3,
      port_close => fun erlang:port_close/1,
      port_connect => fun erlang:port_connect/2,
      port_info => fun erlang:port_info/1,
      port_info2 => fun erlang:port_info/2,
      is_port => fun erlang:is_port/1};
backend(compat) ->
    M = erl_driver_compat,
    #{kind => compat,
      load_driver => fun M:load_driver/2,
      unload_driver => fun M:unload_driver/1,
      open_port => fun M:open_port/2,
      port_command => fun M:port_command/2,
      port_command3 => fun M:port_command/3,
      port_control => fun M:port_control/3,
      port_call => fun M:port_call/3,
      port_close => fun M:port_close/1,
      port_connect => fun M:port_connect/2,
      port_info => fun M:port_info/1,
      port_info2 => fun M:port_info/2,
      is_port => fun M:is_port/1}.

%% @doc Runs `Scenario' against one backend in a fresh process; returns the
%% normalised result (exceptions become `{raised, Class, Reason}').
-spec run(native | compat, fun((backend()) -> term())) -> term().
run(Kind, Scenario) ->
    run(Kind, Scenario, 10000).

%% @doc As {@link run/2} with a timeout in milliseconds.
-spec run(native | compat, fun((backend()) -> term()), timeout()) -> term().
run(Kind, Scenario, Timeout) ->
    Parent = self(),
    Ref = make_ref(),
    B0 = backend(Kind),
    {Pid, MRef} =
        spawn_monitor(
          fun() ->
                  put(edc_ports, []),
                  Open = maps:get(open_port, B0),
                  B = B0#{open_port => fun(Name, Opts) ->
                                               P = Open(Name, Opts),
                                               put(edc_ports, get(edc_ports) ++ [P]),
                                               P
                                       end},
                  Result = try Scenario(B)
                           catch Class:Reason -> {raised, Class, Reason}
                           end,
                  Parent ! {Ref, normalise(Result, get(edc_ports))}
          end),
    receive
        {Ref, Result} ->
            erlang:demonitor(MRef, [flush]),
            Result;
        {'DOWN', MRef, process, Pid, Reason} ->
            {scenario_process_died, Reason}
    after Timeout ->
            exit(Pid, kill),
            {scenario_timeout, Kind}
    end.

%% @doc Runs `Scenario' both ways and returns `{Native, Compat}'; fails
%% (with both results) when they differ.
-spec compare(string(), fun((backend()) -> term())) -> term().
compare(Label, Scenario) ->
    compare(Label, Scenario, 10000).

%% @doc As {@link compare/2} with a timeout.
-spec compare(string(), fun((backend()) -> term()), timeout()) -> term().
compare(Label, Scenario, Timeout) ->
    Native = run(native, Scenario, Timeout),
    Compat = run(compat, Scenario, Timeout),
    case Native =:= Compat of
        true ->
            Native;
        false ->
            ct:pal("~ts: native and compat differ~n native: ~p~n compat: ~p",
                   [Label, Native, Compat]),
            erlang:error({differs, Label, [{native, Native}, {compat, Compat}]})
    end.

%% @doc Runs `Scenario' both ways; the native result must be `Expected'
%% (the test's own statement of native behaviour) and the compat result
%% equal to it.
-spec expect(string(), fun((backend()) -> term()), term()) -> ok.
expect(Label, Scenario, Expected) ->
    Native = run(native, Scenario),
    Compat = run(compat, Scenario),
    case {Native =:= Expected, Compat =:= Native} of
        {true, true} ->
            ok;
        {false, _} ->
            ct:pal("~ts: native result is not the expected one~n native:   ~p~n"
                   " expected: ~p~n compat:   ~p", [Label, Native, Expected, Compat]),
            ct:fail({native_unexpected, Label, [{native, Native}, {expected, Expected}]});
        {true, false} ->
            ct:pal("~ts: native and compat differ~n native: ~p~n compat: ~p",
                   [Label, Native, Compat]),
            ct:fail({differs, Label, [{native, Native}, {compat, Compat}]})
    end.

%% @doc Calls the backend function `Fun' with `Args'.
-spec call(backend(), atom(), [term()]) -> term().
call(B, Fun, Args) ->
    apply(maps:get(Fun, B), Args).

%% @doc A test driver's textual reply (an Erlang term without the final
%% dot) parsed, or `{unparsable, Text}'.
-spec parse_term(string()) -> term().
parse_term(Text) ->
    case erl_scan:string(Text ++ ".") of
        {ok, Tokens, _} ->
            case erl_parse:parse_term(Tokens) of
                {ok, Term} -> Term;
                _ -> {unparsable, Text}
            end;
        _ ->
            {unparsable, Text}
    end.

%% @doc All messages in the mailbox, waiting 50 ms for stragglers.
-spec flush() -> [term()].
flush() ->
    flush(50).

%% @doc All messages, waiting `Timeout' ms after the last one.
-spec flush(timeout()) -> [term()].
flush(Timeout) ->
    receive M -> [M | flush(Timeout)]
    after Timeout -> []
    end.

%% @doc The messages already in the mailbox, without waiting.
-spec drain() -> [term()].
drain() ->
    receive M -> [M | drain()] after 0 -> [] end.

%% @doc The outcome of `Fun()': `{ok, Value}', or `{Class, Reason}' for an
%% exception.
-spec attempt(fun(() -> term())) -> {ok, term()} | {error | exit | throw, term()}.
attempt(Fun) ->
    try {ok, Fun()}
    catch Class:Reason -> {Class, Reason}
    end.

%% @doc Adds `Port' (opened in another process of the scenario) to the
%% ports of the running scenario, so that results name it `{port, N}'.
%% Call it from the scenario process.
-spec track(port() | pid()) -> ok.
track(Port) ->
    put(edc_ports, get(edc_ports) ++ [Port]),
    ok.

%% @doc Waits until the process `Pid' has ended.
-spec until_down(pid()) -> ok.
until_down(Pid) ->
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.

%% @doc The next message, or `timeout'.
-spec recv(timeout()) -> term().
recv(Timeout) ->
    receive M -> M after Timeout -> timeout end.

%% @doc Replaces port identities and pids by stable names.
-spec normalise(term(), [port() | pid()]) -> term().
normalise(Term, Ports) ->
    Self = self(),
    norm(Term, Ports, Self).

norm(T, Ports, Self) when is_port(T); is_pid(T) ->
    case index_of(T, Ports, 1) of
        0 when T =:= Self -> self;
        0 when is_port(T) -> port;
        0 -> pid;
        N -> {port, N}
    end;
norm(T, Ports, Self) when is_list(T) -> norm_list(T, Ports, Self);
norm(T, Ports, Self) when is_tuple(T) ->
    list_to_tuple([norm(E, Ports, Self) || E <- tuple_to_list(T)]);
norm(T, Ports, Self) when is_map(T) ->
    maps:from_list([{norm(K, Ports, Self), norm(V, Ports, Self)} || {K, V} <- maps:to_list(T)]);
norm(T, _, _) -> T.

norm_list([], _, _) -> [];
norm_list([H | T], Ports, Self) -> [norm(H, Ports, Self) | norm_list(T, Ports, Self)];
norm_list(Tail, Ports, Self) -> norm(Tail, Ports, Self).

index_of(_, [], _) -> 0;
index_of(X, [X | _], N) -> N;
index_of(X, [_ | T], N) -> index_of(X, T, N + 1).
