%% @doc Run legacy Erlang linked-in drivers as NIF-backed pseudo-ports.
%%
%% The functions mirror `erl_ddll' and the port BIFs of `erlang'. A driver
%% loaded with {@link load_driver/2} runs inside our NIF library; the ports
%% of such a driver are processes (their pid is the port), and every call
%% here gives the same replies, messages and errors as the native port
%% would. Real ports (`erlang:is_port/1') passed to the port functions are
%% handed to the `erlang' BIFs, and `open_port/2' of a name that is not a
%% driver loaded through us opens a native port, so the module can replace
%% the BIFs throughout an application.
%%
%% ```
%% ok = erl_driver_compat:load_driver(Dir, "echo_drv"),
%% P  = erl_driver_compat:open_port({spawn, "echo_drv"}, [binary]),
%% true = erl_driver_compat:port_command(P, <<"hello">>),
%% receive {P, {data, <<"hello">>}} -> ok end,
%% true = erl_driver_compat:port_close(P).
%% '''
-module(erl_driver_compat).

-include("erl_driver_compat_effects.hrl").

-export([load_driver/2,
         unload_driver/1,
         loaded_drivers/0,
         driver_info/1,
         format_error/1,
         include_dir/0,
         check_driver/2,
         open_port/2,
         port_command/2,
         port_command/3,
         port_control/3,
         port_call/3,
         port_close/1,
         port_connect/2,
         port_info/1,
         port_info/2,
         is_port/1,
         ports/0]).

-export_type([port_ref/0,
              driver_name/0,
              error_reason/0,
              port_name/0,
              port_option/0]).

-type port_ref() :: pid() | port().
%% A pseudo-port (a pid) or a native port.
-type driver_name() :: string() | atom() | binary().
-type port_name() :: {spawn, string() | binary()} | {spawn_driver, string() | binary()}.
-type port_option() :: binary | stream | in | out | eof | hide | exit_status
                     | use_stdio | nouse_stdio | stderr_to_stdout | overlapped_io
                     | {packet, 1 | 2 | 4} | {line, pos_integer()}
                     | {cd, string() | binary()} | {env, [{string(), string() | false}]}
                     | {parallelism, boolean()}
                     | {busy_limits_port, {non_neg_integer(), non_neg_integer()} | disabled}
                     | {busy_limits_msgq, {non_neg_integer(), non_neg_integer()} | disabled}.
-type error_reason() ::
        {open_error, string()} | {not_elf, string()} | no_driver_init
      | {unsupported_functions, [string()]}
      | {copy_error, string()} | {bind_error, string()}
      | driver_init_failed | driver_incorrect_version | bad_driver_name
      | not_loaded | not_loaded_by_this_process | unloading.
%% The names erl_ddll uses mean the same here (`no_driver_init',
%% `driver_init_failed', `driver_incorrect_version', `bad_driver_name',
%% `not_loaded', `not_loaded_by_this_process'); `{open_error, Text}' carries
%% the dynamic linker's message instead of erl_ddll's numeric id.

%%====================================================================
%% Drivers
%%====================================================================

%% @doc Loads the driver `Name' from `Dir/Name.so' through the compat
%% layer, like `erl_ddll:load_driver/2'.
%%
%% The calling process holds a reference to the driver until it calls
%% {@link unload_driver/1} or exits. Loading a name that is already loaded
%% from the same file adds a reference and returns `ok'.
-spec load_driver(Dir :: file:name(), Name :: driver_name()) -> ok | {error, error_reason()}.
load_driver(Dir, Name) when not is_list(Dir), not is_binary(Dir) ->
    erlang:error(badarg, [Dir, Name]);
load_driver(Dir, Name) ->
    case erl_driver_compat_nif:load_driver(to_chars(Dir), to_chars(Name)) of
        ok -> ok;
        {error, Reason} -> {error, readable(Reason)}
    end.

%% Texts and names come from the NIF as binaries; users get strings.
readable({unsupported_functions, Names}) ->
    {unsupported_functions, [unicode:characters_to_list(N) || N <- Names]};
readable({Tag, Text}) when is_binary(Text) ->
    {Tag, unicode:characters_to_list(Text)};
readable(Reason) ->
    Reason.

%% @doc Drops the caller's reference to the driver. The driver's `finish'
%% runs when no process references it and its last port has closed.
-spec unload_driver(Name :: driver_name()) -> ok | {error, error_reason()}.
unload_driver(Name) ->
    erl_driver_compat_nif:unload_driver(to_chars(Name)).

%% @doc The drivers loaded through the compat layer, as
%% `erl_ddll:loaded_drivers/0' returns them.
-spec loaded_drivers() -> {ok, [string()]}.
loaded_drivers() ->
    {ok, [unicode:characters_to_list(N) || N <- erl_driver_compat_nif:loaded_drivers()]}.

%% @doc What we know about a loaded driver: the file, the interface version
%% it was built for, its locking mode and its number of open ports.
-spec driver_info(Name :: driver_name()) ->
          undefined | #{path := string(), version := {integer(), integer()},
                        locking := driver | port_level, ports := non_neg_integer()}.
