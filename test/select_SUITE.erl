%% driver_select (lc_select_drv): ERL_DRV_READ, ERL_DRV_WRITE, ERL_DRV_USE
%% and ERL_DRV_USE_NO_CALLBACK; ready_input, ready_output and stop_select;
%% pipes, socketpairs and TCP/UDP sockets on loopback.
%%
%% Every case is differential: the same scenario runs against the native
%% port and the compat pseudo-port; the native result must be the expected
%% value (measured on OTP 25) and the compat result equal to it.
%%
%% stop_select gets no port: the driver logs its calls (tag of the port,
%% descriptor a or b, whether it ran inside a driver_select call) and the
%% log is read through a second port of the same driver (op 7). On this
%% machine (Linux, epoll) native stop_select always runs inside
%% driver_select, also from the driver's stop. Nothing waits with a sleep:
%% each readiness is awaited as the message the driver outputs, and an
%% event that must not happen is shown by the order of messages or by the
%% driver's count of ready_input calls.
-module(select_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1,
         init_per_group/2,
         end_per_group/2]).
-export([ready_input/1,
         level_triggered/1,
         deselect_in_ready_input/1,
         close_port_in_ready_input/1,
         change_event_set_in_ready_input/1,
         change_event_set_while_pending/1,
         ready_output/1,
         ready_both_ways/1,
         stream/1,
         bad_descriptors/1,
         tcp_echo/1,
         udp_echo/1,
         bad_select_message/1]).
-export([use_off_calls_stop_select/1,
         use_off_unknown_descriptor/1,
         use_no_callback/1,
         used_descriptor_stays_known/1,
         stop_select_in_ready_input/1,
         close_with_deselect_in_stop/1,
         close_without_deselect/1,
         failure_with_deselect_in_stop/1,
         unload_with_deselect_in_stop/1]).

-define(DRV, "lc_select_drv").

-define(OP_PIPE, 1).
-define(OP_SOCKETPAIR, 2).
-define(OP_SELECT, 3).
-define(OP_WRITE, 4).
-define(OP_INPUT_MODE, 5).
-define(OP_STOP_MODE, 6).
-define(OP_LOG, 7).
-define(OP_TCP, 8).
-define(OP_UDP, 9).
-define(OP_CLOSE, 10).
-define(OP_PENDING, 11).
-define(OP_CALLS, 12).
-define(OP_SELECT_RAW, 13).

%% erl_driver.h
-define(READ, 1).
-define(WRITE, 2).
-define(USE, 4).
-define(USE_NO_CALLBACK, 12).

-define(A, 0).
-define(B, 1).

all() ->
    [{group, events},
     {group, stop_select},
     %% Last: it drops the suite's hold on the driver.
     {group, unload}].

groups() ->
    [{events, [], [ready_input,
                   level_triggered,
                   deselect_in_ready_input,
                   close_port_in_ready_input,
                   change_event_set_in_ready_input,
                   change_event_set_while_pending,
                   ready_output,
                   ready_both_ways,
                   stream,
                   bad_descriptors,
                   tcp_echo,
                   udp_echo,
                   bad_select_message]},
     {stop_select, [], [use_off_calls_stop_select,
                        use_off_unknown_descriptor,
                        use_no_callback,
                        used_descriptor_stays_known,
                        stop_select_in_ready_input,
                        close_with_deselect_in_stop,
                        close_without_deselect,
                        failure_with_deselect_in_stop]},
     {unload, [], [unload_with_deselect_in_stop]}].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%% The unload group needs the driver unloaded: the holder's references go
%% with it (asynchronously: no message tells when a compat driver is
%% unloaded, so this polls, 5 s at most, as ddll_SUITE does).
init_per_group(unload, Config) ->
    Holder = ?config(holder, Config),
    edc_diff:stop_holder(Holder),
    edc_diff:until_down(Holder),
    Unloaded = fun() ->
                       {ok, N} = erl_ddll:loaded_drivers(),
                       {ok, C} = erl_driver_compat:loaded_drivers(),
                       not lists:member(?DRV, N ++ C)
               end,
    true = wait_until(Unloaded, 5000),
    Config;
init_per_group(_, Config) ->
    Config.

end_per_group(_, _Config) ->
    ok.

wait_until(Fun, Left) ->
    case Fun() of
        true -> true;
        false when Left =< 0 -> false;
        false ->
            timer:sleep(20),
            wait_until(Fun, Left - 20)
    end.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(B, Tag) ->
    edc_diff:call(B, open_port, [{spawn, ?DRV ++ " " ++ Tag}, []]).

