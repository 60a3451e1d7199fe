%% Differential tests of the data paths of a pseudo-port: the message
%% shapes of driver_output*, the ErlIOVec given to outputv, port_control,
%% port_call and the driver_failure family. Every case runs the same
%% scenario natively and through erl_driver_compat (edc_diff:compare/2)
%% and also matches the result against the documented native behaviour.
-module(pseudo_port_io_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).

%% output
-export([output/1,
         output_len0/1,
         output_null/1,
         output2_empty_header/1,
         output2_header/1,
         output2_header_empty_body/1,
         output2_header_null_body/1,
         output2_null_null/1,
         output_binary_header_offset/1,
         output_binary_no_header/1,
         output_binary_offset_at_end/1,
         outputv_no_header/1,
         outputv_header/1,
         outputv_skip_into_iov/1,
         outputv_skip_all/1,
         outputv_header_skip_all/1,
         outputv_long_iov_skip/1,
         vec_to_buf/1,
         echo_byte_counts/1]).

%% outputv_iovec
-export([iov_small_pieces/1,
         iov_flat_list/1,
         iov_empty_list/1,
         iov_list_of_empty_binary/1,
         iov_empty_binary/1,
         iov_chars_around_empty_binary/1,
         iov_big_binary/1,
         iov_small_big_small/1,
         iov_big_twice/1,
         iov_standalone_300/1,
         iov_sub_binary/1,
         iov_sub_64_65/1,
         iov_15_sub65/1,
         iov_16_sub65/1,
         iov_8_char_sub65/1,
         iov_20_sub255/1,
         iov_20_sub256/1,
         iov_command_message/1]).

%% control
-export([control_list_echo/1,
         control_binary_echo/1,
         control_binary_option_is_not_flag/1,
         control_default_rlen/1,
         control_alloc_reply_list/1,
         control_alloc_reply_binary/1,
         control_big_echo/1,
         control_null_rbuf/1,
         control_negative_return/1,
         control_exact_rlen/1,
         control_op_range/1,
         control_bad_op/1,
         control_data_shapes/1,
         control_bad_data/1,
         control_no_callback/1,
         control_from_non_owner/1,
         control_output_goes_to_owner/1]).

%% call
-export([call_encoding/1,
         call_echo/1,
         call_rlen/1,
         call_flags/1,
         call_zero_return/1,
         call_negative_return/1,
         call_invalid_reply/1,
         call_trailing_garbage/1,
         call_big_reply/1,
         call_op_range/1,
         call_bad_op/1,
         call_no_callback/1,
         call_from_non_owner/1]).

%% failure
-export([failure_int/1,
         failure_zero/1,
         failure_negative/1,
         failure_int_not_trapping/1,
         failure_zero_not_trapping/1,
         failure_atom/1,
         failure_atom_normal/1,
         failure_atom_not_trapping/1,
         failure_posix_eio/1,
         failure_posix_enoent/1,
         failure_posix_zero/1,
         exit_zero/1,
         exit_eio/1,
         exit_eio_not_trapping/1,
         exit_other_linked_process/1,
         failure_other_linked_process/1,
         eof_without_option/1,
         eof_with_option/1,
         failure_from_control/1,
         failure_from_call/1,
         failure_from_command_message/1]).

all() ->
    [{group, output},
     {group, outputv_iovec},
     {group, control},
     {group, call},
     {group, failure}].

groups() ->
    [{output, [],
      [output, output_len0, output_null, output2_empty_header, output2_header,
       output2_header_empty_body, output2_header_null_body, output2_null_null,
       output_binary_header_offset, output_binary_no_header,
       output_binary_offset_at_end, outputv_no_header, outputv_header,
       outputv_skip_into_iov, outputv_skip_all, outputv_header_skip_all,
       outputv_long_iov_skip, vec_to_buf, echo_byte_counts]},
     {outputv_iovec, [],
      [iov_small_pieces, iov_flat_list, iov_empty_list,
       iov_list_of_empty_binary, iov_empty_binary,
       iov_chars_around_empty_binary, iov_big_binary, iov_small_big_small,
       iov_big_twice, iov_standalone_300, iov_sub_binary, iov_sub_64_65,
       iov_15_sub65, iov_16_sub65, iov_8_char_sub65, iov_20_sub255,
       iov_20_sub256, iov_command_message]},
     {control, [],
      [control_list_echo, control_binary_echo,
       control_binary_option_is_not_flag, control_default_rlen,
       control_alloc_reply_list, control_alloc_reply_binary, control_big_echo,
       control_null_rbuf, control_negative_return, control_exact_rlen,
       control_op_range, control_bad_op, control_data_shapes,
       control_bad_data, control_no_callback, control_from_non_owner,
       control_output_goes_to_owner]},
     {call, [],
      [call_encoding, call_echo, call_rlen, call_flags, call_zero_return,
       call_negative_return, call_invalid_reply, call_trailing_garbage,
       call_big_reply, call_op_range, call_bad_op, call_no_callback,
       call_from_non_owner]},
     {failure, [],
      [failure_int, failure_zero, failure_negative, failure_int_not_trapping,
       failure_zero_not_trapping, failure_atom, failure_atom_normal,
       failure_atom_not_trapping, failure_posix_eio, failure_posix_enoent,
       failure_posix_zero, exit_zero, exit_eio, exit_eio_not_trapping,
       exit_other_linked_process, failure_other_linked_process,
       eof_without_option, eof_with_option, failure_from_control,
       failure_from_call, failure_from_command_message]}].

