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
         check/1,
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
         ports/0,
         load/2,
         unload/1,
         compile_driver/3,
         info/0]).

-export_type([port_ref/0,
              port_arg/0,
              driver_name/0,
              error_reason/0,
              port_name/0,
              port_option/0,
              info/0]).

-type port_ref() :: pid() | port().
%% A pseudo-port (a pid) or a native port.
-type driver_name() :: string() | atom() | binary() | iolist().
-type port_name() :: {spawn | spawn_driver, string() | binary() | atom()}.
-type port_arg() :: port_ref() | atom().
%% A port as the port functions take it: also a name registered with
%% `register/2', as the BIFs accept.
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
      | {bad_driver_entry, string()}
      | driver_init_failed | driver_incorrect_version | bad_driver_name
      | not_loaded | not_loaded_by_this_process | linked_in_driver | permanent
      | unloading.
%% The names erl_ddll uses mean the same here (`no_driver_init',
%% `driver_init_failed', `driver_incorrect_version', `bad_driver_name',
%% `not_loaded', `not_loaded_by_this_process', `linked_in_driver',
%% `permanent');
%% `{open_error, Text}' carries the dynamic linker's message instead of
%% erl_ddll's numeric id.

-type info() :: #{drivers := non_neg_integer(),
                  ports := non_neg_integer(),
                  binaries := non_neg_integer(),
                  binary_bytes := non_neg_integer(),
                  timers := non_neg_integer(),
                  async_jobs := non_neg_integer(),
                  selected_fds := non_neg_integer(),
                  monitors := non_neg_integer()}.
%% Live counts of {@link info/0}.

%%====================================================================
%% Drivers
%%====================================================================

