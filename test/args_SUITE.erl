%% Argument forms of the Erlang API, generated with PropEr: every port
%% function, open_port/2 and erl_ddll's functions are called with the
%% arguments native erts accepts and with the ones it refuses (wrong types
%% in every position, closed ports, ports of other owners, registered
%% names, pids that are no ports, huge and deep iodata, bitstrings,
%% unicode names), natively and through erl_driver_compat. For each
%% generated case the outcome (value or exception), the messages received
%% and the state of the port afterwards must be the same.
%%
%% Facts measured on OTP 25 (erts 13.1.5) that the generators aim at:
%% * open_port({spawn | spawn_driver, Name}): Name is an atom, a deep
%%   character list (no binaries, no NUL) or a binary (cut at a NUL); the
%%   driver name is the part before the first space. A bitstring name
%%   crashes the native VM (we raise badarg; not generated for native).
%% * Options of a driver port: args, arg0, exit_status and busy_limits_port
%%   are badarg; cd is a file name (atom, list, binary; [] too); env keys
%%   and values are character lists (no '=' in the key, no NUL).
%% * Registered names work in place of a port in every port function;
%%   port_info of a name that is no port's is undefined, of a pid badarg.
%% * An `output' driver gets bitstrings shorter than a byte as nothing;
%%   port_control cuts a bitstring (as the whole data) to its whole bytes.
%% * port_connect(P, Pid) needs a live process: badarg for a port, an
%%   atom or a dead pid.
-module(args_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("proper/include/proper_common.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([open_port_names/1,
         open_port_latin1_names/1,
         open_port_options/1,
         open_port_parallelism/1,
         open_port_bitstring_name/1]).
-export([command_message_to_name/1,
         port_command_output/1,
         port_command_outputv/1,
         short_bits_small_data_only/1,
         port_command_short_bits_outputv/1]).
-export([port_control_args/1]).
-export([port_call_args/1]).
-export([port_close_args/1]).
-export([port_connect_args/1,
         port_connect_to_itself/1,
         connect_msg_to_port/1]).
-export([port_info_args/1]).
-export([load_driver_args/1]).
-export([unload_driver_args/1]).
-export([format_error_erl_ddll/1,
         format_error_own/1]).
-export([latin1_cases/1]).
-export([erlang_is_port_false/1,
         command_message_short_bits/1,
         control_unaligned_bits/1,
         binary_command_not_utf8/1,
         port_info_ended_pid/1,
         port_id_sequence/1,
         closed_is_port_false/1]).

-define(ECHO, "echo_drv").
-define(IOV, "lc_iov_drv").
-define(CASES, 500).

all() ->
    [{group, open_port},
     {group, port_command},
     {group, port_control},
     {group, port_call},
     {group, port_close},
     {group, port_connect},
     {group, port_info},
     {group, load_driver},
     {group, unload_driver},
     {group, format_error},
     {group, known_differences}].

groups() ->
    [{open_port, [], [open_port_names, open_port_latin1_names, open_port_options,
                      open_port_parallelism,
                      open_port_bitstring_name, binary_command_not_utf8]},
     {port_command, [], [command_message_to_name, port_command_output, port_command_outputv, short_bits_small_data_only,
                         port_command_short_bits_outputv]},
     {port_control, [], [port_control_args]},
     {port_call, [], [port_call_args]},
     {port_close, [], [port_close_args]},
     {port_connect, [], [port_connect_args, port_connect_to_itself, connect_msg_to_port]},
     {port_info, [], [port_info_args]},
     {load_driver, [], [load_driver_args]},
     {unload_driver, [], [unload_driver_args]},
     {format_error, [], [format_error_erl_ddll, format_error_own]},
     {known_differences, [], [erlang_is_port_false, command_message_short_bits,
                              control_unaligned_bits, port_info_ended_pid, port_id_sequence,
                              closed_is_port_false]}].

init_per_suite(Config) ->
    %% Bad values are logged by both sides; keep the CT log readable.
    logger:set_module_level(erl_driver_compat_port, none),
    [{holder, edc_diff:start_holder([?ECHO, ?IOV])} | Config].

end_per_suite(Config) ->
    logger:unset_module_level(erl_driver_compat_port),
    edc_diff:stop_holder(?config(holder, Config)).

%%====================================================================
%% open_port
%%====================================================================

open_port_names(_Config) ->
    check(?FORALL(Name, port_name(),
                  same(Name, fun(B) -> opened(B, Name, []) end))).

open_port_options(_Config) ->
    check(?FORALL(Opts, options(),
                  same(Opts, fun(B) ->
                                     case opened(B, {spawn, ?ECHO}, Opts) of
                                         {ok, P, Name} ->
                                             {Name, echo(B, P), info(B, P, parallelism)};
                                         Error ->
                                             Error
                                     end
                             end))).

opened(B, Name, Opts) ->
    case edc_diff:attempt(fun() -> call(B, open_port, [Name, Opts]) end) of
        {ok, P} -> {ok, P, info(B, P, name)};
        Error -> Error
    end.

echo(B, P) ->
    R = edc_diff:attempt(fun() -> call(B, port_command, [P, "ab\ncd\n"]) end),
    _ = info(B, P, connected),
    {R, edc_diff:drain()}.

%% In a VM with latin1 file names (+fnl) a command, cd or env character
%% above 255, or an atom that is not latin1, is badarg. (A latin1
%% character above 127 is one byte natively; the NIF's UTF-8 text cannot
%% say that: see binary_command_not_utf8.)
open_port_latin1_names(_Config) ->
    Paths = lists:usort([filename:dirname(code:which(M)) || M <- [?MODULE, edc_diff, erl_driver_compat]]),
    {ok, Peer, _} = peer:start_link(#{connection => standard_io,
                                      args => ["+fnl" | lists:append([["-pa", P] || P <- Paths])]}),
    try
        latin1 = peer:call(Peer, file, native_name_encoding, []),
        {Native, Compat} = peer:call(Peer, ?MODULE, latin1_cases, [edc_diff:private_dir()]),
        ct:pal("native: ~p~ncompat: ~p", [Native, Compat]),
        [{ok, "echo_drv x"}, {ok, "echo_drv"}, {error, badarg}, {error, badarg}, {error, badarg},
         {error, badarg}, {ok, "echo_drv"}, {error, badarg}] = Native,
        Compat = Native
    after
        peer:stop(Peer)
    end.

%% Runs in the +fnl peer: the outcomes natively and through compat.
latin1_cases(Dir) ->
    ok = erl_ddll:load_driver(Dir, ?ECHO),
    ok = erl_driver_compat:load_driver(Dir, ?ECHO),
    Cases = [{{spawn_driver, "echo_drv x"}, []},
             {{spawn_driver, echo_drv}, []},
             {{spawn_driver, "echo_drv \x{400}"}, []},
             {{spawn_driver, 'echo_drv \x{400}'}, []},
             {{spawn_driver, ["echo_drv", [16#100]]}, []},
             {{spawn_driver, ?ECHO}, [{cd, "/tmp/\x{400}"}]},
             {{spawn_driver, ?ECHO}, [{cd, 'é'}, {env, [{"EDC_L", "\x{e4}"}]}]},
             {{spawn_driver, ?ECHO}, [{env, [{"EDC_L", "\x{400}"}]}]}],
    Outcome = fun(Open, Info) ->
                      [case edc_diff:attempt(fun() -> Open(Name, Opts) end) of
                           {ok, P} -> {ok, element(2, Info(P, name))};
                           Error -> Error
                       end || {Name, Opts} <- Cases]
              end,
    {Outcome(fun erlang:open_port/2, fun erlang:port_info/2),
     Outcome(fun erl_driver_compat:open_port/2, fun erl_driver_compat:port_info/2)}.

%% Natively the option is kept and shown by port_info (default false).
open_port_parallelism(_Config) ->
    edc_diff:expect("port_info parallelism",
                    fun(B) ->
                            [info(B, call(B, open_port, [{spawn, ?ECHO}, Opts]), parallelism)
                             || Opts <- [[], [{parallelism, true}], [{parallelism, false}],
                                         [{parallelism, true}, {parallelism, false}],
                                         [{parallelism, false}, binary, {parallelism, true}]]]
                    end,
                    [{parallelism, false}, {parallelism, true}, {parallelism, false},
                     {parallelism, false}, {parallelism, true}]).

%% Natively {spawn_driver, Bitstring} crashes the VM (OTP 25): compat only.
open_port_bitstring_name(_Config) ->
    {raised, error, badarg} =
        edc_diff:run(compat, fun(B) -> call(B, open_port, [{spawn_driver, <<"echo_drv", 1:1>>}, []]) end),
    {raised, error, badarg} =
        edc_diff:run(compat, fun(B) -> call(B, open_port, [{spawn, <<"echo_drv x", 5:3>>}, []]) end).

%%====================================================================
%% port_command
%%====================================================================

%% A registered port is a process for `!': Name ! {Owner, {command, D}}.
command_message_to_name(_Config) ->
    edc_diff:expect("command message to a registered name",
                    fun(B) ->
                            P = call(B, open_port, [{spawn, ?ECHO}, []]),
                            Name = register_name(P),
                            Name ! {self(), {command, "x"}},
                            anonymous(edc_diff:recv(2000))
                    end,
                    {{port, 1}, {data, "x"}}).