-define(DRIVERS, ["lc_out_drv", "lc_iov_drv", "lc_ctl_drv", "lc_call_drv",
                  "lc_fail_drv", "lc_min_drv"]).

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder(?DRIVERS)} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

-define(LONG72, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst").

%%====================================================================
%% output: one row of the table per case, on a list and a binary port.
%% Returns {ListModeMessage, BinaryModeMessage}; both calls return 0.
%%====================================================================

output(_Config) ->
    {"hello", <<"hello">>} = row(1).

output_len0(_Config) ->
    {[], <<>>} = row(2).

output_null(_Config) ->
    {[], []} = row(3).

output2_empty_header(_Config) ->
    {"hello", <<"hello">>} = row(4).

output2_header(_Config) ->
    {"hello", [$h, $e | <<"llo">>]} = row(5).

output2_header_empty_body(_Config) ->
    {"hello", [$h, $e, $l, $l, $o | <<>>]} = row(6).

output2_header_null_body(_Config) ->
    {"he", "he"} = row(7).

output2_null_null(_Config) ->
    {[], []} = row(8).

output_binary_header_offset(_Config) ->
    {"helo", [$h, $e | <<"lo">>]} = row(9).

output_binary_no_header(_Config) ->
    {"hello", <<"hello">>} = row(10).

output_binary_offset_at_end(_Config) ->
    {"he", [$h, $e | <<>>]} = row(11).

outputv_no_header(_Config) ->
    {"abcdef", [<<"ab">>, <<"cd">> | <<"ef">>]} = row(12).

outputv_header(_Config) ->
    {"XYabcd", [$X, $Y, <<"ab">> | <<"cd">>]} = row(13).

outputv_skip_into_iov(_Config) ->
    {"XYdef", [$X, $Y, <<"d">> | <<"ef">>]} = row(14).

outputv_skip_all(_Config) ->
    {[], []} = row(15).

outputv_header_skip_all(_Config) ->
    {"XY", "XY"} = row(16).

outputv_long_iov_skip(_Config) ->
    Tail = tl(?LONG72),
    BinTail = list_to_binary(Tail),
    {L, [BinTail | <<"x">>]} = row(17),
    L = Tail ++ "x".

row(Op) ->
    R = edc_diff:compare("output row " ++ integer_to_list(Op), fun(B) ->
        List = open(B, {spawn, "lc_out_drv"}, []),
        Bin = open(B, {spawn, "lc_out_drv"}, [binary]),
        {ctl(B, List, Op), edc_diff:flush(), ctl(B, Bin, Op), edc_diff:flush()}
    end),
    {"0", [{{port, 1}, {data, L}}], "0", [{{port, 2}, {data, Bn}}]} = R,
    {L, Bn}.

%% driver_vec_to_buf(ev[ab,cd,ef], buf, 4 | 10 | 0) returns 4, 6, 0.
vec_to_buf(_Config) ->
    R = edc_diff:compare("driver_vec_to_buf", fun(B) ->
        P = open(B, {spawn, "lc_out_drv"}, []),
        ctl(B, P, 50)
    end),
    "4 6 0 abcdabcdef" = R.

%% output = bytes written to the port, input = bytes delivered by the
%% driver (echo, then driver_output2 "he"+"llo" from control).
echo_byte_counts(_Config) ->
    R = edc_diff:compare("port_info input/output", fun(B) ->
        P = open(B, {spawn, "lc_out_drv"}, []),
        true = edc_diff:call(B, port_command, [P, "hello"]),
        true = edc_diff:call(B, port_command, [P, [<<"ab">>, $c]]),
        Echo = {edc_diff:call(B, port_info2, [P, input]), edc_diff:call(B, port_info2, [P, output])},
        "0" = ctl(B, P, 5),
        _ = edc_diff:flush(),
        {Echo, edc_diff:call(B, port_info2, [P, input]), edc_diff:call(B, port_info2, [P, output])}
    end),
    {{{input, 8}, {output, 8}}, {input, 13}, {output, 8}} = R.

%%====================================================================
%% outputv_iovec: lc_iov_drv reports {Size, Vsize, [{Len, IsNull,
%% OrigSize, Offset}]}. The header slot iov[0] is {0, 1, -1, -1}.
%%====================================================================

-define(HDR, {0, 1, -1, -1}).
-define(HDR_SHAPE, {0, 1}).
-define(MB, 1048576).

iov_small_pieces(_Config) ->
    {5, 2, [?HDR, {5, 0, 5, 0}]} = iov("small pieces", fun(_) -> [<<"he">>, "llo"] end).

iov_flat_list(_Config) ->
    {5, 2, [?HDR, {5, 0, 5, 0}]} = iov("flat list", fun(_) -> "hello" end).

iov_empty_list(_Config) ->
    {0, 1, [?HDR]} = iov("[]", fun(_) -> [] end).

iov_list_of_empty_binary(_Config) ->
    {0, 1, [?HDR]} = iov("[<<>>]", fun(_) -> [<<>>] end).

iov_empty_binary(_Config) ->
    {0, 2, [?HDR, ?HDR]} = iov("<<>>", fun(_) -> <<>> end).

iov_chars_around_empty_binary(_Config) ->
    {2, 2, [?HDR, {2, 0, 2, 0}]} = iov("[$a,<<>>,$b]", fun(_) -> [$a, <<>>, $b] end).

iov_big_binary(_Config) ->
    {?MB, 2, [?HDR, {?MB, 0, ?MB, 0}]} = iov("1 MB binary", fun big/1).

%% Both small pieces share one copied binary at increasing offsets.
iov_small_big_small(_Config) ->
    {4 + ?MB, 4, [?HDR, {2, 0, 4, 0}, {?MB, 0, ?MB, 0}, {2, 0, 4, 2}]} =
        iov("small, big, small", fun(N) -> ["ab", big(N), "cd"] end).

iov_big_twice(_Config) ->
    {2 * ?MB, 3, [?HDR, {?MB, 0, ?MB, 0}, {?MB, 0, ?MB, 0}]} =
        iov("big twice", fun(N) -> Big = big(N), [Big, Big] end).

iov_standalone_300(_Config) ->
    {302, 4, [?HDR, {1, 0, 2, 0}, {300, 0, 300, 0}, {1, 0, 2, 1}]} =
        iov("a, 300 bytes, b", fun(_) -> ["a", bin(300, $q), "b"] end).

%% A sub-binary is referenced in place: natively iov points into the
%% parent (orig_size 1 MB, offset 10). We hand the driver a private copy
%% of the referenced part (see outputv_SUITE for the sharing rules), so
%% only Len/IsNull/Vsize are compared between backends; the native values
%% are asserted separately.
iov_sub_binary(_Config) ->
    {100, 2, [?HDR_SHAPE, {100, 0}]} =
        iov_shape("sub-binary", fun(N) -> binary:part(big(N), 10, 100) end),
    {100, 2, [?HDR, {100, 0, ?MB, 10}]} =
        iov_native(fun(N) -> binary:part(big(N), 10, 100) end).

%% Binaries of more than 64 bytes are referenced, smaller ones copied.
iov_sub_64_65(_Config) ->
    {129, 3, [?HDR_SHAPE, {64, 0}, {65, 0}]} =
        iov_shape("sub64 + sub65", fun(N) -> [sub(N, 0, 64), sub(N, 1, 65)] end),
    {129, 3, [?HDR, {64, 0, 64, 0}, {65, 0, ?MB, 1000}]} =
        iov_native(fun(N) -> [sub(N, 0, 64), sub(N, 1, 65)] end).

%% 15 referenced segments fit the small write vector (vsize 16) ...
iov_15_sub65(_Config) ->
    {975, 16, [?HDR_SHAPE | Iovs]} = iov_shape("15 x sub65", fun(N) -> subs(N, 15, 65) end),
    [{65, 0}] = lists:usort(Iovs).

%% ... 16 do not: everything below 256 bytes is then copied.
iov_16_sub65(_Config) ->
    {1040, 2, [?HDR_SHAPE, {1040, 0}]} = iov_shape("16 x sub65", fun(N) -> subs(N, 16, 65) end).

iov_8_char_sub65(_Config) ->
    {528, 2, [?HDR_SHAPE, {528, 0}]} =
        iov_shape("8 x [a, sub65]",
                  fun(N) -> [["a", S] || S <- subs(N, 8, 65)] end).

iov_20_sub255(_Config) ->
    {5100, 2, [?HDR_SHAPE, {5100, 0}]} = iov_shape("20 x sub255", fun(N) -> subs(N, 20, 255) end).

iov_20_sub256(_Config) ->
    {5120, 21, [?HDR_SHAPE | Iovs]} = iov_shape("20 x sub256", fun(N) -> subs(N, 20, 256) end),
    [{256, 0}] = lists:usort(Iovs).

%% Port ! {Owner, {command, D}} builds the same ErlIOVec.
iov_command_message(_Config) ->
    R = edc_diff:compare("ErlIOVec of a command message", fun(B) ->
        P = open(B, {spawn, "lc_iov_drv"}, []),
        P ! {self(), {command, ["ab", big(1), "cd"]}},
        [{P, {data, Text}}] = edc_diff:flush(),
        parse_iov(Text)
    end),
    {4 + ?MB, 4, [?HDR, {2, 0, 4, 0}, {?MB, 0, ?MB, 0}, {2, 0, 4, 2}]} = R.

iov(Label, MkData) ->
    edc_diff:compare("ErlIOVec: " ++ Label, fun(B) -> iov_report(B, MkData) end).

%% Compares only {Size, Vsize, [{Len, IsNull}]}.
iov_shape(Label, MkData) ->
    edc_diff:compare("ErlIOVec shape: " ++ Label, fun(B) ->
        {Size, Vsize, Iovs} = iov_report(B, MkData),
        {Size, Vsize, [{Len, Null} || {Len, Null, _, _} <- Iovs]}
    end).

%% The full report of the native backend only (logged for compat).
iov_native(MkData) ->
    Compat = edc_diff:run(compat, fun(B) -> iov_report(B, MkData) end),
    ct:log("compat full report: ~p", [Compat]),
    edc_diff:run(native, fun(B) -> iov_report(B, MkData) end).

iov_report(B, MkData) ->
    P = open(B, {spawn, "lc_iov_drv"}, []),
    true = edc_diff:call(B, port_command, [P, MkData(1)]),
    [{P, {data, Text}}] = edc_diff:flush(),
    parse_iov(Text).

parse_iov(Text) ->
    [Size, Vsize | Rest] = [list_to_integer(W) || W <- string:lexemes(Text, " ")],
    {Size, Vsize, quads(Rest)}.

quads([A, B, C, D | T]) -> [{A, B, C, D} | quads(T)];
quads([]) -> [].

big(Seed) ->
    bin(?MB, Seed).

bin(N, Byte) ->
    binary:copy(<<Byte>>, N).

%% Sub-binary I (of Len bytes) of a fresh 1 MB binary, 1000 bytes apart.
sub(Seed, I, Len) ->
    binary:part(big(Seed), I * 1000, Len).

subs(Seed, N, Len) ->
    Big = big(Seed),
    [binary:part(Big, I * 1000, Len) || I <- lists:seq(0, N - 1)].

%%====================================================================
%% control (lc_ctl_drv; "lc_ctl_drv binary" sets PORT_CONTROL_FLAG_BINARY)
%%====================================================================

control_list_echo(_Config) ->
    R = edc_diff:compare("control echo, list mode", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        {edc_diff:call(B, port_control, [P, 1, "hello"]), edc_diff:call(B, port_control, [P, 1, ""])}
    end),
    {"hello", []} = R.

control_binary_echo(_Config) ->
    R = edc_diff:compare("control echo, binary mode", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv binary"}, []),
        {edc_diff:call(B, port_control, [P, 1, "hello"]), edc_diff:call(B, port_control, [P, 1, ""])}
    end),
    {<<"hello">>, <<>>} = R.

%% The open_port binary option does not make control replies binaries.
control_binary_option_is_not_flag(_Config) ->
    R = edc_diff:compare("binary option, no control flag", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, [binary]),
        edc_diff:call(B, port_control, [P, 1, <<"hello">>])
    end),
    "hello" = R.

