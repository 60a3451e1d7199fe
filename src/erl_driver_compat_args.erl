%% @private
%% @doc The arguments of the `erl_ddll' functions and port BIFs that
%% {@link erl_driver_compat} mirrors, turned into what the NIF takes.
%%
%% One job: convert a BIF-style argument (driver name, directory, port
%% command, `open_port/2' options, port, `port_command/3' options, data
%% with bitstrings in it) into the form the NIF expects, and raise
%% `badarg' exactly where the native BIF raises it. The errors are raised
%% with the caller's argument list (`Args'), as the BIF's would be.
-module(erl_driver_compat_args).

-export([ddll_name/2,
         ddll_dir/2,
         command_bytes/1,
         compat_driver/1,
         open_options/2,
         port_of/1,
         command_options/2,
         short_bits/2,
         control_bytes/1,
         to_chars/1]).

-export_type([open_settings/0]).

-type open_settings() ::
        {Binary :: boolean(), Eof :: boolean(), LineLength :: non_neg_integer(),
         Parallelism :: boolean(),
         MsgqLimits :: default | disabled | {pos_integer(), pos_integer()}}.
%% The `open_port/2' options as the NIF's `open' takes them.

%% @doc erl_ddll's driver name as characters for the NIF: an atom other
%% than `''', or iodata of bytes; as a C string it ends at the first NUL
%% byte. Raises `badarg' with `Args' for anything else.
-spec ddll_name(term(), [term()]) -> string().
ddll_name('', Args) ->
    erlang:error(badarg, Args);
ddll_name(Name, _Args) when is_atom(Name) ->
    bytes_to_chars(until_nul(atom_to_binary(Name, utf8)));
ddll_name(Name, Args) when is_list(Name); is_binary(Name) ->
    try iolist_to_binary(Name) of
        Bytes -> bytes_to_chars(until_nul(Bytes))
    catch
        error:_ -> erlang:error(badarg, Args)
    end;
ddll_name(_Name, Args) ->
    erlang:error(badarg, Args).

%% @doc erl_ddll's directory as characters for the NIF: a file name
%% (characters, no binaries inside a list) or a binary. Raises `badarg'
%% with `Args' for anything else.
-spec ddll_dir(term(), [term()]) -> string().
ddll_dir(Dir, _Args) when is_binary(Dir) ->
    bytes_to_chars(Dir);
ddll_dir(Dir, Args) when is_list(Dir) ->
    case filename_bytes(Dir) of
        {ok, Bytes} -> bytes_to_chars(Bytes);
        error -> erlang:error(badarg, Args)
    end;
ddll_dir(_Dir, Args) ->
    erlang:error(badarg, Args).

%% The NIF takes names as characters and encodes them in UTF-8, which gives
%% back the same bytes for valid UTF-8. Other bytes are taken as latin1
%% characters (a different file name than natively: no such file, most
%% likely, either way).
bytes_to_chars(Bytes) ->
    case unicode:characters_to_list(Bytes) of
        Chars when is_list(Chars) -> Chars;
        _ -> binary_to_list(Bytes)
    end.

until_nul(Bytes) ->
    hd(binary:split(Bytes, <<0>>)).