port_command_output(_Config) ->
    check(?FORALL({Form, Fun, Data}, {port_form(), command_fun(), data(true)},
                  same({Form, Fun, Data},
                       fun(B) -> with_port(B, ?ECHO, Form, fun(Arg) -> command(B, Fun, Arg, Data) end) end))).

port_command_outputv(_Config) ->
    check(?FORALL({Form, Fun, Data}, {port_form(), command_fun(), data(false)},
                  same({Form, Fun, Data},
                       fun(B) -> with_port(B, ?IOV, Form, fun(Arg) -> command(B, Fun, Arg, Data) end) end))).

%% Bitstrings shorter than a byte are dropped from at most 8192 bytes of
%% data; in more they are bad (port_command and port_control alike).
short_bits_small_data_only(_Config) ->
    Data = fun(N) -> [binary:copy(<<"a">>, N), <<1:1>>] end,
    edc_diff:expect("short bitstrings in 8192 and 8193 bytes",
                    fun(B) ->
                            P = call(B, open_port, [{spawn, ?ECHO}, [binary]]),
                            [{edc_diff:attempt(fun() -> call(B, port_command, [P, Data(N)]) end),
                              [byte_size(D) || {_, {data, D}} <- (fun() -> _ = info(B, P, connected),
                                                                             edc_diff:drain()
                                                                   end)()],
                              edc_diff:attempt(fun() -> byte_size(call(B, port_control, [P, 0, Data(N)])) end)}
                             || N <- [8192, 8193]]
                    end,
                    [{{ok, true}, [8192], {ok, 8192}},
                     {{error, badarg}, [], {error, badarg}}]).