control_default_rlen(_Config) ->
    R = edc_diff:compare("control rlen", fun(B) ->
        L = open(B, {spawn, "lc_ctl_drv"}, []),
        Bn = open(B, {spawn, "lc_ctl_drv binary"}, []),
        {ctl(B, L, 2), ctl(B, Bn, 2)}
    end),
    {"64", <<"64">>} = R.

control_alloc_reply_list(_Config) ->
    R = edc_diff:compare("control driver_alloc reply", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        ctl(B, P, 3)
    end),
    R = lists:duplicate(1000, $A).

control_alloc_reply_binary(_Config) ->
    R = edc_diff:compare("control driver_alloc_binary reply", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv binary"}, []),
        ctl(B, P, 3)
    end),
    R = binary:copy(<<"A">>, 1000).

control_big_echo(_Config) ->
    Data = [lists:duplicate(3000, $z), binary:copy(<<"y">>, 2000)],
    R = edc_diff:compare("control echo of 5000 bytes", fun(B) ->
        L = open(B, {spawn, "lc_ctl_drv"}, []),
        Bn = open(B, {spawn, "lc_ctl_drv binary"}, []),
        {edc_diff:call(B, port_control, [L, 1, Data]), edc_diff:call(B, port_control, [Bn, 1, Data])}
    end),
    Flat = iolist_to_binary(Data),
    {Flat, Flat} = {list_to_binary(element(1, R)), element(2, R)}.

