%% @doc The `make demo' walkthrough: runs the example driver kv_drv
%% (examples/kv_drv.c) through erl_driver_compat step by step, runs the
%% same session against a native port to show that the replies are
%% identical, prints a compatibility report for kv_drv and the test
%% drivers, and the check tool's report (erl_driver_compat:check/1) for
%% kv_drv and a driver Debian ships prebuilt (runtime_tools'
%% trace_file_drv).
%%
%% Started by scripts/demo.sh as
%% `erl -noshell -pa EBIN -pa examples/build -run demo main BuildDir TestBuildDir';
%% halts with status 0 when everything went as expected, 1 otherwise.
-module(demo).

-export([main/1]).

-define(DRV, "kv_drv").
-define(REPLY_WAIT_MS, 50).      % quiet time that ends a batch of replies
-define(EXIT_WAIT_MS, 2000).
-define(DEMO_TIMEOUT_MS, 60000).

%%====================================================================
%% Entry point
%%====================================================================

-spec main([string()]) -> no_return().
main(Args) ->
    {Build, TestBuild} = case Args of
                             [B, T | _] -> {B, T};
                             [B] -> {B, "test/drivers/build"};
                             [] -> {"examples/build", "test/drivers/build"}
                         end,
    Watchdog = spawn(fun() -> watchdog() end),
    put(failures, []),
    Status = try
                 intro(),
                 walkthrough(Build),
                 side_by_side(Build),
                 report(Build, TestBuild),
                 check_tool(Build),
                 summary()
             catch
                 Class:Reason:Stack ->
                     io:format("~nThe demo stopped with an exception:~n  ~tp:~tp~n  ~tp~n",
                               [Class, Reason, Stack]),
                     1
             end,
    Watchdog ! stop,
    halt(Status).

watchdog() ->
    receive
        stop -> ok
    after ?DEMO_TIMEOUT_MS ->
            io:format("~nThe demo did not finish within ~p s; giving up.~n",
                      [?DEMO_TIMEOUT_MS div 1000]),
            halt(2)
    end.

intro() ->
    title("erl_driver_compat demo"),
    para(["A linked-in driver is a C library (.so) that Erlang talks to through",
          "a port: open_port/2, port_command/2, port_control/3, port_call/3.",
          "erl_driver_compat runs such a driver without the BEAM's driver",
          "machinery: the driver's erl_driver calls are answered by our NIF",
          "library, and each port becomes an Erlang process (a pseudo-port).",
          "",
          "The driver used here, kv_drv (examples/kv_drv.c), is a small key/value",
          "store written like an R13/R14-era driver. It speaks a line protocol:",
          "SET key value / GET key / DEL key / KEYS / CRASH."]).

summary() ->
    case lists:reverse(get(failures)) of
        [] ->
            section("Result"),
            io:format("Everything behaved as expected.~n"),
            0;
        Failed ->
            section("Result"),
            io:format("~p step(s) did not behave as expected:~n", [length(Failed)]),
            lists:foreach(fun(F) -> io:format("  - ~ts~n", [F]) end, Failed),
            1
    end.

%%====================================================================
%% Part 1: step by step through erl_driver_compat
%%====================================================================