%% An outputv driver takes no bitstring at all (natively badarg); telling
%% it from an output driver needs the NIF's outputv flag (issue 5 report).
port_command_short_bits_outputv(_Config) ->
    edc_diff:expect("short bitstring to an outputv driver",
                    fun(B) ->
                            P = call(B, open_port, [{spawn, ?IOV}, []]),
                            [edc_diff:attempt(fun() -> call(B, port_command, [P, D]) end)
                             || D <- [<<1:1>>, ["ab", <<1:3>>]]]
                    end,
                    [{error, badarg}, {error, badarg}]).

command(B, c2, Arg, Data) -> call(B, port_command, [Arg, Data]);
command(B, {c3, Opts}, Arg, Data) -> call(B, port_command3, [Arg, Data, Opts]).

command_fun() ->
    proper_types:frequency([{4, c2},
                            {2, {c3, proper_types:elements([[], [nosuspend]])}},
                            {1, {c3, proper_types:elements([[force], [force, nosuspend], [bogus],
                                                            [nosuspend | x], x])}}]).

%%====================================================================
%% port_control, port_call
%%====================================================================

port_control_args(_Config) ->
    check(?FORALL({Form, Op, Data}, {port_form(), operation(), control_data()},
                  same({Form, Op, Data},
                       fun(B) ->
                               with_port(B, ?ECHO, Form, fun(Arg) -> call(B, port_control, [Arg, Op, Data]) end)
                       end))).

port_call_args(_Config) ->
    check(?FORALL({Form, Op, Term}, {port_form(), operation(), call_term()},
                  same({Form, Op, Term},
                       fun(B) ->
                               with_port(B, ?ECHO, Form, fun(Arg) -> call(B, port_call, [Arg, Op, Term]) end)
                       end))).

operation() ->
    proper_types:frequency([{4, proper_types:elements([0, 7, 4294967295])},
                            {1, proper_types:elements([4294967296, -1, 1 bsl 70, foo, 1.0, "1"])}]).

control_data() ->
    proper_types:frequency([{6, data(true)},
                            {2, long_bits()},
                            {1, ?LET(B, long_bits(), [B])}]).

call_term() ->
    proper_types:frequency([{6, proper_types:any()},
                            {1, short_bits()},
                            {1, long_bits()},
                            {1, ?LET(B, long_bits(), {B, [B]})}]).

%%====================================================================
%% port_close, port_connect
%%====================================================================

port_close_args(_Config) ->
    check(?FORALL(Form, port_form(),
                  same(Form, fun(B) -> with_port(B, ?ECHO, Form, fun(Arg) -> call(B, port_close, [Arg]) end) end))).

%% After the call the port's connected process is looked at; when a
%% process other than the caller became the owner, it is killed, and the
%% port must close with it: no port is left without a live owner.
port_connect_args(_Config) ->
    check(?FORALL({Form, Owner}, {port_form(), owner_form()},
                  same({Form, Owner},
                       fun(B) ->
                               process_flag(trap_exit, true),
                               with_port(B, ?ECHO, Form,
                                         fun(Arg) ->
                                                 {New, Kill} = owner(B, Owner),
                                                 R = call(B, port_connect, [Arg, New]),
                                                 {kill, R, Kill}
                                         end)
                       end))).

%% The case of issue 5 (A11): port_connect(P, P) is badarg, and the port
%% still closes with its owner.
port_connect_to_itself(_Config) ->
    edc_diff:expect("port_connect(P, P)",
                    fun(B) ->
                            Self = self(),
                            Owner = spawn(fun() ->
                                                  put(edc_ports, []),
                                                  P = call(B, open_port, [{spawn, ?ECHO}, []]),
                                                  Self ! {self(), P},
                                                  receive stop -> ok end
                                          end),
                            P = receive {Owner, Port} -> Port end,
                            edc_diff:track(P),
                            R = edc_diff:attempt(fun() -> call(B, port_connect, [P, P]) end),
                            Owner ! stop,
                            edc_diff:until_down(Owner),
                            {R, info(B, P, connected)}
                    end,
                    {{error, badarg}, undefined}).

%% {Owner, {connect, Port}}: a port is no process, so natively the message
%% is bad (badsig to the owner) and the owner stays.
connect_msg_to_port(_Config) ->
    edc_diff:expect("{connect, Port} message",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = call(B, open_port, [{spawn, ?ECHO}, []]),
                            Q = call(B, open_port, [{spawn, ?ECHO}, []]),
                            [begin
                                 P ! {self(), {connect, To}},
                                 {edc_diff:recv(2000), info(B, P, connected)}
                             end || To <- [Q, P]]
                    end,
                    [{{'EXIT', {port, 1}, badsig}, {connected, self}},
                     {{'EXIT', {port, 1}, badsig}, {connected, self}}]).