driver_info(Name) ->
    case erl_driver_compat_nif:driver_info(to_chars(Name)) of
        undefined -> undefined;
        {Path, Version, Locking, Ports} ->
            #{path => unicode:characters_to_list(Path), version => Version,
              locking => Locking, ports => Ports}
    end.

%% @doc A readable description of an error returned by this module.
-spec format_error(error_reason() | term()) -> string().
format_error({open_error, Detail}) when is_list(Detail) ->
    "Cannot open the driver: " ++ Detail;
format_error({not_elf, Detail}) ->
    "Not an ELF shared object for this machine: " ++ Detail;
format_error(no_driver_init) ->
    "No driver init in dynamic library";
format_error({unsupported_functions, Names}) ->
    lists:flatten(["The driver uses erl_driver functions that erl_driver_compat does not "
                   "implement yet: " | lists:join(", ", Names)]);
format_error({copy_error, Detail}) ->
    "Could not make the private copy of the driver file: " ++ Detail;
format_error({bind_error, Detail}) ->
    "Could not bind the driver's imports to erl_driver_compat: " ++ Detail;
format_error(driver_init_failed) ->
    "Driver init failed";
format_error(driver_incorrect_version) ->
    "Driver compiled with incorrect version of erl_driver.h";
format_error(bad_driver_name) ->
    "Bad driver name";
format_error(not_loaded) ->
    "DDLL driver is not loaded";
format_error(not_loaded_by_this_process) ->
    "DDLL driver was not loaded by this process";
format_error(unloading) ->
    "The driver is being unloaded; load it again once its ports have closed";
format_error(Other) ->
    lists:flatten(io_lib:format("Unknown erl_driver_compat error: ~tp", [Other])).

%% @doc The compatibility report for `Dir/Name.so', without loading it:
%% which erl_driver API functions the driver imports and which of them
%% erl_driver_compat does not implement yet.
-spec check_driver(file:name(), driver_name()) ->
          {ok, #{file := string(), api_imports := [string()],
                 unsupported := [string()], driver_init := boolean()}}
        | {error, error_reason()}.
check_driver(Dir, Name) ->
    File = filename:join(to_chars(Dir), to_chars(Name) ++ ".so"),
    case erl_driver_compat_nif:check_driver(File) of
        {ok, Imports, Unsupported, HasInit} ->
            Strings = fun(L) -> [unicode:characters_to_list(N) || N <- L] end,
            {ok, #{file => File, api_imports => Strings(Imports),
                   unsupported => Strings(Unsupported), driver_init => HasInit}};
        {error, Reason} ->
            {error, readable(Reason)}
    end.

%% @doc Directory of our `erl_driver.h', to compile drivers against.
-spec include_dir() -> file:filename().
include_dir() ->
    Priv = case code:priv_dir(erl_driver_compat) of
               {error, bad_name} ->
                   Ebin = filename:dirname(code:which(?MODULE)),
                   filename:join(filename:dirname(Ebin), "priv");
               Dir ->
                   Dir
           end,
    filename:join(Priv, "include").

%%====================================================================
%% Ports
%%====================================================================