%% @doc The `open_port/2' command as the bytes the driver's start callback
%% gets: `{ok, Bytes}'; `bitstring' for a bitstring that is not a binary
%% (the BIF crashes the VM on it in OTP 25: the caller raises badarg);
%% `error' when the BIF is to decide (it raises badarg).
-spec command_bytes(term()) -> {ok, binary()} | bitstring | error.
command_bytes(Name) when is_atom(Name) ->
    atom_filename(Name);
command_bytes(Name) when is_binary(Name) ->
    {ok, until_nul(Name)};
command_bytes(Name) when is_bitstring(Name) ->
    bitstring;
command_bytes(Name) when is_list(Name) ->
    %% Most commands are flat ASCII: the same bytes in every file name
    %% encoding, without the general conversion.
    case is_ascii(Name) of
        true -> {ok, list_to_binary(Name)};
        false -> filename_bytes(Name)
    end;
command_bytes(_Name) ->
    error.

%% A flat list of characters 1..127 (no NUL).
is_ascii([C | T]) when is_integer(C), C > 0, C < 128 -> is_ascii(T);
is_ascii([]) -> true;
is_ascii(_) -> false.

%% An atom as a file name: its text in the file name encoding, no NUL.
atom_filename(Atom) ->
    try atom_to_binary(Atom, file:native_name_encoding()) of
        Bytes ->
            case binary:match(Bytes, <<0>>) of
                nomatch -> {ok, Bytes};
                _ -> error
            end
    catch
        error:_ -> error
    end.

%% @doc `{ok, DriverName}' when the command's first word names a driver
%% loaded through us, `false' when it is for `erlang:open_port/2'.
-spec compat_driver(binary()) -> {ok, binary()} | false.
compat_driver(Command) ->
    Driver = hd(binary:split(Command, <<" ">>)),
    %% The NIF answers false for a name that is empty or not UTF-8.
    case erl_driver_compat_nif:driver_loaded(Driver) of
        true -> {ok, Driver};
        false -> false
    end.

%% A character list as the VM converts a file name (a port command, `cd',
%% `env'): characters and nested lists, no binaries, no NUL, valid in the
%% file name encoding.
filename_bytes(List) ->
    Enc = file:native_name_encoding(),
    try filename_chars(List, Enc, []) of
        Chars when Enc =:= utf8 -> {ok, unicode:characters_to_binary(lists:reverse(Chars))};
        Chars -> {ok, list_to_binary(lists:reverse(Chars))}
    catch
        throw:bad_filename -> error
    end.

filename_chars([C | T], Enc, Acc) when is_integer(C) ->
    valid_char(C, Enc) orelse throw(bad_filename),
    filename_chars(T, Enc, [C | Acc]);
filename_chars([L | T], Enc, Acc) when is_list(L) ->
    filename_chars(T, Enc, filename_chars(L, Enc, Acc));
filename_chars([], _Enc, Acc) ->
    Acc;
filename_chars(_, _Enc, _Acc) ->
    throw(bad_filename).

valid_char(C, latin1) -> C > 0 andalso C =< 255;
valid_char(C, _Utf8) -> C > 0 andalso C < 16#110000 andalso (C < 16#D800 orelse C > 16#DFFF).

%% @doc The `open_port/2' options of a driver port as the NIF takes them:
%% `{Binary, Eof, LineLength, Parallelism, MsgqLimits}' (MsgqLimits: the
%% last busy_limits_msgq option, or `default'). Accepts what
%% `erlang:open_port/2' accepts for a driver port (most options are
%% ignored there, as natively) and raises badarg (with `[PortName, Opts]')
%% for the rest.
-dialyzer({nowarn_function, all_options/2}).
-spec open_options(Opts :: term(), PortName :: term()) -> open_settings().
open_options(Opts, PortName) ->
    case simple_options(Opts, false, false) of
        {Binary, Eof} ->
            {Binary, Eof, 0, erlang:system_info(port_parallelism), default};
        other ->
            all_options(Opts, PortName)
    end.

%% The common case: only options without arguments that set nothing but
%% `binary' and `eof' (the others of these are accepted and ignored, or
%% matter only with options this does not take): `{Binary, Eof}', or
%% `other' for all_options/2.
simple_options([binary | T], _Binary, Eof) -> simple_options(T, true, Eof);
simple_options([eof | T], Binary, _Eof) -> simple_options(T, Binary, true);
simple_options([O | T], Binary, Eof)
  when O =:= in; O =:= out; O =:= hide; O =:= overlapped_io; O =:= stream;
       O =:= use_stdio ->
    simple_options(T, Binary, Eof);
simple_options([], Binary, Eof) -> {Binary, Eof};
simple_options(_Opts, _Binary, _Eof) -> other.

all_options(Opts, PortName) ->
    Bad = fun() -> erlang:error(badarg, [PortName, Opts]) end,
    is_proper_list(Opts) orelse Bad(),
    Acc0 = #{binary => false, eof => false, packet => false, line => 0,
             stderr => false, nouse_stdio => false, msgq => default,
             parallelism => erlang:system_info(port_parallelism)},
    Acc = lists:foldl(fun(O, A) -> option(O, A, Bad) end, Acc0, Opts),
    case Acc of
        #{packet := true, line := L} when L > 0 -> Bad();
        #{stderr := true, nouse_stdio := true} -> Bad();
        #{cd := Dir} -> is_filename(Dir) orelse Bad();
        _ -> ok
    end,
    {maps:get(binary, Acc), maps:get(eof, Acc), maps:get(line, Acc),
     maps:get(parallelism, Acc), maps:get(msgq, Acc)}.