walkthrough(Dir) ->
    section("Part 1. kv_drv through erl_driver_compat, step by step"),
    %% The driver's CRASH ends its port with an exit signal; trapping
    %% exits turns that signal into a message we can show.
    process_flag(trap_exit, true),

    Load = erl_driver_compat:load_driver(Dir, ?DRV),
    step("Load the driver",
         [{"we call", fmt("erl_driver_compat:load_driver(~tp, ~tp)", [Dir, ?DRV])},
          {"we get", show(Load)}],
         "kv_drv.so was copied to a private path, opened, and its calls to "
         "driver_output, driver_alloc, ... were bound to erl_driver_compat.",
         Load =:= ok),
    Load =:= ok orelse erlang:error({load_failed, Load,
                                     catch erl_driver_compat:format_error(element(2, Load))}),

    Info = erl_driver_compat:driver_info(?DRV),
    step("Ask what kind of driver it is",
         [{"we call", fmt("erl_driver_compat:driver_info(~tp)", [?DRV])},
          {"we get", show(Info)}],
         "The driver declares interface version " ++ version_text(info_version(Info))
         ++ "; it uses one lock for the whole driver.",
         is_map(Info)),

    Port = erl_driver_compat:open_port({spawn, ?DRV}, [binary]),
    step("Open a port",
         [{"we call", fmt("erl_driver_compat:open_port({spawn, ~tp}, [binary])", [?DRV])},
          {"we get", fmt("~tp   (erl_driver_compat:is_port/1 says ~tp)",
                         [Port, erl_driver_compat:is_port(Port)])}],
         "The pseudo-port is a process (its pid is the port). We are its owner "
         "and are linked to it, as with a native port; the driver's start "
         "callback allocated the port's table.",
         is_pid(Port) andalso erl_driver_compat:is_port(Port)),

    command_step(Port, "Store a key", "SET color blue\n", [<<"OK\n">>],
                 "One line, one reply: the driver answers with driver_output, "
                 "which reaches us as {Port, {data, <<\"OK\\n\">>}}."),

    command_step(Port, "Several lines in one command",
                 "SET size XL\nSET shape round\nGET color\n",
                 [<<"OK\n">>, <<"OK\n">>, <<"VALUE blue\n">>],
                 "The driver splits the data into lines and answers each one "
                 "with its own message, in order."),

    command_step(Port, "Half a line", "GET sha", [],
                 "No newline yet, so no reply: the driver keeps the partial "
                 "line in its per-port buffer..."),
    command_step(Port, "... and the rest of it", "pe\n", [<<"VALUE round\n">>],
                 "...and answers once the line is complete (\"GET shape\")."),

    command_step(Port, "Delete, look up, list",
                 "DEL size\nGET size\nKEYS\n",
                 [<<"OK\n">>, <<"NOT_FOUND\n">>, <<"KEYS color shape\n">>],
                 "Keys come back in insertion order."),

    command_step(Port, "A command the driver does not know", "FLY me to the moon\n",
                 [<<"ERROR unknown command\n">>],
                 "Protocol errors are ordinary replies; the port stays open."),

    control_step(Port, "port_control 1 = COUNT", 1, "2",
                 "The reply of a control callback is returned directly, not as a "
                 "message. kv_drv did not set PORT_CONTROL_FLAG_BINARY, so the "
                 "reply is a list."),

    control_step(Port, "port_control 3 = STATS", 3, any,
                 "Counters kept in the driver's per-port state (lines seen, "
                 "errors, bytes of a pending partial line)."),

    call_step(Port, "port_call 1 = GET with an Erlang term", 1, <<"color">>,
              {ok, <<"blue">>},
              "port_call/3 hands the driver the term in the external term "
              "format; kv_drv decodes it and encodes {ok, Value} by hand."),

    call_step(Port, "port_call 1 = GET of a missing key", 1, "no_such_key",
              not_found,
              "Keys may be binaries, strings or atoms."),

    call_step(Port, "port_call 2 = SET {Key, Value}", 2, {lang, <<"erlang">>},
              ok,
              "The call stored a key that the line protocol can now see."),
    command_step(Port, "Read it back with a line", "GET lang\n",
                 [<<"VALUE erlang\n">>],
                 "Commands, control and call all work on the same per-port table."),

    call_step(Port, "port_call 3 = COUNT", 3, [], 3,
              "An integer encoded as SMALL_INTEGER_EXT."),

    BadOp = try erl_driver_compat:port_control(Port, 99, "") of
                R -> {returned, R}
            catch error:E -> {error, E}
            end,
    step("An operation the driver refuses",
         [{"we call", "erl_driver_compat:port_control(Port, 99, \"\")"},
          {"we get", fmt("exception ~tp", [BadOp])}],
         "The control callback returned -1; like erlang:port_control/3 on a "
         "native port, the caller gets a badarg exception.",
         BadOp =:= {error, badarg}),

    control_step(Port, "port_control 2 = CLEAR", 2, "OK",
                 "The table is emptied..."),
    control_step(Port, "port_control 1 = COUNT", 1, "0", "...and is empty now."),

    LoadErr = erl_driver_compat:load_driver(Dir, "no_such_drv"),
    step("An error: load a driver that does not exist",
         [{"we call", fmt("erl_driver_compat:load_driver(~tp, \"no_such_drv\")", [Dir])},
          {"we get", show(LoadErr)},
          {"format_error", error_text(LoadErr)}]
         ++ case lists:prefix("Unknown erl_driver_compat error", error_text(LoadErr)) of
                true -> [{"!! note", "format_error/1 has no sentence for this reason: "
                                     "a gap in erl_driver_compat, not in the driver"}];
                false -> []
            end,
         "Errors are {error, Reason} tuples; erl_driver_compat:format_error/1 "
         "turns the reason into a sentence, as erl_ddll:format_error/1 does.",
         element(1, LoadErr) =:= error),

    Other = erl_driver_compat:open_port({spawn, ?DRV}, [binary]),
    Closed = erl_driver_compat:port_close(Other),
    step("Open a second port and close it",
         [{"we call", "erl_driver_compat:port_close(Port2)"},
          {"we get", fmt("~tp   (is_port/1 is now ~tp)",
                         [Closed, erl_driver_compat:is_port(Other)])}],
         "port_close runs the driver's stop callback, which frees the port's "
         "table, before it returns.",
         Closed =:= true andalso not erl_driver_compat:is_port(Other)),

    true = erl_driver_compat:port_command(Port, "CRASH\nGET color\n"),
    Exit = receive {'EXIT', Port, Why} -> {'EXIT', Port, Why}
           after ?EXIT_WAIT_MS -> no_exit_signal
           end,
    Late = collect(Port),
    step("Make the driver crash",
         [{"we send", "port_command(Port, " ++ show_data("CRASH\nGET color\n") ++ ")"},
          {"we get", fmt("~tp", [Exit])},
          {"then", fmt("replies after the crash: ~tp; is_port/1: ~tp",
                       [Late, erl_driver_compat:is_port(Port)])}],
         "kv_drv called driver_failure_atom(port, \"crashed\"): the port "
         "closed and its linked owner got an exit signal with reason crashed "
         "(we trap exits, so it arrived as a message). The line after CRASH "
         "was never run.",
         Exit =:= {'EXIT', Port, crashed} andalso Late =:= []
         andalso not erl_driver_compat:is_port(Port)),
    ok.

