%% Bad driver files and bad driver entries: each load gives a clear
%% {error, Reason} with a format_error/1 text, never a crash, and
%% erl_driver_compat:check/1 agrees with load_driver (a file refused at
%% load is one whose report says will_not_run, or that check cannot read).
%%
%% Where erl_ddll can load the same file without risk to the test VM
%% (a 32-bit or foreign-architecture object, driver_init returning NULL,
%% a garbage marker or version, a newer major), the load runs natively
%% too and the error must be the same (the text of open_error aside).
%% Truncated and corrupt files, and entries whose callbacks point outside
%% the object, are compat-only: natively, mapping a segment past the end
%% of a file can raise SIGBUS, and a callback outside the object crashes
%% the VM when it is called.
-module(badinput_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([truncated_header/1,
         truncated_half/1,
         corrupt_segment/1,
         garbage_after_magic/1,
         elf_32bit/1,
         foreign_arch/1,
         init_returns_null/1,
         garbage_marker/1,
         garbage_version/1,
         newer_major/1,
         callback_in_libc/1,
         callback_absolute/1]).

all() ->
    [truncated_header, truncated_half, corrupt_segment, garbage_after_magic,
     elf_32bit, foreign_arch, init_returns_null, garbage_marker,
     garbage_version, newer_major, callback_in_libc, callback_absolute].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erl_driver_compat),
    Dir = filename:join(?config(priv_dir, Config), "bad"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Src = fixtures_dir(),
    Inc = erl_driver_compat:include_dir(),
    Cc = fun(Source, Flags, Name) ->
                 cc(Src, Inc, Source, Flags, filename:join(Dir, Name ++ ".so"))
         end,
    ok = Cc("fx_version.c", "-DFX_NAME=good", "good"),
    ok = Cc("fx_init_null.c", "", "fx_init_null"),
    ok = Cc("fx_version.c", "-DFX_NAME=garbage_marker -DFX_MARKER=0x12345678",
            "garbage_marker"),
    ok = Cc("fx_version.c", "-DFX_NAME=garbage_version -DFX_MAJOR=-559038737 "
            "-DFX_MINOR=99999", "garbage_version"),
    ok = Cc("fx_version.c", "-DFX_NAME=newer_major -DFX_MAJOR=4", "newer_major"),
    ok = Cc("fx_bad_callbacks.c", "-DFX_NAME=bad_cb_libc", "bad_cb_libc"),
    ok = Cc("fx_bad_callbacks.c", "-DFX_NAME=bad_cb_abs -DFX_ABSOLUTE", "bad_cb_abs"),
    {ok, Good} = file:read_file(filename:join(Dir, "good.so")),
    Write = fun(Name, Bin) -> ok = file:write_file(filename:join(Dir, Name ++ ".so"), Bin) end,
    Write("truncated_header", binary:part(Good, 0, 40)),
    Write("truncated_half", binary:part(Good, 0, byte_size(Good) div 2)),
    Write("corrupt_segment", corrupt_first_load_size(Good)),
    Write("garbage_after_magic", <<"\x7fELF", (binary:copy(<<16#a5>>, 200))/binary>>),
    %% e_machine (offset 18) = EM_AARCH64 (183).
    <<Pre:18/binary, _:16, Post/binary>> = Good,
    Write("foreign_arch", <<Pre/binary, 183:16/little, Post/binary>>),
    Kind32 = build_32bit(Src, Dir, Good, Write),
    [{dir, Dir}, {kind32, Kind32} | Config].

end_per_suite(_Config) ->
    ok.

%% A 32-bit i386 object from gcc -m32 when the compiler can, else the
%% 64-bit object with its ELF class byte set to ELFCLASS32.
build_32bit(Src, Dir, Good, Write) ->
    Out = filename:join(Dir, "elf32.so"),
    Cmd = lists:flatten(io_lib:format("cc -m32 -shared -fPIC -nostdlib -o '~ts' '~ts' 2>&1 && echo CC_OK",
                                      [Out, filename:join(Src, "fx_min32.c")])),
    case string:find(os:cmd(Cmd), "CC_OK") of
        nomatch ->
            <<Magic:4/binary, _Class, Rest/binary>> = Good,
            Write("elf32", <<Magic/binary, 1, Rest/binary>>),
            crafted;
        _ ->
            compiled
    end.

%% The first PT_LOAD program header's p_filesz set past the end of the file.
corrupt_first_load_size(Bin) ->
    <<_:32/binary, PhOff:64/little, _/binary>> = Bin,
    <<_:54/binary, PhEntSize:16/little, PhNum:16/little, _/binary>> = Bin,
    [Off | _] = [PhOff + I * PhEntSize || I <- lists:seq(0, PhNum - 1),
                                          binary:part(Bin, PhOff + I * PhEntSize, 4)
                                              =:= <<1:32/little>>],
    FileSzAt = Off + 32,
    <<Pre:FileSzAt/binary, _:64, Post/binary>> = Bin,
    <<Pre/binary, (byte_size(Bin) * 4):64/little, Post/binary>>.

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
    Output = os:cmd(Cmd),
    case string:find(Output, "CC_OK") of
        nomatch -> ct:fail({cc_failed, Cmd, Output});
        _ -> ok
    end.

%%--------------------------------------------------------------------

truncated_header(Config) ->
    {not_elf, Text} = refused(Config, "truncated_header"),
    true = string:find(Text, "truncated") =/= nomatch,
    ok.

truncated_half(Config) ->
    {not_elf, _} = refused(Config, "truncated_half"),
    ok.

corrupt_segment(Config) ->
    {not_elf, Text} = refused(Config, "corrupt_segment"),
    true = string:find(Text, "past the end of the file") =/= nomatch,
    ok.

garbage_after_magic(Config) ->
    {not_elf, Text} = refused(Config, "garbage_after_magic"),
    true = string:find(Text, "ELF class") =/= nomatch,
    ok.

elf_32bit(Config) ->
    ct:comment("~p", [?config(kind32, Config)]),
    {not_elf, Text} = refused(Config, "elf32"),
    true = string:find(Text, "32-bit") =/= nomatch,
    same_as_native(Config, "elf32", {error, open_error}).

foreign_arch(Config) ->
    {not_elf, Text} = refused(Config, "foreign_arch"),
    true = string:find(Text, "AArch64") =/= nomatch,
    same_as_native(Config, "foreign_arch", {error, open_error}).

init_returns_null(Config) ->
    driver_init_failed = refused(Config, "fx_init_null"),
    same_as_native(Config, "fx_init_null", {error, driver_init_failed}).

garbage_marker(Config) ->
    driver_incorrect_version = refused(Config, "garbage_marker"),
    same_as_native(Config, "garbage_marker", {error, driver_incorrect_version}).

garbage_version(Config) ->
    driver_incorrect_version = refused(Config, "garbage_version"),
    same_as_native(Config, "garbage_version", {error, driver_incorrect_version}).

newer_major(Config) ->
    driver_incorrect_version = refused(Config, "newer_major"),
    {ok, #{version := {4, 3}, verdict := {will_not_run, [Text]}}} =
        erl_driver_compat:check(so(Config, "newer_major")),
    true = string:find(Text, "newer") =/= nomatch,
    same_as_native(Config, "newer_major", {error, driver_incorrect_version}).

callback_in_libc(Config) ->
    {bad_driver_entry, Text} = refused(Config, "bad_cb_libc"),
    true = string:find(Text, "stop") =/= nomatch,
    ok.

callback_absolute(Config) ->
    {bad_driver_entry, Text} = refused(Config, "bad_cb_abs"),
    true = string:find(Text, "start") =/= nomatch,
    ok.

%%--------------------------------------------------------------------

so(Config, Name) ->
    filename:join(?config(dir, Config), Name ++ ".so").

%% Loads Name through us: it must fail with a reason format_error/1
%% describes, leave nothing loaded, and check/1 must not say will_run.
refused(Config, Name) ->
    Dir = ?config(dir, Config),
    {error, Reason} = erl_driver_compat:load_driver(Dir, Name),
    Text = erl_driver_compat:format_error(Reason),
    true = is_list(Text) andalso Text =/= [] andalso io_lib:printable_unicode_list(Text),
    ct:pal("~ts: ~p~n  ~ts", [Name, Reason, Text]),
    {ok, Loaded} = erl_driver_compat:loaded_drivers(),
    false = lists:member(Name, Loaded),
    case erl_driver_compat:check(so(Config, Name)) of
        {error, CheckReason} ->
            %% The same reason as the load.
            CheckReason = Reason;
        {ok, #{verdict := {will_not_run, _}}} ->
            ok;
        {ok, #{verdict := Verdict}} ->
            %% Only what driver_init alone reveals may pass the check.
            true = lists:member(Reason, [driver_init_failed, driver_incorrect_version])
                orelse element(1, Reason) =:= bad_driver_entry,
            ct:pal("check/1 of ~ts: ~p (decided when driver_init runs)", [Name, Verdict])
    end,
    Reason.

same_as_native(Config, Name, Expected) ->
    Dir = ?config(dir, Config),
    edc_diff:expect("load_driver " ++ Name,
                    fun(#{load_driver := L}) -> norm(L(Dir, Name)) end,
                    Expected).

norm({error, {open_error, _}}) -> {error, open_error};
norm({error, {not_elf, _}}) -> {error, open_error};
norm(Other) -> Other.