is_proper_list([_ | T]) -> is_proper_list(T);
is_proper_list([]) -> true;
is_proper_list(_) -> false.

%% The largest small integer: the VM takes only small integers for
%% `packet' and `line'.
-define(MAX_SMALL, ((1 bsl 59) - 1)).
%% erl_driver.h: ERL_DRV_BUSY_MSGQ_LIM_MIN and _LIM_MAX.
-define(BUSY_MSGQ_MIN, 1).
-define(BUSY_MSGQ_MAX, ((1 bsl 64) - 2)).

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
option({line, N}, A, _) when is_integer(N), N > 0, N =< ?MAX_SMALL -> A#{line := N};
%% Only the last cd counts, and is checked after all options (as
%% natively).
option({cd, Dir}, A, _) -> A#{cd => Dir};
option({env, Env}, A, Bad) ->
    is_env(Env) orelse Bad(),
    A;
option({parallelism, B}, A, _) when is_boolean(B) -> A#{parallelism := B};
option({busy_limits_msgq, disabled}, A, _) -> A#{msgq := disabled};
option({busy_limits_msgq, {Lo, Hi} = Limits}, A, _)
  when is_integer(Lo), is_integer(Hi), Lo >= ?BUSY_MSGQ_MIN, Hi >= ?BUSY_MSGQ_MIN,
       Lo =< ?BUSY_MSGQ_MAX, Hi =< ?BUSY_MSGQ_MAX -> A#{msgq := Limits};
%% busy_limits_port, args, arg0 and exit_status are for external programs
%% only: badarg for a driver, as natively.
option(_, _, Bad) -> Bad().

%% `cd': a file name (an atom too); a binary is taken as raw bytes.
is_filename(Dir) when is_atom(Dir) -> atom_filename(Dir) =/= error;
is_filename(Dir) when is_binary(Dir) -> true;
is_filename(Dir) when is_list(Dir) -> filename_bytes(Dir) =/= error;
is_filename(_) -> false.

%% `env': a proper list of {Name, Value}; both character lists as file
%% names (no atoms, no binaries), Value `false' to unset, Name without `='.
is_env([{Name, Value} | T]) when is_list(Name), is_list(Value) orelse Value =:= false ->
    case filename_bytes(Name) of
        {ok, Bytes} ->
            binary:match(Bytes, <<"=">>) =:= nomatch
                andalso (Value =:= false orelse filename_bytes(Value) =/= error)
                andalso is_env(T);
        error ->
            false
    end;
is_env([]) -> true;
is_env(_) -> false.

%% @doc What a port argument names: `{compat, Pid}' for a pid, also one that a
%% registered name stands for (it may turn out not to be a pseudo-port),
%% or `{native, Term}' for the erlang BIFs (a native port, a name that is
%% not registered or is registered by a native port, or a bad argument).
-spec port_of(term()) -> {compat, pid()} | {native, term()}.
port_of(Pid) when is_pid(Pid) ->
    {compat, Pid};
