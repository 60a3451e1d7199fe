%% Loading and unloading drivers: every loader error path, reference
%% counting, unloading with open ports, init/finish, native and compat
%% copies of one file side by side, and the ways an object can bind its
%% API imports (-z now, -fno-plt, function pointers in data tables).
%%
%% Where erl_ddll has the same case, the scenario runs once natively
%% (erl_ddll + erlang port BIFs) and once through erl_driver_compat, each
%% in a fresh process, and the results must be equal; the text of
%% {open_error, _} (an integer natively, dlerror text for us) is not
%% compared. The special drivers are built into the priv_dir from the
%% sources in test/fixtures/ by init_per_suite.
-module(ddll_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1,
         init_per_testcase/2]).
-export([load_missing_file/1,
         load_not_elf/1,
         load_wrong_elf_type/1,
         load_no_driver_init/1,
         load_init_returns_null/1,
         load_init_fails/1,
         load_version_no_marker/1,
         load_version_major1/1,
         load_version_major4/1,
         load_version_minor9/1,
         load_bad_driver_name/1,
         load_name_with_extension/1,
         load_bad_argument_types/1,
         load_same_name_other_dir/1,
         load_unsupported_functions/1]).
-export([load_version_major2/1,
         load_twice_is_reference_counted/1,
         loaded_drivers_lists_name/1,
         driver_info/1,
         loader_exit_drops_reference/1]).
-export([unload_not_loaded/1,
         unload_by_other_process/1,
         unload_with_open_ports/1,
         unload_reload_cycle/1,
         init_and_finish_called/1]).
-export([native_and_compat_copies_are_separate/1]).
-export([bind_now/1,
         bind_noplt/1,
         bind_table/1,
         bind_all/1,
         libc_data_symbols/1,
         prebuilt_drivers_refused_for_api_names_only/1]).
-export([short_entry_3_1/1,
         short_entry_3_1_at_mapping_end/1]).
-export([slow_init_does_not_block_other_drivers/1]).

-define(LIFE, "ddll_life_drv").
-define(INIT_VAR, "EDC_FX_INIT").
-define(LIFE_INIT_VAR, "EDC_DDLL_LIFE_INIT").
-define(LIFE_FINISH_VAR, "EDC_DDLL_LIFE_FINISH").

all() ->
    [{group, load_errors},
     {group, load_ok},
     {group, unload},
     {group, coexist},
     {group, binding},
     {group, entry},
     {group, concurrency}].

groups() ->
    [{load_errors, [], [load_missing_file,
                        load_not_elf,
                        load_wrong_elf_type,
                        load_no_driver_init,
                        load_init_returns_null,
                        load_init_fails,
                        load_version_no_marker,
                        load_version_major1,
                        load_version_major4,
                        load_version_minor9,
                        load_bad_driver_name,
                        load_name_with_extension,
                        load_bad_argument_types,
                        load_same_name_other_dir,
                        load_unsupported_functions]},
     {load_ok, [], [load_version_major2,
                    load_twice_is_reference_counted,
                    loaded_drivers_lists_name,
                    driver_info,
                    loader_exit_drops_reference]},
     {unload, [], [unload_not_loaded,
                   unload_by_other_process,
                   unload_with_open_ports,
                   unload_reload_cycle,
                   init_and_finish_called]},
     {coexist, [], [native_and_compat_copies_are_separate]},
     {binding, [], [bind_now,
                    bind_noplt,
                    bind_table,
                    bind_all,
                    libc_data_symbols,
                    prebuilt_drivers_refused_for_api_names_only]},
     {entry, [], [short_entry_3_1,
                  short_entry_3_1_at_mapping_end]},
     {concurrency, [], [slow_init_does_not_block_other_drivers]}].

%%--------------------------------------------------------------------
%% Fixtures
%%--------------------------------------------------------------------