owner_form() ->
    proper_types:frequency([{3, proper_types:elements([self, other_pid])},
                            {2, proper_types:elements([dead_pid, the_port, other_port, native_port,
                                                       process_name, {term, 42}, {term, foo}])}]).

%% {NewOwner, Kill}: Kill is the process to kill afterwards, or none.
owner(_B, self) -> {self(), none};
owner(_B, other_pid) -> P = waiting(), {P, P};
owner(_B, dead_pid) -> {dead(), none};
owner(_B, the_port) -> {get(edc_args_port), none};
owner(B, other_port) -> {call(B, open_port, [{spawn, ?ECHO}, []]), none};
owner(_B, native_port) -> {erlang:open_port({spawn_driver, ?ECHO}, []), none};
owner(_B, process_name) -> {register_name(waiting()), none};
owner(_B, {term, T}) -> {T, none}.

%%====================================================================
%% port_info
%%====================================================================

%% A pid whose process has ended is left out: see port_info_ended_pid.
port_info_args(_Config) ->
    check(?FORALL({Form, Item}, {?SUCHTHAT(F, port_form(), F =/= dead_pid), info_item()},
                  same({Form, Item},
                       fun(B) ->
                               with_port(B, ?ECHO, Form,
                                         fun(Arg) when Item =:= all -> call(B, port_info, [Arg]);
                                            (Arg) -> call(B, port_info2, [Arg, Item])
                                         end)
                       end))).

info_item() ->
    proper_types:elements([all, name, links, id, connected, input, output, os_pid, memory,
                           queue_size, locking, monitors, monitored_by, parallelism,
                           registered_name, bogus, 42, [name], busy_limits_port]).

%%====================================================================
%% Ports in every form
%%====================================================================

%% How the port argument is given.
port_form() ->
    proper_types:frequency([{6, own}, {2, closed}, {2, other_owner}, {3, registered},
                            {1, unregistered_name}, {1, process_name}, {1, self},
                            {1, other_pid}, {1, dead_pid}, {1, native_port},
                            {1, {term, proper_types:elements([42, "echo_drv", {}, <<"p">>, 1.5])}}]).

%% Opens the port `Form' needs, runs `Op' with the port argument (an Op
%% returning {kill, Result, Pid} has Pid killed before looking at the
%% port), and returns what happened: the outcome, the messages the caller got, and
%% the port's connected process afterwards (undefined once closed), also
%% the messages of its owner when that is another process.
with_port(B, Drv, Form, Op) ->
    {Arg, Port, Owner} = port_arg(B, Drv, Form),
    put(edc_args_port, Port),
    Outcome = case edc_diff:attempt(fun() -> Op(Arg) end) of
                  {ok, {kill, R, Kill}} when is_pid(Kill), Port =/= undefined ->
                      {ok, R, kill_owner(Port, R, Kill)};
                  {ok, {kill, R, _}} ->
                      {ok, R};
                  Other ->
                      Other
              end,
    %% A registered port's name is free as soon as the port has closed.
    Names = [{N, whereis(N) =/= undefined} || N <- names()],
    After = case Port of
                undefined -> none;
                _ -> info(B, Port, connected)
            end,
    OwnerMsgs = case Owner of
                    Pid when is_pid(Pid), Pid =/= self() -> owner_messages(Pid, B, Port);
                    _ -> none
                end,
    Result = {Outcome, After, lists:sort(edc_diff:drain()), OwnerMsgs, Names},
    anonymous(plain_info(Result)).

%% Kills the process that Op made the port's owner; when port_connect
%% returned true the port closes with it (awaited through a monitor).
kill_owner(Port, Connected, Kill) ->
    MRef = case is_port(Port) of
               true -> erlang:monitor(port, Port);
               false -> erlang:monitor(process, Port)
           end,
    exit(Kill, kill),
    edc_diff:until_down(Kill),
    Closed = case Connected of
                 true ->
                     receive {'DOWN', MRef, _, _, _} -> closed
                     after 5000 -> still_open
                     end;
                 _ ->
                     not_awaited
             end,
    erlang:demonitor(MRef, [flush]),
    Closed.

port_arg(B, Drv, own) ->
    P = open(B, Drv),
    {P, P, self()};
port_arg(B, Drv, closed) ->
    P = open(B, Drv),
    true = call(B, port_close, [P]),
    {P, P, self()};
port_arg(B, Drv, other_owner) ->
    Self = self(),
    Owner = spawn(fun() ->
                          put(edc_ports, []),
                          Ref = erlang:monitor(process, Self),
                          P = open(B, Drv),
                          Self ! {self(), P},
                          owner_loop(B, P, Ref)
                  end),
    P = receive {Owner, Port} -> Port end,
    edc_diff:track(P),
    {P, P, Owner};
port_arg(B, Drv, registered) ->
    P = open(B, Drv),
    {register_name(P), P, self()};
port_arg(_B, _Drv, unregistered_name) ->
    {edc_args_nobody, undefined, none};
port_arg(_B, _Drv, process_name) ->
    {register_name(waiting()), undefined, none};
port_arg(_B, _Drv, self) ->
    {self(), undefined, none};
