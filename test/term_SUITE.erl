%% Term output (lc_term_drv): driver_output_term, driver_send_term,
%% erl_drv_output_term and erl_drv_send_term with term specifications of
%% every type (ERL_DRV_NIL ... ERL_DRV_MAP), malformed specifications,
%% receivers that are dead or not pids, closed ports, output from stop and
%% after driver_failure, and sends from the driver's own threads while the
%% port is used and closed. Random specifications, valid and not, are
%% generated with PropEr and run natively and through us.
%%
%% Every case is differential: the native result must be the expected
%% value (measured on OTP 25) and the compat result equal to it. Messages
%% the driver sends to the caller are in its mailbox when port_control
%% returns (natively the driver runs in the caller's scheduler; through us
%% in the caller), so they are collected without waiting.
-module(term_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([catalogue_every_type/1,
         catalogue_errors/1,
         serialized_spec_roundtrip/1,
         null_and_negative_lengths/1,
         port_must_be_a_port/1,
         native_crashes_are_errors/1]).
-export([dead_receiver/1,
         port_as_receiver/1,
         atom_as_receiver/1,
         other_receiver/1,
         closed_port/1,
         order_with_other_output/1,
         after_failure/1,
         from_stop/1]).
-export([threads_joined/1,
         threads_while_used_and_closed/1,
         threads_outlive_port/1,
         threads_receiver_dies/1,
         threads_after_connect/1]).
-export([generated_specs/1]).

-define(DRV, "lc_term_drv").

-define(OP_SPEC, 1).
-define(OP_CATALOGUE, 2).
-define(OP_REMEMBER_CALLER, 3).
-define(OP_REMEMBER_PORT, 4).
-define(OP_THREADS, 5).
-define(OP_JOIN, 6).
-define(OP_LAST, 7).
-define(OP_FAIL_THEN, 8).
-define(OP_ON_STOP, 9).
-define(OP_REMEMBER_ATOM, 10).

%% Func: which of the four functions the driver calls.
-define(OUTPUT, 0).      % driver_output_term
-define(SEND, 1).        % driver_send_term (to the caller)
-define(DRV_OUTPUT, 2).  % erl_drv_output_term
-define(DRV_SEND, 3).    % erl_drv_send_term (to the caller)
-define(FUNCS, [?OUTPUT, ?SEND, ?DRV_OUTPUT, ?DRV_SEND]).

%% ERL_DRV_* tags.
-define(NIL, 1).
-define(ATOM, 2).
-define(INT, 3).
-define(PORT, 4).
-define(BINARY, 5).
-define(STRING, 6).
-define(TUPLE, 7).
-define(LIST, 8).
-define(STRING_CONS, 9).
-define(PID, 10).
-define(FLOAT, 11).
-define(EXT2TERM, 12).
-define(UINT, 13).
-define(BUF2BINARY, 14).
-define(INT64, 15).
-define(UINT64, 16).
-define(MAP, 17).

all() ->
    [{group, specs}, {group, delivery}, {group, threads}, {group, generated}].

groups() ->
    [{specs, [], [catalogue_every_type,
                  catalogue_errors,
                  serialized_spec_roundtrip,
                  null_and_negative_lengths,
                  port_must_be_a_port,
                  native_crashes_are_errors]},
     {delivery, [], [dead_receiver,
                     port_as_receiver,
                     atom_as_receiver,
                     other_receiver,
                     closed_port,
                     order_with_other_output,
                     after_failure,
                     from_stop]},
     {threads, [], [threads_joined,
                    threads_while_used_and_closed,
                    threads_outlive_port,
                    threads_receiver_dies,
                    threads_after_connect]},
     {generated, [], [generated_specs]}].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(B) ->
    edc_diff:call(B, open_port, [{spawn, ?DRV}, []]).

control(B, P, Op, Data) ->
    edc_diff:call(B, port_control, [P, Op, Data]).

%% The messages already in the mailbox.
mailbox() ->
    receive M -> [M | mailbox()] after 0 -> [] end.

%% One wire item per spec word (see lc_term_drv.c, spec_from_wire); {t, Tag}
%% is a tag word, {w, Word} any other word.
item({t, Tag}) -> <<$w, Tag:64>>;
item({w, I}) -> <<$w, I:64>>;
item({atom, N}) -> <<$a, (byte_size(N)), N/binary>>;
item(port) -> <<$p>>;
item(connected) -> <<$c>>;
item(caller) -> <<$C>>;
item({slot, S}) -> <<$S, S>>;
item({str, B}) -> <<$s, (byte_size(B)):32, B/binary>>;
item({bin, B}) -> <<$b, (byte_size(B)):32, B/binary>>;
item({i64, I}) -> <<$i, I:64>>;
item({f64, F}) -> <<$f, F:64/float>>;
item({fbits, Bits}) -> <<$f, Bits:64>>;
item(fake) -> <<$x>>.

%% Header: Func, Receiver (0 caller, 1 connected, 2+S slot S), PortSel
%% (0 this port, 1+S slot S), LenMode (0 the words, 1 -1, 2 NULL/0,
%% 3 wrapped in driver_output "<" ... ">").
wire(Func, Recv, PortSel, LenMode, Items) ->
    iolist_to_binary([Func, Recv, PortSel, LenMode | [item(I) || I <- Items]]).

%% Runs a spec with Func on P; {ReturnCode, Messages}.
spec(B, P, Func, Items) ->
    spec(B, P, {Func, 0, 0, 0}, Items, mailbox).

spec(B, P, {Func, Recv, PortSel, LenMode}, Items, mailbox) ->
    R = control(B, P, ?OP_SPEC, wire(Func, Recv, PortSel, LenMode, Items)),
    {edc_diff:parse_term(R), mailbox()}.

catalogue(B, P, Func, I) ->
    R = control(B, P, ?OP_CATALOGUE, [Func, I]),
    {edc_diff:parse_term(R), mailbox()}.

%% Runs Scenario(B, P) on a fresh port, for each function.
each_func(Scenario) ->
    fun(B) ->
            P = open(B),
            [{F, Scenario(B, P, F)} || F <- ?FUNCS]
    end.

same_for_each_func(Expected) ->
    [{F, Expected} || F <- ?FUNCS].

%% A process that stores driver_caller in Slot, then exits; returns once
%% it is dead.
dead_in_slot(B, P, Slot) ->
    {Pid, Ref} = spawn_monitor(fun() -> "ok" = control(B, P, ?OP_REMEMBER_CALLER, [Slot]) end),
    receive {'DOWN', Ref, process, Pid, normal} -> ok end.

%%--------------------------------------------------------------------
%% Specifications: the catalogue written in C
%%--------------------------------------------------------------------

cat_bin() -> list_to_binary(lists:seq(0, 199)).

%% What entry I of the catalogue sends (the caller is the port owner).
catalogue_expected(0) -> [[]];
catalogue_expected(1) -> [{hello, '', 'with space'}];
catalogue_expected(2) -> [{0, -1, 1 bsl 59, -(1 bsl 59) - 1, (1 bsl 63) - 1, -(1 bsl 63)}];
catalogue_expected(3) -> [{0, 1 bsl 59, (1 bsl 64) - 1}];
catalogue_expected(4) -> [[0, -(1 bsl 63), (1 bsl 63) - 1, 42 | (1 bsl 64) - 1]];
catalogue_expected(5) -> [{{port, 1}, self, self}];
catalogue_expected(6) ->
    Bin = cat_bin(),
    [[binary:part(Bin, 5, 10), <<>>, binary:part(Bin, 50, 100), Bin]];
catalogue_expected(7) -> [{<<"abc">>, <<>>, <<>>, <<0:8000>>}];
catalogue_expected(8) -> [{"abc", "", [$a, 0, 255, 128]}];
catalogue_expected(9) -> [[x, "abc", y]];
catalogue_expected(10) -> [{"abc123", "xy" ++ tail}];
catalogue_expected(11) -> [{3.14, -0.0, 1.0e308, -2.5e-300}];
catalogue_expected(12) -> [{my_tag, {17, 4711}, {<<"bin">>, [1.5], #{a => "x"}}}];
catalogue_expected(13) -> [{#{}, #{a => #{}, b => 2, 1 => "k"}}];
catalogue_expected(14) -> [maps:from_list([{I, -I} || I <- lists:seq(0, 39)])];
catalogue_expected(15) -> [{tcp, {port, 1}, [100 | binary:part(cat_bin(), 0, 50)]}];
catalogue_expected(16) ->
    Tuples = lists:foldl(fun(_, T) -> {T} end, [], lists:seq(1, 500)),
    [lists:foldl(fun(_, L) -> [L] end, Tuples, lists:seq(1, 500))];
catalogue_expected(17) -> [{}].

%% Every term type, the manual's examples, bignums, maps small and large,
%% deep nesting: each entry with each of the four functions.
catalogue_every_type(_Config) ->
    Entries = lists:seq(0, 17),
    edc_diff:expect("catalogue, valid entries",
                    each_func(fun(B, P, F) -> [catalogue(B, P, F, I) || I <- Entries] end),
                    same_for_each_func([{1, catalogue_expected(I)} || I <- Entries])).

%% Malformed specifications return -1 and send nothing: unbalanced counts,
%% unknown tag, short array, bad/empty/truncated EXT2TERM data, NULL
%% strings (even of length 0), binaries out of bounds or NULL, LIST 0,
%% STRING_CONS on nothing, a repeated map key, a float that is not finite,
%% a word that is not an atom or a pid, negative counts and lengths, NULL
%% buffer with a length, a trailing tag. External data with bytes after
%% the term is accepted (39).
catalogue_errors(_Config) ->
    Entries = lists:seq(18, 40),
    Expected = [case I of
                    39 -> {1, [{17, 4711}]};
                    _ -> {-1, []}
                end || I <- Entries],
    edc_diff:expect("catalogue, error entries",
                    each_func(fun(B, P, F) ->
                                      [catalogue(B, P, F, I) || I <- Entries]
                                          ++ [catalogue(B, P, F, 41)]
                              end),
                    same_for_each_func(Expected ++ [{done, []}])).

%% The serialized form builds every type (the property below depends on
%% it): {tcp, Port, [100 | <<2,3>>], Caller, 0.5, {17,4711}, -7, 7,
%% <<"buf">>, #{"sc" => "s"}, 1 bsl 63}.
serialized_spec_roundtrip(_Config) ->
    Ext = term_to_binary({17, 4711}),
    Items = [{t, ?ATOM}, {atom, <<"tcp">>},
             {t, ?PORT}, port,
             {t, ?INT}, {w, 100},
             {t, ?BINARY}, {bin, <<1, 2, 3, 4>>}, {w, 2}, {w, 1},
             {t, ?LIST}, {w, 2},
             {t, ?PID}, caller,
             {t, ?FLOAT}, {f64, 0.5},
             {t, ?EXT2TERM}, {str, Ext}, {w, byte_size(Ext)},
             {t, ?INT64}, {i64, -7},
             {t, ?UINT64}, {i64, 7},
             {t, ?BUF2BINARY}, {str, <<"buf">>}, {w, 3},
             {t, ?NIL},
             {t, ?STRING_CONS}, {str, <<"sc">>}, {w, 2},
             {t, ?STRING}, {str, <<"s">>}, {w, 1},
             {t, ?MAP}, {w, 1},
             {t, ?UINT}, {w, 1 bsl 63},
             {t, ?TUPLE}, {w, 11}],
    Expected = {tcp, {port, 1}, [100 | <<2, 3>>], self, 0.5, {17, 4711}, -7, 7, <<"buf">>,
                #{"sc" => "s"}, 1 bsl 63},
    edc_diff:expect("serialized spec",
                    each_func(fun(B, P, F) -> spec(B, P, F, Items) end),
                    same_for_each_func({1, [Expected]})).

%% A negative length and a NULL array of length 0 are -1.
null_and_negative_lengths(_Config) ->
    edc_diff:expect("lengths",
                    each_func(fun(B, P, F) ->
                                      [spec(B, P, {F, 0, 0, 1}, [{t, ?NIL}], mailbox),
                                       spec(B, P, {F, 0, 0, 2}, [{t, ?NIL}], mailbox)]
                              end),
                    same_for_each_func([{-1, []}, {-1, []}])).

%% ERL_DRV_PORT takes driver_mk_port's value only: the owner's pid (or an
%% atom) is -1. (ERL_DRV_PID with driver_mk_port's value is -1 natively
%% and accepted here, a pseudo-port being a process: not tested.)
port_must_be_a_port(_Config) ->
    edc_diff:expect("ERL_DRV_PORT",
                    each_func(fun(B, P, F) ->
                                      [spec(B, P, F, [{t, ?PORT}, connected]),
                                       spec(B, P, F, [{t, ?PORT}, {atom, <<"p">>}]),
                                       spec(B, P, F, [{t, ?PORT}, port])]
                              end),
                    same_for_each_func([{-1, []}, {-1, []}, {1, [{port, 1}]}])).

%% Specifications a native runtime trusts and may crash on are -1 here
%% (compat only: they cannot run natively): NULL INT64/UINT64/FLOAT
%% pointers, a pointer that is not a driver binary, counts and lengths
%% beyond a C int.
native_crashes_are_errors(_Config) ->
    Specs = [[{t, ?INT64}, {w, 0}],
             [{t, ?UINT64}, {w, 0}],
             [{t, ?FLOAT}, {w, 0}],
             [{t, ?BINARY}, fake, {w, 0}, {w, 0}],
             [{t, ?NIL}, {t, ?TUPLE}, {w, (1 bsl 32) + 1}],
             [{t, ?NIL}, {t, ?LIST}, {w, (1 bsl 32) + 1}],
             [{t, ?STRING}, {str, <<"abc">>}, {w, (1 bsl 32) + 3}]],
    Expected = same_for_each_func(lists:duplicate(length(Specs), {-1, []})),
    Expected = edc_diff:run(compat, each_func(fun(B, P, F) ->
                                                      [spec(B, P, F, S) || S <- Specs]
                                              end)).

%%--------------------------------------------------------------------
%% Delivery
%%--------------------------------------------------------------------

%% A dead receiver is 0, checked after the specification (a malformed one
%% is still -1) and before building (a NaN or a repeated map key, found
%% while building, is 0 too).
dead_receiver(_Config) ->
    Specs = [[{t, ?NIL}],
             [{t, ?FLOAT}, {fbits, 16#7ff8000000000000}],
             [{t, ?ATOM}, {atom, <<"k">>}, {t, ?INT}, {w, 1},
              {t, ?ATOM}, {atom, <<"k">>}, {t, ?INT}, {w, 2}, {t, ?MAP}, {w, 2}],
             [{t, ?EXT2TERM}, {str, <<131, 104, 5>>}, {w, 3}],
             [{t, ?ATOM}]],
    edc_diff:expect("dead receiver",
                    fun(B) ->
                            P = open(B),
                            ok = dead_in_slot(B, P, 0),
                            [[spec(B, P, {F, 2, 0, 0}, S, mailbox) || S <- Specs]
                             || F <- [?SEND, ?DRV_SEND]]
                    end,
                    lists:duplicate(2, [{0, []}, {0, []}, {0, []}, {-1, []}, {-1, []}])).

%% A port (driver_mk_port's value) is not a receiver: 0, nothing sent.
port_as_receiver(_Config) ->
    edc_diff:expect("port as receiver",
                    fun(B) ->
                            P = open(B),
                            "ok" = control(B, P, ?OP_REMEMBER_PORT, [4]),
                            [spec(B, P, {F, 6, 0, 0}, [{t, ?NIL}], mailbox)
                             || F <- [?SEND, ?DRV_SEND]]
                    end,
                    [{0, []}, {0, []}]).

%% Nor is an atom: 0 after a valid specification, -1 after a malformed one.
atom_as_receiver(_Config) ->
    edc_diff:expect("atom as receiver",
                    fun(B) ->
                            P = open(B),
                            "ok" = control(B, P, ?OP_REMEMBER_ATOM, [5 | "someatom"]),
                            [spec(B, P, {F, 7, 0, 0}, S, mailbox)
                             || F <- [?SEND, ?DRV_SEND], S <- [[{t, ?NIL}], [{t, ?ATOM}]]]
                    end,
                    [{0, []}, {-1, []}, {0, []}, {-1, []}]).

%% driver_send_term/erl_drv_send_term to a live process other than the
%% caller.
other_receiver(_Config) ->
    edc_diff:expect("other receiver",
                    fun(B) ->
                            P = open(B),
                            Self = self(),
                            Other = spawn(fun() ->
                                                  "ok" = control(B, P, ?OP_REMEMBER_CALLER, [1]),
                                                  Self ! {self(), ready},
                                                  receive
                                                      {stop, From} -> From ! {self(), mailbox()}
                                                  end
                                          end),
                            receive {Other, ready} -> ok end,
                            Rs = [spec(B, P, {F, 3, 0, 0}, [{t, ?INT}, {w, F}], mailbox)
                                  || F <- [?SEND, ?DRV_SEND]],
                            Other ! {stop, self()},
                            receive {Other, Got} -> {Rs, Got} end
                    end,
                    {[{1, []}, {1, []}], [1, 3]}).

%% erl_drv_output_term/erl_drv_send_term naming a closed port: -1, a
%% malformed specification too.
closed_port(_Config) ->
    edc_diff:expect("closed port",
                    fun(B) ->
                            P = open(B),
                            Q = open(B),
                            "ok" = control(B, Q, ?OP_REMEMBER_PORT, [2]),
                            true = edc_diff:call(B, port_close, [Q]),
                            [spec(B, P, {F, 0, 3, 0}, S, mailbox)
                             || F <- [?DRV_OUTPUT, ?DRV_SEND], S <- [[{t, ?NIL}], [{t, ?ATOM}]]]
                    end,
                    lists:duplicate(4, {-1, []})).

%% Terms keep their place among the port's other output.
order_with_other_output(_Config) ->
    edc_diff:expect("order",
                    each_func(fun(B, P, F) -> spec(B, P, {F, 0, 0, 3}, [{t, ?NIL}], mailbox) end),
                    same_for_each_func({1, [{{port, 1}, {data, "<"}}, [],
                                            {{port, 1}, {data, ">"}}]})).

%% After driver_failure_atom in the same callback the port is gone: the
%% erl_drv_* forms give -1. Natively driver_output_term and
%% driver_send_term give -1 too, or in some runs (the port's exit not yet
%% visible to the callback) 0 and 1 with the message delivered after the
%% exit signal; here they give -1.
after_failure(_Config) ->
    Run = fun(B, F, N) ->
                  process_flag(trap_exit, true),
                  P = open(B),
                  R = edc_diff:parse_term(control(B, P, ?OP_FAIL_THEN, [F])),
                  {R, take(P, N)}
          end,
    edc_diff:expect("after failure, erl_drv_*",
                    fun(B) -> [Run(B, F, 1) || F <- [?DRV_OUTPUT, ?DRV_SEND]] end,
                    [{-1, [{exit, boom}]}, {-1, [{exit, boom}]}]),
    Old = fun(B) -> [Run(B, ?OUTPUT, 1), Run(B, ?SEND, 1)] end,
    Native = edc_diff:run(native, Old),
    Compat = edc_diff:run(compat, Old),
    ct:log("native: ~p~ncompat: ~p", [Native, Compat]),
    true = lists:member(Native, [[{-1, [{exit, boom}]}, {-1, [{exit, boom}]}],
                                 [{0, [{exit, boom}]}, {1, [{exit, boom}]}]]),
    [{-1, [{exit, boom}]}, {-1, [{exit, boom}]}] = Compat.

%% The next N messages (P's exit signal as {exit, Reason}), each awaited
%% for at most 5 s.
take(_P, 0) -> [];
take(P, N) ->
    receive
        {'EXIT', P, Reason} -> [{exit, Reason} | take(P, N - 1)];
        M -> [M | take(P, N - 1)]
    after 5000 -> [timeout]
    end.

%% Terms sent from stop (port_close, an exit signal, driver_failure)
%% reach the owner after the port's exit signal; each returns 1.
from_stop(_Config) ->
    Run = fun(B, F, How) ->
                  P = open(B),
                  "ok" = control(B, P, ?OP_ON_STOP, [F]),
                  case How of
                      close -> true = edc_diff:call(B, port_close, [P]);
                      kill -> exit(P, kill);
                      failure -> "-1" = control(B, P, ?OP_FAIL_THEN, [?DRV_OUTPUT])
                  end,
                  Msgs = take(P, 2),
                  Q = open(B),
                  {_, StopRet} = edc_diff:parse_term(control(B, Q, ?OP_LAST, "")),
                  {Msgs, StopRet}
          end,
    edc_diff:expect("from stop",
                    fun(B) ->
                            process_flag(trap_exit, true),
                            [{F, How, Run(B, F, How)} || F <- ?FUNCS, How <- [close, kill, failure]]
                    end,
                    [{F, How, {[{exit, Reason}, {stopping}], 1}}
                     || F <- ?FUNCS,
                        {How, Reason} <- [{close, normal}, {kill, killed}, {failure, boom}]]).

%%--------------------------------------------------------------------
%% Threads
%%--------------------------------------------------------------------

%% The {Thread, Seq} messages in the mailbox: per thread, the count and
%% whether the sequence numbers increase.
thread_messages() ->
    thread_messages(mailbox()).

thread_messages(Mailbox) ->
    Msgs = [M || {T, S} = M <- Mailbox, is_integer(T), is_integer(S)],
    Threads = lists:usort([T || {T, _} <- Msgs]),
    [{T, length(Seqs), Seqs =:= lists:sort(Seqs)}
     || T <- Threads, Seqs <- [[S || {T1, S} <- Msgs, T1 =:= T]]].

%% 4 threads x 1000 terms, joined: every send returns 1 and arrives, in
%% each thread's order.
threads_joined(_Config) ->
    edc_diff:expect("threads joined",
                    fun(B) ->
                            P = open(B),
                            [begin
                                 "ok" = control(B, P, ?OP_THREADS, io_lib:format("4 1000 ~b 0", [F])),
                                 Summary = edc_diff:parse_term(control(B, P, ?OP_JOIN, "")),
                                 {Summary, thread_messages()}
                             end || F <- [?DRV_OUTPUT, ?DRV_SEND]]
                    end,
                    lists:duplicate(2, {lists:duplicate(4, {1000, 0, 0, 0, true}),
                                        [{T, 1000, true} || T <- lists:seq(0, 3)]})).

%% Threads send while the owner uses the port (terms from control
%% callbacks) and closes it; stop joins them: natively every send still
%% returns 1 (the port is not gone while stop runs).
threads_while_used_and_closed(_Config) ->
    edc_diff:expect("threads while used and closed",
                    fun(B) ->
                            P = open(B),
                            "ok" = control(B, P, ?OP_THREADS, "4 3000 2 1"),
                            Rs = [control(B, P, ?OP_CATALOGUE, [?OUTPUT, 9]) || _ <- lists:seq(1, 50)],
                            true = edc_diff:call(B, port_close, [P]),
                            Q = open(B),
                            {Summary, _} = edc_diff:parse_term(control(B, Q, ?OP_LAST, "")),
                            Mailbox = mailbox(),
                            {lists:usort(Rs), [M || M <- Mailbox, not is_tuple(M)],
                             Summary, thread_messages(Mailbox)}
                    end,
                    {["1"], lists:duplicate(50, [x, "abc", y]),
                     lists:duplicate(4, {3000, 0, 0, 0, true}),
                     [{T, 3000, true} || T <- lists:seq(0, 3)]}).

%% Threads that outlive their port: once it is closed their sends return
%% -1; every 1 arrived, none after a failure.
threads_outlive_port(_Config) ->
    edc_diff:expect("threads outlive port",
                    fun(B) ->
                            P = open(B),
                            [begin
                                 Q = open(B),
                                 "ok" = control(B, Q, ?OP_THREADS, io_lib:format("4 20000 ~b 0", [F])),
                                 true = edc_diff:call(B, port_close, [Q]),
                                 Summary = edc_diff:parse_term(control(B, P, ?OP_JOIN, "")),
                                 Got = thread_messages(),
                                 Ones = [{T, N} || {T, {N, _, _, _, _}} <- lists:zip(lists:seq(0, 3), Summary), N > 0],
                                 {lists:usort([{Z, O, M} || {_, Z, _, O, M} <- Summary]),
                                  [{T, N} || {T, N, true} <- Got] =:= Ones,
                                  lists:sum([N + M1 || {N, _, M1, _, _} <- Summary])}
                             end || F <- [?DRV_OUTPUT, ?DRV_SEND]]
                    end,
                    lists:duplicate(2, {[{0, 0, true}], true, 80000})).

%% erl_drv_send_term from threads to a receiver that dies: 0 once it is
%% gone (never -1: the port is open), never 1 after a 0.
threads_receiver_dies(_Config) ->
    edc_diff:expect("threads receiver dies",
                    fun(B) ->
                            P = open(B),
                            {Pid, Ref} = spawn_monitor(fun() ->
                                                               "ok" = control(B, P, ?OP_THREADS, "4 20000 3 0")
                                                       end),
                            receive {'DOWN', Ref, process, Pid, normal} -> ok end,
                            Summary = edc_diff:parse_term(control(B, P, ?OP_JOIN, "")),
                            {lists:usort([{M1, O, M} || {_, _, M1, O, M} <- Summary]),
                             lists:sum([N + Z || {N, Z, _, _, _} <- Summary])}
                    end,
                    {[{0, 0, true}], 80000}).

%% erl_drv_output_term from threads after port_connect: the new owner
%% gets the terms (the thread-safe copy of the connected process follows
%% port_connect).
threads_after_connect(_Config) ->
    edc_diff:expect("threads after connect",
                    fun(B) ->
                            P = open(B),
                            Self = self(),
                            Owner = spawn(fun() ->
                                                  receive go -> ok end,
                                                  Self ! {self(), thread_messages()}
                                          end),
                            true = edc_diff:call(B, port_connect, [P, Owner]),
                            "ok" = control(B, P, ?OP_THREADS, "2 100 2 0"),
                            Summary = edc_diff:parse_term(control(B, P, ?OP_JOIN, "")),
                            Mine = thread_messages(),
                            Owner ! go,
                            receive {Owner, Theirs} -> {Summary, Mine, Theirs} end
                    end,
                    {lists:duplicate(2, {100, 0, 0, 0, true}), [],
                     [{0, 100, true}, {1, 100, true}]}).

%%--------------------------------------------------------------------
%% Generated specifications (PropEr)
%%--------------------------------------------------------------------

%% Random terms of every type written as specifications, run with a
%% random function (and, for the send forms, a receiver that is the
%% caller, dead or an atom) natively and through us: same return code,
%% same messages. A third of them are made invalid in ways that are safe to run
%% natively (a runtime reads arguments as pointers only after checking the
%% tag): truncated, a wrong count, an unknown tag, a trailing term, a
%% NULL string, a binary out of bounds, bad external data, a word of the
%% wrong kind, a float that is not finite, repeated map keys.
generated_specs(_Config) ->
    case code:which(proper) of
        non_existing ->
            {skip, "PropEr (erlang-proper) is not installed"};
        _ ->
            Prop = proper:forall(
                     {proper_types:oneof(?FUNCS), proper_types:oneof([caller, dead, atom]),
                      spec_case()},
                     fun({F, Recv, {Kind, Items}}) ->
                             Scenario = fun(B) ->
                                                P = open(B),
                                                spec(B, P, {F, receiver(B, P, Recv), 0, 0},
                                                     Items, mailbox)
                                        end,
                             Native = edc_diff:run(native, Scenario),
                             Compat = edc_diff:run(compat, Scenario),
                             Native =:= Compat orelse
                                 ct:pal("differs: ~p~n items ~p~n native ~p~n compat ~p",
                                        [F, Items, Native, Compat]),
                             proper:collect({Kind, element(1, Native)}, Native =:= Compat)
                     end),
            Log = fun(Format, Args) -> ct:log(Format, Args) end,
            true = proper:quickcheck(Prop, [{numtests, 300}, {on_output, Log}, noshrink])
    end.

%% The receiver byte of the wire header for Recv (set up on P).
receiver(_B, _P, caller) -> 0;
receiver(B, P, dead) ->
    ok = dead_in_slot(B, P, 0),
    2;
receiver(B, P, atom) ->
    "ok" = control(B, P, ?OP_REMEMBER_ATOM, [5 | "someatom"]),
    7.

spec_case() ->
    proper_types:frequency(
      [{2, proper_types:bind(gen_term(3), fun(T) -> {valid, encode(T)} end, false)},
       {1, proper_types:bind({gen_term(3), mutation()},
                             fun({T, M}) -> {M, mutate(M, encode(T))} end, false)}]).

%% Terms, as descriptions the encoder turns into items.
gen_term(0) ->
    proper_types:oneof([nil, port, {pid, connected}, {pid, caller},
                        {atom, proper_types:oneof([<<"a">>, <<"ok">>, <<"">>, <<"caf", 233>>])},
                        {int, word_value(signed)},
                        {uint, word_value(unsigned)},
                        {int64, word_value(signed)},
                        {uint64, word_value(unsigned)},
                        {float, proper_types:float()},
                        {string, proper_types:binary()},
                        {buf2bin, proper_types:oneof([proper_types:binary(), proper_types:binary(70), null])},
                        {binary, proper_types:oneof([proper_types:binary(), proper_types:binary(100)]),
                         proper_types:choose(0, 80)},
                        {ext, ext_term()}]);
gen_term(N) ->
    Smaller = proper_types:lazy(fun() -> gen_term(N - 1) end),
    Small = proper_types:resize(4, proper_types:list(Smaller)),
    proper_types:frequency(
      [{4, gen_term(0)},
       {1, {tuple, Small}},
       {1, {list, Small, Smaller}},
       {1, {string_cons, proper_types:binary(), Smaller}},
       {1, {map, proper_types:resize(4, proper_types:list({Smaller, Smaller}))}}]).

word_value(signed) ->
    proper_types:oneof([proper_types:integer(), 1 bsl 59, -(1 bsl 59) - 1,
                        (1 bsl 63) - 1, -(1 bsl 63)]);
word_value(unsigned) ->
    proper_types:oneof([proper_types:non_neg_integer(), 1 bsl 59, (1 bsl 64) - 1]).

ext_term() ->
    proper_types:oneof([proper_types:integer(), proper_types:atom(), proper_types:binary(),
                        proper_types:list(proper_types:integer()),
                        {proper_types:float(), proper_types:binary()},
                        proper_types:bind(proper_types:list({proper_types:integer(), proper_types:atom()}),
                                          fun maps:from_list/1, false)]).

%% Postfix items of a term description.
encode(nil) -> [{t, ?NIL}];
encode(port) -> [{t, ?PORT}, port];
encode({pid, Which}) -> [{t, ?PID}, Which];
encode({atom, N}) -> [{t, ?ATOM}, {atom, N}];
encode({int, I}) -> [{t, ?INT}, {w, I}];
encode({uint, I}) -> [{t, ?UINT}, {w, I}];
encode({int64, I}) -> [{t, ?INT64}, {i64, I}];
encode({uint64, I}) -> [{t, ?UINT64}, {i64, I}];
encode({float, F}) -> [{t, ?FLOAT}, {f64, F}];
encode({string, S}) -> [{t, ?STRING}, {str, S}, {w, byte_size(S)}];
encode({buf2bin, null}) -> [{t, ?BUF2BINARY}, {w, 0}, {w, 0}];
encode({buf2bin, S}) -> [{t, ?BUF2BINARY}, {str, S}, {w, byte_size(S)}];
encode({binary, Bytes, Pad}) ->
    %% The bytes at offset Pad of a larger driver binary.
    Bin = <<0:(Pad * 8), Bytes/binary>>,
    [{t, ?BINARY}, {bin, Bin}, {w, byte_size(Bytes)}, {w, Pad}];
encode({ext, T}) ->
    E = term_to_binary(T),
    [{t, ?EXT2TERM}, {str, E}, {w, byte_size(E)}];
encode({tuple, Ts}) -> lists:append([encode(T) || T <- Ts]) ++ [{t, ?TUPLE}, {w, length(Ts)}];
encode({list, Ts, Tail}) ->
    lists:append([encode(T) || T <- Ts]) ++ encode(Tail) ++ [{t, ?LIST}, {w, length(Ts) + 1}];
encode({string_cons, S, T}) -> encode(T) ++ [{t, ?STRING_CONS}, {str, S}, {w, byte_size(S)}];
encode({map, KVs}) ->
    lists:append([encode(K) ++ encode(V) || {K, V} <- KVs]) ++ [{t, ?MAP}, {w, length(KVs)}].

mutation() ->
    proper_types:oneof([truncate, count, unknown_tag, trailing, null_string,
                        binary_bounds, bad_ext, wrong_kind, not_finite, repeated_key,
                        string_cons_first]).

%% Applies a mutation; ones that do not apply to this spec truncate it.
mutate(truncate, Items) -> lists:sublist(Items, max(0, length(Items) - 1));
mutate(count, Items) ->
    replace_after(fun({t, T}) -> lists:member(T, [?TUPLE, ?LIST, ?MAP]); (_) -> false end,
                  fun({w, N}) -> {w, N + 1} end, Items);
mutate(unknown_tag, Items) ->
    replace_first(fun({t, _}) -> true; (_) -> false end, {w, 18}, Items);
mutate(trailing, Items) -> Items ++ [{t, ?NIL}];
mutate(null_string, Items) ->
    replace_after(fun({t, T}) -> T =:= ?STRING; (_) -> false end,
                  fun(_) -> {w, 0} end, Items);
mutate(binary_bounds, Items) ->
    replace_after(fun({t, T}) -> T =:= ?BINARY; (_) -> false end,
                  fun({bin, B}) -> {bin, binary:part(B, 0, byte_size(B) div 2)} end, Items);
mutate(bad_ext, Items) ->
    replace_after(fun({t, T}) -> T =:= ?EXT2TERM; (_) -> false end,
                  fun({str, <<131, _, Rest/binary>>}) -> {str, <<131, 255, Rest/binary>>};
                     (Other) -> Other
                  end, Items);
mutate(wrong_kind, Items) ->
    replace_after(fun({t, T}) -> lists:member(T, [?ATOM, ?PID, ?PORT]); (_) -> false end,
                  fun({atom, _}) -> caller; (_) -> {atom, <<"x">>} end, Items);
mutate(not_finite, Items) ->
    replace_after(fun({t, T}) -> T =:= ?FLOAT; (_) -> false end,
                  fun(_) -> {fbits, 16#7ff0000000000000} end, Items);
mutate(repeated_key, Items) ->
    [{t, ?NIL}, {t, ?NIL}, {t, ?NIL}, {t, ?NIL}, {t, ?MAP}, {w, 2} | Items]
        ++ [{t, ?TUPLE}, {w, 2}];
mutate(string_cons_first, Items) -> [{t, ?STRING_CONS}, {str, <<"x">>}, {w, 1} | Items].

%% Replaces the item after the first one matching Pred with Fun(Item)
%% (or truncates when none matches).
replace_after(Pred, Fun, Items) ->
    case lists:splitwith(fun(I) -> not Pred(I) end, Items) of
        {Before, [Tag, Arg | After]} -> Before ++ [Tag, Fun(Arg) | After];
        _ -> mutate(truncate, Items)
    end.

replace_first(Pred, New, Items) ->
    case lists:splitwith(fun(I) -> not Pred(I) end, Items) of
        {Before, [_ | After]} -> Before ++ [New | After];
        _ -> mutate(truncate, Items)
    end.