%% {OutputName, Source, Extra cc flags}
fixtures() ->
    [{"ver_ok", "fx_version.c", "-DFX_NAME=ver_ok"},
     {"ver_major1", "fx_version.c", "-DFX_NAME=ver_major1 -DFX_MAJOR=1 -DFX_MINOR=6"},
     {"ver_major2", "fx_version.c", "-DFX_NAME=ver_major2 -DFX_MAJOR=2"},
     {"ver_major4", "fx_version.c", "-DFX_NAME=ver_major4 -DFX_MAJOR=4"},
     {"ver_minor9", "fx_version.c", "-DFX_NAME=ver_minor9 -DFX_MINOR=9"},
     {"ver_marker0", "fx_version.c", "-DFX_NAME=ver_marker0 -DFX_MARKER=0"},
     {"ver_refc", "fx_version.c", "-DFX_NAME=ver_refc"},
     {"ver_listed", "fx_version.c", "-DFX_NAME=ver_listed"},
     {"ver_info", "fx_version.c", "-DFX_NAME=ver_info"},
     {"ver_exit", "fx_version.c", "-DFX_NAME=ver_exit"},
     {"ver_other", "fx_version.c", "-DFX_NAME=ver_other"},
     {"fx_bad_name", "fx_bad_name.c", ""},
     {"fx_init_null", "fx_init_null.c", ""},
     {"fx_init_fail", "fx_init_fail.c", ""},
     {"fx_no_init", "fx_no_init.c", ""},
     {"fx_unsupported", "fx_unsupported.c", ""},
     {"bind_now", "fx_binding.c", "-DFX_NAME=bind_now -Wl,-z,relro -Wl,-z,now"},
     {"bind_noplt", "fx_binding.c", "-DFX_NAME=bind_noplt -fno-plt"},
     {"bind_table", "fx_binding.c", "-DFX_NAME=bind_table -DFX_TABLE"},
     {"bind_all", "fx_binding.c",
      "-DFX_NAME=bind_all -DFX_TABLE -fno-plt -Wl,-z,relro -Wl,-z,now"},
     {"short31", "fx_short_entry.c", "-DFX_NAME=short31"},
     {"short31_mapend", "fx_short_entry.c", "-DFX_NAME=short31_mapend -DFX_MAP_END"},
     {"fx_slow_init", "fx_slow_init.c", ""}].