%% *rbuf = NULL gives [] in both modes, whatever the length returned.
control_null_rbuf(_Config) ->
    R = edc_diff:compare("control NULL rbuf", fun(B) ->
        L = open(B, {spawn, "lc_ctl_drv"}, []),
        Bn = open(B, {spawn, "lc_ctl_drv binary"}, []),
        [ctl(B, P, Op) || P <- [L, Bn], Op <- [4, 5]]
    end),
    [[], [], [], []] = R.

control_negative_return(_Config) ->
    R = edc_diff:compare("control negative return", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        {x(fun() -> ctl(B, P, 6) end), x(fun() -> ctl(B, P, 7) end),
         edc_diff:call(B, port_control, [P, 1, "alive"]), edc_diff:flush()}
    end),
    {{error, badarg}, {error, badarg}, "alive", []} = R.

control_exact_rlen(_Config) ->
    R = edc_diff:compare("control reply of exactly rlen bytes", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        ctl(B, P, 8)
    end),
    R = lists:duplicate(64, $x).

control_op_range(_Config) ->
    R = edc_diff:compare("control op range", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        {ctl(B, P, 0), ctl(B, P, 4294967295)}
    end),
    {"op=0", "op=4294967295"} = R.

control_bad_op(_Config) ->
    R = edc_diff:compare("control bad op", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        [x(fun() -> ctl(B, P, Op) end) || Op <- [-1, 4294967296, 1.0, foo]]
    end),
    [{error, badarg}, {error, badarg}, {error, badarg}, {error, badarg}] = R.