command_step(Port, Title, Data, Expected, Why) ->
    true = erl_driver_compat:port_command(Port, Data),
    Replies = collect(Port),
    Got = case Replies of
              [] -> "(no reply)";
              _ -> lists:join(", ", [show(R) || R <- Replies])
          end,
    step(Title,
         [{"we send", "port_command(Port, " ++ show_data(Data) ++ ")"},
          {"we get", Got}],
         Why, Replies =:= Expected).

control_step(Port, Title, Op, Expected, Why) ->
    Reply = erl_driver_compat:port_control(Port, Op, ""),
    step(Title,
         [{"we call", fmt("port_control(Port, ~p, \"\")", [Op])},
          {"we get", show(Reply)}],
         Why, Expected =:= any orelse Reply =:= Expected).

call_step(Port, Title, Op, Arg, Expected, Why) ->
    Reply = erl_driver_compat:port_call(Port, Op, Arg),
    step(Title,
         [{"we call", fmt("port_call(Port, ~p, ~tp)", [Op, Arg])},
          {"we get", show(Reply)}],
         Why, Reply =:= Expected).

%% The replies the port has sent us so far, oldest first.
collect(Port) ->
    receive
        {Port, {data, D}} -> [D | collect(Port)]
    after ?REPLY_WAIT_MS -> []
    end.

%%====================================================================
%% Part 2: the same session, native port vs erl_driver_compat
%%====================================================================

session() ->
    [{command, "SET a 1\n"},
     {command, "SET b two words\nGET a\nGET b\n"},
     {command, "GET c\nDEL a\nKEYS\n"},
     {command, "SET par"},
     {command, "tial yes\r\nGET partial\n"},
     {command, "HELLO\nSET nokey\n"},
     {control, 1, ""},
     {control, 3, ""},
     {control, 42, ""},
     {call, 1, <<"b">>},
     {call, 1, missing},
     {call, 2, {"k", <<"v">>}},
     {call, 3, []},
     {call, 1, {not_a, key}},
     {control, 2, ""},
     {control, 1, ""},
     {command, "CRASH\n"}].