init_per_suite(Config) ->
    Priv = ?config(priv_dir, Config),
    Dir = filename:join(Priv, "drivers"),
    Other = filename:join(Priv, "other"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = filelib:ensure_dir(filename:join(Other, "x")),
    Src = fixtures_dir(),
    Inc = erl_driver_compat:include_dir(),
    [ok = cc(Src, Inc, Source, Flags, filename:join(Dir, Name ++ ".so"))
     || {Name, Source, Flags} <- fixtures()],
    ok = cc(Src, Inc, "fx_version.c", "-DFX_NAME=ver_other",
            filename:join(Other, "ver_other.so")),
    %% Not ELF at all, and ELF but a relocatable object (not loadable).
    ok = file:write_file(filename:join(Dir, "fx_not_elf.so"),
                         <<"this is a text file, not a shared object\n">>),
    ok = cc_object(Src, Inc, filename:join(Dir, "fx_reloc.so")),
    [{dir, Dir}, {other_dir, Other} | Config].

end_per_suite(_Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    os:putenv(?INIT_VAR, "none"),
    Config.

fixtures_dir() ->
    find_up(filename:dirname(code:which(?MODULE)), "fixtures").

find_up(Dir, Sub) ->
    Candidates = [filename:join(Dir, Sub), filename:join([Dir, "test", Sub])],
    case [C || C <- Candidates, filelib:is_dir(C)] of
        [Found | _] -> Found;
        [] when Dir =:= "/" -> erlang:error({not_found, Sub});
        [] -> find_up(filename:dirname(Dir), Sub)
    end.

cc(SrcDir, Inc, Source, Flags, Out) ->
    Cmd = lists:flatten(
            io_lib:format("cc -shared -fPIC -O2 -g -Wall -Wextra -Werror -I'~ts' ~ts "
                          "-o '~ts' '~ts' 2>&1 && echo CC_OK",
                          [Inc, Flags, Out, filename:join(SrcDir, Source)])),
    check_cc(Cmd, os:cmd(Cmd)).

cc_object(SrcDir, Inc, Out) ->
    Cmd = lists:flatten(
            io_lib:format("cc -c -fPIC -O2 -Wall -Wextra -Werror -I'~ts' -DFX_NAME=fx_reloc "
                          "-o '~ts' '~ts' 2>&1 && echo CC_OK",
                          [Inc, Out, filename:join(SrcDir, "fx_version.c")])),
    check_cc(Cmd, os:cmd(Cmd)).

check_cc(Cmd, Output) ->
    case string:find(Output, "CC_OK") of
        nomatch -> ct:fail({cc_failed, Cmd, Output});
        _ -> ok
    end.

%%--------------------------------------------------------------------
%% Load errors
%%--------------------------------------------------------------------

load_missing_file(Config) ->
    load_case(Config, "no_such_driver", {error, open_error}, "none").

load_not_elf(Config) ->
    load_case(Config, "fx_not_elf", {error, open_error}, "none").

load_wrong_elf_type(Config) ->
    load_case(Config, "fx_reloc", {error, open_error}, "none").

load_no_driver_init(Config) ->
    load_case(Config, "fx_no_init", {error, no_driver_init}, "none").

load_init_returns_null(Config) ->
    load_case(Config, "fx_init_null", {error, driver_init_failed}, "none").

%% The entry's init IS called (and fails).
load_init_fails(Config) ->
    load_case(Config, "fx_init_fail", {error, driver_init_failed}, "fx_init_fail").

%% Wrong versions are refused before init is called.
load_version_no_marker(Config) ->
    load_case(Config, "ver_marker0", {error, driver_incorrect_version}, "none").

load_version_major1(Config) ->
    load_case(Config, "ver_major1", {error, driver_incorrect_version}, "none").

load_version_major4(Config) ->
    load_case(Config, "ver_major4", {error, driver_incorrect_version}, "none").

load_version_minor9(Config) ->
    load_case(Config, "ver_minor9", {error, driver_incorrect_version}, "none").

load_bad_driver_name(Config) ->
    load_case(Config, "fx_bad_name", {error, bad_driver_name}, "none").

%% The name is a driver name, not a file name.
load_name_with_extension(Config) ->
    load_case(Config, "ver_ok.so", {error, open_error}, "none").

%% erl_ddll raises badarg for a name that is not a string/atom and for a
%% directory that is an atom.
load_bad_argument_types(Config) ->
    Dir = ?config(dir, Config),
    edc_diff:expect("load_driver(Dir, 123)", fun(#{load_driver := L}) -> L(Dir, 123) end,
            {raised, error, badarg}),
    edc_diff:expect("load_driver(foo, \"ver_ok\")", fun(#{load_driver := L}) -> L(foo, "ver_ok") end,
            {raised, error, badarg}).

%% A driver of the same name is already loaded from another directory.
load_same_name_other_dir(Config) ->
    Dir = ?config(dir, Config),
    Other = ?config(other_dir, Config),
    edc_diff:expect("same name, other directory",
            fun(#{load_driver := L} = B) ->
                    First = L(Dir, "ver_other"),
                    Second = L(Other, "ver_other"),
                    {First, norm_load(Second), format_error_ok(B, Second)}
            end,
            {ok, {error, bad_driver_name}, ok}).

%% driver_attach and driver_event (gone since OTP 21) are not implemented
%% by us: the load must fail with their names (natively the driver loads:
%% the imports are weak and never called).
load_unsupported_functions(Config) ->
    Dir = ?config(dir, Config),
    Native = edc_diff:run(native, fun(#{load_driver := L}) -> L(Dir, "fx_unsupported") end),
    ok = Native,
    Compat = edc_diff:run(compat, fun(#{load_driver := L}) -> L(Dir, "fx_unsupported") end),
    ct:pal("compat: ~p", [Compat]),
    {error, {unsupported_functions, ["driver_attach", "driver_event"]}} = Compat,
    {error, Reason} = Compat,
    ok = check_format_error_reason(Reason).

%%--------------------------------------------------------------------
%% Successful loads
%%--------------------------------------------------------------------

%% Major version 2 is the oldest accepted; its ports work.
load_version_major2(Config) ->
    Dir = ?config(dir, Config),
    edc_diff:expect("major version 2",
            fun(#{load_driver := L, open_port := Open, port_command := Cmd}) ->
                    R = L(Dir, "ver_major2"),
                    Init = os:getenv(?INIT_VAR),
                    P = Open({spawn, "ver_major2"}, []),
                    true = Cmd(P, "ping"),
                    {R, Init, edc_diff:recv(1000)}
            end,
            {ok, "ver_major2", {{port, 1}, {data, "ping"}}}).

%% Loading the same driver from the same directory twice adds a
%% reference: it takes two unloads, then a third one fails.
load_twice_is_reference_counted(Config) ->
    Dir = ?config(dir, Config),
    Name = "ver_refc",
    edc_diff:expect("load twice, unload three times",
            fun(#{load_driver := L, unload_driver := U} = B) ->
                    wait_unloaded(B, Name),
                    R1 = L(Dir, Name),
                    R2 = L(Dir, Name),
                    U1 = U(Name),
                    Loaded1 = is_loaded(B, Name),
                    U2 = U(Name),
                    Loaded2 = wait_unloaded(B, Name),
                    U3 = U(Name),
                    {R1, R2, U1, Loaded1, U2, Loaded2, U3}
            end,
            {ok, ok, ok, true, ok, false, {error, not_loaded}}).

loaded_drivers_lists_name(Config) ->
    Dir = ?config(dir, Config),
    Name = "ver_listed",
    edc_diff:expect("loaded_drivers",
            fun(#{load_driver := L, unload_driver := U} = B) ->
                    wait_unloaded(B, Name),
                    Before = is_loaded(B, Name),
                    ok = L(Dir, Name),
                    {ok, Names} = loaded_drivers(B),
                    Strings = lists:all(fun io_lib:printable_list/1, Names),
                    ok = U(Name),
                    {Before, lists:member(Name, Names), Strings, wait_unloaded(B, Name)}
            end,
            {false, true, true, false}).

%% driver_info/1 is ours only; its port count follows the ports like
%% erl_ddll:info(Name, port_count) does natively.
driver_info(Config) ->
    Dir = ?config(dir, Config),
    Name = "ver_info",
    Native = edc_diff:run(native,
                          fun(#{load_driver := L, open_port := Open, port_close := Close}) ->
                                  ok = L(Dir, Name),
                                  C0 = erl_ddll:info(Name, port_count),
                                  P = Open({spawn, Name}, []),
                                  C1 = erl_ddll:info(Name, port_count),
                                  true = Close(P),
                                  {C0, C1, erl_ddll:info(Name, port_count)}
                          end),
    {0, 1, 0} = Native,
    Compat = edc_diff:run(compat,
                          fun(#{load_driver := L, unload_driver := U, open_port := Open,
                                port_close := Close}) ->
                                  Undefined = erl_driver_compat:driver_info(Name),
                                  ok = L(Dir, Name),
                                  I0 = erl_driver_compat:driver_info(Name),
                                  P = Open({spawn, Name}, []),
                                  I1 = erl_driver_compat:driver_info(list_to_atom(Name)),
                                  true = Close(P),
                                  I2 = erl_driver_compat:driver_info(list_to_binary(Name)),
                                  ok = U(Name),
                                  {Undefined, I0, I1, I2, erl_driver_compat:driver_info(Name)}
                          end),
    ct:pal("driver_info: ~p", [Compat]),
    {undefined, #{path := Path, version := Version, locking := Locking, ports := 0},
     #{ports := 1}, #{ports := 0}, undefined} = Compat,
    {3, 3} = Version,
    driver = Locking,
    %% The spec says path :: string().
    {path_is_string, true} =
        {path_is_string, is_list(Path) andalso io_lib:printable_unicode_list(Path)},
    Name = filename:basename(Path, ".so"),
    Major2 = edc_diff:run(compat, fun(#{load_driver := L}) ->
                                          ok = L(Dir, "ver_major2"),
                                          erl_driver_compat:driver_info("ver_major2")
                                  end),
    #{version := {2, 3}} = Major2.

%% A process that loaded a driver and exits drops its reference.
loader_exit_drops_reference(Config) ->
    Dir = ?config(dir, Config),
    Name = "ver_exit",
    edc_diff:expect("loader exits",
            fun(#{load_driver := L} = B) ->
                    wait_unloaded(B, Name),
                    Self = self(),
                    {Pid, Ref} = spawn_monitor(fun() ->
                                                       Self ! {loaded, L(Dir, Name)},
                                                       receive stop -> ok end
                                               end),
                    Loaded = receive {loaded, R} -> R after 5000 -> timeout end,
                    While = is_loaded(B, Name),
                    Pid ! stop,
                    receive {'DOWN', Ref, process, Pid, _} -> ok end,
                    {Loaded, While, wait_unloaded(B, Name)}
            end,
            {ok, true, false}).

%%--------------------------------------------------------------------
%% Unloading
%%--------------------------------------------------------------------

unload_not_loaded(_Config) ->
    edc_diff:expect("unload a driver that is not loaded",
            fun(#{unload_driver := U} = B) ->
                    R = U("no_such_driver_loaded"),
                    {R, format_error_ok(B, R)}
            end,
            {{error, not_loaded}, ok}).

unload_by_other_process(Config) ->
    Dir = ?config(dir, Config),
    edc_diff:expect("unload by a process that did not load",
            fun(#{load_driver := L, unload_driver := U} = B) ->
                    ok = L(Dir, "ver_ok"),
                    Self = self(),
                    spawn(fun() -> Self ! {other, U("ver_ok")} end),
                    Other = receive {other, R} -> R after 5000 -> timeout end,
                    {Other, format_error_ok(B, Other), is_loaded(B, "ver_ok"), U("ver_ok")}
            end,
            {{error, not_loaded_by_this_process}, ok, true, ok}).

%% The ports are killed with reason driver_unloaded, then finish runs.
unload_with_open_ports(_Config) ->
    Dir = edc_diff:drivers_dir(),
    edc_diff:expect("unload with open ports",
            fun(#{load_driver := L, unload_driver := U, open_port := Open,
                  port_info := Info} = B) ->
                    process_flag(trap_exit, true),
                    wait_unloaded(B, ?LIFE),
                    os:putenv(?LIFE_FINISH_VAR, "no"),
                    ok = L(Dir, ?LIFE),
                    P1 = Open({spawn, ?LIFE}, []),
                    P2 = Open({spawn, ?LIFE}, [binary]),
                    R = U(?LIFE),
                    %% Both exits, then (a short negative check) nothing else.
                    Msgs = lists:sort([recv_from(P1), recv_from(P2) | edc_diff:flush()]),
                    {R, Msgs, Info(P1), Info(P2), wait_env(?LIFE_FINISH_VAR, "called"),
                     is_loaded(B, ?LIFE)}
            end,
            {ok, [{'EXIT', {port, 1}, driver_unloaded}, {'EXIT', {port, 2}, driver_unloaded}],
             undefined, undefined, "called", false}).

%% After unload and reload the driver starts afresh (statics reset, init
%% called again) and its ports work.
unload_reload_cycle(_Config) ->
    Dir = edc_diff:drivers_dir(),
    edc_diff:expect("unload/reload cycle",
            fun(#{load_driver := L, unload_driver := U, open_port := Open,
                  port_control := Ctl, port_close := Close} = B) ->
                    wait_unloaded(B, ?LIFE),
                    Cycle = fun() ->
                                    os:putenv(?LIFE_INIT_VAR, "no"),
                                    ok = L(Dir, ?LIFE),
                                    Init = os:getenv(?LIFE_INIT_VAR),
                                    P = Open({spawn, ?LIFE}, []),
                                    Bumps = [Ctl(P, 1, "") || _ <- [1, 2, 3]],
                                    Stats = Ctl(P, 2, ""),
                                    true = Close(P),
                                    Unload = U(?LIFE),
                                    {Init, Bumps, Stats, Unload, wait_unloaded(B, ?LIFE)}
                            end,
                    [Cycle() || _ <- [1, 2, 3]]
            end,
            lists:duplicate(3, {"called", ["1", "2", "3"], "{1,1,0,3}", ok, false})).

%% init runs at load, finish at the last unload (erl_drv_putenv from the
%% driver is visible to os:getenv natively: checked here too).
init_and_finish_called(_Config) ->
    Dir = edc_diff:drivers_dir(),
    edc_diff:expect("init and finish",
            fun(#{load_driver := L, unload_driver := U} = B) ->
                    wait_unloaded(B, ?LIFE),
                    os:putenv(?LIFE_INIT_VAR, "no"),
                    os:putenv(?LIFE_FINISH_VAR, "no"),
                    ok = L(Dir, ?LIFE),
                    Init = os:getenv(?LIFE_INIT_VAR),
                    ok = L(Dir, ?LIFE),
                    ok = U(?LIFE),
                    FinishAfterFirst = os:getenv(?LIFE_FINISH_VAR),
                    ok = U(?LIFE),
                    {Init, FinishAfterFirst, wait_env(?LIFE_FINISH_VAR, "called")}
            end,
            {"called", "no", "called"}).

%%--------------------------------------------------------------------
%% Native and compat copies of one file
%%--------------------------------------------------------------------

%% The same .so loaded natively and through us in one VM: each side has
%% its own copy of the driver's static data, and both ports work.
native_and_compat_copies_are_separate(_Config) ->
    Dir = edc_diff:drivers_dir(),
    Self = self(),
    Pid = spawn_link(
            fun() ->
                    ok = erl_ddll:load_driver(Dir, ?LIFE),
                    ok = erl_driver_compat:load_driver(Dir, ?LIFE),
                    N = erlang:open_port({spawn, ?LIFE}, []),
                    C = erl_driver_compat:open_port({spawn, ?LIFE}, []),
                    true = is_port(N),
                    true = is_pid(C),
                    NB = fun() -> erlang:port_control(N, 1, "") end,
                    CB = fun() -> erl_driver_compat:port_control(C, 1, "") end,
                    Bumps = [NB(), NB(), CB(), NB(), CB(), CB(), CB()],
                    Stats = {erlang:port_control(N, 2, ""),
                             erl_driver_compat:port_control(C, 2, "")},
                    true = erlang:port_command(N, "to native"),
                    true = erl_driver_compat:port_command(C, "to compat"),
                    Msgs = lists:sort([recv_from(N), recv_from(C) | edc_diff:flush()]),
                    Expected = lists:sort([{N, {data, "to native"}}, {C, {data, "to compat"}}]),
                    true = erlang:port_close(N),
                    AliveC = erl_driver_compat:port_control(C, 1, ""),
                    true = erl_driver_compat:port_close(C),
                    UN = erl_ddll:unload_driver(?LIFE),
                    UC = erl_driver_compat:unload_driver(?LIFE),
                    Self ! {self(), {Bumps, Stats, Msgs =:= Expected, Msgs, AliveC, UN, UC}}
            end),
    R = receive {Pid, Result} -> Result after 10000 -> ct:fail(timeout) end,
    ct:pal("~p", [R]),
    {["1", "2", "1", "3", "2", "3", "4"], {"{1,1,0,3}", "{1,1,0,4}"}, true, _, "5", ok, ok} = R.

%%--------------------------------------------------------------------
%% Binding the driver's imports
%%--------------------------------------------------------------------

bind_now(Config) -> binding_case(Config, "bind_now").

bind_noplt(Config) -> binding_case(Config, "bind_noplt").

bind_table(Config) -> binding_case(Config, "bind_table").

bind_all(Config) -> binding_case(Config, "bind_all").

%% The calls must reach the backend the port belongs to: output arrives
%% (driver_output and driver_output2) and the control reply, allocated with
%% driver_alloc and freed by the runtime, comes back.
binding_case(Config, Name) ->
    Dir = ?config(dir, Config),
    edc_diff:expect(Name,
            fun(#{load_driver := L, open_port := Open, port_command := Cmd,
                  port_control := Ctl, port_close := Close}) ->
                    ok = L(Dir, Name),
                    P = Open({spawn, Name}, []),
                    true = Cmd(P, "abc"),
                    M1 = edc_diff:recv(1000),
                    true = Cmd(P, "hello"),
                    M2 = edc_diff:recv(1000),
                    Reply = Ctl(P, 0, lists:duplicate(100, $x)),
                    true = Close(P),
                    {M1, M2, Reply}
            end,
            {{{port, 1}, {data, "abc"}}, {{port, 1}, {data, "hello"}},
             [$> | lists:duplicate(100, $x)]}).

%% A driver using libc's data symbols (stderr, stdout, environ, and errno)
%% that beam.smp exports too loads and behaves as natively: the lookups
%% reach libc's objects (the process environment, errno of a failed call,
%% the standard streams). Natively on OTP 25, a variable set with
%% os:putenv/2 is not in libc's environ (erts keeps its own copy).
libc_data_symbols(_Config) ->
    Dir = edc_diff:drivers_dir(),
    Name = "lc_libc_drv",
    Printed = integer_to_list(length("lc_libc_drv: start \"lc_libc_drv\"\r\n")),
    edc_diff:expect(Name,
            fun(#{load_driver := L, open_port := Open, port_control := Ctl,
                  port_close := Close}) ->
                    os:putenv("EDC_LC_LIBC", "from erlang"),
                    os:unsetenv("EDC_LC_LIBC_UNSET"),
                    R = L(Dir, Name),
                    P = Open({spawn, Name}, []),
                    Home = Ctl(P, 1, "HOME"),
                    Put = Ctl(P, 1, "EDC_LC_LIBC"),
                    Unset = Ctl(P, 1, "EDC_LC_LIBC_UNSET"),
                    Errno = Ctl(P, 2, ""),
                    Streams = Ctl(P, 3, ""),
                    true = Close(P),
                    {R, Home, Put, Unset, Errno, Streams}
            end,
            {ok, os:getenv("HOME"), "unset", "unset", "ebadf", "1 2 " ++ Printed}).

%% Debian's prebuilt drivers import stderr/stdout/stdin, which beam.smp
%% exports too: they must not be refused for those. What may still be
%% refused are API functions we lack (driver_select, erl_drv_send_term,
%% driver_set_timer, ...): the refusal lists API imports only, and
%% load_driver refuses with the same list.
prebuilt_drivers_refused_for_api_names_only(_Config) ->
    Drivers = [{megaco, "megaco_flex_scanner_drv"},
               {runtime_tools, "trace_file_drv"},
               {runtime_tools, "trace_ip_drv"}],
    Found = [{filename:join(code:lib_dir(App), "priv/lib"), Name}
             || {App, Name} <- Drivers, is_list(code:lib_dir(App))],
    Present = [D || {Dir, Name} = D <- Found,
                    filelib:is_regular(filename:join(Dir, Name ++ ".so"))],
    case Present of
        [] -> {skip, "no prebuilt OTP drivers installed"};
        _ -> [check_prebuilt(Dir, Name) || {Dir, Name} <- Present], ok
    end.

check_prebuilt(Dir, Name) ->
    {ok, #{unsupported := Unsupported, api_imports := Api}} =
        erl_driver_compat:check_driver(Dir, Name),
    ct:pal("~s: unsupported ~p", [Name, Unsupported]),
    {Name, []} = {Name, Unsupported -- Api},
    Load = run_in_process(fun() -> erl_driver_compat:load_driver(Dir, Name) end),
    case Unsupported of
        [] ->
            ok = Load;
        _ ->
            {Name, {error, {unsupported_functions, Unsupported}}} = {Name, Load}
    end.

%%--------------------------------------------------------------------
%% Entries shorter than OTP 25's
%%--------------------------------------------------------------------

%% A 3.1 driver's entry is 168 bytes; garbage follows it. It loads and
%% works both ways (natively erts reads emergency_close only for 3.2+).
short_entry_3_1(Config) ->
    short_entry_case(Config, "short31").

%% The same entry copied to the very end of a mapping (the next page is
%% unmapped): reading 176 bytes would crash the VM.
short_entry_3_1_at_mapping_end(Config) ->
    short_entry_case(Config, "short31_mapend").

short_entry_case(Config, Name) ->
    Dir = ?config(dir, Config),
    edc_diff:expect(Name,
            fun(#{load_driver := L, open_port := Open, port_command := Cmd,
                  port_close := Close}) ->
                    R = L(Dir, Name),
                    P = Open({spawn, Name}, []),
                    true = Cmd(P, "ping"),
                    M = edc_diff:recv(1000),
                    true = Close(P),
                    {R, M}
            end,
            {ok, {{port, 1}, {data, "ping"}}}),
    #{version := {3, 1}} =
        run_in_process(fun() ->
                               ok = erl_driver_compat:load_driver(Dir, Name),
                               erl_driver_compat:driver_info(Name)
                       end).

%%--------------------------------------------------------------------
%% Loading outside the registry lock (compat only: natively, erts holds
%% its driver list lock during the whole load)
%%--------------------------------------------------------------------

%% fx_slow_init's init blocks on a FIFO until the test closes it. While it
%% is blocked, a port of another, loaded driver opens and works, and a
%% second load of fx_slow_init waits; once released, both loads return ok
%% with one init, and the driver stays loaded until both unload.
slow_init_does_not_block_other_drivers(Config) ->
    Dir = ?config(dir, Config),
    Name = "fx_slow_init",
    Fifo = filename:join(?config(priv_dir, Config), "slow_init.fifo"),
    _ = file:delete(Fifo),
    "" = os:cmd("mkfifo '" ++ Fifo ++ "'"),
    true = os:putenv("EDC_FX_SLOW_FIFO", Fifo),
    Self = self(),
    Holder = spawn_link(fun() ->
                                Self ! {holder, erl_driver_compat:load_driver(Dir, "ver_ok")},
                                receive stop -> ok end
                        end),
    ok = receive {holder, H} -> H end,
    Loader = fun(Tag) ->
                     spawn_link(fun() ->
                                        Self ! {Tag, erl_driver_compat:load_driver(Dir, Name)},
                                        receive
                                            {unload, From} ->
                                                From ! {Tag, erl_driver_compat:unload_driver(Name)}
                                        end
                                end)
             end,
    First = Loader(first),
    %% Returns once init has opened the FIFO for reading: init is running.
    {ok, W} = file:open(Fifo, [write, raw]),
    spawn_link(fun() ->
                       P = erl_driver_compat:open_port({spawn, "ver_ok"}, []),
                       true = erl_driver_compat:port_command(P, "ping"),
                       M = receive {P, Data} -> Data after 5000 -> timeout end,
                       true = erl_driver_compat:port_close(P),
                       Self ! {other, M, erl_driver_compat:loaded_drivers()}
               end),
    Other = receive {other, _, _} = O -> O after 5000 -> other_driver_blocked end,
    FirstDoneEarly = receive {first, E} -> {first, E} after 0 -> not_yet end,
    Second = Loader(second),
    ok = wait_in_nif(Second, 5000),
    ok = file:close(W),
    R1 = receive {first, X1} -> X1 after 10000 -> timeout end,
    R2 = receive {second, X2} -> X2 after 10000 -> timeout end,
    Inits = run_in_process(
              fun() ->
                      P = erl_driver_compat:open_port({spawn, Name}, []),
                      erl_driver_compat:port_control(P, 1, "")
              end),
    First ! {unload, self()},
    U1 = receive {first, Y1} -> Y1 after 5000 -> timeout end,
    StillLoaded = lists:member(Name, element(2, erl_driver_compat:loaded_drivers())),
    Second ! {unload, self()},
    U2 = receive {second, Y2} -> Y2 after 5000 -> timeout end,
    Gone = not lists:member(Name, element(2, erl_driver_compat:loaded_drivers())),
    unlink(Holder),
    Holder ! stop,
    _ = file:delete(Fifo),
    {{other, {data, "ping"}, {ok, Loaded}}, not_yet, ok, ok, "1", ok, true, ok, true} =
        {Other, FirstDoneEarly, R1, R2, Inits, U1, StillLoaded, U2, Gone},
    %% While fx_slow_init was loading it was not listed as loaded.
    false = lists:member(Name, Loaded),
    ok.

%% Waits until Pid is inside the load_driver NIF.
wait_in_nif(Pid, Left) ->
    case erlang:process_info(Pid, current_function) of
        {current_function, {erl_driver_compat_nif, load_driver, 2}} -> ok;
        _ when Left =< 0 -> {not_in_nif, erlang:process_info(Pid, current_function)};
        _ -> timer:sleep(10), wait_in_nif(Pid, Left - 10)
    end.

%% Runs Fun in a fresh process (which keeps what it loaded until Fun
%% returns) and returns its result.
run_in_process(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({result, Fun()}) end),
    receive
        {'DOWN', Ref, process, Pid, {result, R}} -> R;
        {'DOWN', Ref, process, Pid, Other} -> {crashed, Other}
    end.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

%% Loads Name from the suite's driver dir both ways and compares the
%% results; also checks that init ran (or not) as Expected.
load_case(Config, Name, Expected, ExpectedInit) ->
    Dir = ?config(dir, Config),
    edc_diff:expect("load_driver " ++ Name,
            fun(#{load_driver := L} = B) ->
                    os:putenv(?INIT_VAR, "none"),
                    R = L(Dir, Name),
                    {norm_load(R), os:getenv(?INIT_VAR), format_error_ok(B, R)}
            end,
            {Expected, ExpectedInit, ok}).


%% The payload of open_error differs (an integer for erl_ddll); a file
%% that is not a loadable ELF object may also be reported as not_elf by us.
norm_load({error, {open_error, _}}) -> {error, open_error};
norm_load({error, {not_elf, _}}) -> {error, open_error};
norm_load(Other) -> Other.

%% Every error we return must have a readable description: a flat,
%% non-empty string. `ok' when it has (and always for native results, so
%% that the value can be part of a compared result).
format_error_ok(#{kind := native}, _) ->
    ok;
format_error_ok(#{kind := compat}, {error, Reason}) ->
    check_format_error_reason(Reason);
format_error_ok(#{kind := compat}, _) ->
    ok.

check_format_error_reason(Reason) ->
    S = try erl_driver_compat:format_error(Reason)
        catch C:E -> {C, E}
        end,
    case is_list(S) andalso S =/= [] andalso io_lib:printable_unicode_list(S) of
        true -> ok;
        false -> {format_error_not_flat_string, Reason, S}
    end.

loaded_drivers(#{kind := native}) -> erl_ddll:loaded_drivers();
loaded_drivers(#{kind := compat}) -> erl_driver_compat:loaded_drivers().

%% Tolerates binaries: that loaded_drivers/0 returns strings is checked
%% by loaded_drivers_lists_name only.
is_loaded(B, Name) ->
    {ok, Names} = loaded_drivers(B),
    lists:member(Name, [unicode:characters_to_list(N) || N <- Names]).

%% Waits (up to 3 s) until Name is no longer loaded; the result is
%% whether it is still loaded. Unloading after a loader's exit is
%% asynchronous.
%% The next message about port P ({P, _} or {'EXIT', P, _}), waiting at
%% most 5 s.
recv_from(P) ->
    receive
        {P, _} = M -> M;
        {'EXIT', P, _} = M -> M
    after 5000 -> {nothing_from, P}
    end.

wait_unloaded(B, Name) ->
    wait_until(fun() -> not is_loaded(B, Name) end, 3000),
    is_loaded(B, Name).

wait_env(Var, Value) ->
    wait_until(fun() -> os:getenv(Var) =:= Value end, 2000),
    os:getenv(Var).

wait_until(Fun, Left) ->
    case Fun() of
        true -> ok;
        false when Left =< 0 -> timeout;
        false ->
            timer:sleep(20),
            wait_until(Fun, Left - 20)
    end.