port_arg(_B, _Drv, other_pid) ->
    {waiting(), undefined, none};
port_arg(_B, _Drv, dead_pid) ->
    {dead(), undefined, none};
port_arg(_B, Drv, native_port) ->
    P = erlang:open_port({spawn_driver, Drv}, []),
    {P, P, self()};
port_arg(_B, _Drv, {term, T}) ->
    {T, undefined, none}.

%% The owner of a port of another process: reports its mailbox on request
%% and ends with the scenario.
owner_loop(B, P, Ref) ->
    receive
        {report, From} ->
            _ = info(B, P, connected),
            From ! {self(), edc_diff:drain()},
            owner_loop(B, P, Ref);
        {'DOWN', Ref, process, _, _} ->
            ok
    end.

owner_messages(Owner, _B, _Port) ->
    case is_process_alive(Owner) of
        true ->
            Owner ! {report, self()},
            receive {Owner, Msgs} -> lists:sort(Msgs) end;
        false ->
            owner_gone
    end.

open(B, Drv) ->
    call(B, open_port, [{spawn, Drv}, [binary]]).

%% A process that waits until the scenario ends.
waiting() ->
    Self = self(),
    spawn(fun() ->
                  Ref = erlang:monitor(process, Self),
                  receive {'DOWN', Ref, process, _, _} -> ok end
          end).

dead() ->
    Pid = spawn(fun() -> ok end),
    edc_diff:until_down(Pid),
    Pid.

%% Registers `What' under a fresh name; results show it as `name'.
register_name(What) ->
    Name = list_to_atom("edc_args_" ++ integer_to_list(erlang:unique_integer([positive]))),
    true = register(Name, What),
    put(edc_args_names, [Name | names()]),
    Name.

names() ->
    case get(edc_args_names) of
        undefined -> [];
        Names -> Names
    end.

anonymous(Term) ->
    replace(Term, names()).

replace(T, Names) when is_atom(T) ->
    case lists:member(T, Names) of
        true -> name;
        false -> T
    end;
replace([H | T], Names) -> [replace(H, Names) | replace(T, Names)];
replace(T, Names) when is_tuple(T) -> list_to_tuple(replace(tuple_to_list(T), Names));
replace(T, _) -> T.

%% port_info values that differ by design (id: documented; memory: the
%% size of a process, not a port).
plain_info({id, N}) when is_integer(N) -> {id, integer};
plain_info({memory, N}) when is_integer(N) -> {memory, integer};
plain_info([H | T]) -> [plain_info(H) | plain_info(T)];
plain_info(T) when is_tuple(T) -> list_to_tuple(plain_info(tuple_to_list(T)));
plain_info(T) -> T.

info(B, P, Item) ->
    case edc_diff:attempt(fun() -> call(B, port_info2, [P, Item]) end) of
        {ok, V} -> V;
        Error -> Error
    end.

call(B, Fun, Args) ->
    edc_diff:call(B, Fun, Args).

%%====================================================================
%% Data
%%====================================================================

%% Port data: iodata, deep and huge; bitstrings (when Bits) and bad
%% elements anywhere, improper tails.
data(Bits) ->
    proper_types:frequency([{8, iolist(Bits)},
                            {3, proper_types:binary()},
                            {bits(Bits, 2), short_bits()},
                            {bits(Bits, 2), long_bits()},
                            {1, huge()},
                            {1, deep()},
                            {2, ?LET({L, T}, {iolist(Bits), tail(Bits)}, L ++ T)},
                            {bits(Bits, 1), ?LET({L, B, R}, {iolist(Bits), long_bits(), iolist(Bits)},
                                                 [L, B | R])},
                            {1, proper_types:elements([foo, 42, 1.0, {"a"}, [foo], [256], [-1]])}]).

bits(true, N) -> N;
bits(false, _) -> 0.

iolist(Bits) ->
    ?SIZED(Size, iolist(Size, Bits)).

iolist(Size, Bits) when Size =< 1 ->
    proper_types:list(leaf(Bits));
iolist(Size, Bits) ->
    proper_types:list(proper_types:frequency([{5, leaf(Bits)},
                                              {1, ?LAZY(iolist(Size div 4, Bits))}])).

leaf(Bits) ->
    proper_types:frequency([{20, proper_types:byte()},
                            {8, proper_types:binary()},
                            {bits(Bits, 2), short_bits()}]).

tail(Bits) ->
    proper_types:frequency([{3, proper_types:binary()},
                            {bits(Bits, 2), short_bits()},
                            {bits(Bits, 1), long_bits()},
                            {1, proper_types:elements([foo, 7])}]).

%% A bitstring shorter than a byte.
short_bits() ->
    ?LET(N, proper_types:integer(1, 7),
         ?LET(V, proper_types:integer(0, (1 bsl N) - 1), <<V:N>>)).

%% Whole bytes and some bits more.
long_bits() ->
    ?LET({Bin, N}, {proper_types:non_empty(proper_types:binary()), proper_types:integer(1, 7)},
         <<Bin/binary, 0:N>>).

huge() ->
    proper_types:elements([binary:copy(<<"x">>, 1 bsl 20),
                           [binary:copy(<<"y">>, 70000), "z", binary:copy(<<"w">>, 100)]]).