side_by_side(Dir) ->
    section("Part 2. The same session on a native port and through erl_driver_compat"),
    para(["kv_drv.so is loaded a second time, natively with erl_ddll, in the same",
          "VM (erl_driver_compat works on a private copy, so the two do not",
          "interfere). Both ports are opened without the binary option, so",
          "data arrives as strings. \"both:\" means the two replies were",
          "exactly equal (=:=, after writing either port as Port)."]),
    Native = run_session(native, Dir),
    Compat = run_session(compat, Dir),
    Rows = lists:zip3(session(), Native, Compat),
    Width = lists:max([length(action_text(A)) || A <- session()]) + 2,
    Same = lists:foldl(
             fun({Action, {N, _}, {C, _}}, {I, Acc}) ->
                     Label = string:pad(action_text(Action), Width),
                     case N =:= C of
                         true ->
                             io:format("  ~2w  ~ts both:   ~ts~n", [I, Label, N]);
                         false ->
                             io:format("  ~2w  ~ts native: ~ts~n"
                                       "      ~ts compat: ~ts   <-- DIFFERENT~n",
                                       [I, Label, N, string:pad("", Width), C])
                     end,
                     {I + 1, Acc + bool(N =:= C)}
             end, {1, 0}, Rows),
    {_, Equal} = Same,
    Total = length(Rows),
    NativeRaw = [R || {_, R} <- Native],
    CompatRaw = [R || {_, R} <- Compat],
    io:format("~n  ~p of ~p actions gave identical results.~n", [Equal, Total]),
    check("native and compat sessions identical", NativeRaw =:= CompatRaw).

%% Runs the session in a fresh process (its own mailbox and links) and
%% returns, per action, {Text, Raw} with the port written as 'Port'.
run_session(Kind, Dir) ->
    Parent = self(),
    Ref = make_ref(),
    {Pid, MRef} =
        spawn_monitor(
          fun() ->
                  process_flag(trap_exit, true),
                  ok = case Kind of
                           native -> erl_ddll:load_driver(Dir, ?DRV);
                           compat -> erl_driver_compat:load_driver(Dir, ?DRV)
                       end,
                  B = backend(Kind),
                  Port = (maps:get(open, B))(),
                  Results = [observe(B, Port, A) || A <- session()],
                  (maps:get(close, B))(Port),
                  Parent ! {Ref, Results}
          end),
    receive
        {Ref, Results} ->
            erlang:demonitor(MRef, [flush]),
            [{observation_text(R), R} || R <- Results];
        {'DOWN', MRef, process, Pid, Reason} ->
            erlang:error({session_failed, Kind, Reason})
    end.

backend(native) ->
    #{open => fun() -> erlang:open_port({spawn, ?DRV}, []) end,
      command => fun erlang:port_command/2,
      control => fun erlang:port_control/3,
      call => fun erlang:port_call/3,
      close => fun(P) -> catch erlang:port_close(P) end};
backend(compat) ->
    #{open => fun() -> erl_driver_compat:open_port({spawn, ?DRV}, []) end,
      command => fun erl_driver_compat:port_command/2,
      control => fun erl_driver_compat:port_control/3,
      call => fun erl_driver_compat:port_call/3,
      close => fun(P) -> catch erl_driver_compat:port_close(P) end}.

%% What one action produced: its result, then the messages it caused.
observe(B, Port, Action) ->
    Result = try
                 case Action of
                     {command, Data} -> (maps:get(command, B))(Port, Data);
                     {control, Op, Data} -> (maps:get(control, B))(Port, Op, Data);
                     {call, Op, Term} -> (maps:get(call, B))(Port, Op, Term)
                 end
             of
                 R -> {ok, R}
             catch
                 Class:Reason -> {Class, Reason}
             end,
    Msgs = messages(Port, element(1, Action) =:= command andalso
                          element(2, Action) =:= "CRASH\n"),
    {Result, Msgs}.

messages(Port, WaitForExit) ->
    Wait = case WaitForExit of
               true -> ?EXIT_WAIT_MS;
               false -> ?REPLY_WAIT_MS
           end,
    receive
        {Port, {data, D}} -> [{data, D} | messages(Port, WaitForExit)];
        {Port, Other} -> [Other | messages(Port, WaitForExit)];
        {'EXIT', Port, Reason} -> [{'EXIT', 'Port', Reason}]
    after Wait -> []
    end.