%% @doc Opens a port of a driver loaded through us, like
%% `erlang:open_port/2'. The caller becomes the owner (connected process)
%% and is linked to the port. Names that are not drivers loaded through us
%% open a native port with `erlang:open_port/2'.
-spec open_port(port_name() | term(), [port_option()]) -> port_ref().
open_port({Kind, Command} = PortName, Opts)
  when (Kind =:= spawn orelse Kind =:= spawn_driver),
       (is_list(Command) orelse is_binary(Command)), is_list(Opts) ->
    CommandStr = try unicode:characters_to_list(Command) of
                     S when is_list(S) -> S;
                     _ -> erlang:error(badarg, [PortName, Opts])
                 catch _:_ -> erlang:error(badarg, [PortName, Opts])
                 end,
    DriverName = hd(string:split(CommandStr, " ") ++ [""]),
    case erl_driver_compat_nif:driver_info(DriverName) of
        undefined ->
            erlang:open_port(PortName, Opts);
        _ ->
            Settings = parse_options(Opts, PortName),
            open_compat(DriverName, CommandStr, Settings, PortName, Opts)
    end;
open_port(PortName, Opts) ->
    erlang:open_port(PortName, Opts).

open_compat(DriverName, Command, Settings, PortName, Opts) ->
    Owner = self(),
    Pid = erl_driver_compat_port:spawn_for(Owner),
    Result = erl_driver_compat_nif:open(Pid, Owner, DriverName, Command, Settings),
    %% The port process is started (or ended) before the effects are
    %% carried out: they may be addressed to it.
    case erl_driver_compat_effects:value(Result) of
        {ok, Resource} -> erl_driver_compat_port:go(Pid, Resource);
        _ -> erl_driver_compat_port:abort(Pid)
    end,
    case erl_driver_compat_effects:unwrap(Result, [PortName, Opts]) of
        {ok, _} -> Pid;
        {error, Reason} -> erlang:error(Reason, [PortName, Opts])
    end.

%% {Binary, Eof, LineLength, Parallelism}. Accepts what erlang:open_port/2 accepts for a
%% driver port (most options are ignored there, as natively) and raises
%% badarg for the rest.
-dialyzer({nowarn_function, parse_options/2}).
parse_options(Opts, PortName) ->
    Bad = fun() -> erlang:error(badarg, [PortName, Opts]) end,
    is_proper_list(Opts) orelse Bad(),
    Acc0 = #{binary => false, eof => false, packet => false,
             line => 0, stderr => false, nouse_stdio => false, parallelism => false},
    Acc = lists:foldl(fun(O, A) -> option(O, A, Bad) end, Acc0, Opts),
    case Acc of
        #{packet := true, line := L} when L > 0 -> Bad();
        #{stderr := true, nouse_stdio := true} -> Bad();
        _ -> ok
    end,
    {maps:get(binary, Acc), maps:get(eof, Acc), maps:get(line, Acc),
     maps:get(parallelism, Acc)}.

is_proper_list([_ | T]) -> is_proper_list(T);
is_proper_list([]) -> true;
is_proper_list(_) -> false.

option(binary, A, _) -> A#{binary := true};
option(eof, A, _) -> A#{eof := true};
%% Accepted and, as natively for driver ports, not acted upon.
option(in, A, _) -> A;
option(out, A, _) -> A;
option(stream, A, _) -> A#{packet := false};
option(hide, A, _) -> A;
option(use_stdio, A, _) -> A#{nouse_stdio := false};
option(nouse_stdio, A, _) -> A#{nouse_stdio := true};
option(stderr_to_stdout, A, _) -> A#{stderr := true};
option(overlapped_io, A, _) -> A;
option(line, A, _) -> A#{line := 512};
option({packet, N}, A, _) when N =:= 1; N =:= 2; N =:= 4 -> A#{packet := true};
option({line, N}, A, _) when is_integer(N), N > 0 -> A#{line := N};
option({cd, Dir}, A, Bad) when is_list(Dir); is_binary(Dir) ->
    _ = chars(Dir, Bad),
    A;
option({env, Env}, A, Bad) when is_list(Env) ->
    lists:foreach(fun({K, V}) ->
                          Key = chars(K, Bad),
                          (Key =/= [] andalso not lists:member($=, Key)) orelse Bad(),
                          V =:= false orelse chars(V, Bad);
                     (_) ->
                          Bad()
                  end, Env),
    A;
option({parallelism, B}, A, _) when is_boolean(B) -> A#{parallelism := B};
option({busy_limits_msgq, disabled}, A, _) -> A;
option({busy_limits_msgq, {Lo, Hi}}, A, _)
  when is_integer(Lo), is_integer(Hi), Lo >= 1, Hi >= 1 -> A;
option(_, _, Bad) -> Bad().