%% @doc Loads the driver `Name' from `Dir/Name.so' through the compat
%% layer, like `erl_ddll:load_driver/2'.
%%
%% The calling process holds a reference to the driver until it calls
%% {@link unload_driver/1} or exits. Loading a name that is already loaded
%% from the same file adds a reference and returns `ok'. The arguments are
%% checked as erl_ddll checks them: `Name' is an atom other than `''' or
%% iodata of bytes (cut at a NUL byte), `Dir' a file name (a character
%% list or a binary); other terms raise `badarg'. The name of a driver
%% linked into the VM gives `{error, linked_in_driver}'.
-spec load_driver(Dir :: file:filename_all(), Name :: driver_name()) ->
          ok | {error, error_reason()}.
load_driver(Dir, Name) ->
    Args = [Dir, Name],
    DriverName = erl_driver_compat_args:ddll_name(Name, Args),
    DirChars = erl_driver_compat_args:ddll_dir(Dir, Args),
    case is_linked_in(DriverName) of
        true ->
            {error, linked_in_driver};
        false when DriverName =:= [] ->
            no_such_driver(DirChars, DriverName);
        false ->
            case lists:member($/, DriverName) of
                true -> no_such_driver(DirChars, DriverName);
                false -> load_file(DirChars, DriverName)
            end
    end.

load_file(Dir, Name) ->
    case erl_driver_compat_nif:load_driver(Dir, Name) of
        ok -> ok;
        {error, Reason} -> {error, readable(Reason)}
    end.

%% Natively a name with a directory part (or an empty one) is looked for
%% as `Dir/Name.so': when that file exists the driver inside it has another
%% name (bad_driver_name), otherwise the file cannot be opened.
no_such_driver(Dir, Name) ->
    %% Joined as strings: a Name starting with / stays below Dir.
    case filelib:is_regular(string:trim(Dir, trailing, "/") ++ "/" ++ Name ++ ".so") of
        true -> {error, bad_driver_name};
        false -> {error, {open_error, file:format_error(enoent)}}
    end.

%% Texts and names come from the NIF as binaries; users get strings.
readable({unsupported_functions, Names}) ->
    {unsupported_functions, [unicode:characters_to_list(N) || N <- Names]};
readable({Tag, Text}) when is_binary(Text) ->
    {Tag, unicode:characters_to_list(Text)};
readable(Reason) ->
    Reason.

%% Drivers statically linked into the VM (tcp_inet, ram_file_drv, ...)
%% cannot be loaded or unloaded.
is_linked_in(Name) ->
    try erl_ddll:info(Name, linked_in_driver) of
        Linked -> Linked =:= true
    catch
        error:_ -> false
    end.

%% @doc Drops the caller's reference to the driver. The driver's `finish'
%% runs when no process references it and its last port has closed.
%% `Name' is checked as for {@link load_driver/2}.
-spec unload_driver(Name :: driver_name()) -> ok | {error, error_reason()}.
unload_driver(Name) ->
    DriverName = erl_driver_compat_args:ddll_name(Name, [Name]),
    case is_linked_in(DriverName) of
        true -> {error, linked_in_driver};
        false -> erl_driver_compat_nif:unload_driver(DriverName)
    end.

%% @doc The drivers loaded through the compat layer, as
%% `erl_ddll:loaded_drivers/0' returns them.
-spec loaded_drivers() -> {ok, [string()]}.
loaded_drivers() ->
    {ok, [unicode:characters_to_list(N) || N <- erl_driver_compat_nif:loaded_drivers()]}.

%% @doc What we know about a loaded driver: the file, the interface version
%% it was built for, its locking mode, its number of open ports and whether
%% it has an `outputv' callback.
-spec driver_info(Name :: driver_name()) ->
          undefined | #{path := string(), version := {integer(), integer()},
                        locking := driver | port_level, ports := non_neg_integer(),
                        outputv := boolean()}.
driver_info(Name) ->
    case erl_driver_compat_nif:driver_info(erl_driver_compat_args:to_chars(Name)) of
        undefined -> undefined;
        {Path, Version, Locking, Ports, Outputv} ->
            #{path => unicode:characters_to_list(Path), version => Version,
              locking => Locking, ports => Ports, outputv => Outputv}
    end.

%% @doc A readable description of an error returned by this module, or by
%% `erl_ddll' (the same text as `erl_ddll:format_error/1'). Raises `badarg'
%% for a term that is neither, as `erl_ddll:format_error/1' does.
-spec format_error(error_reason() | term()) -> string().
format_error({open_error, Detail}) when is_list(Detail) ->
    "Cannot open the driver: " ++ text(Detail, [{open_error, Detail}]);
format_error({not_elf, Detail}) ->
    "Not an ELF shared object for this machine: " ++ text(Detail, [{not_elf, Detail}]);
format_error({unsupported_functions, Names} = Reason) when is_list(Names) ->
    lists:flatten(["The driver uses erl_driver functions that erl_driver_compat does not "
                   "implement yet: " | lists:join(", ", [text(N, [Reason]) || N <- Names])]);
format_error({copy_error, Detail}) ->
    "Could not make the private copy of the driver file: " ++ text(Detail, [{copy_error, Detail}]);
format_error({bind_error, Detail}) ->
    "Could not bind the driver's imports to erl_driver_compat: "
        ++ text(Detail, [{bind_error, Detail}]);
format_error({bad_driver_entry, Detail}) ->
    "The driver entry returned by driver_init is unusable: "
        ++ text(Detail, [{bad_driver_entry, Detail}]);
format_error(unloading) ->
    "The driver is being unloaded; load it again once its ports have closed";
format_error(Reason) ->
    %% Every other reason is one of erl_ddll's: same text, and badarg for a
    %% term that is not a reason.
    erl_ddll:format_error(Reason).

text(Text, Args) ->
    case io_lib:printable_unicode_list(Text) of
        true -> Text;
        false -> erlang:error(badarg, Args)
    end.

%% @doc The compatibility report for `Dir/Name.so', without loading it:
%% which erl_driver API functions the driver imports and which of them
%% erl_driver_compat does not implement yet (a summary of {@link check/1}).
-spec check_driver(file:name(), driver_name()) ->
          {ok, #{file := string(), api_imports := [string()],
                 unsupported := [string()], driver_init := boolean()}}
        | {error, error_reason()}.
check_driver(Dir, Name) ->
    File = filename:join(erl_driver_compat_args:to_chars(Dir),
                         erl_driver_compat_args:to_chars(Name) ++ ".so"),
    case check(File) of
        {ok, #{api_imports := Imports, other_imports := Others,
               driver_init := HasInit}} ->
            Unsupported = lists:sort([N || {N, unsupported} <- Imports]
                                     ++ [N || {N, vm_only} <- Others]),
            {ok, #{file => File, api_imports => [N || {N, _} <- Imports],
                   unsupported => Unsupported, driver_init => HasInit}};
        {error, _} = Error ->
            Error
    end.

%% @doc The compatibility report of the driver file `Path', without
%% running any of its code. This is the decision {@link load_driver/2}
%% applies: a driver whose verdict is `{will_not_run, _}' is refused by
%% it, with the error the first problem maps to.
%%
%% <ul>
%% <li>`version', `locking': the interface version and locking mode of
%%   the `ErlDrvEntry' found in the file's data (a static entry holds
%%   `ERL_DRV_EXTENDED_MARKER', the version and the flags as initialised
%%   data); `unknown' when no entry or several are found (an entry built
%%   at run time, or a driver without the marker): `driver_init' alone
%%   can tell, and the version is then checked when it runs
%%   (`entry' says which: `{found, Name}', `not_found', `{ambiguous, N}').</li>
%% <li>`api_imports': every erl_driver function imported, `supported' or
%%   `unsupported' (for the declared version).</li>
%% <li>`other_imports': every other undefined symbol and who provides it:
%%   `library' (a shared library loaded in this VM), `vm_only' (only the
%%   VM: refused), `not_loaded' (the driver's own libraries must) or
%%   `weak' (a weak import nothing defines: it may stay undefined).</li>
%% <li>`constructors': `DT_INIT' and the number of `.init_array' entries.
%%   The loader runs them itself after binding the imports, so a
%%   constructor calling the API reaches erl_driver_compat
%%   (`constructor_handling' says so).</li>
%% <li>`verdict': `will_run', `{will_run_with_warnings, [Text]}' or
%%   `{will_not_run, [Text]}'.</li>
%% </ul>
-spec check(file:name_all()) ->
          {ok, #{file := string(),
                 version := {integer(), integer()} | unknown,
                 locking := driver | port_level | unknown,
                 entry := {found, string() | undefined} | not_found
                        | {ambiguous, pos_integer()},
                 api_imports := [{string(), supported | unsupported}],
                 other_imports := [{string(), library | vm_only | not_loaded | weak}],
                 constructors := #{init_function := boolean(),
                                   init_array := non_neg_integer()},
                 constructor_handling := string(),
                 driver_init := boolean(),
                 verdict := will_run | {will_run_with_warnings, [string()]}
                          | {will_not_run, [string()]}}}
        | {error, error_reason()}.
check(Path) ->
    File = erl_driver_compat_args:to_chars(Path),
    case erl_driver_compat_nif:check_driver(File) of
        {ok, Imports, Others, Entry, {InitFn, InitArray}, HasInit, Verdict} ->
            Str = fun unicode:characters_to_list/1,
            {Version, Locking, EntryInfo} =
                case Entry of
                    {found, Major, Minor, Flags, Name} ->
                        {{Major, Minor},
                         case Flags band 1 of 1 -> port_level; 0 -> driver end,
                         {found, case Name of undefined -> undefined; _ -> Str(Name) end}};
                    not_found -> {unknown, unknown, not_found};
                    {ambiguous, N} -> {unknown, unknown, {ambiguous, N}}
                end,
            {ok, #{file => File,
                   version => Version,
                   locking => Locking,
                   entry => EntryInfo,
                   api_imports => [{Str(N), case Ok of true -> supported;
                                                     false -> unsupported end}
                                   || {N, Ok} <- Imports],
                   other_imports => [{Str(N), P} || {N, P} <- Others],
                   constructors => #{init_function => InitFn, init_array => InitArray},
                   constructor_handling =>
                       "run by erl_driver_compat after binding the imports "
                       "(API calls from constructors reach erl_driver_compat)",
                   driver_init => HasInit,
                   verdict => case Verdict of
                                  will_run -> will_run;
                                  {Tag, Texts} -> {Tag, [Str(T) || T <- Texts]}
                              end}};
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
%% and is linked to the port.
%%
%% The command is taken as the BIF takes it: an atom, a (deep) character
%% list or a binary, in the VM's file name encoding
%% (`file:native_name_encoding/0'); the driver name is the part before the
%% first space. Names that are not drivers loaded through us open a native
%% port with `erlang:open_port/2'.
-spec open_port(port_name() | term(), [port_option()]) -> port_ref().
open_port({Kind, Name} = PortName, Opts) when Kind =:= spawn; Kind =:= spawn_driver ->
    case erl_driver_compat_args:command_bytes(Name) of
        {ok, Command} ->
            case erl_driver_compat_args:compat_driver(Command) of
                {ok, Driver} ->
                    Settings = erl_driver_compat_args:open_options(Opts, PortName),
                    open_compat(Driver, Command, Settings, PortName, Opts);
                false ->
                    erlang:open_port(PortName, Opts)
            end;
        bitstring ->
            %% The BIF crashes the VM on such a name (OTP 25).
            erlang:error(badarg, [PortName, Opts]);
        error ->
            erlang:open_port(PortName, Opts)
    end;
open_port(PortName, Opts) ->
    erlang:open_port(PortName, Opts).

%% Command: the bytes start() gets.
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

%% @doc Sends data to the port's driver, like `erlang:port_command/2'. The
%% driver's `output' or `outputv' callback runs in the calling process
%% before this returns.
%%
%% While the driver has marked the port busy (`set_busy_port'), the caller
%% waits until it clears it, as a native port suspends it; waiting callers
%% then run their commands one after the other, in the native order.
-spec port_command(port_arg(), iodata()) -> true.
port_command(Port, Data) when is_pid(Port) ->
    %% Hot path: no port_of/1 tuple, one NIF call.
    try erl_driver_compat_nif:command(Port, Data) of
        true -> true;
        %% The common effect: one message for the caller (driver_output).
        {'$edc', true, [Msg], [], []} -> self() ! Msg, true;
        Result -> command_result(Port, Data, [Port, Data], Result, none)
    catch
        Class:Reason:Stack -> command_error(Port, Data, [Port, Data], Class, Reason, Stack)
    end;
port_command(Port, Data) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} -> command(Pid, Data, [Port, Data]);
        {native, P} -> erlang:port_command(P, Data)
    end.

command(Pid, Data, Args) ->
    try erl_driver_compat_nif:command(Pid, Data) of
        true -> true;
        Result -> command_result(Pid, Data, Args, Result, none)
    catch
        Class:Reason:Stack -> command_error(Pid, Data, Args, Class, Reason, Stack)
    end.

%% The slow path of port_command/2: a busy port (wait for our turn, then
%% try again), effects, errors. `Turn' is our place in the port's queue of
%% waiting commands once we have one.
command_result(Pid, Data, Args, '$edc_busy', Turn) ->
    NewTurn = await_turn(Pid, Turn),
    try erl_driver_compat_nif:command(Pid, Data) of
        Result -> command_result(Pid, Data, Args, Result, NewTurn)
    catch
        Class:Reason:Stack ->
            end_turn(Pid, NewTurn),
            command_error(Pid, Data, Args, Class, Reason, Stack)
    end;
command_result(Pid, _Data, Args, Result, Turn) ->
    end_turn(Pid, Turn),
    case Result of
        true -> true;
        _ -> result(Result, Args)
    end.

command_error(Pid, Data, Args, error, bad_value, _Stack) ->
    case erl_driver_compat_args:short_bits(Pid, Data) of
        {ok, Bytes} -> command(Pid, Bytes, Args);
        false -> bad_value(Pid, Args)
    end;
command_error(_Pid, _Data, _Args, Class, Reason, Stack) ->
    erlang:raise(Class, Reason, Stack).

%% Waits until the busy port lets this caller try again (natively the
%% caller is suspended until the driver clears busy, and the resumed
%% callers retry in the port's order; see erl_driver_compat_port). The
%% first wait registers with the port process; a retry that found the
%% port busy again tells it so and keeps its place. No lock is held while
%% waiting. Returns the turn (`gone' when the port process ended: the
%% retry then fails as on a closed port).
await_turn(Pid, Turn) when is_reference(Turn) ->
    Pid ! {'$edc_retried', Turn, busy},
    wait_go(Pid, Turn);
await_turn(Pid, _NoTurn) ->
    Ref = erlang:monitor(process, Pid),
    Pid ! {'$edc_wait', self(), Ref},
    wait_go(Pid, Ref).

wait_go(Pid, Ref) ->
    receive
        {Ref, go} -> Ref;
        {'DOWN', Ref, process, Pid, _} -> gone
    end.

%% Tells the port process that our command ran (or failed), and whether
%% the port is busy now: the next waiting command may go, or wait again.
end_turn(Pid, Turn) when is_reference(Turn) ->
    Pid ! {'$edc_retried', Turn, {done, erl_driver_compat_nif:is_busy(Pid)}},
    erlang:demonitor(Turn, [flush]),
    ok;
end_turn(_Pid, _NoTurn) ->
    ok.

%% @doc `erlang:port_command/3': options `force' and `nosuspend'. On a
%% busy port, `nosuspend' returns `false' instead of waiting; `force'
%% runs the command anyway, and needs a driver with
%% `ERL_DRV_FLAG_SOFT_BUSY' (else `notsup').
-spec port_command(port_arg(), iodata(), [force | nosuspend]) -> boolean().
port_command(Port, Data, Opts) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} ->
            Args = [Port, Data, Opts],
            command3(Pid, Data, erl_driver_compat_args:command_options(Opts, Args), Args);
        {native, P} ->
            erlang:port_command(P, Data, Opts)
    end.

command3(Pid, Data, {Force, NoSuspend}, Args) ->
    try erl_driver_compat_nif:command3(Pid, Data, Force) of
        true -> true;
        '$edc_busy' when NoSuspend -> false;
        '$edc_busy' -> command_result(Pid, Data, Args, '$edc_busy', none);
        Result -> result(Result, Args)
    catch
        error:bad_value ->
            case erl_driver_compat_args:short_bits(Pid, Data) of
                {ok, Bytes} -> command3(Pid, Bytes, {Force, NoSuspend}, Args);
                false -> bad_value(Pid, Args)
            end;
        error:notsup ->
            erlang:error(notsup, Args)
    end.

%% Natively, data that is not iodata raises badarg and logs a line.
-spec bad_value(pid(), [term()]) -> no_return().
bad_value(Port, Args) ->
    erl_driver_compat_port:log_bad_value(Port),
    erlang:error(badarg, Args).

%% @doc Calls the driver's `control' callback, like `erlang:port_control/3'.
%% The reply is a list, or a binary when the driver set
%% `PORT_CONTROL_FLAG_BINARY'.
-spec port_control(port_arg(), integer(), iodata()) -> iodata() | binary().
port_control(Port, Operation, Data) when is_pid(Port) ->
    %% Hot path: one NIF call in this function's own frame; the argument
    %% list for an error is only built when there is something to deliver
    %% or raise. A reply is a binary or a list, effects are a tuple.
    try erl_driver_compat_nif:control(Port, Operation, Data) of
        Reply when not is_tuple(Reply) -> Reply;
        %% The common effect: one message for the caller (a control reply
        %% is a binary or a list, never an error).
        {'$edc', Reply, [Msg], [], []} when is_binary(Reply); is_list(Reply) ->
            self() ! Msg,
            Reply;
        Result -> result(Result, [Port, Operation, Data])
    catch
        error:badarg:Stack -> control_retry(Port, Operation, Data, Stack)
    end;
port_control(Port, Operation, Data) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} ->
            try erl_driver_compat_nif:control(Pid, Operation, Data) of
                Result -> result(Result, [Port, Operation, Data])
            catch
                error:badarg:Stack ->
                    control_retry(Pid, Operation, Data, Stack, [Port, Operation, Data])
            end;
        {native, P} ->
            erlang:port_control(P, Operation, Data)
    end.

%% Data that is not iodata as the NIF takes it (bitstrings with whole
%% bytes in front, ...): tried again with its bytes, as natively.
control_retry(Pid, Operation, Data, Stack) ->
    control_retry(Pid, Operation, Data, Stack, [Pid, Operation, Data]).

control_retry(Pid, Operation, Data, Stack, Args) ->
    case erl_driver_compat_args:control_bytes(Data) of
        {ok, Bytes} -> result(erl_driver_compat_nif:control(Pid, Operation, Bytes), Args);
        false -> erlang:raise(error, badarg, Stack)
    end.

%% @doc Calls the driver's `call' callback with `Data' in external term
%% format and decodes its reply, like `erlang:port_call/3'.
-spec port_call(port_arg(), integer(), term()) -> term().
port_call(Port, Operation, Data) when is_pid(Port) ->
    %% Hot path: one NIF call, the argument list only built for effects.
    case erl_driver_compat_nif:call(Port, Operation, Data) of
        Result when ?IS_EFFECTS(Result) -> result(Result, [Port, Operation, Data]);
        Reply -> Reply
    end;
port_call(Port, Operation, Data) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} ->
            case erl_driver_compat_nif:call(Pid, Operation, Data) of
                Result when ?IS_EFFECTS(Result) -> result(Result, [Port, Operation, Data]);
                Reply -> Reply
            end;
        {native, P} ->
            erlang:port_call(P, Operation, Data)
    end.

%% @doc Closes the port, like `erlang:port_close/1': the driver's `stop'
%% runs, and the port's process has ended (its registered name is free),
%% before this returns.
-spec port_close(port_arg()) -> true.
port_close(Port) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} -> close(Pid, [Port]);
        {native, P} -> erlang:port_close(P)
    end.

%% Returns once the port's process has ended (its registered name is free,
%% as natively), or at once when the port waits for its driver queue to
%% empty (natively port_close/1 returns then too).
close(Pid, Args) ->
    case result(erl_driver_compat_nif:close(Pid), Args) of
        true -> await_end(Pid);
        flushing -> true
    end.

%% The monitor and the receive stay together so that the receive does not
%% scan the caller's whole mailbox (an owner trapping exits holds an
%% {'EXIT', Port, normal} per closed port). A process that has already
%% ended gives its 'DOWN' at once.
await_end(Pid) ->
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> true end.

%% @doc Makes `Pid' the port's owner and links it to the port, like
%% `erlang:port_connect/2'. As natively, `Pid' must be a live process; a
%% pseudo-port is a port, not a process, so it cannot own a port (badarg).
-spec port_connect(port_arg(), pid()) -> true.
port_connect(Port, Pid) ->
    Args = [Port, Pid],
    case {erl_driver_compat_args:port_of(Port), is_pid(Pid) andalso can_own(Pid)} of
        {_, false} ->
            erlang:error(badarg, Args);
        {{compat, P}, true} ->
            connect(P, Pid, Args);
        {{native, P}, true} ->
            erlang:port_connect(P, Pid)
    end.

%% A remote pid is left to the NIF and the BIF to refuse.
can_own(Pid) when node(Pid) =/= node() ->
    true;
can_own(Pid) ->
    erl_driver_compat_port:process_kind(Pid) =:= process.

connect(Port, Pid, Args) ->
    R = result(erl_driver_compat_nif:connect(Port, Pid), Args),
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
    R.

%% @doc Information about the port, like `erlang:port_info/1'; `undefined'
%% when it is closed, `badarg' for a pid that is not a pseudo-port's.
-spec port_info(port_arg()) -> [{atom(), term()}] | undefined.
port_info(Port) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} -> erl_driver_compat_info:all(Port, Pid);
        {native, P} -> erlang:port_info(P)
    end.

%% @doc One item of information about the port, like
%% `erlang:port_info/2'.
-spec port_info(port_arg(), atom()) -> {atom(), term()} | [] | undefined.
port_info(Port, Item) ->
    case erl_driver_compat_args:port_of(Port) of
        {compat, Pid} -> erl_driver_compat_info:item(Port, Pid, Item);
        {native, P} -> erlang:port_info(P, Item)
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

%%====================================================================
%% erl_ddll's other names, compiling drivers
%%====================================================================

%% @doc `erl_ddll:load/2': loads the driver as {@link load_driver/2} does.
%%
%% Difference: natively a driver loaded with `erl_ddll:load/2' (without
%% the `kill_ports' option) is unloaded only when its last port has
%% closed, its ports keep running after the last reference is dropped;
%% here the last {@link unload/1} or {@link unload_driver/1} closes them
%% with reason `driver_unloaded', as after `erl_ddll:load_driver/2'.
-spec load(Dir :: file:filename_all(), Name :: driver_name()) -> ok | {error, error_reason()}.
load(Dir, Name) ->
    load_driver(Dir, Name).

%% @doc `erl_ddll:unload/1': drops the caller's reference to the driver as
%% {@link unload_driver/1} does (see {@link load/2} for the difference).
-spec unload(Name :: driver_name()) -> ok | {error, error_reason()}.
unload(Name) ->
    unload_driver(Name).

%% @doc Compiles a driver's C sources against our `erl_driver.h' into
%% `OutDir/Name.so': `{ok, SoPath}', or `{error, Text}' with the command
%% line and the compiler's output. The compiler is `$CC' (or `cc') with
%% `-fPIC -shared -O2 -I' {@link include_dir/0}; options add include and
%% library directories, libraries, defines and flags. See
%% {@link erl_driver_compat_build} for the options.
%%
%% ```
%% {ok, So} = erl_driver_compat:compile_driver("c_src/my_drv.c", "priv",
%%                                             [{defines, ["NDEBUG"]}, {libs, ["m"]}]),
%% ok = erl_driver_compat:load_driver("priv", "my_drv").
%% '''
-spec compile_driver(Src :: erl_driver_compat_build:source(), OutDir :: file:filename_all(),
                     Opts :: [erl_driver_compat_build:option()]) ->
          {ok, file:filename()} | {error, string()}.