action_text({command, Data}) -> "port_command " ++ show_data(Data);
action_text({control, Op, Data}) -> fmt("port_control ~p ", [Op]) ++ show_data(Data);
action_text({call, Op, Term}) -> fmt("port_call ~p ~tp", [Op, Term]).

%% port_command's `true' is left out: the replies are what matters.
observation_text({{ok, true}, []}) -> "(no reply)";
observation_text({{ok, true}, Msgs}) -> lists:join(" ", [message_text(M) || M <- Msgs]);
observation_text({{ok, R}, []}) -> show(R);
observation_text({{Class, Reason}, []}) -> fmt("exception ~p:~tp", [Class, Reason]);
observation_text({Result, Msgs}) ->
    observation_text({Result, []}) ++ " then "
        ++ lists:join(" ", [message_text(M) || M <- Msgs]).

message_text({data, D}) -> show(D);
message_text({'EXIT', _, Reason}) -> fmt("{'EXIT', Port, ~tp}", [Reason]);
message_text(Other) -> show(Other).

%%====================================================================
%% Part 4: the check tool
%%====================================================================

check_tool(Build) ->
    section("Part 4. The check tool: erl_driver_compat:check/1"),
    para(["The report of a driver file without running any of its code, as",
          "_build/bin/erl_driver_compat_check PATH and",
          "mix erl_driver_compat.check PATH print it (exit status 0 will run,",
          "1 will run with warnings, 2 will not run). load_driver/2 refuses",
          "exactly the drivers whose verdict is \"will not run\"."]),
    Kv = filename:join(Build, ?DRV ++ ".so"),
    Debian = case code:lib_dir(runtime_tools, priv) of
                 {error, _} -> [];
                 Priv -> [filename:join([Priv, "lib", "trace_file_drv.so"])]
             end,
    lists:foreach(
      fun(File) ->
              Result = erl_driver_compat:check(File),
              io:put_chars(erl_driver_compat_check:format_result(File, Result)),
              io:format("~n"),
              Dir = filename:dirname(File),
              Name = filename:basename(File, ".so"),
              Loads = load_status(load_unload_compat(Dir, Name)) =:= ok,
              WillRun = erl_driver_compat_check:status(Result) < 2,
              check(Name ++ ": the verdict agrees with load_driver/2", Loads =:= WillRun),
              check(Name ++ ": will run", WillRun)
      end, [Kv | Debian]).

%%====================================================================
%% Part 3: compatibility report
%%====================================================================

report(Build, TestBuild) ->
    section("Part 3. Compatibility report"),
    Tests = case filelib:is_dir(TestBuild) of
                true -> lists:sort(filelib:wildcard(filename:join(TestBuild, "*.so")));
                false -> []
            end,
    Files = [filename:join(Build, ?DRV ++ ".so") | Tests],
    HasCheck = check_driver_available(),
    para(["For each driver: the erl_driver functions it imports and whether",
          "erl_driver_compat implements them, the interface version it was",
          "built for, and whether it loads through erl_driver_compat and",
          "natively (erl_ddll, OTP " ++ erlang:system_info(otp_release) ++ ").",
          case HasCheck of
              true -> "The imports come from erl_driver_compat:check_driver/2.";
              false -> "erl_driver_compat:check_driver/2 is not available in this\n"
                           "build: the imports are read with nm -D, and the unsupported\n"
                           "ones are those that a load through erl_driver_compat refuses."
          end]),
    case Tests of
        [] -> io:format("(No test drivers found in ~ts; run `make test-drivers` "
                        "to include them.)~n~n", [TestBuild]);
        _ -> ok
    end,
    Rows = [report_driver(F, HasCheck) || F <- Files],
    summary_table(Rows),
    [KvRow | _] = Rows,
    check("kv_drv loads through erl_driver_compat", maps:get(compat, KvRow) =:= ok),
    check("kv_drv has no unsupported imports", maps:get(unsupported, KvRow) =:= []).