chars(T, Bad) when is_list(T); is_binary(T) ->
    try unicode:characters_to_list(T) of
        L when is_list(L) -> L;
        _ -> Bad()
    catch _:_ -> Bad()
    end;
chars(_, Bad) ->
    Bad().

%% @doc Sends data to the port's driver, like `erlang:port_command/2'. The
%% driver's `output' or `outputv' callback runs in the calling process
%% before this returns.
-spec port_command(port_ref(), iodata()) -> true.
port_command(Port, Data) when is_pid(Port) ->
    try erl_driver_compat_nif:command(Port, Data) of
        true -> true;
        Result -> result(Result, [Port, Data])
    catch
        error:bad_value -> bad_value(Port, [Port, Data])
    end;
port_command(Port, Data) ->
    erlang:port_command(Port, Data).

%% @doc `erlang:port_command/3': options `force' and `nosuspend'.
-spec port_command(port_ref(), iodata(), [force | nosuspend]) -> boolean().
port_command(Port, Data, Opts) when is_pid(Port) ->
    Args = [Port, Data, Opts],
    Force = command_options(Opts, false, Args),
    try erl_driver_compat_nif:command3(Port, Data, Force) of
        true -> true;
        Result -> result(Result, Args)
    catch
        error:bad_value -> bad_value(Port, Args);
        error:notsup -> erlang:error(notsup, Args)
    end;
port_command(Port, Data, Opts) ->
    erlang:port_command(Port, Data, Opts).

command_options([force | T], _, Args) -> command_options(T, true, Args);
command_options([nosuspend | T], Force, Args) -> command_options(T, Force, Args);
command_options([], Force, _) -> Force;
command_options(_, _, Args) -> erlang:error(badarg, Args).

%% Natively, data that is not iodata raises badarg and logs a line.
-spec bad_value(pid(), [term()]) -> no_return().
bad_value(Port, Args) ->
    erl_driver_compat_port:log_bad_value(Port),
    erlang:error(badarg, Args).

%% @doc Calls the driver's `control' callback, like `erlang:port_control/3'.
%% The reply is a list, or a binary when the driver set
%% `PORT_CONTROL_FLAG_BINARY'.
-spec port_control(port_ref(), integer(), iodata()) -> iodata() | binary().
port_control(Port, Operation, Data) when is_pid(Port) ->
    %% Hot path: one NIF call; the argument list for an error is only built
    %% when there is something to deliver or raise.
    case erl_driver_compat_nif:control(Port, Operation, Data) of
        Result when ?IS_EFFECTS(Result) -> result(Result, [Port, Operation, Data]);
        Reply -> Reply
    end;
port_control(Port, Operation, Data) ->
    erlang:port_control(Port, Operation, Data).

%% @doc Calls the driver's `call' callback with `Data' in external term
%% format and decodes its reply, like `erlang:port_call/3'.
-spec port_call(port_ref(), integer(), term()) -> term().
port_call(Port, Operation, Data) when is_pid(Port) ->
    case erl_driver_compat_nif:call(Port, Operation, Data) of
        Result when ?IS_EFFECTS(Result) -> result(Result, [Port, Operation, Data]);
        Reply -> Reply
    end;
port_call(Port, Operation, Data) ->
    erlang:port_call(Port, Operation, Data).

%% @doc Closes the port, like `erlang:port_close/1': the driver's `stop'
%% runs before this returns.
-spec port_close(port_ref()) -> true.
port_close(Port) when is_pid(Port) ->
    result(erl_driver_compat_nif:close(Port), [Port]);
port_close(Port) ->
    erlang:port_close(Port).

%% @doc Makes `Pid' the port's owner and links it to the port, like
%% `erlang:port_connect/2'.
-spec port_connect(port_ref(), pid()) -> true.
port_connect(Port, Pid) when is_pid(Port), is_pid(Pid) ->
    R = result(erl_driver_compat_nif:connect(Port, Pid), [Port, Pid]),
    %% The new owner is linked before this returns, as natively.
    case Pid =:= self() of
        true ->
            link(Port);
        false ->
            Ref = erlang:monitor(process, Port),
            Port ! {'$edc_link', Pid, self(), Ref},
            receive
                {Ref, linked} -> erlang:demonitor(Ref, [flush]);
                {'DOWN', Ref, process, Port, _} -> ok
            end
    end,
    R;
port_connect(Port, Pid) when is_pid(Port) ->
    erlang:error(badarg, [Port, Pid]);
port_connect(Port, Pid) ->
    erlang:port_connect(Port, Pid).

%% @doc Information about the port, like `erlang:port_info/1'; `undefined'
%% when it is closed.
-spec port_info(port_ref()) -> [{atom(), term()}] | undefined.
port_info(Port) when is_pid(Port) ->
    case erl_driver_compat_nif:info(Port) of
        undefined ->
            undefined;
        Info ->
            %% As natively: registered_name first, and only when registered.
            Registered = case info_item(Port, registered_name, Info) of
                             [] -> [];
                             RegName -> [RegName]
                         end,
            Registered ++
                [info_item(Port, Item, Info)
                 || Item <- [name, links, id, connected, input, output, os_pid]]
    end;
