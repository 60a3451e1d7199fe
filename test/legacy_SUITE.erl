%% Seed-era drivers: interface 1.5 (int ABI) and marker-less (R9B-R11B-2
%% layout) drivers, compiled from test/drivers/legacy/*.c in the header's
%% legacy mode (-DERL_DRV_COMPAT_LEGACY_INT_API).
%%
%% OTP 25 refuses such drivers (driver_incorrect_version), so each runs
%% through erl_driver_compat only, and the SAME scenario runs natively on
%% its modern twin (same source logic, 2.0+ prototypes):
%%   lg_echo_drv     / echo_drv      output, binary control, call
%%   lg_nomarker_drv / echo_drv      the same without an extended marker
%%   lg_ctl_drv      / lc_ctl_drv    control: int returns (-1, -2), replies
%%                                   in the default, driver_alloc'ed and
%%                                   driver_alloc_binary'd buffers
%%   lg_out_drv      / lc_out_drv    driver_output/output2/output_binary/
%%                                   outputv (int lengths, a 24-byte
%%                                   ErlIOVec the driver builds),
%%                                   driver_vec_to_buf
%%   lg_queue_drv    / lc_queue_drv  driver_enq/pushq/deq/sizeq/peekqv,
%%                                   enq_bin/pushq_bin, outputv with the
%%                                   24-byte ErlIOVec, enqv/pushqv
%% edc_diff:expect/3 asserts the native result (on the twin) is the
%% documented one and the compat result (on the seed-era driver) equals it.
-module(legacy_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([native_refuses_seed_era_drivers/1,
         echo_cycle/1,
         marker_less_echo_cycle/1,
         control_replies_and_int_errors/1,
         control_binary_mode/1,
         output_functions/1,
         vec_to_buf/1,
         queue_enq_pushq_deq_sizeq/1,
         queue_binaries/1,
         outputv_enqv_with_24_byte_iovec/1,
         outputv_pushqv_with_skip/1,
         call_after_dequeue/1]).

%% {SeedEra, ModernTwin}
-define(TWINS, [{"lg_echo_drv", "echo_drv"},
                {"lg_nomarker_drv", "echo_drv"},
                {"lg_ctl_drv", "lc_ctl_drv"},
                {"lg_out_drv", "lc_out_drv"},
                {"lg_queue_drv", "lc_queue_drv"}]).

-define(OP_ENQ, 1).
-define(OP_PUSHQ, 2).
-define(OP_DEQ, 3).
-define(OP_SIZEQ, 4).
-define(OP_PEEKQV, 6).
-define(OP_ALLOC_KEPT, 7).
-define(OP_ENQ_BIN, 8).
-define(OP_PUSHQ_BIN, 9).
-define(OP_OUTV_MODE, 12).
-define(OP_LAST_RC, 13).
-define(OP_OUTPUT, 29).

all() ->
    [native_refuses_seed_era_drivers,
     echo_cycle,
     marker_less_echo_cycle,
     control_replies_and_int_errors,
     control_binary_mode,
     output_functions,
     vec_to_buf,
     queue_enq_pushq_deq_sizeq,
     queue_binaries,
     outputv_enqv_with_24_byte_iovec,
     outputv_pushqv_with_skip,
     call_after_dequeue].

init_per_suite(Config) ->
    Parent = self(),
    Holder = spawn(fun() ->
                           Dir = edc_diff:private_dir(),
                           lists:foreach(
                             fun({Seed, Twin}) ->
                                     copy(Dir, Seed),
                                     copy(Dir, Twin),
                                     ok = erl_driver_compat:load_driver(Dir, Seed),
                                     ok = erl_ddll:load_driver(Dir, Twin)
                             end, ?TWINS),
                           Parent ! {self(), loaded},
                           receive stop -> ok end
                   end),
    receive {Holder, loaded} -> ok after 10000 -> erlang:error(holder_timeout) end,
    [{holder, Holder} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

copy(Dir, Name) ->
    Dst = filename:join(Dir, Name ++ ".so"),
    case filelib:is_regular(Dst) of
        true -> ok;
        false ->
            {ok, _} = file:copy(filename:join(edc_diff:drivers_dir(), Name ++ ".so"), Dst),
            ok
    end.

%% The driver a backend runs: the seed-era one through us, its twin natively.
drv(#{kind := compat}, Seed) -> Seed;
drv(#{kind := native}, Seed) -> element(2, lists:keyfind(Seed, 1, ?TWINS)).

%%--------------------------------------------------------------------
%% Loading
%%--------------------------------------------------------------------

%% OTP 25 refuses interface 1.5 and marker-less drivers; we load them
%% (the version check, spec/ABI_VERSIONS.md section 6).
native_refuses_seed_era_drivers(_Config) ->
    Dir = edc_diff:private_dir(),
    Load = fun(Name) ->
                   Self = self(),
                   Pid = spawn(fun() ->
                                       N = erl_ddll:load_driver(Dir, Name),
                                       C = erl_driver_compat:load_driver(Dir, Name),
                                       Self ! {self(), {N, C}}
                               end),
                   receive {Pid, R} -> R after 10000 -> timeout end
           end,
    {{error, driver_incorrect_version}, ok} = Load("lg_echo_drv"),
    {{error, driver_incorrect_version}, ok} = Load("lg_nomarker_drv"),
    ok.

%%--------------------------------------------------------------------
%% output, control, call (lg_echo_drv, lg_nomarker_drv)
%%--------------------------------------------------------------------

echo_cycle(_Config) ->
    echo_scenario("lg_echo_drv").

marker_less_echo_cycle(_Config) ->
    echo_scenario("lg_nomarker_drv").

%% Output with an int length; control replies in the default buffer and
%% (over 64 bytes) in a driver_alloc_binary(int) binary; call replies in
%% the default buffer and (over 255 bytes) in a driver_alloc'ed one.
echo_scenario(Seed) ->
    Big = binary:copy(<<"0123456789">>, 30),
    BigTerm = {big, lists:seq(1, 200)},
    edc_diff:expect(Seed ++ " cycle",
            fun(#{open_port := Open} = B) ->
                    P = Open({spawn, drv(B, Seed)}, [binary]),
                    true = edc_diff:call(B, port_command, [P, [<<"he">>, "llo"]]),
                    Msg = edc_diff:recv(1000),
                    true = edc_diff:call(B, port_command, [P, Big]),
                    BigMsg = edc_diff:recv(1000),
                    Ctl = edc_diff:call(B, port_control, [P, 1, "x"]),
                    BigCtl = edc_diff:call(B, port_control, [P, 1, Big]),
                    Call = edc_diff:call(B, port_call, [P, 7, {ok, 42}]),
                    BigCall = edc_diff:call(B, port_call, [P, 7, BigTerm]),
                    true = edc_diff:call(B, port_close, [P]),
                    {Msg, BigMsg, Ctl, BigCtl, Call, BigCall, edc_diff:flush()}
            end,
            {{{port, 1}, {data, <<"hello">>}}, {{port, 1}, {data, Big}},
             <<"x">>, Big, {ok, 42}, BigTerm, []}).

%%--------------------------------------------------------------------
%% control with int returns (lg_ctl_drv)
%%--------------------------------------------------------------------

%% A negative int return (-1, -2) must be sign-extended to an error
%% (badarg), not read as 4294967295; replies of every kind of buffer.
control_replies_and_int_errors(_Config) ->
    edc_diff:expect("control, list mode",
            fun(#{open_port := Open} = B) ->
                    P = Open({spawn, drv(B, "lg_ctl_drv")}, []),
                    R = [ctl(B, P, 1, "hello"),
                         ctl(B, P, 1, ""),
                         ctl(B, P, 2, ""),
                         length(ctl(B, P, 3, "")),
                         ctl(B, P, 4, ""),
                         ctl(B, P, 5, ""),
                         ctl(B, P, 6, ""),
                         ctl(B, P, 7, ""),
                         ctl(B, P, 8, ""),
                         ctl(B, P, 9, ""),
                         ctl(B, P, 12, lists:duplicate(300, $z)),
                         ctl(B, P, 99, ""),
                         edc_diff:call(B, port_info2, [P, connected])],
                    {R, edc_diff:flush()}
            end,
            {["hello", [], "64", 1000, [], [], {error, badarg}, {error, badarg},
              lists:duplicate(64, $x), "ok", "300", "op=99", {connected, self}],
             [{{port, 1}, {data, "from_control"}}]}).

control_binary_mode(_Config) ->
    edc_diff:expect("control, binary mode",
            fun(#{open_port := Open} = B) ->
                    P = Open({spawn, drv(B, "lg_ctl_drv") ++ " binary"}, []),
                    [ctl(B, P, 1, "hello"),
                     ctl(B, P, 3, ""),
                     ctl(B, P, 1, lists:duplicate(100, $q)),
                     ctl(B, P, 6, "")]
            end,
            [<<"hello">>, binary:copy(<<"A">>, 1000), binary:copy(<<"q">>, 100),
             {error, badarg}]).

ctl(B, P, Op, Arg) ->
    try edc_diff:call(B, port_control, [P, Op, Arg])
    catch error:Reason -> {error, Reason}
    end.

%%--------------------------------------------------------------------
%% Output functions with int lengths (lg_out_drv; rows of lc_out_drv's
%% table, see pseudo_port_io_SUITE)
%%--------------------------------------------------------------------

-define(LONG72, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst").

output_functions(_Config) ->
    Tail = tl(?LONG72),
    Rows = [{1, "hello", <<"hello">>},
            {2, [], <<>>},
            {3, [], []},
            {4, "hello", <<"hello">>},
            {5, "hello", [$h, $e | <<"llo">>]},
            {6, "hello", [$h, $e, $l, $l, $o | <<>>]},
            {7, "he", "he"},
            {8, [], []},
            {9, "helo", [$h, $e | <<"lo">>]},
            {10, "hello", <<"hello">>},
            {11, "he", [$h, $e | <<>>]},
            {12, "abcdef", [<<"ab">>, <<"cd">> | <<"ef">>]},
            {13, "XYabcd", [$X, $Y, <<"ab">> | <<"cd">>]},
            {14, "XYdef", [$X, $Y, <<"d">> | <<"ef">>]},
            {15, [], []},
            {16, "XY", "XY"},
            {17, Tail ++ "x", [list_to_binary(Tail) | <<"x">>]}],
    edc_diff:expect("output rows",
            fun(#{open_port := Open} = B) ->
                    List = Open({spawn, drv(B, "lg_out_drv")}, []),
                    Bin = Open({spawn, drv(B, "lg_out_drv")}, [binary]),
                    [{Op, ctl(B, List, Op, ""), edc_diff:flush(),
                      ctl(B, Bin, Op, ""), edc_diff:flush()}
                     || {Op, _, _} <- Rows]
            end,
            [{Op, "0", [{{port, 1}, {data, L}}], "0", [{{port, 2}, {data, Bn}}]}
             || {Op, L, Bn} <- Rows]).

%% driver_vec_to_buf(ev[ab,cd,ef], buf, 4 | 10 | 0) returns 4, 6, 0.
vec_to_buf(_Config) ->
    edc_diff:expect("driver_vec_to_buf",
            fun(#{open_port := Open} = B) ->
                    P = Open({spawn, drv(B, "lg_out_drv")}, []),
                    ctl(B, P, 50, "")
            end,
            "4 6 0 abcdabcdef").

%%--------------------------------------------------------------------
%% The queue with int lengths (lg_queue_drv)
%%--------------------------------------------------------------------

queue_enq_pushq_deq_sizeq(_Config) ->
    edc_diff:expect("enq/pushq/deq/sizeq",
            fun(B) ->
                    P = qopen(B),
                    R = [qctl(B, P, ?OP_ENQ, "abc"),
                         qctl(B, P, ?OP_PUSHQ, "xy"),
                         qctl(B, P, ?OP_SIZEQ, ""),
                         qctl(B, P, ?OP_PEEKQV, ""),
                         qctl(B, P, ?OP_DEQ, "1"),
                         qctl(B, P, ?OP_DEQ, "100"),
                         qctl(B, P, ?OP_DEQ, "-1"),
                         qctl(B, P, ?OP_DEQ, "0"),
                         qctl(B, P, ?OP_PEEKQV, ""),
                         qctl(B, P, ?OP_DEQ, "4"),
                         qctl(B, P, ?OP_PEEKQV, ""),
                         qctl(B, P, ?OP_SIZEQ, ""),
                         qctl(B, P, ?OP_OUTPUT, "out")],
                    qclose(B, P),
                    {R, edc_diff:flush()}
            end,
            {[0, 0, 5,
              {5, 2, 5, false, false, [{2, 0, 2, 1, other, "xy"}, {3, 0, 3, 1, other, "abc"}]},
              4, -1, -1, 4,
              {4, 2, 4, false, false, [{1, 1, 2, 1, other, "y"}, {3, 0, 3, 1, other, "abc"}]},
              0,
              {0, 0, 0, true, true, []},
              0, 0],
             [{{port, 1}, {data, <<"out">>}}, {{port, 1}, {data, <<"stop">>}}]}).

%% driver_alloc_binary(int) and enq_bin/pushq_bin with int offset/len.
queue_binaries(_Config) ->
    edc_diff:expect("queue binaries",
            fun(B) ->
                    P = qopen(B),
                    R = [qctl(B, P, ?OP_ALLOC_KEPT, "0123456789"),
                         qctl(B, P, ?OP_ENQ_BIN, "2 3"),
                         qctl(B, P, ?OP_PUSHQ_BIN, "0 1"),
                         qctl(B, P, ?OP_PEEKQV, ""),
                         qctl(B, P, ?OP_DEQ, "2"),
                         qctl(B, P, ?OP_DEQ, "2")],
                    qclose(B, P),
                    R
            end,
            [1, {0, 2}, {0, 3},
             {4, 2, 4, false, false, [{1, 0, 10, 3, kept, "0"}, {3, 2, 10, 3, kept, "234"}]},
             2, 0]).

%% outputv gets the 24-byte ErlIOVec (LAST_RC reports ev->size and
%% ev->vsize as the driver reads them) and queues it with driver_enqv.
outputv_enqv_with_24_byte_iovec(_Config) ->
    Big = binary:copy(<<"B">>, 100),
    edc_diff:expect("enqv from outputv",
            fun(B) ->
                    P = qopen(B),
                    <<"ok">> = qraw(B, P, ?OP_OUTV_MODE, "0 0"),
                    true = edc_diff:call(B, port_command, [P, [<<"ab">>, Big, "cd"]]),
                    R = [qctl(B, P, ?OP_LAST_RC, ""),
                         layout(qctl(B, P, ?OP_PEEKQV, ""))],
                    qclose(B, P),
                    R
            end,
            [{0, 104, 4},
             {104, 3, 104, false, false,
              [{2, 0, 4, 2, other, "ab"},
               {100, 0, 100, '_', other, binary_to_list(Big)},
               {2, 2, 4, 2, other, "cd"}]}]).

outputv_pushqv_with_skip(_Config) ->
    Big = binary:copy(<<"B">>, 100),
    edc_diff:expect("pushqv with skip",
            fun(B) ->
                    P = qopen(B),
                    qctl(B, P, ?OP_ENQ, "tail"),
                    <<"ok">> = qraw(B, P, ?OP_OUTV_MODE, "1 3"),
                    true = edc_diff:call(B, port_command, [P, [<<"XYZW">>, Big]]),
                    R = [qctl(B, P, ?OP_LAST_RC, ""),
                         layout(qctl(B, P, ?OP_PEEKQV, ""))],
                    qclose(B, P),
                    R
            end,
            [{0, 104, 3},
             {105, 3, 105, false, false,
              [{1, 3, 4, 1, other, "W"},
               {100, 0, 100, '_', other, binary_to_list(Big)},
               {4, 0, 4, 1, other, "tail"}]}]).

%% port_call with int lengths; command 1 empties the queue first
%% (driver_deq(port, driver_sizeq(port))).
call_after_dequeue(_Config) ->
    edc_diff:expect("call",
            fun(B) ->
                    P = qopen(B),
                    qctl(B, P, ?OP_ENQ, "abc"),
                    R = [edc_diff:call(B, port_call, [P, 0, {a, "b"}]),
                         qctl(B, P, ?OP_SIZEQ, ""),
                         edc_diff:call(B, port_call, [P, 1, {c, <<"d">>}]),
                         qctl(B, P, ?OP_SIZEQ, "")],
                    true = edc_diff:call(B, port_close, [P]),
                    R
            end,
            [{a, "b"}, 3, {c, <<"d">>}, 0]).

qopen(#{open_port := Open} = B) ->
    Open({spawn, drv(B, "lg_queue_drv")}, [binary]).

qclose(B, P) ->
    qctl(B, P, ?OP_DEQ, integer_to_list(max(0, qctl(B, P, ?OP_SIZEQ, "")))),
    true = edc_diff:call(B, port_close, [P]),
    ok.

%% A control reply (a list: no binary control flag) parsed as a term.
qctl(B, P, Op, Arg) ->
    case ctl(B, P, Op, Arg) of
        Text when is_list(Text) -> edc_diff:parse_term(Text);
        Other -> Other
    end.

qraw(B, P, Op, Arg) ->
    list_to_binary(ctl(B, P, Op, Arg)).

%% Refcounts of large (shared) binaries differ by what else holds them.
layout({Ret, Vsize, Size, IovNull, BinvNull, Segs}) ->
    {Ret, Vsize, Size, IovNull, BinvNull,
     [case BinSize > 64 of
          true -> {Len, Off, BinSize, '_', Kept, Bytes};
          false -> Seg
      end || {Len, Off, BinSize, _Refc, Kept, Bytes} = Seg <- Segs]};
layout(Other) ->
    Other.