compile_driver(Src, OutDir, Opts) ->
    erl_driver_compat_build:compile_driver(Src, OutDir, Opts).

%%====================================================================
%% Observability
%%====================================================================

%% @doc Live counts over the whole layer, for monitoring:
%% <ul>
%% <li>`drivers': drivers loaded through us ({@link loaded_drivers/0});</li>
%% <li>`ports': open pseudo-ports ({@link ports/0});</li>
%% <li>`binaries', `binary_bytes': the references drivers hold to driver
%%     binaries (`driver_alloc_binary', `driver_binary_inc_refc', until
%%     `driver_free_binary', `driver_binary_dec_refc' or a binary control
%%     reply) and their bytes; Erlang's references to them are VM binaries,
%%     counted in `erlang:memory(binary)';</li>
%% <li>`timers': driver timers set (`driver_set_timer') and neither expired
%%     nor cancelled;</li>
%% <li>`async_jobs': `driver_async' jobs queued or running;</li>
%% <li>`selected_fds': descriptors selected with `driver_select' and not
%%     yet deselected;</li>
%% <li>`monitors': `driver_monitor_process' monitors alive.</li>
%% </ul>
%% Each count is exact when read, but they are read one after the other,
%% not as one snapshot.
%%
%% ```
%% #{ports := Open, binary_bytes := Bytes} = erl_driver_compat:info().
%% '''
-spec info() -> info().
info() ->
    [Drivers, Ports, Binaries, Bytes, Timers, Jobs, Fds, Monitors] = erl_driver_compat_nif:stats(),
    #{drivers => Drivers, ports => Ports, binaries => Binaries, binary_bytes => Bytes,
      timers => Timers, async_jobs => Jobs, selected_fds => Fds, monitors => Monitors}.