check_driver_available() ->
    _ = code:ensure_loaded(erl_driver_compat),
    erlang:function_exported(erl_driver_compat, check_driver, 2).

report_driver(File, HasCheck) ->
    Dir = filename:dirname(File),
    Name = filename:basename(File, ".so"),
    Checked = case HasCheck of
                  true -> check_driver(Dir, Name);
                  false -> {fallback, nm_imports(File)}
              end,
    Compat = load_unload_compat(Dir, Name),
    Native = load_unload_native(Dir, Name),
    {Version0, Imports, Unsupported, CheckErr} =
        case Checked of
            {ok, M} ->
                {maps:get(version, M, undefined),
                 lists:sort([chars(I) || I <- maps:get(api_imports, M, [])]),
                 lists:sort([chars(U) || U <- maps:get(unsupported, M, [])]),
                 none};
            {error, Reason} ->
                {undefined, [], [], Reason};
            {fallback, Imps} ->
                Uns = case Compat of
                          {error, {unsupported_functions, Names}, _} ->
                              lists:sort([chars(N) || N <- Names]);
                          _ -> []
                      end,
                {undefined, Imps, Uns, none}
        end,
    %% Without a version from check_driver/2, the one the loaded driver
    %% declared (driver_info/1) is the next best source.
    {Version, VersionSource} =
        case {Version0, Compat, Checked} of
            {undefined, {ok, Info}, _} -> {info_version(Info), driver_info};
            {undefined, _, {ok, #{version := undefined}}} -> {undefined, check_undefined};
            {undefined, _, _} -> {undefined, not_loaded};
            _ -> {Version0, check}
        end,
    Supported = [I || I <- Imports, not lists:member(I, Unsupported)],
    io:format("~ts  (~ts)~n", [Name, File]),
    line("interface version",
         case VersionSource of
             check_undefined -> "none reported by check_driver/2 (undefined)";
             not_loaded -> "unknown: no version from check_driver/2, and the "
                               "driver does not load, so driver_info/1 cannot tell";
             _ -> version_text(Version)
         end),
    case CheckErr of
        none -> ok;
        _ -> line("check_driver", fmt("~ts  (~tp)", [error_text({error, CheckErr}), CheckErr]))
    end,
    case Checked of
        {ok, #{driver_init := false}} -> line("driver_init", "missing: not a dynamic driver");
        _ -> ok
    end,
    line("through compat", load_text(Compat)),
    line("natively", load_text(Native)),
    line(fmt("imports (~p)", [length(Imports)]),
         case {Imports, Unsupported} of
             {[], []} -> "no erl_driver functions found";
             {_, []} -> "all supported: " ++ lists:join(", ", Imports);
             _ -> "supported: " ++ lists:join(", ", Supported)
         end),
    case Unsupported of
        [] -> ok;
        _ -> line("NOT supported", lists:join(", ", Unsupported))
    end,
    io:format("~n"),
    #{name => Name, version => Version, version_source => VersionSource,
      imports => length(lists:usort(Imports ++ Unsupported)),
      unsupported => Unsupported, compat => load_status(Compat),
      native => load_status(Native)}.

check_driver(Dir, Name) ->
    try erlang:apply(erl_driver_compat, check_driver, [Dir, Name]) of
        {ok, M} when is_map(M) -> {ok, M};
        {error, R} -> {error, R};
        Other -> {error, {unexpected_reply, Other}}
    catch
        Class:Reason -> {error, {Class, Reason}}
    end.

%% Loads the driver in a separate process and drops it again, so that
%% the report leaves nothing loaded behind.
load_unload_compat(Dir, Name) ->
    in_process(fun() ->
                       case erl_driver_compat:load_driver(Dir, Name) of
                           ok ->
                               Info = erl_driver_compat:driver_info(Name),
                               _ = erl_driver_compat:unload_driver(Name),
                               {ok, Info};
                           {error, R} ->
                               {error, R, error_text({error, R})}
                       end
               end).

load_unload_native(Dir, Name) ->
    in_process(fun() ->
                       case erl_ddll:load_driver(Dir, Name) of
                           ok ->
                               _ = erl_ddll:unload_driver(Name),
                               {ok, native};
                           {error, R} ->
                               {error, R, erl_ddll:format_error(R)}
                       end
               end).

in_process(Fun) ->
    Ref = make_ref(),
    Parent = self(),
    {Pid, MRef} = spawn_monitor(fun() -> Parent ! {Ref, catch Fun()} end),
    receive
        {Ref, Result} ->
            erlang:demonitor(MRef, [flush]),
            Result;
        {'DOWN', MRef, process, Pid, Reason} ->
            {error, {crashed, Reason}, "the loading process crashed"}
    end.

load_status({ok, _}) -> ok;
load_status(_) -> failed.

load_text({ok, _}) -> "loads";
load_text({error, R, Text}) -> fmt("refused: ~ts  (~tp)", [Text, R]);
load_text(Other) -> fmt("refused: ~tp", [Other]).

summary_table(Rows) ->
    io:format("Summary~n"),
    Header = ["driver", "version", "imports", "unsupported", "via compat", "natively"],
    Lines = [[maps:get(name, R),
              short_version(maps:get(version, R)),
              integer_to_list(maps:get(imports, R)),
              integer_to_list(length(maps:get(unsupported, R))),
              yes_no(maps:get(compat, R)),
              yes_no(maps:get(native, R))] || R <- Rows],
    Widths = [lists:max([string:length(C) || C <- Col])
              || Col <- transpose([Header | Lines])],
    Print = fun(Cells) ->
                    Padded = [string:pad(C, W) || {C, W} <- lists:zip(Cells, Widths)],
                    io:format("  ~ts~n", [string:trim(lists:join("  ", Padded), trailing)])
            end,
    Print(Header),
    Print([lists:duplicate(W, $-) || W <- Widths]),
    lists:foreach(Print, Lines),
    case [R || R = #{version_source := driver_info} <- Rows] of
        [] -> ok;
        _ -> io:format("~n  The versions come from driver_info/1 after loading through "
                       "erl_driver_compat~n  (check_driver/2 did not report one).~n")
    end.

transpose([[] | _]) -> [];
transpose(Rows) -> [[hd(R) || R <- Rows] | transpose([tl(R) || R <- Rows])].

yes_no(ok) -> "yes";
yes_no(_) -> "no".

%% The fallback for builds without check_driver/2: the undefined dynamic
%% symbols of the file that are erl_driver functions (the names declared
%% in our erl_driver.h, plus the driver_/erl_drv_ prefixes).
nm_imports(File) ->
    Out = os:cmd("nm -D --undefined-only " ++ quote(File) ++ " 2>/dev/null"),
    Known = header_functions(),
    Syms = [lists:last(string:lexemes(L, " ")) || L <- string:lexemes(Out, "\n")],
    lists:usort([S || S <- Syms,
                      lists:member(S, Known)
                          orelse lists:prefix("driver_", S)
                          orelse lists:prefix("erl_drv_", S)]).

header_functions() ->
    Header = filename:join(erl_driver_compat:include_dir(), "erl_driver.h"),
    case file:read_file(Header) of
        {ok, Text} ->
            {match, Names} = re:run(Text, "EXTERN[^;(]*?\\b(\\w+)\\s*\\(",
                                    [global, {capture, all_but_first, list}]),
            [N || [N] <- Names];
        {error, _} ->
            []
    end.

quote(S) -> "'" ++ lists:flatten(string:replace(S, "'", "'\\''", all)) ++ "'".

%%====================================================================
%% Versions
%%====================================================================

info_version(#{version := V}) -> V;
info_version(_) -> undefined.

version_text(undefined) -> "unknown";
version_text({0, 0}) -> "none (no extended marker: a driver from before R11B-3)";
version_text({Major, Minor} = V) ->
    case era(V) of
        unknown -> fmt("~p.~p (not a known erl_driver.h version)", [Major, Minor]);
        Era -> fmt("~p.~p (erl_driver.h of ~ts)", [Major, Minor, Era])
    end;
version_text(Other) -> fmt("~tp", [Other]).

short_version({Major, Minor}) -> fmt("~p.~p", [Major, Minor]);
short_version(_) -> "?".

%% The releases whose erl_driver.h had this version (spec/ABI_VERSIONS.md).
era({1, 0}) -> "R11B-3";
era({1, 1}) -> "R11B-4 .. R11B-5";
era({1, 2}) -> "R12B";
era({1, 3}) -> "R13A .. R13B02";
era({1, 4}) -> "R13B03";
era({1, 5}) -> "R13B04 .. R14B04";
era({2, 0}) -> "R15B";
era({2, 1}) -> "R16A .. R16B01";
era({2, 2}) -> "R16B02 .. R16B03";
era({3, 0}) -> "OTP 17.0";
era({3, 1}) -> "OTP 17.3";
era({3, 2}) -> "OTP 17.4.1 .. 18.2";
era({3, 3}) -> "OTP 18.3 and later";
era(_) -> unknown.

%%====================================================================
%% Printing
%%====================================================================

title(Text) ->
    io:format("~ts~n~ts~n~n", [Text, lists:duplicate(string:length(Text), $=)]).

section(Text) ->
    io:format("~n~ts~n~ts~n~n", [Text, lists:duplicate(string:length(Text), $-)]).

para(Lines) ->
    lists:foreach(fun(L) -> io:format("~ts~n", [L]) end, Lines),
    io:format("~n").

step(Title, Pairs, Why, Ok) ->
    N = case get(step) of undefined -> 1; S -> S + 1 end,
    put(step, N),
    io:format("~2w. ~ts~n", [N, Title]),
    %% Calls and replies stay on one line, however long: breaking them
    %% would make them look like different data.
    lists:foreach(fun({Label, Text}) -> line(Label, Text, nowrap) end, Pairs),
    line("meaning", Why),
    check(fmt("step ~p (~ts)", [N, Title]), Ok),
    io:format("~n").

%% A labelled line; long text is wrapped under the label.
line(Label, Text) ->
    line(Label, Text, wrap).

line(Label, Text, Mode) ->
    Indent = lists:duplicate(24, $\s),
    Flat = lists:flatten(io_lib:format("~ts", [Text])),
    %% Pretty-printed terms may contain line breaks: one line of words.
    OneLine = lists:flatten(string:replace(re:replace(Flat, "\\s*\n\\s*", " ",
                                                      [global, unicode, {return, list}]),
                                           "\t", " ", all)),
    [First | Rest] = case Mode of
                         wrap -> wrap(OneLine, 56);
                         nowrap -> [OneLine]
                     end,
    io:format("    ~ts ~ts~n", [string:pad(Label, 19), First]),
    [io:format("~ts~ts~n", [Indent, L]) || L <- Rest],
    ok.

wrap(Text, Width) ->
    case string:length(Text) =< Width of
        true -> [Text];
        false ->
            Words = string:split(Text, " ", all),
            lists:reverse(wrap_words(Words, Width, "", []))
    end.

wrap_words([], _, Cur, Acc) -> [Cur | Acc];
wrap_words([W | Ws], Width, "", Acc) -> wrap_words(Ws, Width, W, Acc);
wrap_words([W | Ws], Width, Cur, Acc) ->
    case string:length(Cur) + 1 + string:length(W) > Width of
        true -> wrap_words(Ws, Width, W, [Cur | Acc]);
        false -> wrap_words(Ws, Width, Cur ++ " " ++ W, Acc)
    end.

check(_What, true) -> ok;
check(What, _) ->
    io:format("    !! not what we expected~n"),
    put(failures, [What | get(failures)]),
    ok.

%% A term on one line.
show(Term) -> lists:flatten(io_lib:print(Term, 1, 1000, -1)).

%% Data we send, as an Erlang string literal.
show_data(Data) ->
    case unicode:characters_to_list(Data) of
        [] -> "\"\"";
        S -> show(S)
    end.

fmt(Format, Args) -> lists:flatten(io_lib:format(Format, Args)).

error_text({error, Reason}) ->
    try erl_driver_compat:format_error(Reason) of
        Text -> chars(Text)
    catch
        _:_ -> fmt("~tp", [Reason])
    end;
error_text(_) -> "(not an error)".

%% A string from a string, binary or chardata (improper lists included).
chars(X) when is_atom(X) -> atom_to_list(X);
chars(X) ->
    case catch unicode:characters_to_list(X) of
        S when is_list(S) -> S;
        _ -> fmt("~tp", [X])
    end.

bool(true) -> 1;
bool(false) -> 0.