ctl(B, P, Op, Data) ->
    edc_diff:parse_term(edc_diff:call(B, port_control, [P, Op, Data])).

select(B, P, Which, Mode, On) ->
    ctl(B, P, ?OP_SELECT, io_lib:format("~b ~b ~b", [Which, Mode, On])).

write(B, P, Which, Text) ->
    ctl(B, P, ?OP_WRITE, [integer_to_list(Which), $\s, Text]).

input_mode(B, P, Mode) ->
    ok = ctl(B, P, ?OP_INPUT_MODE, integer_to_list(Mode)).

input_mode(B, P, Mode, K) ->
    ok = ctl(B, P, ?OP_INPUT_MODE, io_lib:format("~b ~b", [Mode, K])).

stop_mode(B, P, Mode) ->
    ok = ctl(B, P, ?OP_STOP_MODE, integer_to_list(Mode)).

%% A port to read (and clear) the driver's stop_select log with; opened
%% first, so that it is {port, 1} and the log starts empty.
log_port(B) ->
    L = open(B, "log"),
    _ = ctl(B, L, ?OP_LOG, ""),
    L.

stop_log(B, L) ->
    ctl(B, L, ?OP_LOG, "").

%% A port with a pipe (a: read end, b: write end).
pipe_port(B, Tag) ->
    P = open(B, Tag),
    ok = ctl(B, P, ?OP_PIPE, ""),
    P.

%% The next message from port P, its data parsed.
next(P) ->
    receive
        {P, {data, Data}} -> edc_diff:parse_term(Data);
        {'EXIT', P, _} = Exit -> Exit
    after 10000 ->
            {no_message_from, P}
    end.

%%--------------------------------------------------------------------
%% Readiness
%%--------------------------------------------------------------------

%% A pipe selected for ERL_DRV_READ: writing to it calls ready_input.
ready_input(_Config) ->
    edc_diff:expect("ready_input",
                    fun(B) ->
                            P = pipe_port(B, "r"),
                            Sel = select(B, P, ?A, ?READ bor ?USE, 1),
                            N = write(B, P, ?B, "hello"),
                            [Sel, N, next(P)]
                    end,
                    [0, 5, {in, a, "hello"}]).

%% Level triggered: a driver that does not read is called again while the
%% data is there (three times here, then it reads and deselects).
level_triggered(_Config) ->
    edc_diff:expect("level_triggered",
                    fun(B) ->
                            P = pipe_port(B, "lt"),
                            input_mode(B, P, 1, 3),
                            0 = select(B, P, ?A, ?READ, 1),
                            1 = write(B, P, ?B, "z"),
                            Msgs = [next(P), next(P), next(P)],
                            %% Written after the deselect: no call.
                            1 = write(B, P, ?B, "y"),
                            %% The sentinel: b's ready_output comes after
                            %% anything a could still cause.
                            0 = select(B, P, ?B, ?WRITE, 1),
                            Msgs ++ [next(P), ctl(B, P, ?OP_CALLS, "")]
                    end,
                    [{noread, a, 1}, {noread, a, 2}, {noread, a, 3},
                     {out, b}, 3]).

%% ready_input deselects without reading: it is not called again (the
%% data is still there, so a selection that stayed armed would call it at
%% once); selecting again calls it again.
deselect_in_ready_input(_Config) ->
    edc_diff:expect("deselect_in_ready_input",
                    fun(B) ->
                            P = pipe_port(B, "ds"),
                            input_mode(B, P, 7),
                            0 = select(B, P, ?A, ?READ, 1),
                            1 = write(B, P, ?B, "a"),
                            First = next(P),
                            0 = select(B, P, ?B, ?WRITE, 1),
                            Out = next(P),
                            Calls = ctl(B, P, ?OP_CALLS, ""),
                            0 = select(B, P, ?A, ?READ, 1),
                            [First, Out, Calls, next(P), ctl(B, P, ?OP_CALLS, "")]
                    end,
                    [{unread, a, 1}, {out, b}, 1, {unread, a, 2}, 2]).

%% ready_input fails the port: the output before it arrives, then the
%% exit; stop deselects with ERL_DRV_USE, so stop_select runs for both
%% descriptors (inside driver_select).
close_port_in_ready_input(_Config) ->
    edc_diff:expect("close_port_in_ready_input",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            L = log_port(B),
                            P = pipe_port(B, "cl"),
                            input_mode(B, P, 3),
                            stop_mode(B, P, 1),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            1 = write(B, P, ?B, "q"),
                            M1 = next(P),
                            M2 = next(P),
                            [M1, M2, stop_log(B, L),
                             edc_diff:call(B, port_info, [P])]
                    end,
                    [{in, a, "q"}, {'EXIT', {port, 2}, closed_in_input},
                     [{'cl', a, true}, {'cl', b, true}], undefined]).