port_of(Name) when is_atom(Name) ->
    case whereis(Name) of
        Pid when is_pid(Pid) -> {compat, Pid};
        _ -> {native, Name}
    end;
port_of(Other) ->
    {native, Other}.

%% @doc The options of `port_command/3' as `{Force, NoSuspend}'; badarg
%% (with `Args') for an improper list or another option.
-spec command_options(term(), [term()]) -> {boolean(), boolean()}.
command_options(Opts, Args) ->
    command_options(Opts, {false, false}, Args).

command_options([force | T], {_, NoSuspend}, Args) -> command_options(T, {true, NoSuspend}, Args);
command_options([nosuspend | T], {Force, _}, Args) -> command_options(T, {Force, true}, Args);
command_options([], Flags, _) -> Flags;
command_options(_, _, Args) -> erlang:error(badarg, Args).

%% @doc Natively a driver with only an `output' callback is given bitstrings
%% shorter than a byte (anywhere in the iolist) as nothing, when the data
%% has at most 8192 bytes (the VM's small buffer); in more data, and to a
%% driver with `outputv', any bitstring is a bad value, as are longer ones
%% that are not whole bytes. {ok, Data} with the short ones removed, or
%% false.
-spec short_bits(pid(), term()) -> {ok, iodata()} | false.
short_bits(Pid, Data) ->
    case has_short_bits(Data) andalso not takes_outputv(Pid) of
        true -> small_io(drop_short_bits(Data));
        false -> false
    end.

-define(SMALL_IO, 8192).

small_io(Data) ->
    try iolist_size(Data) =< ?SMALL_IO of
        true -> {ok, Data};
        false -> false
    catch
        error:badarg -> false
    end.

has_short_bits(B) when is_bitstring(B) -> bit_size(B) < 8 andalso bit_size(B) > 0;
has_short_bits([H | T]) -> has_short_bits(H) orelse has_short_bits(T);
has_short_bits(_) -> false.

drop_short_bits(B) when is_bitstring(B), bit_size(B) < 8 -> <<>>;
drop_short_bits([H | T]) -> [drop_short_bits(H) | drop_short_bits(T)];
drop_short_bits(T) -> T.

%% Whether the port's driver has an `outputv' callback (the fifth element
%% of the NIF's driver_info/1).
takes_outputv(Pid) ->
    case erl_driver_compat_nif:info(Pid) of
        #{name := Command} ->
            Driver = hd(binary:split(Command, <<" ">>)),
            case erl_driver_compat_nif:driver_info(Driver) of
                {_, _, _, _, Outputv} -> Outputv =:= true;
                _ -> false
            end;
        _ ->
            false
    end.

%% @doc Natively a bitstring given as the whole data is cut to its whole bytes
%% (when it was built, not matched at an odd bit offset); in a list,
%% bitstrings shorter than a byte are nothing in at most 8192 bytes, as for
%% port_command to an `output' driver. `{ok, Data}' to call the driver
%% with, or `false' when the data stays bad (badarg).
-spec control_bytes(term()) -> {ok, iodata()} | false.
control_bytes(Data) when is_bitstring(Data), not is_binary(Data) ->
    Whole = bit_size(Data) div 8,
    <<Bytes:Whole/binary, _/bits>> = Data,
    {ok, Bytes};
control_bytes(Data) when is_list(Data) ->
    case has_short_bits(Data) of
        true -> small_io(drop_short_bits(Data));
        false -> false
    end;
control_bytes(_Data) ->
    false.

%% @doc A name or directory as characters (for the NIF's `driver_info' and
%% `check_driver'); badarg for a term that is no text.
-spec to_chars(term()) -> string().
to_chars(A) when is_atom(A) -> atom_to_list(A);
to_chars(B) when is_binary(B) -> unicode:characters_to_list(B);
to_chars(L) when is_list(L) ->
    case unicode:characters_to_list(L) of
        S when is_list(S) -> S;
        _ -> erlang:error(badarg, [L])
    end;
to_chars(Other) -> erlang:error(badarg, [Other]).
