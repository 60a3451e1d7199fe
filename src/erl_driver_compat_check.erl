%% @doc The compatibility report on the command line: prints
%% {@link erl_driver_compat:check/1} readably and exits with a status that
%% reflects the verdict (0 will run, 1 will run with warnings, 2 will not
%% run; 2 also for a file that cannot be read or is not a driver object).
%%
%% `make' builds the escript `_build/bin/erl_driver_compat_check', which
%% calls {@link main/1}; `mix erl_driver_compat.check PATH' prints the same
%% report. From any Erlang node:
%% ```
%% erl -noshell -pa _build/default/lib/erl_driver_compat/ebin \
%%     -run erl_driver_compat_check main -extra path/to/my_drv.so
%% '''
-module(erl_driver_compat_check).

-export([main/0, main/1, format/1, format_result/2, status/1]).

%% @doc {@link main/1} of the plain arguments (`-run
%% erl_driver_compat_check main -extra Path...').
-spec main() -> no_return().
main() ->
    main(init:get_plain_arguments()).

%% @doc Prints the report of each file in `Paths' and halts with the
%% highest status of them (see {@link status/1}). With no path, prints a
%% usage line and halts with 2. Called by the escript and by
%% `-run erl_driver_compat_check main -extra Path...' (arguments as
%% strings).
-spec main([string()]) -> no_return().
main([]) ->
    io:format(standard_error, "usage: erl_driver_compat_check DRIVER.so...~n", []),
    halt(2);
main(Paths) ->
    Statuses = [begin
                    Result = erl_driver_compat:check(Path),
                    io:put_chars(format_result(Path, Result)),
                    status(Result)
                end || Path <- Paths],
    halt(lists:max(Statuses)).

%% @doc The exit status for a result of {@link erl_driver_compat:check/1}:
%% 0 `will_run', 1 `will_run_with_warnings', 2 `will_not_run' or an error.
-spec status({ok, map()} | {error, term()}) -> 0 | 1 | 2.
status({ok, #{verdict := will_run}}) -> 0;
status({ok, #{verdict := {will_run_with_warnings, _}}}) -> 1;
status(_) -> 2.

%% @doc The text printed for `Path' and its check result (a report, or an
%% error shown with {@link erl_driver_compat:format_error/1}).
-spec format_result(file:name_all(), {ok, map()} | {error, term()}) -> unicode:chardata().
format_result(_Path, {ok, Report}) ->
    format(Report);
format_result(Path, {error, Reason}) ->
    io_lib:format("~ts~n  verdict: will not run: ~ts~n",
                  [Path, erl_driver_compat:format_error(Reason)]).

%% @doc The readable text of a report of {@link erl_driver_compat:check/1}.
-spec format(map()) -> unicode:chardata().
format(#{file := File, version := Version, locking := Locking, entry := Entry,
         api_imports := Api, other_imports := Others, constructors := Ctors,
         constructor_handling := Handling, driver_init := HasInit,
         verdict := Verdict}) ->
    #{init_function := InitFn, init_array := InitArray} = Ctors,
    [io_lib:format("~ts~n", [File]),
     io_lib:format("  interface version: ~ts~n", [version(Version, Entry)]),
     io_lib:format("  locking:           ~ts~n", [locking(Locking)]),
     io_lib:format("  driver_init:       ~ts~n", [yes_no(HasInit)]),
     io_lib:format("  erl_driver functions imported (~b):~n", [length(Api)]),
     [io_lib:format("    ~-32ts ~s~n", [N, S]) || {N, S} <- Api],
     io_lib:format("  other undefined symbols (~b):~n", [length(Others)]),
     [io_lib:format("    ~-32ts ~ts~n", [N, provider(P)]) || {N, P} <- Others],
     io_lib:format("  constructors:      ~ts~n",
                   [constructors(InitFn, InitArray, Handling)]),
     io_lib:format("  verdict:           ~ts~n", [verdict(Verdict)])].

version({Major, Minor}, {found, Name}) ->
    io_lib:format("~b.~b (entry ~ts found in the file's data)",
                  [Major, Minor, case Name of undefined -> "?"; _ -> "\"" ++ Name ++ "\"" end]);
version(unknown, not_found) ->
    "unknown until loaded (no ERL_DRV_EXTENDED_MARKER entry in the file's data)";
version(unknown, {ambiguous, N}) ->
    io_lib:format("unknown until loaded (~b candidate entries in the file's data)", [N]).

locking(driver) -> "driver level";
locking(port_level) -> "port level (ERL_DRV_FLAG_USE_PORT_LOCKING)";
locking(unknown) -> "unknown until loaded".

yes_no(true) -> "defined";
yes_no(false) -> "MISSING".

provider(library) -> "provided by a loaded library";
provider(vm_only) -> "only the Erlang VM defines it (refused)";
provider(not_loaded) -> "no loaded library defines it (the driver's own libraries must)";
provider(weak) -> "weak, may stay undefined".

constructors(false, 0, _) -> "none";
constructors(InitFn, InitArray, Handling) ->
    Parts = [P || {true, P} <- [{InitFn, "DT_INIT"},
                                {InitArray > 0,
                                 io_lib:format("~b .init_array entr~s", [InitArray, plural(InitArray)])}]],
    [lists:join(", ", Parts), "; ", Handling].

plural(1) -> "y";
plural(_) -> "ies".

verdict(will_run) -> "will run";
verdict({will_run_with_warnings, Texts}) ->
    ["will run with warnings:", [["\n    - ", T] || T <- Texts]];
verdict({will_not_run, Texts}) ->
    ["will not run:", [["\n    - ", T] || T <- Texts]].