%% ready_input changes the event set: it deselects input and selects
%% output on the same descriptor (a socketpair end), whose ready_output
%% follows.
change_event_set_in_ready_input(_Config) ->
    edc_diff:expect("change_event_set_in_ready_input",
                    fun(B) ->
                            P = open(B, "sw"),
                            ok = ctl(B, P, ?OP_SOCKETPAIR, ""),
                            input_mode(B, P, 5),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            1 = write(B, P, ?B, "s"),
                            [next(P), next(P), ctl(B, P, ?OP_CALLS, "")]
                    end,
                    [{in, a, "s"}, {out, a}, 1]).

%% The event set changes while an event is pending: a becomes readable,
%% then (in the same callback, which lets the VM see the event first) its
%% input is deselected and b's output selected. ready_input is not called
%% for the pending event (natively its task is aborted; here the message
%% the VM already sent is recognised as stale); selecting input again
%% calls it once.
change_event_set_while_pending(_Config) ->
    edc_diff:expect("change_event_set_while_pending",
                    fun(B) ->
                            P = pipe_port(B, "pe"),
                            %% ERL_DRV_USE: the descriptor stays known after
                            %% its input is deselected.
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            Readable = ctl(B, P, ?OP_PENDING, ""),
                            Out = next(P),
                            0 = select(B, P, ?A, ?READ, 1),
                            In = next(P),
                            [Readable, Out, In, ctl(B, P, ?OP_CALLS, "")]
                    end,
                    [true, {out, b}, {in, a, "x"}, 1]).

%% ready_output for a writable descriptor (the write end of a pipe); it
%% deselects, so it is called once.
ready_output(_Config) ->
    edc_diff:expect("ready_output",
                    fun(B) ->
                            P = pipe_port(B, "w"),
                            Sel = select(B, P, ?B, ?WRITE bor ?USE, 1),
                            Out = next(P),
                            0 = select(B, P, ?A, ?READ, 1),
                            1 = write(B, P, ?B, "n"),
                            [Sel, Out, next(P)]
                    end,
                    [0, {out, b}, {in, a, "n"}]).

%% A descriptor ready both ways at once (a socketpair end with data to
%% read, selected for input and output in one call): ready_output runs
%% first, then ready_input.
ready_both_ways(_Config) ->
    edc_diff:expect("ready_both_ways",
                    fun(B) ->
                            P = open(B, "bw"),
                            ok = ctl(B, P, ?OP_SOCKETPAIR, ""),
                            1 = write(B, P, ?B, "x"),
                            0 = select(B, P, ?A, ?READ bor ?WRITE, 1),
                            [next(P), next(P)]
                    end,
                    [{out, a}, {in, a, "x"}]).

