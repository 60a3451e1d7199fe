%% @doc Compiles a legacy driver's C (or C++) sources into a shared object
%% that {@link erl_driver_compat:load_driver/2} can load, so that nobody
%% writes compiler command lines by hand.
%%
%% The compiler is `cc' (`c++' when a source is C++), or the command in the
%% `CC' (`CXX') environment variable, or the `{cc, Command}' option. It is
%% given our include directory ({@link erl_driver_compat:include_dir/0}),
%% `-fPIC -shared -O2' and the options' flags, and writes `OutDir/Name.so'.
%% The library is first written under a temporary name in `OutDir' and then
%% renamed over the old one: a `.so' that a running VM has mapped is never
%% overwritten in place (that would crash the VM).
%%
%% ```
%% {ok, So} = erl_driver_compat:compile_driver("c_src/my_drv.c", "priv",
%%                                             [{defines, [{"VERSION", "2"}]},
%%                                              {libs, ["z"]}]),
%% ok = erl_driver_compat:load_driver(filename:dirname(So), "my_drv").
%% '''
-module(erl_driver_compat_build).

-include_lib("kernel/include/file.hrl").

-export([compile_driver/3, command/3, main/0, main/1]).

-export_type([option/0, source/0]).

-type source() :: file:filename_all() | [file:filename_all()].
%% One source file, or a list of them (C, or C++ by the extensions
%% `.cc', `.cpp', `.cxx', `.C').

-type option() :: {include_dirs, [file:filename_all()]}
                | {lib_dirs, [file:filename_all()]}
                | {libs, [string() | binary() | atom()]}
                | {defines, [define()]}
                | {cflags, [string() | binary()]}
                | {ldflags, [string() | binary()]}
                | {cc, string() | binary()}
                | {name, string() | binary() | atom()}.
%% <ul>
%% <li>`{include_dirs, Dirs}': `-I Dir' for each, after our include
%%     directory (whose `erl_driver.h' therefore wins).</li>
%% <li>`{lib_dirs, Dirs}', `{libs, Names}': `-L Dir', `-l Name'.</li>
%% <li>`{defines, Defs}': `-D Name' or `-D Name=Value'.</li>
%% <li>`{cflags, Flags}', `{ldflags, Flags}': passed as they are, before
%%     and after the sources (e.g. `["-Wall", "-Werror"]', `["-Wl,-z,now"]');
%%     a later `-O' overrides the default `-O2'.</li>
%% <li>`{cc, Command}': the compiler command (words separated by blanks,
%%     e.g. `"ccache gcc"'); default `$CC' / `$CXX', else `cc' / `c++'.</li>
%% <li>`{name, Name}': the library's name without `.so' (default: the
%%     first source's base name without its extension). This is the name
%%     to give to `load_driver/2'; it must match the driver's name in its
%%     `ErlDrvEntry'.</li>
%% </ul>

-type define() :: string() | binary() | atom()
                | {string() | binary() | atom(), string() | binary() | integer() | atom()}.

-define(CXX_EXTS, [".cc", ".cpp", ".cxx", ".C", ".c++"]).

%% @doc Compiles `Src' into `OutDir/Name.so'; see the module doc for the
%% options. Returns `{ok, SoPath}', or `{error, Text}' where `Text' is the
%% command line followed by the compiler's output (its diagnostics), or
%% says that the compiler cannot be found or the directory not be made.
%% Raises `badarg' for malformed arguments. `OutDir' is created when
%% missing.
-spec compile_driver(source(), file:filename_all(), [option()]) ->
          {ok, file:filename()} | {error, string()}.
compile_driver(Src, OutDir, Opts) ->
    {[Cc | _] = Words, So} = command(Src, OutDir, Opts),
    case os:find_executable(Cc) of
        false ->
            {error, flat("C compiler not found: ~ts (set CC, or install one: "
                         "apt-get install gcc)", [Cc])};
        Exe ->
            case filelib:ensure_dir(So) of
                ok -> compile(Exe, Words, So);
                {error, Why} -> {error, flat("cannot create ~ts: ~ts",
                                             [filename:dirname(So), file:format_error(Why)])}
            end
    end.

%% The compiler writes a temporary file next to the target, renamed over
%% the target on success (never an in-place overwrite of a mapped .so).
compile(Exe, [_Cc | Args], So) ->
    Tmp = So ++ ".tmp" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive])),
    TmpArgs = [case A of So -> Tmp; _ -> A end || A <- Args],
    case run(Exe, TmpArgs) of
        {0, _Output} ->
            case file:rename(Tmp, So) of
                ok ->
                    {ok, So};
                {error, Why} ->
                    _ = file:delete(Tmp),
                    {error, flat("cannot rename ~ts to ~ts: ~ts", [Tmp, So, file:format_error(Why)])}
            end;
        {Status, Output} ->
            _ = file:delete(Tmp),
            {error, flat("~ts~n~ts(exit status ~b)", [command_line([Exe | Args]), Output, Status])}
    end.