deep() ->
    ?LET(N, proper_types:integer(100, 3000), nest(N, [<<"d">>, $e])).

nest(0, Acc) -> Acc;
nest(N, Acc) -> nest(N - 1, [Acc]).

%%====================================================================
%% Port names and options
%%====================================================================

%% `spawn' is generated with the echo driver's name only (another name
%% would start an external program); `spawn_driver' with any name.
port_name() ->
    proper_types:frequency(
      [{3, ?LET({Suffix, Shape}, {proper_types:elements(["", " x", " a b", "  ", " \x{400}", " \x{e4}"]),
                                  safe_shape()},
                {spawn, shaped(Shape, ?ECHO ++ Suffix)})},
       {6, ?LET({Base, Suffix, Shape},
                {proper_types:elements([?ECHO, ?ECHO, "no_such_drv", "", "echo", ?ECHO ++ "x"]),
                 proper_types:elements(["", " x", " \x{400}", " \x{e4}", "\t", "\n", "\tx", "  ",
                                        [0], [0, $x], [16#D800], [16#110000]]),
                 shape()},
                {spawn_driver, shaped(Shape, Base ++ Suffix)})},
       {1, proper_types:elements([{spawn_driver, 42}, {spawn_driver, [x]},
                                  {spawn_driver, ["echo_drv" | x]}, {spawn_driver, ''},
                                  {spawn_driver, [[]]}, {spawn_driver, []},
                                  {spawn_driver}, {spawn_driver, ?ECHO, x}, {spawn_driv, ?ECHO},
                                  {spawn_driver, {?ECHO}}])}]).

%% Shapes that cannot turn the echo driver's name into another command.
safe_shape() ->
    proper_types:elements([string, atom, utf8, deep, binary_in_list]).

%% (A binary command that is not UTF-8: see binary_command_not_utf8.)
shape() ->
    proper_types:elements([string, atom, utf8, deep, binary_in_list]).

shaped(string, Text) -> Text;
shaped(atom, Text) ->
    case lists:all(fun(C) -> C < 16#D800 orelse (C > 16#DFFF andalso C < 16#110000) end, Text) of
        true -> list_to_atom(Text);
        false -> Text
    end;
shaped(utf8, Text) ->
    case unicode:characters_to_binary(Text) of
        Bin when is_binary(Bin) -> Bin;
        _ -> Text
    end;
shaped(deep, Text) ->
    {A, B} = lists:split(length(Text) div 2, Text),
    [[A], [], [[B]]];
shaped(binary_in_list, [C | Text]) ->
    [<<C>>, Text];
shaped(binary_in_list, []) ->
    [<<>>].

%% Mostly options a driver port takes, with one that may be refused.
options() ->
    proper_types:frequency([{3, proper_types:list(good_option())},
                            {6, ?LET({L, O, R}, {proper_types:list(good_option()), option(),
                                                 proper_types:list(good_option())},
                                     L ++ [O | R])},
                            {1, proper_types:list(option())},
                            {1, ?LET({L, T}, {proper_types:list(option()), proper_types:elements([x, {}])},
                                     L ++ T)},
                            {1, proper_types:elements([x, {binary}, <<"binary">>])}]).

good_option() ->
    proper_types:oneof([proper_types:elements([binary, stream, in, out, eof, hide, use_stdio,
                                               overlapped_io, {parallelism, true},
                                               {parallelism, false}, {busy_limits_msgq, {1, 2}},
                                               {cd, "/tmp"}, {env, [{"EDC_A", "1"}]}]),
                        {line, proper_types:elements([1, 3, 80])}]).

option() ->
    proper_types:frequency(
      [{4, proper_types:elements([binary, stream, in, out, eof, hide, use_stdio, nouse_stdio,
                                  stderr_to_stdout, overlapped_io, line, exit_status, foo, {}])},
       {1, {packet, proper_types:elements([1, 2, 4, 0, 3, x, -1, 1 bsl 64])}},
       {1, {line, proper_types:elements([1, 2, 80, 65536, 0, -1, x, 1 bsl 59, 1 bsl 64])}},
       {2, {cd, proper_types:elements([foo, '', "/tmp", <<"/tmp">>, ["/t", "mp"], [<<"/tmp">>], [],
                                       <<>>, 42, "\x{400}", [0], "a\0b", <<"a", 0>>, [16#D800],
                                       [-1], [[]], 'é', 'a\0b', '\x{400}', ["/tmp" | x],
                                       {"/tmp"}])}},
       {2, {env, env()}},
       {1, {args, proper_types:elements([[], ["a"], x])}},
       {1, {arg0, proper_types:elements(["x", x])}},
       {1, {parallelism, proper_types:elements([true, false, x])}},
       {1, {busy_limits_port, limits()}},
       {1, {busy_limits_msgq, limits()}},
       {1, proper_types:elements([{exit_status, true}, {x, y}, {cd}, {env, [], x}])}]).

env() ->
    proper_types:frequency([{4, proper_types:list({env_key(), env_value()})},
                            {1, proper_types:elements([x, [x], [{"A", "B"} | x], [{"A", "B", "C"}]])}]).

env_key() ->
    proper_types:elements(["EDC_A", "", "A=", "=A", "A=B", [65, 0], [1024], ["E", "B"], <<"A">>, 'A',
                           [[]], [<<"A">>], [16#D800]]).

env_value() ->
    proper_types:elements(["B", false, [], 'B', <<"B">>, [66, 0], [1024], "B=C", [[], "x"],
                           [16#D800], [<<"B">>], true]).

limits() ->
    proper_types:elements([disabled, {1, 2}, {0, 2}, {2, 1}, {1, 0}, {1, (1 bsl 64) - 2},
                           {1, (1 bsl 64) - 1}, {(1 bsl 64) - 2, 5}, {-1, 2}, x, {1, 2, 3},
                           {1.0, 2}, {}]).

%%====================================================================
%% load_driver, unload_driver
%%====================================================================

load_driver_args(_Config) ->
    check(?FORALL({Dir, Name}, {ddll_dir(), ddll_name()},
                  same({Dir, Name},
                       fun(B) ->
                               R = plain_open_error(
                                     edc_diff:attempt(fun() -> call(B, load_driver, [dir(Dir), Name]) end)),
                               %% Drop the reference again.
                               {R, case R of
                                       {ok, ok} -> call(B, unload_driver, [Name]);
                                       _ -> none
                                   end}
                       end))).

unload_driver_args(_Config) ->
    check(?FORALL({Load, Name}, {proper_types:boolean(), ddll_name()},
                  same({Load, Name},
                       fun(B) ->
                               Loaded = Load andalso
                                   edc_diff:attempt(fun() ->
                                                            call(B, load_driver, [edc_diff:private_dir(), Name])
                                                    end) =:= {ok, ok},
                               {Loaded,
                                edc_diff:attempt(fun() -> call(B, unload_driver, [Name]) end)}
                       end))).

%% The reasons differ by design: erl_ddll's numeric id, our linker text.
plain_open_error({ok, {error, {open_error, _}}}) -> {ok, {error, open_error}};
plain_open_error(R) -> R.

ddll_dir() ->
    proper_types:elements([private, private_binary, private_deep, private_slash, private_atom,
                           private_binary_in_list, private_nul, build, "/nonexistent_edc", "",
                           "/tmp/\x{400}", 42, {private}]).

dir(private) -> edc_diff:private_dir();
dir(private_binary) -> list_to_binary(edc_diff:private_dir());
dir(private_deep) -> {A, B} = lists:split(5, edc_diff:private_dir()), [A, [[B]]];
dir(private_slash) -> edc_diff:private_dir() ++ "/";
dir(private_atom) -> list_to_atom(edc_diff:private_dir());
dir(private_binary_in_list) -> [list_to_binary(edc_diff:private_dir())];
dir(private_nul) -> edc_diff:private_dir() ++ [0];
dir(build) -> edc_diff:drivers_dir();
dir({private}) -> {edc_diff:private_dir()};
dir(Other) -> Other.

ddll_name() ->
    proper_types:elements([?ECHO, echo_drv, <<"echo_drv">>, ["echo_", [<<"drv">>]], ?ECHO ++ [0],
                           <<"echo_drv", 0, "zz">>, "", '', <<>>, [[]], "x/echo_drv", "/echo_drv",
                           "echo_drv.so", "no_such_drv", no_such_drv, "tcp_inet", tcp_inet,
                           <<"ram_file_drv">>, "efile", "echo\x{e4}", "echo\x{400}", 'echo\x{400}',
                           'echo_drv\0', 'echo_drv\0x',
                           42, [42 | x], {x}, [foo], 1.5]).

%%====================================================================
%% format_error
%%====================================================================

%% Every reason erl_ddll has (and terms that are none) formats as
%% erl_ddll:format_error/1 does, badarg included.
format_error_erl_ddll(_Config) ->
    check(?FORALL(Reason, ddll_reason(),
                  begin
                      Native = edc_diff:attempt(fun() -> erl_ddll:format_error(Reason) end),
                      Compat = edc_diff:attempt(fun() -> erl_driver_compat:format_error(Reason) end),
                      ?WHENFAIL(ct:pal("~p:~n native: ~p~n compat: ~p", [Reason, Native, Compat]),
                                Native =:= Compat)
                  end)).

ddll_reason() ->
    proper_types:frequency(
      [{4, proper_types:elements([linked_in_driver, inconsistent, permanent, not_pending,
                                  pending_process, pending_reload, not_loaded,
                                  not_loaded_by_this_process, no_driver_init, driver_init_failed,
                                  driver_incorrect_version, bad_driver_name, load_cancelled,
                                  already_loaded, not_supported, unload_in_progress])},
       {2, {open_error, proper_types:integer()}},
       {1, {open_error, proper_types:elements([x, 1.5, 1 bsl 70, {}])}},
       {1, {not_elf, proper_types:elements([42, foo, [foo]])}},
       {1, {unsupported_functions, proper_types:elements([foo, [foo], [42]])}},
       {1, proper_types:any()}]).

%% Our own reasons have texts; they are not erl_ddll's.
format_error_own(_Config) ->
    Own = [{open_error, "x.so: cannot open shared object file"}, {not_elf, "bad magic"},
           {unsupported_functions, ["driver_async", "driver_select"]},
           {copy_error, "read-only"}, {bind_error, "no GOT"}, unloading],
    [{error, badarg} = edc_diff:attempt(fun() -> erl_ddll:format_error(R) end) || R <- Own],
    Texts = [erl_driver_compat:format_error(R) || R <- Own],
    true = lists:all(fun(T) -> io_lib:printable_unicode_list(T) andalso T =/= [] end, Texts),
    "The driver uses erl_driver functions that erl_driver_compat does not implement yet: "
        "driver_async, driver_select" = lists:nth(3, Texts).

%%====================================================================
%% README's known differences
%%====================================================================

%% A pseudo-port is a process: erlang:is_port/1 is false for it.
erlang_is_port_false(_Config) ->
    Scenario = fun(B) -> erlang:is_port(call(B, open_port, [{spawn, ?ECHO}, []])) end,
    true = edc_diff:run(native, Scenario),
    false = edc_diff:run(compat, Scenario).

%% {command, Bits} with fewer bits than a byte: natively nothing reaches
%% an `output' driver; the port process cannot tell and sends badsig.
command_message_short_bits(_Config) ->
    Scenario = fun(B) ->
                       process_flag(trap_exit, true),
                       P = call(B, open_port, [{spawn, ?ECHO}, [binary]]),
                       P ! {self(), {command, <<1:1>>}},
                       edc_diff:recv(2000)
               end,
    {{port, 1}, {data, <<>>}} = edc_diff:run(native, Scenario),
    {'EXIT', {port, 1}, badsig} = edc_diff:run(compat, Scenario),
    ok.

%% A bitstring matched at an odd bit offset, as the whole port_control
%% data: natively badarg (only one built from offset 0 is cut to whole
%% bytes); Erlang cannot see the offset, so compat cuts it too.
control_unaligned_bits(_Config) ->
    <<_:3, Odd/bits>> = <<"xhello world">>,
    Scenario = fun(B) ->
                       P = call(B, open_port, [{spawn, ?ECHO}, [binary]]),
                       edc_diff:attempt(fun() -> call(B, port_control, [P, 0, Odd]) end)
               end,
    {error, badarg} = edc_diff:run(native, Scenario),
    {ok, Bytes} = edc_diff:run(compat, Scenario),
    11 = byte_size(Bytes).

%% A binary command is given to start() byte for byte, also when it is not
%% UTF-8 (the port's name shows those bytes).
binary_command_not_utf8(_Config) ->
    Scenario = fun(B) ->
                       [case edc_diff:attempt(fun() -> call(B, open_port, [{spawn_driver, N}, []]) end) of
                            {ok, P} -> info(B, P, name);
                            Error -> Error
                        end || N <- [<<"echo_drv ", 255>>, <<"echo_drv ", 228>>]]
               end,
    edc_diff:expect("binary command, not UTF-8", Scenario,
                    [{name, "echo_drv " ++ [255]}, {name, "echo_drv " ++ [228]}]).

%% port_info of a pid whose process has ended: natively badarg (a pid is
%% no port); a closed pseudo-port's pid is such a pid, and it must give
%% undefined as a closed port does, so every ended pid gives undefined.
port_info_ended_pid(_Config) ->
    Scenario = fun(B) ->
                       P = call(B, open_port, [{spawn, ?ECHO}, []]),
                       true = call(B, port_close, [P]),
                       Dead = dead(),
                       {info(B, P, name), info(B, Dead, name),
                        edc_diff:attempt(fun() -> call(B, port_info, [Dead]) end)}
               end,
    {undefined, {error, badarg}, {error, badarg}} = edc_diff:run(native, Scenario),
    {undefined, undefined, {ok, undefined}} = edc_diff:run(compat, Scenario).

%% port_info(P, id) of a pseudo-port is a sequence number: the next port
%% opened gets the next number.
port_id_sequence(_Config) ->
    {{id, A}, {id, B}} =
        edc_diff:run(compat, fun(B) ->
                                     P = call(B, open_port, [{spawn, ?ECHO}, []]),
                                     Q = call(B, open_port, [{spawn, ?ECHO}, []]),
                                     {info(B, P, id), info(B, Q, id)}
                             end),
    B = A + 1.

%% erl_driver_compat:is_port/1 is false for a closed pseudo-port (a pid),
%% where erlang:is_port/1 is a type test, true for a closed port.
closed_is_port_false(_Config) ->
    Scenario = fun(B) ->
                       P = call(B, open_port, [{spawn, ?ECHO}, []]),
                       true = call(B, port_close, [P]),
                       call(B, is_port, [P])
               end,
    true = edc_diff:run(native, Scenario),
    false = edc_diff:run(compat, Scenario).

%%====================================================================
%% Helpers
%%====================================================================

%% One generated case: native and compat give the same result.
same(Case, Scenario) ->
    Native = edc_diff:run(native, Scenario),
    Compat = edc_diff:run(compat, Scenario),
    ?WHENFAIL(ct:pal("case: ~p~n native: ~p~n compat: ~p", [Case, Native, Compat]),
              Native =:= Compat).

check(Property) ->
    case proper:quickcheck(Property, [{numtests, ?CASES}, {max_shrinks, 40}, {to_file, user}]) of
        true -> ok;
        Failed -> ct:fail({property_failed, Failed, proper:counterexample()})
    end.
