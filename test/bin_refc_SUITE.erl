%% Driver binaries and their reference count (bin_refc_drv): allocation,
%% inc/dec/free, realloc, binaries sent with driver_output_binary (the
%% receiver holds a reference until it drops the binary and garbage
%% collects), binary-mode control replies, and the binaries of an outputv
%% ErlIOVec kept by the driver with driver_binary_inc_refc.
%%
%% Every case is differential: the same scenario runs against the native
%% port and the compat pseudo-port, and the native result must also be the
%% one measured on OTP 25 (the expected value in each case).
-module(bin_refc_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([alloc_binary_refc_is_one/1,
         inc_dec_refc_return_values/1,
         free_binary_frees_at_zero/1,
         double_free_fails_the_port/1,
         realloc_binary_keeps_data/1]).
%% logger handler (captures the lines the compat layer logs)
-export([log/2]).
-export([output_binary_reference_until_gc/1,
         output_binary_sub_binary/1,
         output_binary_with_header/1,
         output_binary_small/1,
         output_binary_held_by_other_process/1,
         output_binary_to_connected_process/1,
         output_term_binary_to_connected_process/1,
         output_binary_list_mode/1]).
-export([control_reply_new_binary/1,
         control_reply_default_buffer/1]).
-export([outputv_small_data/1,
         outputv_large_binary_kept/1,
         outputv_mixed_vector/1,
         outputv_own_binary_comes_back/1,
         outputv_free_without_reference_fails_the_port/1]).

-define(DRV, "bin_refc_drv").
-define(BACK_DRV, "bin_back_drv").

-define(OP_ALLOC, 1).
-define(OP_REFC, 2).
-define(OP_OUTPUT, 3).
-define(OP_INC, 4).
-define(OP_DEC, 5).
-define(OP_REALLOC, 6).
-define(OP_FREE, 7).
-define(OP_BIN_REPLY, 8).
-define(OP_BIN_SMALL, 9).
-define(OP_VEC_INFO, 10).
-define(OP_VEC_FREE, 11).
-define(OP_OUTPUT_HDR, 12).
-define(OP_TERM, 14).
-define(OP_FREE_TWICE, 13).

%% bin_back_drv
-define(BACK_SEND, 1).
-define(BACK_INFO, 2).
-define(BACK_MISFREE, 4).

all() ->
    [{group, refc},
     {group, output_binary},
     {group, control_reply},
     {group, outputv}].

groups() ->
    [{refc, [], [alloc_binary_refc_is_one,
                 inc_dec_refc_return_values,
                 free_binary_frees_at_zero,
                 double_free_fails_the_port,
                 realloc_binary_keeps_data]},
     {output_binary, [], [output_binary_reference_until_gc,
                          output_binary_sub_binary,
                          output_binary_with_header,
                          output_binary_small,
                          output_binary_held_by_other_process,
                          output_binary_to_connected_process,
                          output_term_binary_to_connected_process,
                          output_binary_list_mode]},
     {control_reply, [], [control_reply_new_binary,
                          control_reply_default_buffer]},
     {outputv, [], [outputv_small_data,
                    outputv_large_binary_kept,
                    outputv_mixed_vector,
                    outputv_own_binary_comes_back,
                    outputv_free_without_reference_fails_the_port]}].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV, ?BACK_DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% Reference count basics
%%--------------------------------------------------------------------

alloc_binary_refc_is_one(_Config) ->
    edc_diff:expect("driver_alloc_binary",
            fun(B) ->
                    P = open(B, []),
                    [ctl(B, P, ?OP_ALLOC, "100"),
                     ctl(B, P, ?OP_REFC, ""),
                     ctl(B, P, ?OP_FREE, ""),
                     ctl(B, P, ?OP_REFC, ""),
                     ctl(B, P, ?OP_ALLOC, "0"),
                     ctl(B, P, ?OP_REFC, "")]
            end,
            [1, 1, 1, -1, 1, 1]).

inc_dec_refc_return_values(_Config) ->
    edc_diff:expect("inc/dec refc",
            fun(B) ->
                    P = open(B, []),
                    [ctl(B, P, Op, Arg) || {Op, Arg} <- [{?OP_ALLOC, "16"},
                                                          {?OP_INC, ""},
                                                          {?OP_INC, ""},
                                                          {?OP_DEC, ""},
                                                          {?OP_REFC, ""},
                                                          {?OP_DEC, ""},
                                                          {?OP_REFC, ""}]]
            end,
            [1, 2, 3, 2, 2, 1, 1]).

%% driver_free_binary drops one reference and frees at zero (the reply of
%% OP_FREE is the count before the call).
free_binary_frees_at_zero(_Config) ->
    edc_diff:expect("driver_free_binary",
            fun(B) ->
                    P = open(B, []),
                    [ctl(B, P, Op, Arg) || {Op, Arg} <- [{?OP_ALLOC, "16"},
                                                          {?OP_INC, ""},
                                                          {?OP_FREE, ""},
                                                          {?OP_REFC, ""},
                                                          {?OP_FREE, ""},
                                                          {?OP_REFC, ""}]]
            end,
            [1, 2, 2, 1, 1, -1]).

%% A driver that frees its binary twice (refc 1: the second
%% driver_free_binary gets freed memory): the compat layer detects the
%% invalid binary, logs an error naming driver_free_binary, fails the port
%% with {driver_api_misuse, driver_free_binary} and the VM goes on (a new
%% port works). Compat only: natively a double free is undefined behaviour
%% (erts frees the binary twice: heap corruption or an abort of the whole
%% VM), so there is no native result to compare with.
double_free_fails_the_port(_Config) ->
    ok = logger:add_handler(edc_capture, ?MODULE,
                            #{level => error, config => #{pid => self()}}),
    R = try
            edc_diff:run(compat,
                         fun(B) ->
                                 process_flag(trap_exit, true),
                                 P = open(B, []),
                                 1 = ctl(B, P, ?OP_ALLOC, "16"),
                                 Reply = try ctl_raw(B, P, ?OP_FREE_TWICE, "")
                                         catch Class:Reason -> {Class, Reason}
                                         end,
                                 Exit = receive {'EXIT', P, Why} -> Why
                                        after 5000 -> no_exit
                                        end,
                                 %% The VM and the driver go on.
                                 P2 = open(B, []),
                                 Again = [ctl(B, P2, ?OP_ALLOC, "16"),
                                          ctl(B, P2, ?OP_FREE, ""),
                                          ctl(B, P2, ?OP_REFC, "")],
                                 {Reply, Exit, (maps:get(is_port, B))(P), Again}
                         end)
        after
            ok = logger:remove_handler(edc_capture)
        end,
    ct:pal("compat: ~p", [R]),
    {_Reply, {driver_api_misuse, driver_free_binary}, false, [1, 1, -1]} = R,
    Logged = [L || {edc_logged, L} <- edc_diff:flush(0)],
    ct:pal("logged: ~p", [Logged]),
    [_ | _] = [L || L <- Logged, string:find(L, "driver_free_binary") =/= nomatch,
                    string:find(L, "invalid driver binary") =/= nomatch],
    ok.

%% logger handler callback: sends the formatted message to the test case.
log(#{msg := Msg}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {report, Report} -> io_lib:format("~p", [Report]);
               {string, String} -> String;
               {Format, Args} -> io_lib:format(Format, Args)
           end,
    Pid ! {edc_logged, unicode:characters_to_list(Text)},
    ok.

%% Growing and shrinking keeps the data (OP_REALLOC replies {Refc, Size,
%% DataKept}); the result can still be sent.
realloc_binary_keeps_data(_Config) ->
    edc_diff:expect("driver_realloc_binary",
            fun(B) ->
                    P = open(B, [binary]),
                    R = [ctl(B, P, Op, Arg) || {Op, Arg} <- [{?OP_ALLOC, "10"},
                                                              {?OP_REALLOC, "100000"},
                                                              {?OP_REALLOC, "30"},
                                                              {?OP_REALLOC, "5"}]],
                    {0, _} = ctl(B, P, ?OP_OUTPUT, "0 5"),
                    {R, edc_diff:recv(1000)}
            end,
            {[1, {1, 100000, true}, {1, 30, true}, {1, 5, true}],
             {{port, 1}, {data, <<"abcde">>}}}).

%%--------------------------------------------------------------------
%% driver_output_binary
%%--------------------------------------------------------------------

%% The message holds a reference to the driver's binary while it is in
%% the mailbox and while the receiver references it; after the receiver
%% drops it and garbage collects, the count is back at 1.
output_binary_reference_until_gc(_Config) ->
    edc_diff:expect("driver_output_binary refc",
            fun(B) ->
                    P = open(B, [binary]),
                    1 = ctl(B, P, ?OP_ALLOC, "100"),
                    Out = ctl(B, P, ?OP_OUTPUT, "0 100"),
                    InMailbox = ctl(B, P, ?OP_REFC, ""),
                    Size = recv_size(P),
                    gc(P),
                    AfterGc = ctl(B, P, ?OP_REFC, ""),
                    {Out, InMailbox, Size, AfterGc}
            end,
            {{0, 2}, 2, 100, 1}).

%% A part of the binary arrives as a sub-binary of it.
output_binary_sub_binary(_Config) ->
    edc_diff:expect("driver_output_binary offset/len",
            fun(B) ->
                    P = open(B, [binary]),
                    1 = ctl(B, P, ?OP_ALLOC, "200"),
                    Out = ctl(B, P, ?OP_OUTPUT, "26 100"),
                    Msg = receive {P, {data, D}} -> D after 1000 -> timeout end,
                    Held = ctl(B, P, ?OP_REFC, ""),
                    Head = binary:copy(binary:part(Msg, 0, 10)),
                    gc(P),
                    {Out, Head, Held, ctl(B, P, ?OP_REFC, "")}
            end,
            {{0, 2}, <<"abcdefghij">>, 2, 1}).

%% With a header the message is [H1, H2 | SubBinary].
output_binary_with_header(_Config) ->
    edc_diff:expect("driver_output_binary header",
            fun(B) ->
                    P = open(B, [binary]),
                    1 = ctl(B, P, ?OP_ALLOC, "200"),
                    Out = ctl(B, P, ?OP_OUTPUT_HDR, "1 100"),
                    Shape = receive
                                {P, {data, [H1, H2 | T]}} ->
                                    {H1, H2, byte_size(T), binary:copy(binary:part(T, 0, 3))}
                            after 1000 -> timeout
                            end,
                    Held = ctl(B, P, ?OP_REFC, ""),
                    gc(P),
                    {Out, Shape, Held, ctl(B, P, ?OP_REFC, "")}
            end,
            {{0, 2}, {$h, $d, 100, <<"bcd">>}, 2, 1}).

%% Up to 64 bytes (a heap binary) the data is copied into the message and
%% no reference is taken; from 65 bytes on the binary is referenced. The
%% same holds for parts of a binary and with a header.
output_binary_small(_Config) ->
    edc_diff:expect("driver_output_binary small",
            fun(B) ->
                    P = open(B, [binary]),
                    1 = ctl(B, P, ?OP_ALLOC, "100"),
                    Rs = [begin
                              Out = ctl(B, P, Op, Arg),
                              Size = recv_size(P),
                              gc(P),
                              {Arg, Out, Size, ctl(B, P, ?OP_REFC, "")}
                          end || {Op, Arg} <- [{?OP_OUTPUT, "0 10"},
                                               {?OP_OUTPUT, "0 64"},
                                               {?OP_OUTPUT, "0 65"},
                                               {?OP_OUTPUT, "30 64"},
                                               {?OP_OUTPUT, "30 65"},
                                               {?OP_OUTPUT_HDR, "0 3"}]],
                    Rs
            end,
            [{"0 10", {0, 1}, 10, 1},
             {"0 64", {0, 1}, 64, 1},
             {"0 65", {0, 2}, 65, 1},
             {"30 64", {0, 1}, 64, 1},
             {"30 65", {0, 2}, 65, 1},
             {"0 3", {0, 1}, 5, 1}]).

%% The owner passes the binary on to another process: the reference
%% lives as long as that process holds it.
output_binary_held_by_other_process(_Config) ->
    edc_diff:expect("binary held by another process",
            fun(B) ->
                    P = open(B, [binary]),
                    1 = ctl(B, P, ?OP_ALLOC, "200"),
                    Holder = spawn_link(fun holder/0),
                    {0, 2} = ctl(B, P, ?OP_OUTPUT, "0 200"),
                    forward(P, Holder),
                    gc(P),
                    WhileHeld = ctl(B, P, ?OP_REFC, ""),
                    Holder ! {drop, self()},
                    Dropped = receive {dropped, Holder, Size} -> Size after 1000 -> timeout end,
                    gc(P),
                    {WhileHeld, Dropped, ctl(B, P, ?OP_REFC, "")}
            end,
            {2, 200, 1}).

%% The port's connected process is not the caller of port_control: the
%% message to it holds the one reference Erlang takes (the caller keeps
%% none), and the count is back at 1 once the receiver drops the data.
output_binary_to_connected_process(_Config) ->
    edc_diff:expect("driver_output_binary to another process",
            fun(B) ->
                    P = open(B, [binary]),
                    Self = self(),
                    Owner = spawn_link(fun() -> connected_holder(Self) end),
                    true = edc_diff:call(B, port_connect, [P, Owner]),
                    1 = ctl(B, P, ?OP_ALLOC, "200"),
                    Out = ctl(B, P, ?OP_OUTPUT, "0 200"),
                    gc(P),
                    Sent = ctl(B, P, ?OP_REFC, ""),
                    Owner ! drop,
                    Size = receive {dropped, Owner, S} -> S after 1000 -> timeout end,
                    gc(P),
                    {Out, Sent, Size, ctl(B, P, ?OP_REFC, "")}
            end,
            {{0, 2}, 2, 200, 1}).

%% The same for a term (erl_drv_output_term with ERL_DRV_BINARY): the
%% message to the connected process holds the one reference.
output_term_binary_to_connected_process(_Config) ->
    edc_diff:expect("erl_drv_output_term binary to another process",
            fun(B) ->
                    P = open(B, [binary]),
                    Self = self(),
                    Owner = spawn_link(fun() -> connected_holder(Self) end),
                    true = edc_diff:call(B, port_connect, [P, Owner]),
                    1 = ctl(B, P, ?OP_ALLOC, "200"),
                    Out = ctl(B, P, ?OP_TERM, "0 200"),
                    gc(P),
                    Sent = ctl(B, P, ?OP_REFC, ""),
                    Owner ! drop,
                    Size = receive {dropped, Owner, S} -> S after 1000 -> timeout end,
                    gc(P),
                    {Out, Sent, Size, ctl(B, P, ?OP_REFC, "")}
            end,
            {{1, 2}, 2, 200, 1}).

connected_holder(Test) ->
    receive drop -> ok end,
    Size = receive
               {_Port, {data, D}} -> byte_size(D);
               {_Port, T} when is_binary(T) -> byte_size(T)
           after 1000 -> timeout
           end,
    true = erlang:garbage_collect(),
    Test ! {dropped, self(), Size},
    receive stop -> ok end.

%% In list mode the data is copied into a list: no reference is kept.
output_binary_list_mode(_Config) ->
    edc_diff:expect("driver_output_binary list mode",
            fun(B) ->
                    P = open(B, []),
                    1 = ctl(B, P, ?OP_ALLOC, "100"),
                    Out = ctl(B, P, ?OP_OUTPUT, "0 5"),
                    Msg = edc_diff:recv(1000),
                    {Out, Msg, ctl(B, P, ?OP_REFC, "")}
            end,
            {{0, 1}, {{port, 1}, {data, "abcde"}}, 1}).

%%--------------------------------------------------------------------
%% Binary-mode control replies
%%--------------------------------------------------------------------

%% *rbuf = driver_alloc_binary(N): the runtime takes over the reference.
control_reply_new_binary(_Config) ->
    Big = list_to_binary([[$a + I rem 26] || I <- lists:seq(0, 99999)]),
    edc_diff:expect("control reply in a new driver binary",
            fun(B) ->
                    P = open(B, []),
                    R100 = ctl_raw(B, P, ?OP_BIN_REPLY, "100"),
                    R0 = ctl_raw(B, P, ?OP_BIN_REPLY, "0"),
                    RBig = ctl_raw(B, P, ?OP_BIN_REPLY, "100000"),
                    ListAgain = ctl_raw(B, P, ?OP_REFC, ""),
                    {R100, R0, RBig =:= Big, ListAgain}
            end,
            {binary:part(Big, 0, 100), <<>>, true, "-1"}).

%% The reply written into the default buffer also comes back as a binary.
control_reply_default_buffer(_Config) ->
    edc_diff:expect("control reply in the default buffer",
            fun(B) ->
                    P = open(B, []),
                    [ctl_raw(B, P, ?OP_BIN_SMALL, N) || N <- ["10", "0", "64"]]
            end,
            [<<"ABCDEFGHIJ">>, <<>>,
             list_to_binary([$A + I rem 26 || I <- lists:seq(0, 63)])]).

%%--------------------------------------------------------------------
%% outputv
%%--------------------------------------------------------------------

%% Small data is copied into one new binary; OP_VEC_INFO replies
%% {Size, Vsize, [{Len, OrigSize, RefcInCallback, RefcAfterInc, RefcNow,
%% First4}]}: the driver's reference is the only one left afterwards.
outputv_small_data(_Config) ->
    edc_diff:expect("outputv small data",
            fun(B) ->
                    P = open(B, [binary]),
                    true = (maps:get(port_command, B))(P, [<<"he">>, "llo"]),
                    Info = ctl(B, P, ?OP_VEC_INFO, ""),
                    {Info, ctl(B, P, ?OP_VEC_FREE, "")}
            end,
            {{5, 2, [{5, 5, 1, 2, 1, "hell"}]}, [1]}).

%% A large binary is passed by reference: the driver gets the sender's own
%% refc binary (refc 2 while the sender still holds it), and the sender's
%% reference lasts until it garbage collects, the driver's until
%% driver_free_binary.
outputv_large_binary_kept(_Config) ->
    edc_diff:expect("outputv large binary kept",
            fun(B) ->
                    P = open(B, [binary]),
                    send_big(B, P, 1040000),
                    WhileSenderHolds = ctl(B, P, ?OP_VEC_INFO, ""),
                    gc(P),
                    AfterGc = ctl(B, P, ?OP_VEC_INFO, ""),
                    {WhileSenderHolds, AfterGc, ctl(B, P, ?OP_VEC_FREE, "")}
            end,
            {{1040000, 2, [{1040000, 1040000, 1, 2, 2, "abcd"}]},
             {1040000, 2, [{1040000, 1040000, 1, 2, 1, "abcd"}]},
             [1]}).

%% ["ab", Big, "cd"]: both small pieces share one copied binary, the big
%% one is referenced.
outputv_mixed_vector(_Config) ->
    edc_diff:expect("outputv mixed vector",
            fun(B) ->
                    P = open(B, [binary]),
                    send_mixed(B, P, 26000),
                    gc(P),
                    Info = ctl(B, P, ?OP_VEC_INFO, ""),
                    {Info, ctl(B, P, ?OP_VEC_FREE, "")}
            end,
            {{26004, 4, [{2, 4, 1, 2, 2, "ab"},
                         {26000, 26000, 1, 2, 1, "abcd"},
                         {2, 4, 2, 3, 2, "cd"}]},
             [2, 1, 2]}).

%% A binary the driver sent with driver_output_binary, sent back to it
%% with port_command, reaches outputv as the driver's own ErlDrvBinary
%% (same pointer, the segment at its offset in it) with the references of
%% the driver and of the receiver's copy of the message: no copy. A part
%% of it (a sub-binary) comes back the same way. OP_INFO replies
%% [{OwnBinary, Offset, Len, RefcInOutputv}].
outputv_own_binary_comes_back(_Config) ->
    edc_diff:expect("outputv gets the driver's own binary back",
            fun(B = #{port_command := Cmd}) ->
                    P = (maps:get(open_port, B))({spawn, ?BACK_DRV}, [binary]),
                    Round = fun(Arg) ->
                                    Sent = ctl(B, P, ?BACK_SEND, Arg),
                                    Bin = receive {P, {data, D}} -> D
                                          after 1000 -> timeout
                                          end,
                                    true = Cmd(P, Bin),
                                    {Sent, byte_size(Bin), ctl(B, P, ?BACK_INFO, "")}
                            end,
                    [Round("1000 0 1000"), Round("1000 100 200")]
            end,
            [{2, 1000, [{true, 0, 1000, 2}]},
             {2, 200, [{true, 100, 200, 2}]}]).

%% A driver that frees a binary of its outputv vector without having taken
%% a reference to it would free it under its holder: the sender's own
%% binary (a large binary: the driver gets it as natively), or the
%% vector's copy of small data. The compat layer refuses, logs an error
%% naming driver_free_binary and fails the port with
%% {driver_api_misuse, driver_free_binary}; the sender's binary is intact.
%% Compat only: natively the binary is freed under the sender (heap
%% corruption or an abort of the VM), so there is no native result to
%% compare with.
outputv_free_without_reference_fails_the_port(_Config) ->
    ok = logger:add_handler(edc_capture, ?MODULE,
                            #{level => error, config => #{pid => self()}}),
    Misfree = fun(B = #{port_command := Cmd}, Make) ->
                      P = (maps:get(open_port, B))({spawn, ?BACK_DRV}, [binary]),
                      ok = ctl(B, P, ?BACK_MISFREE, ""),
                      Data = Make(),
                      _ = try Cmd(P, Data) catch _:_ -> error end,
                      Exit = receive {'EXIT', P, Why} -> Why
                             after 5000 -> no_exit
                             end,
                      true = erlang:garbage_collect(),
                      {Exit, Data =:= Make()}
              end,
    R = try
            edc_diff:run(compat,
                         fun(B) ->
                                 process_flag(trap_exit, true),
                                 [Misfree(B, fun() -> big(100000) end),
                                  Misfree(B, fun() -> <<"small">> end)]
                         end)
        after
            ok = logger:remove_handler(edc_capture)
        end,
    ct:pal("compat: ~p", [R]),
    [{{driver_api_misuse, driver_free_binary}, true},
     {{driver_api_misuse, driver_free_binary}, true}] = R,
    Logged = [L || {edc_logged, L} <- edc_diff:flush(0)],
    [_, _ | _] = [L || L <- Logged, string:find(L, "driver_free_binary") =/= nomatch,
                       string:find(L, "took no reference") =/= nomatch],
    ok.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(#{open_port := Open}, Opts) ->
    Open({spawn, ?DRV}, Opts).

%% A control reply parsed as an Erlang term.
ctl(B, P, Op, Arg) ->
    case ctl_raw(B, P, Op, Arg) of
        Text when is_list(Text) -> edc_diff:parse_term(Text);
        Other -> {not_a_list, Other}
    end.

ctl_raw(#{port_control := Ctl}, P, Op, Arg) ->
    Ctl(P, Op, Arg).


%% Receives the port's next data message and returns only its size, so
%% that nothing in the caller references the binary afterwards.
recv_size(P) ->
    receive {P, {data, D}} -> iolist_size(D) after 1000 -> timeout end.

%% Garbage collects the scenario process (and, for compat, the
%% pseudo-port's process) so that dropped binaries are released.
gc(P) ->
    true = erlang:garbage_collect(),
    _ = [erlang:garbage_collect(P) || is_pid(P)],
    ok.

forward(P, To) ->
    receive {P, {data, D}} -> To ! {hold, D}, ok after 1000 -> timeout end.

holder() ->
    receive {hold, D} -> ok end,
    receive {drop, From} -> ok end,
    Size = byte_size(D),
    From ! {dropped, self(), Size},
    true = erlang:garbage_collect(),
    receive stop -> ok end.

big(N) ->
    binary:copy(<<"abcdefghijklmnopqrstuvwxyz">>, N div 26).

send_big(#{port_command := Cmd}, P, N) ->
    true = Cmd(P, big(N)),
    ok.

send_mixed(#{port_command := Cmd}, P, N) ->
    true = Cmd(P, ["ab", big(N), "cd"]),
    ok.