port_info(Port) ->
    erlang:port_info(Port).

%% @doc One item of information about the port, like
%% `erlang:port_info/2'.
-spec port_info(port_ref(), atom()) -> {atom(), term()} | undefined.
port_info(Port, Item) when is_pid(Port) ->
    case erl_driver_compat_nif:info(Port) of
        undefined ->
            %% Natively any item of a closed port gives undefined.
            undefined;
        Info ->
            case lists:member(Item, [name, links, id, connected, input, output, os_pid,
                                     memory, queue_size, locking, monitors, monitored_by,
                                     parallelism, registered_name]) of
                false -> erlang:error(badarg, [Port, Item]);
                true -> info_item(Port, Item, Info)
            end
    end;
port_info(Port, Item) ->
    erlang:port_info(Port, Item).

info_item(_Port, name, {Name, _, _, _, _, _, _}) -> {name, unicode:characters_to_list(Name)};
info_item(Port, links, _) -> {links, links(Port)};
info_item(_Port, id, {_, Id, _, _, _, _, _}) -> {id, Id};
info_item(_Port, connected, {_, _, C, _, _, _, _}) -> {connected, C};
%% `input' counts what the port delivered to Erlang, `output' what Erlang
%% wrote to the port.
info_item(_Port, input, {_, _, _, _, Out, _, _}) -> {input, Out};
info_item(_Port, output, {_, _, _, In, _, _, _}) -> {output, In};
info_item(_Port, os_pid, _) -> {os_pid, undefined};
info_item(Port, memory, _) -> {memory, proc_info(Port, memory, 0)};
info_item(_Port, queue_size, _) -> {queue_size, 0};
info_item(_Port, locking, {_, _, _, _, _, driver, _}) -> {locking, driver_level};
info_item(_Port, locking, {_, _, _, _, _, port_level, _}) -> {locking, port_level};
info_item(Port, monitors, _) -> {monitors, proc_info(Port, monitors, [])};
info_item(Port, monitored_by, _) ->
    %% The NIF's own monitor on the port process (a resource) is not shown.
    {monitored_by, [P || P <- proc_info(Port, monitored_by, []), is_pid(P)]};
info_item(_Port, parallelism, {_, _, _, _, _, _, P}) -> {parallelism, P};
info_item(Port, registered_name, _) ->
    case proc_info(Port, registered_name, []) of
        [] -> [];
        Name -> {registered_name, Name}
    end.

links(Port) -> proc_info(Port, links, []).

proc_info(Pid, Item, Default) ->
    case erlang:process_info(Pid, Item) of
        {Item, Value} -> Value;
        _ -> Default
    end.

%% @doc True for an open pseudo-port or a native port.
-spec is_port(term()) -> boolean().
is_port(Term) when is_pid(Term) ->
    erl_driver_compat_nif:is_port(Term);
is_port(Term) ->
    erlang:is_port(Term).

%% @doc The open pseudo-ports, in the order they were opened.
-spec ports() -> [pid()].
ports() ->
    erl_driver_compat_nif:ports().

%%====================================================================
%% Internal
%%====================================================================

result(Result, Args) ->
    erl_driver_compat_effects:unwrap(Result, Args).

to_chars(A) when is_atom(A) -> atom_to_list(A);
to_chars(B) when is_binary(B) -> unicode:characters_to_list(B);
to_chars(L) when is_list(L) ->
    case unicode:characters_to_list(L) of
        S when is_list(S) -> S;
        _ -> erlang:error(badarg, [L])
    end;
to_chars(Other) -> erlang:error(badarg, [Other]).