%% 200 writes while ready_input runs: every byte arrives once, in order
%% (how the bytes are cut into reads is the scheduler's business).
stream(_Config) ->
    Chunks = [io_lib:format("~3..0b", [N]) || N <- lists:seq(1, 200)],
    Expected = lists:flatten(Chunks),
    edc_diff:expect("stream",
                    fun(B) ->
                            P = pipe_port(B, "st"),
                            0 = select(B, P, ?A, ?READ, 1),
                            [3 = write(B, P, ?B, C) || C <- Chunks],
                            collect(P, length(Expected), [])
                    end,
                    Expected).

collect(_P, 0, Acc) ->
    lists:append(lists:reverse(Acc));
collect(P, Left, Acc) when Left > 0 ->
    case next(P) of
        {in, a, Data} -> collect(P, Left - length(Data), [Data | Acc]);
        Other -> {unexpected, Other, lists:append(lists:reverse(Acc))}
    end.

%% A negative descriptor, or one beyond what the VM can poll (its limit of
%% open files): -1, for selecting and deselecting alike, and nothing
%% selected (the second is also logged).
bad_descriptors(_Config) ->
    edc_diff:expect("bad_descriptors",
                    fun(B) ->
                            P = open(B, "bd"),
                            Raw = fun(Args) -> ctl(B, P, ?OP_SELECT_RAW, Args) end,
                            [Raw("-1 1 1"), Raw("-1 4 0"), Raw("1073741824 1 1"),
                             Raw("1073741824 1 0"), ctl(B, P, ?OP_CALLS, "")]
                    end,
                    [-1, -1, -1, -1, 0]).

%% A TCP client socket: connect completes (ready_output), then what the
%% peer sends is echoed (ready_input); the peer's close reads as eof.
tcp_echo(_Config) ->
    edc_diff:expect("tcp_echo",
                    fun(B) ->
                            L = log_port(B),
                            {ok, LSock} = gen_tcp:listen(0, [binary, {active, false},
                                                             {ip, loopback}]),
                            {ok, PortNo} = inet:port(LSock),
                            P = open(B, "tcp"),
                            ok = ctl(B, P, ?OP_TCP, integer_to_list(PortNo)),
                            {ok, S} = gen_tcp:accept(LSock, 10000),
                            Connected = next(P),
                            ok = gen_tcp:send(S, <<"hello">>),
                            Echo = next(P),
                            Back = gen_tcp:recv(S, 5, 10000),
                            ok = gen_tcp:close(S),
                            Eof = next(P),
                            stop_mode(B, P, 1),
                            true = edc_diff:call(B, port_close, [P]),
                            ok = gen_tcp:close(LSock),
                            [Connected, Echo, Back, Eof, stop_log(B, L)]
                    end,
                    [{connected, 0}, {echo, a, "hello"}, {ok, <<"hello">>},
                     {echo, a, eof}, [{tcp, a, true}]]).

%% A UDP socket: a datagram to it is echoed back to its sender.
udp_echo(_Config) ->
    edc_diff:expect("udp_echo",
                    fun(B) ->
                            P = open(B, "udp"),
                            PortNo = ctl(B, P, ?OP_UDP, ""),
                            {ok, U} = gen_udp:open(0, [binary, {active, false},
                                                       {ip, loopback}]),
                            ok = gen_udp:send(U, {127, 0, 0, 1}, PortNo, <<"ping">>),
                            Echo = next(P),
                            {ok, {_, From, Data}} = gen_udp:recv(U, 0, 10000),
                            ok = gen_udp:close(U),
                            [Echo, From =:= PortNo, Data]
                    end,
                    [{echo, a, "ping"}, true, <<"ping">>]).

%% Something that looks like a select message but is not one of the
%% port's: a port answers a message it does not understand with the exit
%% signal badsig to its owner.
bad_select_message(_Config) ->
    edc_diff:expect("bad_select_message",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            P = open(B, "bad"),
                            P ! {select, make_ref(), 1, ready_input},
                            Why1 = receive {'EXIT', P, W1} -> W1 after 10000 -> none end,
                            P ! {select, make_ref(), 1 bsl 70, ready_output},
                            Why2 = receive {'EXIT', P, W2} -> W2 after 10000 -> none end,
                            [Why1, Why2, edc_diff:call(B, port_info, [P]) =/= undefined]
                    end,
                    [badsig, badsig, true]).

%%--------------------------------------------------------------------
%% stop_select
%%--------------------------------------------------------------------

%% driver_select(ERL_DRV_USE, 0) deselects and calls stop_select at once
%% (inside driver_select).
use_off_calls_stop_select(_Config) ->
    edc_diff:expect("use_off_calls_stop_select",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "u"),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            Before = stop_log(B, L),
                            Ret = select(B, P, ?A, ?USE, 0),
                            [Before, Ret, stop_log(B, L)]
                    end,
                    [[], 0, [{u, a, true}]]).

%% ... also for a descriptor that was never selected.
use_off_unknown_descriptor(_Config) ->
    edc_diff:expect("use_off_unknown_descriptor",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "k"),
                            Ret = select(B, P, ?B, ?USE, 0),
                            [Ret, stop_log(B, L)]
                    end,
                    [0, [{k, b, true}]]).

%% ERL_DRV_USE_NO_CALLBACK deselects without stop_select (the driver then
%% closes the descriptor itself).
use_no_callback(_Config) ->
    edc_diff:expect("use_no_callback",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "n"),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            Ret = select(B, P, ?A, ?READ bor ?WRITE bor ?USE_NO_CALLBACK, 0),
                            Log = stop_log(B, L),
                            ok = ctl(B, P, ?OP_CLOSE, "0"),
                            %% Deselected: nothing to read reaches the port.
                            0 = select(B, P, ?B, ?WRITE, 1),
                            [Ret, Log, next(P), ctl(B, P, ?OP_CALLS, "")]
                    end,
                    [0, [], {out, b}, 0]).