%% @doc The command line {@link compile_driver/3} runs, without running
%% it: `{[Compiler | Args], SoPath}'. The compiler is a name or a path as
%% given (not yet looked up in `PATH'). Raises `badarg' for malformed
%% arguments.
-spec command(source(), file:filename_all(), [option()]) -> {[string()], file:filename()}.
%% (Bad raises badarg: the fun only terminates with an exception, on purpose.)
-dialyzer({nowarn_function, command/3}).
command(Src, OutDir, Opts) ->
    Bad = fun() -> erlang:error(badarg, [Src, OutDir, Opts]) end,
    Sources = sources(Src, Bad),
    is_list(Opts) orelse Bad(),
    lists:foreach(fun(O) -> check_option(O, Bad) end, Opts),
    Cxx = lists:any(fun(S) -> lists:member(filename:extension(S), ?CXX_EXTS) end, Sources),
    Cc = compiler(proplists:get_value(cc, Opts), Cxx, Bad),
    Name = case proplists:get_value(name, Opts) of
               undefined -> filename:rootname(filename:basename(hd(Sources)));
               N -> chars(N, Bad)
           end,
    (Name =/= [] andalso not lists:member($/, Name)) orelse Bad(),
    So = filename:join(chars(OutDir, Bad), Name ++ ".so"),
    Incs = [erl_driver_compat:include_dir() | all(include_dirs, Opts, Bad)],
    Args = ["-fPIC", "-shared", "-O2"]
        ++ lists:append([["-I", I] || I <- Incs])
        ++ [define(D, Bad) || {defines, L} <- Opts, D <- L]
        ++ all(cflags, Opts, Bad)
        ++ ["-o", So]
        ++ Sources
        ++ lists:append([["-L", L] || L <- all(lib_dirs, Opts, Bad)])
        ++ ["-l" ++ L || L <- all(libs, Opts, Bad)]
        ++ all(ldflags, Opts, Bad),
    {Cc ++ Args, So}.