control_data_shapes(_Config) ->
    R = edc_diff:compare("control data shapes", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        [edc_diff:call(B, port_control, [P, 12, D])
         || D <- ["abc", <<"abc">>, ["a", <<"b">>, [$c]], [$a | <<"b">>], [[], <<>>]]]
    end),
    ["3", "3", "3", "2", "0"] = R.

control_bad_data(_Config) ->
    R = edc_diff:compare("control non-iodata", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        [x(fun() -> edc_diff:call(B, port_control, [P, 12, D]) end)
         || D <- [foo, 65, [256], [$a | $b], [-1]]]
    end),
    [{error, badarg}] = lists:usort(R).

control_no_callback(_Config) ->
    R = edc_diff:compare("control without callback", fun(B) ->
        P = open(B, {spawn, "lc_min_drv"}, []),
        Ctl = x(fun() -> edc_diff:call(B, port_control, [P, 1, "a"]) end),
        true = edc_diff:call(B, port_command, [P, "still here"]),
        {Ctl, edc_diff:flush()}
    end),
    {{error, badarg}, [{{port, 1}, {data, "still here"}}]} = R.

%% driver_caller is the calling process, driver_connected the owner.
control_from_non_owner(_Config) ->
    R = edc_diff:compare("control from a non-owner", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        Third = in_other_process(fun() -> {ctl(B, P, 10), ctl(B, P, 11)} end),
        {Third, ctl(B, P, 11)}
    end),
    {{"saved", "1 0"}, "0 1"} = R.

control_output_goes_to_owner(_Config) ->
    R = edc_diff:compare("driver_output in control", fun(B) ->
        P = open(B, {spawn, "lc_ctl_drv"}, []),
        Third = in_other_process(fun() -> {ctl(B, P, 9), edc_diff:flush()} end),
        {Third, edc_diff:flush()}
    end),
    {{"ok", []}, [{{port, 1}, {data, "from_control"}}]} = R.

%%====================================================================
%% call (lc_call_drv)
%%====================================================================

%% The argument bytes are term_to_binary(Term).
call_encoding(_Config) ->
    Terms = [foo, "abc", 5, <<1, 2, 3>>, 1.5, {a, [1, 2]}, [], 300, -7],
    R = edc_diff:compare("call argument encoding", fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        [edc_diff:call(B, port_call, [P, 2, T]) || T <- Terms]
    end),
    R = [term_to_binary(T) || T <- Terms].