%% A descriptor selected with ERL_DRV_USE stays known when its last mode
%% is deselected without ERL_DRV_USE: no stop_select then, and a later
%% ERL_DRV_USE deselect calls it.
used_descriptor_stays_known(_Config) ->
    edc_diff:expect("used_descriptor_stays_known",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "kn"),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            0 = select(B, P, ?A, ?READ, 0),
                            Log1 = stop_log(B, L),
                            0 = select(B, P, ?A, ?USE, 0),
                            [Log1, stop_log(B, L)]
                    end,
                    [[], [{kn, a, true}]]).

%% ready_input deselects with ERL_DRV_USE: stop_select runs inside it.
stop_select_in_ready_input(_Config) ->
    edc_diff:expect("stop_select_in_ready_input",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "si"),
                            input_mode(B, P, 6),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            1 = write(B, P, ?B, "k"),
                            [next(P), stop_log(B, L)]
                    end,
                    [{in, a, "k"}, [{si, a, true}]]).

%% port_close: stop deselects with ERL_DRV_USE, stop_select runs for each
%% descriptor once, before port_close returns.
close_with_deselect_in_stop(_Config) ->
    edc_diff:expect("close_with_deselect_in_stop",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "cs"),
                            stop_mode(B, P, 1),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            0 = select(B, P, ?B, ?WRITE bor ?USE, 1),
                            {out, b} = next(P),
                            true = edc_diff:call(B, port_close, [P]),
                            stop_log(B, L)
                    end,
                    [{cs, a, true}, {cs, b, true}]).

%% A port that closes with a descriptor still selected (stop does not
%% deselect): stop_select is not called for it.
close_without_deselect(_Config) ->
    edc_diff:expect("close_without_deselect",
                    fun(B) ->
                            L = log_port(B),
                            P = pipe_port(B, "cn"),
                            0 = select(B, P, ?A, ?READ bor ?USE, 1),
                            true = edc_diff:call(B, port_close, [P]),
                            stop_log(B, L)
                    end,
                    []).

%% A port that fails (from port_control: the owner dies) runs stop, which
%% deselects: stop_select once per descriptor.
failure_with_deselect_in_stop(_Config) ->
    edc_diff:expect("failure_with_deselect_in_stop",
                    fun(B) ->
                            L = log_port(B),
                            Self = self(),
                            Owner = spawn(fun() ->
                                                  put(edc_ports, []),
                                                  P = pipe_port(B, "fo"),
                                                  stop_mode(B, P, 1),
                                                  0 = select(B, P, ?A, ?READ bor ?USE, 1),
                                                  Self ! {self(), P},
                                                  exit(gone)
                                          end),
                            P = receive {Owner, Port} -> Port end,
                            edc_diff:track(P),
                            Ref = monitor_port(B, P),
                            [wait_closed(B, P, Ref), stop_log(B, L)]
                    end,
                    [closed, [{fo, a, true}, {fo, b, true}]]).

%% Natively a port can be monitored; a pseudo-port is a process.
monitor_port(#{kind := native}, P) -> erlang:monitor(port, P);
monitor_port(#{kind := compat}, P) -> erlang:monitor(process, P).

wait_closed(_B, _P, Ref) ->
    receive {'DOWN', Ref, _, _, _} -> closed after 10000 -> timeout end.

%%--------------------------------------------------------------------
%% Unload
%%--------------------------------------------------------------------

%% Unloading the driver kills its ports (driver_unloaded); their stop
%% deselects with ERL_DRV_USE, so stop_select closes the TCP socket: the
%% peer sees the connection closed.
unload_with_deselect_in_stop(_Config) ->
    edc_diff:expect("unload_with_deselect_in_stop",
                    fun(#{load_driver := Load, unload_driver := Unload} = B) ->
                            process_flag(trap_exit, true),
                            ok = Load(edc_diff:private_dir(), ?DRV),
                            {ok, LSock} = gen_tcp:listen(0, [binary, {active, false},
                                                             {ip, loopback}]),
                            {ok, PortNo} = inet:port(LSock),
                            P = open(B, "ul"),
                            ok = ctl(B, P, ?OP_TCP, integer_to_list(PortNo)),
                            {ok, S} = gen_tcp:accept(LSock, 10000),
                            Connected = next(P),
                            stop_mode(B, P, 1),
                            Unloaded = Unload(?DRV),
                            Exit = next(P),
                            Peer = gen_tcp:recv(S, 0, 10000),
                            ok = gen_tcp:close(LSock),
                            [Connected, Unloaded, Exit, Peer]
                    end,
                    [{connected, 0}, ok, {'EXIT', {port, 1}, driver_unloaded},
                     {error, closed}]).