%% @doc Command-line entry point, for build tools without Erlang glue (a
%% rebar3 hook, a Makefile):
%%
%% ```
%% erl -noshell -pa EBIN -run erl_driver_compat_build main -extra SOURCE...
%%     [-o DIR] [-I DIR] [-L DIR] [-l LIB] [-D NAME[=VALUE]] [--name NAME]
%%     [--cflags FLAGS] [--ldflags FLAGS] [--cc COMMAND]
%% '''
%%
%% The arguments follow `-extra' (`erl' would take those starting with `-'
%% as its own flags otherwise); {@link main/0} reads them. `-o' defaults to
%% `priv'; `-I', `-L', `-l' and `-D' may also be joined to their value
%% (`-Iinc'). Prints the library's path, or the compiler's output, and
%% halts the VM with status 0, 1 (compile error) or 2 (bad arguments).
-spec main([string()]) -> no_return().
main(Args) ->
    main_args(Args).

%% @doc {@link main/1} with the arguments that follow the `-extra' flag of
%% `erl' (`erl -run erl_driver_compat_build main -extra ...').
-spec main() -> no_return().
main() ->
    main_args(init:get_plain_arguments()).

-spec main_args([string()]) -> no_return().
main_args(Args) ->
    try cli_options(Args, [], "priv", []) of
        {Sources, Out, Opts} when Sources =/= [] ->
            case compile_driver(Sources, Out, Opts) of
                {ok, So} ->
                    io:format("~ts~n", [So]),
                    halt(0);
                {error, Text} ->
                    io:format(standard_error, "~ts~n", [Text]),
                    halt(1)
            end;
        _ ->
            cli_usage()
    catch
        throw:usage -> cli_usage()
    end.

-spec cli_usage() -> no_return().
cli_usage() ->
    io:format(standard_error,
              "usage: erl -noshell -run erl_driver_compat_build main -extra SOURCE... [-o DIR] "
              "[-I DIR] [-L DIR] [-l LIB] [-D NAME[=VALUE]] [--name NAME] "
              "[--cflags FLAGS] [--ldflags FLAGS] [--cc COMMAND]~n", []),
    halt(2).

cli_options(["-o", Dir | T], Srcs, _Out, Opts) -> cli_options(T, Srcs, Dir, Opts);
cli_options(["--name", N | T], Srcs, Out, Opts) -> cli_options(T, Srcs, Out, [{name, N} | Opts]);
cli_options(["--cc", C | T], Srcs, Out, Opts) -> cli_options(T, Srcs, Out, [{cc, C} | Opts]);
cli_options(["--cflags", F | T], Srcs, Out, Opts) ->
    cli_options(T, Srcs, Out, [{cflags, string:lexemes(F, " \t")} | Opts]);
cli_options(["--ldflags", F | T], Srcs, Out, Opts) ->
    cli_options(T, Srcs, Out, [{ldflags, string:lexemes(F, " \t")} | Opts]);
cli_options([[$-, Letter] , Value | T], Srcs, Out, Opts) when Letter =:= $I; Letter =:= $L;
                                                            Letter =:= $l; Letter =:= $D ->
    cli_options(T, Srcs, Out, [cli_flag(Letter, Value) | Opts]);
cli_options([[$-, Letter | Value] | T], Srcs, Out, Opts) when Value =/= [], (Letter =:= $I orelse
                                                            Letter =:= $L orelse Letter =:= $l
                                                            orelse Letter =:= $D) ->
    cli_options(T, Srcs, Out, [cli_flag(Letter, Value) | Opts]);
cli_options([[$- | _] | _], _Srcs, _Out, _Opts) -> throw(usage);
cli_options([Src | T], Srcs, Out, Opts) -> cli_options(T, [Src | Srcs], Out, Opts);
cli_options([], Srcs, Out, Opts) -> {lists:reverse(Srcs), Out, lists:reverse(Opts)}.

cli_flag($I, Dir) -> {include_dirs, [Dir]};
cli_flag($L, Dir) -> {lib_dirs, [Dir]};
cli_flag($l, Lib) -> {libs, [Lib]};
cli_flag($D, Def) ->
    case string:split(Def, "=") of
        [Name, Value] -> {defines, [{Name, Value}]};
        [Name] -> {defines, [Name]}
    end.

%% One file name (a string, a binary, a deep character list) or a list of
%% them.
sources(Src, Bad) when is_binary(Src) ->
    [chars(Src, Bad)];
sources([C | _] = Src, Bad) when is_integer(C) ->
    [chars(Src, Bad)];
sources([_ | _] = Srcs, Bad) ->
    [chars(S, Bad) || S <- Srcs];
sources(_, Bad) ->
    Bad().

check_option({Key, L}, Bad)
  when Key =:= include_dirs; Key =:= lib_dirs; Key =:= libs; Key =:= defines;
       Key =:= cflags; Key =:= ldflags ->
    is_list(L) orelse Bad();
check_option({cc, _}, _Bad) -> ok;
check_option({name, _}, _Bad) -> ok;
check_option(_, Bad) -> Bad().

%% Every value of a list option (they may be given more than once).
all(Key, Opts, Bad) ->
    [chars(V, Bad) || {K, L} <- Opts, K =:= Key, V <- L].

compiler(undefined, Cxx, Bad) ->
    {Var, Default} = case Cxx of
                         true -> {"CXX", "c++"};
                         false -> {"CC", "cc"}
                     end,
    case os:getenv(Var) of
        false -> [Default];
        Cmd -> compiler(Cmd, Cxx, Bad)
    end;
compiler(Cmd, Cxx, Bad) ->
    case string:lexemes(chars(Cmd, Bad), " \t") of
        [] when Cxx -> ["c++"];
        [] -> ["cc"];
        Words -> Words
    end.

define({Name, Value}, Bad) when is_integer(Value) ->
    "-D" ++ chars(Name, Bad) ++ "=" ++ integer_to_list(Value);
define({Name, Value}, Bad) ->
    "-D" ++ chars(Name, Bad) ++ "=" ++ chars(Value, Bad);
define(Name, Bad) ->
    "-D" ++ chars(Name, Bad).

chars(A, _Bad) when is_atom(A) -> atom_to_list(A);
chars(T, Bad) when is_binary(T); is_list(T) ->
    try unicode:characters_to_list(T) of
        S when is_list(S) -> S;
        _ -> Bad()
    catch
        error:_ -> Bad()
    end;
chars(_, Bad) ->
    Bad().

%% Runs the compiler (no shell: arguments are passed as they are) and
%% collects its output, stderr included.
run(Exe, Args) ->
    Port = erlang:open_port({spawn_executable, Exe},
                           [{args, Args}, exit_status, stderr_to_stdout, binary, hide,
                            use_stdio]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} ->
            collect(Port, [Acc | Data]);
        {Port, {exit_status, Status}} ->
            Out = iolist_to_binary(Acc),
            {Status, case unicode:characters_to_list(Out) of
                         S when is_list(S) -> S;
                         _ -> binary_to_list(Out)
                     end}
    end.

%% The command as a shell would show it (arguments with blanks quoted).
command_line(Words) ->
    lists:join(" ", [quote(W) || W <- Words]).

quote(W) ->
    case W =:= [] orelse lists:any(fun(C) -> lists:member(C, " \t\"'$\\") end, W) of
        true -> "'" ++ lists:flatten(string:replace(W, "'", "'\\''", all)) ++ "'";
        false -> W
    end.

flat(Fmt, Args) ->
    lists:flatten(io_lib:format(Fmt, Args)).

%%====================================================================
%% Tests
%%====================================================================

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

%% A driver that needs every kind of option: a header from an include
%% directory, a define, a library (libm) and a C flag.
-define(TEST_DRV_C, "
#include <math.h>
#include <stdio.h>
#include <string.h>
#include \"erl_driver.h\"
#include \"build_test.h\"

static ErlDrvData t_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void t_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    char reply[64];
    int root = (int)sqrt((double)len);
    (void)buf;
    /* GREETING from -D, SUFFIX from build_test.h, the root from libm */
    snprintf(reply, sizeof reply, \"%s%s%d\", GREETING, SUFFIX, root);
    driver_output((ErlDrvPort)handle, reply, strlen(reply));
}

static ErlDrvEntry t_entry = {
    NULL, t_start, NULL, t_output, NULL, NULL, \"build_test_drv\", NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    ERL_DRV_EXTENDED_MARKER, ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION, 0, NULL, NULL, NULL, NULL
};

DRIVER_INIT(build_test_drv) { return &t_entry; }
").

tmp_dir() ->
    Dir = filename:join(case os:getenv("TMPDIR") of
                            false -> "/tmp";
                            T -> T
                        end,
                        "edc_build_test_" ++ os:getpid() ++ "_"
                        ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

rm_rf(Dir) ->
    ok = file:del_dir_r(Dir).

write_driver(Dir) ->
    Src = filename:join([Dir, "c_src", "build_test_drv.c"]),
    ok = filelib:ensure_dir(Src),
    ok = file:write_file(Src, ?TEST_DRV_C),
    Inc = filename:join(Dir, "inc"),
    ok = filelib:ensure_dir(filename:join(Inc, "x")),
    ok = file:write_file(filename:join(Inc, "build_test.h"), "#define SUFFIX \"/h/\"\n"),
    {Src, Inc}.

test_opts(Inc) ->
    [{include_dirs, [Inc]}, {defines, [{"GREETING", "\"hi\""}, "UNUSED_DEFINE"]},
     {libs, ["m"]}, {cflags, ["-Wall", "-Werror"]}].

%% Built with every option, loaded through us and driven: the reply shows
%% the define, the header and libm at work.
compile_and_run_test() ->
    Dir = tmp_dir(),
    try
        {Src, Inc} = write_driver(Dir),
        Out = filename:join(Dir, "priv/sub"),
        {ok, So} = erl_driver_compat:compile_driver(Src, Out, test_opts(Inc)),
        ?assertEqual(filename:join(Out, "build_test_drv.so"), So),
        ?assert(filelib:is_regular(So)),
        %% No temporary file is left behind.
        ?assertEqual(["build_test_drv.so"], filelib:wildcard("*", Out)),
        ok = erl_driver_compat:load_driver(Out, "build_test_drv"),
        P = erl_driver_compat:open_port({spawn, "build_test_drv"}, [binary]),
        true = erl_driver_compat:port_command(P, <<"0123456789abcdef">>),
        Reply = receive {P, {data, D}} -> D after 5000 -> timeout end,
        true = erl_driver_compat:port_close(P),
        ok = erl_driver_compat:unload_driver("build_test_drv"),
        ?assertEqual(<<"hi/h/4">>, Reply)
    after
        rm_rf(Dir)
    end.

%% Compiling again replaces the file by a new one (a rename, another
%% inode): a VM that has the old one mapped keeps a valid mapping.
recompile_replaces_file_test() ->
    Dir = tmp_dir(),
    try
        {Src, Inc} = write_driver(Dir),
        {ok, So} = compile_driver([Src], Dir, test_opts(Inc)),
        {ok, #file_info{inode = Inode1}} = file:read_file_info(So),
        {ok, So} = compile_driver(list_to_binary(Src), list_to_binary(Dir), test_opts(Inc)),
        {ok, #file_info{inode = Inode2}} = file:read_file_info(So),
        ?assertNotEqual(Inode1, Inode2)
    after
        rm_rf(Dir)
    end.

%% A compile error gives the command line and the compiler's diagnostics;
%% the old library stays and no temporary file remains.
compile_error_test() ->
    Dir = tmp_dir(),
    try
        {Src, Inc} = write_driver(Dir),
        %% Without the include directory build_test.h is missing.
        {error, Text} = compile_driver(Src, Dir, []),
        ?assertNotEqual(nomatch, string:find(Text, "build_test.h")),
        ?assertNotEqual(nomatch, string:find(Text, "-fPIC -shared")),
        ?assertNotEqual(nomatch, string:find(Text, "exit status")),
        ?assertEqual([], filelib:wildcard("*.so*", Dir)),
        {ok, So} = compile_driver(Src, Dir, test_opts(Inc)),
        {ok, Before} = file:read_file(So),
        {error, _} = compile_driver(Src, Dir, [{defines, [{"GREETING", "syntax error"}]}
                                               | test_opts(Inc)]),
        ?assertEqual({ok, Before}, file:read_file(So)),
        ?assertEqual(["build_test_drv.so"], filelib:wildcard("*.so*", Dir))
    after
        rm_rf(Dir)
    end.

compiler_not_found_test() ->
    {error, Text} = compile_driver("x.c", "/tmp", [{cc, "edc_no_such_compiler -m64"}]),
    ?assertEqual("C compiler not found: edc_no_such_compiler (set CC, or install one: "
                 "apt-get install gcc)", Text).

command_test_() ->
    Inc = erl_driver_compat:include_dir(),
    [?_assertEqual({["cc", "-fPIC", "-shared", "-O2", "-I", Inc, "-o", "out/a_drv.so",
                     "src/a_drv.c"], "out/a_drv.so"},
                   with_env("CC", false, fun() -> command("src/a_drv.c", "out", []) end)),
     ?_assertEqual({["ccache", "gcc", "-fPIC", "-shared", "-O2", "-I", Inc, "-I", "inc",
                     "-DA", "-DB=1", "-DC=x", "-g", "-o", "o/n.so", "a.c", "b.c",
                     "-L", "lib", "-lz", "-Wl,-z,now"], "o/n.so"},
                   command(["a.c", <<"b.c">>], "o",
                           [{cc, "ccache  gcc"}, {name, n}, {include_dirs, ["inc"]},
                            {defines, ["A", {"B", 1}, {'C', x}]},
                            {cflags, ["-g"]}, {lib_dirs, ["lib"]}, {libs, [z]},
                            {ldflags, ["-Wl,-z,now"]}])),
     %% CC from the environment; C++ sources take CXX (or c++).
     ?_assertMatch({["clang", "-fPIC" | _], _},
                   with_env("CC", "clang", fun() -> command("a.c", "o", []) end)),
     ?_assertMatch({["c++", "-fPIC" | _], "o/a.so"},
                   with_env("CXX", false, fun() -> command("a.cpp", "o", []) end)),
     ?_assertError(badarg, command(42, "o", [])),
     ?_assertError(badarg, command([], "o", [])),
     ?_assertError(badarg, command("a.c", "o", [{unknown, 1}])),
     ?_assertError(badarg, command("a.c", "o", [{libs, notalist}])),
     ?_assertError(badarg, command("a.c", "o", [{name, "a/b"}])),
     ?_assertError(badarg, command("a.c", "o", [{defines, [{1, 2}]}]))].

cli_options_test_() ->
    [?_assertEqual({["a.c", "b.c"], "out",
                    [{include_dirs, ["inc"]}, {include_dirs, ["inc2"]}, {defines, ["X"]},
                     {defines, [{"Y", "1=2"}]}, {libs, ["z"]}, {lib_dirs, ["/l"]},
                     {name, "n"}, {cflags, ["-Wall", "-g"]}, {cc, "gcc"}]},
                   cli_options(["a.c", "-I", "inc", "-Iinc2", "-o", "out", "-DX", "-D", "Y=1=2",
                                "b.c", "-lz", "-L/l", "--name", "n", "--cflags", " -Wall  -g",
                                "--cc", "gcc"], [], "priv", [])),
     ?_assertEqual({["a.c"], "priv", []}, cli_options(["a.c"], [], "priv", [])),
     ?_assertThrow(usage, cli_options(["a.c", "--bad"], [], "priv", [])),
     ?_assertThrow(usage, cli_options(["a.c", "-I"], [], "priv", []))].

with_env(Var, Value, Fun) ->
    Old = os:getenv(Var),
    case Value of
        false -> os:unsetenv(Var);
        _ -> os:putenv(Var, Value)
    end,
    try
        Fun()
    after
        case Old of
            false -> os:unsetenv(Var);
            _ -> os:putenv(Var, Old)
        end
    end.

-endif.