call_echo(_Config) ->
    R = edc_diff:compare("call echo", fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        Ref = make_ref(),
        Fun = fun lists:reverse/1,
        Terms = [foo, {self(), Ref}, Fun, #{a => 1}, lists:seq(1, 300),
                 binary:copy(<<"z">>, 500)],
        [edc_diff:call(B, port_call, [P, 1, T]) =:= T || T <- Terms]
    end),
    [true, true, true, true, true, true] = R.

call_rlen(_Config) ->
    255 = simple_call("call rlen", 3, x).

call_flags(_Config) ->
    0 = simple_call("call flags", 4, x).

call_zero_return(_Config) ->
    {{error, badarg}, still_alive} = call_fails("call returns 0", 5).

call_negative_return(_Config) ->
    {{error, badarg}, still_alive} = call_fails("call returns -1", 6),
    {{error, badarg}, still_alive} = call_fails("call returns -3", 7).

call_invalid_reply(_Config) ->
    {{error, badarg}, still_alive} = call_fails("call invalid term", 8),
    {{error, badarg}, still_alive} = call_fails("call without version byte", 9).

call_trailing_garbage(_Config) ->
    5 = simple_call("call trailing bytes", 10, x).

call_big_reply(_Config) ->
    Big = binary:copy(<<"B">>, 1000),
    Big = simple_call("call big reply", 11, x).

%% Ops are unsigned 32-bit; the driver echoes the op as a signed
%% INTEGER_EXT, so 4294967295 comes back as -1.
call_op_range(_Config) ->
    R = edc_diff:compare("call op range", fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        {edc_diff:call(B, port_call, [P, 0, x]), edc_diff:call(B, port_call, [P, 4294967295, x])}
    end),
    {0, -1} = R.

call_bad_op(_Config) ->
    R = edc_diff:compare("call bad op", fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        [x(fun() -> edc_diff:call(B, port_call, [P, Op, x]) end)
         || Op <- [-1, 4294967296, foo]]
    end),
    [{error, badarg}, {error, badarg}, {error, badarg}] = R.

call_no_callback(_Config) ->
    R = edc_diff:compare("call without callback", fun(B) ->
        P = open(B, {spawn, "lc_min_drv"}, []),
        Call = x(fun() -> edc_diff:call(B, port_call, [P, 1, a]) end),
        true = edc_diff:call(B, port_command, [P, "still here"]),
        {Call, edc_diff:flush()}
    end),
    {{error, badarg}, [{{port, 1}, {data, "still here"}}]} = R.

call_from_non_owner(_Config) ->
    R = edc_diff:compare("call from a non-owner", fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        Third = in_other_process(fun() ->
                                         {edc_diff:call(B, port_call, [P, 12, x]),
                                          edc_diff:call(B, port_call, [P, 13, x])}
                                 end),
        {Third, edc_diff:call(B, port_call, [P, 13, x])}
    end),
    {{ok, {1, 0}}, {0, 1}} = R.

simple_call(Label, Op, Arg) ->
    edc_diff:compare(Label, fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        edc_diff:call(B, port_call, [P, Op, Arg])
    end).

call_fails(Label, Op) ->
    edc_diff:compare(Label, fun(B) ->
        P = open(B, {spawn, "lc_call_drv"}, []),
        Result = x(fun() -> edc_diff:call(B, port_call, [P, Op, x]) end),
        {Result, case edc_diff:call(B, port_info, [P]) of
                     undefined -> closed;
                     _ -> still_alive
                 end}
    end).

%%====================================================================
%% failure (lc_fail_drv). The port is opened by a spawned owner; the
%% scenario process sends the action. Result:
%%   {OwnerMessages, OwnerFate, PortInfoAfter, {ActionRc, AfterRc, Stops}}
%%====================================================================

failure_int(_Config) ->
    {[{'EXIT', port, 3}], alive, undefined, {0, -1, 1}} = fail("fail 3", true).

failure_zero(_Config) ->
    {[{'EXIT', port, normal}], alive, undefined, {0, -1, 1}} = fail("fail 0", true).

failure_negative(_Config) ->
    {[{'EXIT', port, -1}], alive, undefined, {0, -1, 1}} = fail("fail -1", true).

failure_int_not_trapping(_Config) ->
    {[], {down, 3}, undefined, {0, -1, 1}} = fail("fail 3", false).

failure_zero_not_trapping(_Config) ->
    {[], alive, undefined, {0, -1, 1}} = fail("fail 0", false).

failure_atom(_Config) ->
    {[{'EXIT', port, foo}], alive, undefined, {0, -1, 1}} = fail("atom foo", true).

failure_atom_normal(_Config) ->
    {[{'EXIT', port, normal}], alive, undefined, {0, -1, 1}} = fail("atom normal", true).

failure_atom_not_trapping(_Config) ->
    {[], {down, foo}, undefined, {0, -1, 1}} = fail("atom foo", false).

failure_posix_eio(_Config) ->
    {[{'EXIT', port, eio}], alive, undefined, {0, -1, 1}} = fail("posix 5", true).

failure_posix_enoent(_Config) ->
    {[], {down, enoent}, undefined, {0, -1, 1}} = fail("posix 2", false).

failure_posix_zero(_Config) ->
    {[{'EXIT', port, unknown}], alive, undefined, {0, -1, 1}} = fail("posix 0", true).

%% driver_exit unlinks the owner first: it gets no signal at all.
exit_zero(_Config) ->
    {[], alive, undefined, {0, -1, 1}} = fail("exit 0", true).

exit_eio(_Config) ->
    {[], alive, undefined, {0, -1, 1}} = fail("exit 5", true).

exit_eio_not_trapping(_Config) ->
    {[], alive, undefined, {0, -1, 1}} = fail("exit 5", false).

%% ... but other linked processes do.
exit_other_linked_process(_Config) ->
    {{[], alive}, [{'EXIT', port, eio}]} = fail_linked("exit 5").

failure_other_linked_process(_Config) ->
    {{[{'EXIT', port, 7}], alive}, [{'EXIT', port, 7}]} = fail_linked("fail 7").

eof_without_option(_Config) ->
    {[{'EXIT', port, normal}], alive, undefined, {0, -1, 1}} = fail("eof", true).

%% With the eof option the port stays open; {P, eof} can repeat and
%% driver_output still works afterwards.
eof_with_option(_Config) ->
    R = edc_diff:compare("driver_failure_eof with eof", fun(B) ->
        Probe = open(B, {spawn, "lc_fail_drv"}, []),
        {_, _, Stops0} = stats(B, Probe),
        P = open(B, {spawn, "lc_fail_drv"}, [eof]),
        true = edc_diff:call(B, port_command, [P, "eof"]),
        true = edc_diff:call(B, port_command, [P, "eof"]),
        Msgs = edc_diff:flush(),
        {A, O, Stops} = stats(B, Probe),
        {Msgs, edc_diff:call(B, port_info2, [P, connected]), {A, O, Stops - Stops0}}
    end),
    {[{{port, 2}, eof}, {{port, 2}, {data, "after"}},
      {{port, 2}, eof}, {{port, 2}, {data, "after"}}],
     {connected, self}, {0, 0, 0}} = R.

%% The control reply is still returned although the port died in it.
failure_from_control(_Config) ->
    R = fail_via("driver_failure in control", true, fun(B, P, _Owner) ->
        edc_diff:call(B, port_control, [P, 1, "fail 3"])
    end),
    {"ctl_ok", [{'EXIT', port, 3}], alive, undefined, {0, -1, 1}} = R.

failure_from_call(_Config) ->
    R = fail_via("driver_failure in call", true, fun(B, P, _Owner) ->
        edc_diff:call(B, port_call, [P, 1, "fail 5"])
    end),
    {ok, [{'EXIT', port, 5}], alive, undefined, {0, -1, 1}} = R.

failure_from_command_message(_Config) ->
    R = fail_via("driver_failure from a command message", true, fun(_B, P, Owner) ->
        P ! {Owner, {command, "fail 9"}},
        %% The port handles the message on its own: wait for its end.
        wait_port_gone(P),
        sent
    end),
    {sent, [{'EXIT', port, 9}], alive, undefined, {0, -1, 1}} = R.

fail(Action, Trap) ->
    {Reply, Msgs, Fate, Info, Stats} =
        fail_via("action " ++ Action ++ trap_label(Trap), Trap,
                 fun(B, P, _Owner) -> edc_diff:call(B, port_command, [P, Action]) end),
    true = Reply,
    {Msgs, Fate, Info, Stats}.

trap_label(true) -> ", trapping owner";
trap_label(false) -> ", non-trapping owner".

fail_via(Label, Trap, Act) ->
    edc_diff:compare(Label, fun(B) ->
        Probe = open(B, {spawn, "lc_fail_drv"}, []),
        {_, _, Stops0} = stats(B, Probe),
        {Owner, P} = spawn_owner(B, {spawn, "lc_fail_drv"}, [], Trap),
        MRef = monitor(process, Owner),
        Reply = Act(B, P, Owner),
        Info = edc_diff:call(B, port_info, [P]),
        wait_port_gone(P),
        {A, O, Stops} = stats(B, Probe),
        sync_owner(Owner, MRef),
        All = edc_diff:flush(),
        Msgs = [M || {From, got, M} <- All, From =:= Owner],
        Fate = fate(MRef, All),
        Owner ! stop,
        sub({Reply, Msgs, Fate, Info, {A, O, Stops - Stops0}},
            [{P, port}, {Owner, owner}])
    end).

%% The scenario process links to the port and traps exits as well.
fail_linked(Action) ->
    edc_diff:compare("linked process sees " ++ Action, fun(B) ->
        process_flag(trap_exit, true),
        {Owner, P} = spawn_owner(B, {spawn, "lc_fail_drv"}, [], true),
        MRef = monitor(process, Owner),
        link(P),
        true = edc_diff:call(B, port_command, [P, Action]),
        wait_port_gone(P),
        sync_owner(Owner, MRef),
        All = edc_diff:flush(),
        OwnerMsgs = [M || {From, got, M} <- All, From =:= Owner],
        Mine = [M || {'EXIT', _, _} = M <- All],
        Owner ! stop,
        sub({{OwnerMsgs, fate(MRef, All)}, Mine}, [{P, port}, {Owner, owner}])
    end).

stats(B, Probe) ->
    [A, O, S] = string:lexemes(edc_diff:call(B, port_control, [Probe, 2, []]), " "),
    {list_to_integer(A), list_to_integer(O), list_to_integer(S)}.

%%====================================================================
%% Helpers
%%====================================================================


open(B, Name, Opts) ->
    edc_diff:call(B, open_port, [Name, Opts]).

ctl(B, P, Op) ->
    edc_diff:call(B, port_control, [P, Op, []]).

%% {ok, Value} or {Class, Reason}: stack traces differ between backends.
x(F) ->
    try {ok, F()} catch C:R -> {C, R} end.

%% Runs F in a new process and returns its result.
in_other_process(F) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> Parent ! {Ref, x(F)} end),
    receive {Ref, {ok, V}} -> V; {Ref, Error} -> Error after 5000 -> timeout end.

%% Spawns an owner that opens the port with the unwrapped open_port (the
%% harness records ports of the scenario process only) and forwards every
%% message it receives as {Owner, got, M}; stop ends it.
spawn_owner(B, Name, Opts, Trap) ->
    Parent = self(),
    Open = maps:get(open_port, edc_diff:backend(maps:get(kind, B))),
    Owner = spawn(fun() ->
                          process_flag(trap_exit, Trap),
                          P = Open(Name, Opts),
                          Parent ! {self(), port, P},
                          forward(Parent)
                  end),
    receive {Owner, port, P} -> {Owner, P} after 5000 -> error(owner_timeout) end.

forward(Parent) ->
    receive
        stop -> ok;
        M -> Parent ! {self(), got, M}, forward(Parent)
    end.

%% Waits (at most 5 s) until the port P is gone: the 'DOWN' of a monitor
%% (a native port is monitored as a port, a pseudo-port as a process).
wait_port_gone(P) ->
    Ref = case is_port(P) of
              true -> erlang:monitor(port, P);
              false -> erlang:monitor(process, P)
          end,
    receive {'DOWN', Ref, _, _, _} -> ok
    after 5000 -> erlang:demonitor(Ref, [flush]), erlang:error(port_still_open)
    end.

%% Waits until the owner (monitored by MRef) has handled the signals the
%% port sent it before it died: the owner echoes a sync message (forward/1
%% forwards everything) or is 'DOWN' (that message is put back for fate/2).
sync_owner(Owner, MRef) ->
    Ref = make_ref(),
    Owner ! {sync, Ref},
    receive
        {Owner, got, {sync, Ref}} -> ok;
        {'DOWN', MRef, process, Owner, _} = Down -> self() ! Down, ok
    after 5000 -> erlang:error(owner_sync_timeout)
    end.

%% The 'DOWN' reason of a monitored process found in Msgs, or alive.
fate(MRef, Msgs) ->
    case [R || {'DOWN', Ref, process, _, R} <- Msgs, Ref =:= MRef] of
        [Reason] -> {down, Reason};
        [] -> alive
    end.

%% Replaces the given pids/ports by names (inside lists, improper lists
%% and tuples): ports opened by other processes are not known to the
%% harness normaliser.
sub(T, Subs) ->
    case lists:keyfind(T, 1, Subs) of
        {_, Name} when is_pid(T); is_port(T) -> Name;
        _ when is_list(T) -> sub_list(T, Subs);
        _ when is_tuple(T) -> list_to_tuple(sub_list(tuple_to_list(T), Subs));
        _ -> T
    end.

sub_list([], _) -> [];
sub_list([H | T], Subs) -> [sub(H, Subs) | sub_list(T, Subs)];
sub_list(Tail, Subs) -> sub(Tail, Subs).
