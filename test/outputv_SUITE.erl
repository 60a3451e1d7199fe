%% The ErlIOVec a driver's outputv() receives from port_command data, and
%% the {Port, {data, Data}} message driver_outputv() makes of it
%% (lc_iov_echo_drv echoes its vector and reports its layout).
%%
%% The inputs are generated: every sequence of up to three elements (four
%% for a smaller set of kinds) over the kinds of data a port can be given —
%% bytes, heap binaries, off-heap (refc) binaries small and large,
%% sub-binaries sharing one parent, binaries not starting on a byte
%% boundary, empty binaries and lists — flat, nested and with a binary
%% tail; and random deep iolists (PropEr, when installed). Each input runs
%% on a binary port with and without header and skip, with empty segments
%% in the echoed vector, and on a list port; native and compat must give
%% the same message (binaries with their kind: heap or off-heap) and the
%% same layout (vsize, each iov_len, which segments share one binary and at
%% which relative offsets, whether skipping changed the driver's vector).
-module(outputv_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([kinds_are_what_they_claim/1,
         small_off_heap_binary_is_own_segment/1,
         sub_binaries_share_parent/1,
         empty_heap_binaries_count_for_packing/1,
         skip_advances_driver_vector/1,
         empty_segments_in_message/1,
         exposed_binary_passed_through/1]).
-export([all_sequences_up_to_3/1,
         small_kinds_sequences_of_4/1,
         long_sequences_around_packing/1,
         random_deep_iolists/1]).

-define(DRV, "lc_iov_echo_drv").
-define(OP_CONFIG, 1).
-define(OP_LAYOUT, 2).
-define(OP_SEND, 3).

all() ->
    [{group, facts}, {group, generated}].

groups() ->
    [{facts, [], [kinds_are_what_they_claim,
                  small_off_heap_binary_is_own_segment,
                  sub_binaries_share_parent,
                  empty_heap_binaries_count_for_packing,
                  skip_advances_driver_vector,
                  empty_segments_in_message,
                  exposed_binary_passed_through]},
     {generated, [], [all_sequences_up_to_3,
                      small_kinds_sequences_of_4,
                      long_sequences_around_packing,
                      random_deep_iolists]}].

init_per_suite(Config) ->
    %% Binary kinds (heap or off-heap) are only visible through the
    %% emulator's internal state.
    erts_debug:set_internal_state(available_internal_state, true),
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)),
    erts_debug:set_internal_state(available_internal_state, false),
    ok.

%%====================================================================
%% Element kinds. Each is built in the process that sends it (binary
%% kinds survive only there); Parent is a 2000-byte off-heap binary shared
%% by the sub-binaries of one input, I the element's position (0-8).
%%====================================================================

-define(KINDS, [byte, heap, heap64, empty, nil, small_off_heap, refc,
                sub100, sub300, unaligned, part_small]).
-define(SMALL_KINDS, [byte, heap, empty, small_off_heap, sub100, sub300]).

element(byte, _, _) -> $b;
element(heap, _, I) -> list_to_binary([$h, $0 + I]);
element(heap64, _, _) -> binary:copy(<<"H">>, 64);
element(empty, _, _) -> <<>>;
element(nil, _, _) -> [];
element(small_off_heap, _, I) -> appended([$o, $0 + I, $s]);
element(refc, _, I) -> binary:copy(<<($A + I)>>, 100);
element(sub100, Parent, I) -> binary:part(Parent, 10 + 97 * I, 100);
element(sub300, Parent, I) -> binary:part(Parent, 5 + 201 * I, 300);
element(unaligned, Parent, I) ->
    <<_:(8 * I + 1), B:100/binary, _/bitstring>> = Parent,
    B;
element(part_small, Parent, I) -> binary:part(Parent, 3 * I, 20).

%% A binary built by appending: off-heap (writable) however small.
appended(Bytes) ->
    lists:foldl(fun(X, Acc) -> <<Acc/binary, X>> end, <<>>, Bytes).

parent() ->
    list_to_binary([I rem 251 || I <- lists:seq(1, 2000)]).

%% The data of one input: flat, each element nested, or with the last
%% element as the improper tail when it is a binary.
build({Form, Kinds}) ->
    Parent = parent(),
    Elems = [element(K, Parent, I rem 9) || {K, I} <- lists:zip(Kinds, lists:seq(1, length(Kinds)))],
    case Form of
        flat -> Elems;
        nested -> [[E] || E <- Elems];
        tail -> improper(Elems)
    end.

improper([]) -> [];
improper(Elems) ->
    case lists:last(Elems) of
        B when is_binary(B) -> lists:droplast(Elems) ++ B;
        _ -> Elems
    end.

%%====================================================================
%% Running one input
%%====================================================================

%% Port configurations: {Options, HeaderLen, Skip, Pad, How}: data sent
%% with port_command or as a {command, Data} message.
-define(CONFIGS, [{[binary], 0, 0, 0, call},
                  {[binary], 2, 1, 0, call},
                  {[binary], 0, 103, 0, call},
                  {[binary], 1, 0, 1, call},
                  {[], 3, 2, 0, call},
                  {[binary], 0, 0, 0, bang}]).

%% The observations for a list of inputs, each sent with MkData(Input) to
%% a port of each configuration.
observe(B, Inputs, MkData, Configs) ->
    Ports = [{open(B, Opts, H, S, Pad), How} || {Opts, H, S, Pad, How} <- Configs],
    [[echo(B, P, How, MkData(In)) || {P, How} <- Ports] || In <- Inputs].

open(B, Opts, H, S, Pad) ->
    P = edc_diff:call(B, open_port, [{spawn, ?DRV}, Opts]),
    "ok" = edc_diff:call(B, port_control,
                         [P, ?OP_CONFIG, io_lib:format("~b ~b ~b", [H, S, Pad])]),
    P.

echo(B, P, Data) ->
    echo(B, P, call, Data).

echo(B, P, How, Data) ->
    case How of
        call -> true = edc_diff:call(B, port_command, [P, Data]);
        bang -> P ! {self(), {command, Data}}
    end,
    Msgs = receive {P, {data, D}} -> [shape(D)] after 5000 -> timeout end,
    Layout = edc_diff:parse_term(edc_diff:call(B, port_control, [P, ?OP_LAYOUT, ""])),
    {Msgs, normalise_layout(Layout)}.

%% Binaries with their kind; long ones by size and checksum.
shape(B) when is_binary(B) ->
    Kind = case erts_debug:get_internal_state({binary_info, B}) of
               heap_binary -> heap;
               _ -> off_heap
           end,
    case byte_size(B) > 16 of
        true -> {Kind, byte_size(B), erlang:crc32(B)};
        false -> {Kind, B}
    end;
shape([H | T]) -> [shape(H) | shape(T)];
shape(X) -> X.

%% Offsets relative to the lowest offset of the same binary: natively
%% segments point into the sender's binaries, ours into private copies.
normalise_layout({Size, Vsize, Segs, Changed}) ->
    Min = lists:foldl(fun({_, C, Off, _}, M) when C >= 0 ->
                              maps:update_with(C, fun(O) -> min(O, Off) end, Off, M);
                         (_, M) -> M
                      end, #{}, Segs),
    {Size, Vsize,
     [{Len, C, case C of -1 -> -1; _ -> Off - maps:get(C, Min) end, Mine}
      || {Len, C, Off, Mine} <- Segs],
     Changed};
normalise_layout(Other) ->
    Other.

%% Runs all inputs natively and through compat and fails with the first
%% differing inputs.
compare_all(Label, Inputs, MkData, Configs) ->
    Scenario = fun(B) -> observe(B, Inputs, MkData, Configs) end,
    Native = edc_diff:run(native, Scenario, 300000),
    Compat = edc_diff:run(compat, Scenario, 300000),
    true = is_list(Native) orelse ct:fail({native_failed, Native}),
    true = is_list(Compat) orelse ct:fail({compat_failed, Compat}),
    Diffs = [{In, lists:zip3(Configs, N, C)}
             || {In, N, C} <- lists:zip3(Inputs, Native, Compat), N =/= C],
    ct:log("~ts: ~b inputs x ~b configurations, ~b differ",
           [Label, length(Inputs), length(Configs), length(Diffs)]),
    case Diffs of
        [] ->
            ok;
        _ ->
            [ct:pal("~ts differs for ~p:~n~p",
                    [Label, In, [{Cfg, {native, N}, {compat, C}} || {Cfg, N, C} <- Rows, N =/= C]])
             || {In, Rows} <- lists:sublist(Diffs, 5)],
            ct:fail({differs, Label, length(Diffs), [In || {In, _} <- lists:sublist(Diffs, 20)]})
    end.

%% One input on one configuration, natively and through compat: the
%% native observation must be Expected and compat equal to it.
expect(Label, Kinds, Config, Expected) ->
    edc_diff:expect(Label, fun(B) ->
        [[Obs]] = observe(B, [Kinds], fun build/1, [Config]),
        Obs
    end, Expected).

%%====================================================================
%% facts: native behaviour measured on OTP 25, one case each
%%====================================================================

%% The generators give the binary kinds they are named after.
kinds_are_what_they_claim(_Config) ->
    Parent = parent(),
    Kinds = [{K, kind(element(K, Parent, 1))} || K <- ?KINDS, K =/= byte, K =/= nil],
    [{heap, heap_binary}, {heap64, heap_binary}, {empty, heap_binary},
     {small_off_heap, refc_binary}, {refc, refc_binary}, {sub100, refc_binary},
     {sub300, refc_binary}, {unaligned, refc_binary}, {part_small, heap_binary}] = Kinds.

kind(B) ->
    case erts_debug:get_internal_state({binary_info, B}) of
        heap_binary -> heap_binary;
        T when is_tuple(T) -> element(1, T)
    end.

-define(HDR, {0, -1, -1, 0}).

%% A 3-byte off-heap binary is a segment of its own between two runs of
%% copied bytes, which share one binary; the message has three heap
%% binaries.
small_off_heap_binary_is_own_segment(_Config) ->
    expect("byte, small off-heap, byte", {flat, [byte, small_off_heap, byte]},
           {[binary], 0, 0, 0, call},
           {[[{heap, <<"b">>}, {heap, <<"o2s">>} | {heap, <<"b">>}]],
            {5, 4, [?HDR, {1, 1, 0, 0}, {3, 2, 0, 0}, {1, 1, 1, 0}], 0}}).

%% Two sub-binaries of one parent share one driver binary, 97 bytes
%% apart as in the parent.
sub_binaries_share_parent(_Config) ->
    expect("two sub-binaries of one parent", {flat, [sub100, sub100]},
           {[binary], 0, 0, 0, call},
           {[[{off_heap, 100, crc(107, 100)} | {off_heap, 100, crc(204, 100)}]],
            {200, 3, [?HDR, {100, 1, 0, 0}, {100, 1, 97, 0}], 0}}).

crc(Pos, Len) ->
    erlang:crc32(binary:part(parent(), Pos, Len)).

%% Eight off-heap binaries separated by empty heap binaries count as 16
%% segments natively: the vector is packed (all copied into one segment).
empty_heap_binaries_count_for_packing(_Config) ->
    Kinds = lists:append(lists:duplicate(8, [refc, empty])),
    expect("8 x [refc, <<>>]", {flat, Kinds}, {[binary], 0, 0, 0, call},
           {[{off_heap, 800, erlang:crc32(iolist_to_binary(build({flat, Kinds})))}],
            {800, 2, [?HDR, {800, 1, 0, 0}], 0}}).

%% driver_outputv() advances the segment where skipping ends in the
%% driver's own vector (Changed = 1).
skip_advances_driver_vector(_Config) ->
    expect("skip 3 of [heap, refc]", {flat, [heap, refc]}, {[binary], 0, 3, 0, call},
           {[{off_heap, 99, erlang:crc32(binary:copy(<<"C">>, 99))}],
            {102, 3, [?HDR, {2, 1, 0, 0}, {100, 2, 0, 0}], 1}}).

%% Empty segments after the first are kept: empty binaries in the message.
empty_segments_in_message(_Config) ->
    expect("padded [byte]", {flat, [byte]}, {[binary], 0, 0, 1, call},
           {[[{heap, <<>>}, {heap, <<"b">>} | {heap, <<>>}]],
            {1, 2, [?HDR, {1, 1, 0, 0}], 0}}).

%% A binary the driver sent with driver_output_binary comes back in its
%% vector as the same driver binary (no copy), natively and through us.
exposed_binary_passed_through(_Config) ->
    edc_diff:expect("exposed binary", fun(B) ->
        P = open(B, [binary], 0, 0, 0),
        "ok" = edc_diff:call(B, port_control, [P, ?OP_SEND, "100"]),
        Bin = receive {P, {data, D}} -> D after 5000 -> timeout end,
        echo(B, P, ["x", Bin, binary:part(Bin, 10, 80)])
    end, {[[{heap, <<"x">>}, {off_heap, 100, crc_abc(0, 100)} | {off_heap, 80, crc_abc(10, 80)}]],
          {181, 4, [?HDR, {1, 1, 0, 0}, {100, 2, 0, 1}, {80, 2, 10, 1}], 0}}).

crc_abc(Pos, Len) ->
    erlang:crc32(binary:part(list_to_binary([$a + I rem 26 || I <- lists:seq(0, 99)]), Pos, Len)).

%%====================================================================
%% generated
%%====================================================================

all_sequences_up_to_3(_Config) ->
    Seqs = sequences(?KINDS, 3),
    Inputs = [{Form, S} || S <- Seqs, Form <- [flat, nested, tail]],
    compare_all("sequences up to 3", Inputs, fun build/1, ?CONFIGS).

small_kinds_sequences_of_4(_Config) ->
    Inputs = [{flat, S} || S <- sequences(?SMALL_KINDS, 4), length(S) =:= 4],
    compare_all("sequences of 4", Inputs, fun build/1, ?CONFIGS).

%% Flat lists of 10 to 40 random elements (fixed seed): vectors of about
%% 16 segments, packed and not.
long_sequences_around_packing(_Config) ->
    rand:seed(exsss, {17, 4, 2026}),
    Kinds = list_to_tuple(?KINDS),
    Random = fun(N) -> [element(rand:uniform(tuple_size(Kinds)), Kinds) || _ <- lists:seq(1, N)] end,
    Inputs = [{flat, Random(10 + rand:uniform(30))} || _ <- lists:seq(1, 300)]
        ++ [{flat, lists:append(lists:duplicate(N, Pattern))}
            || N <- lists:seq(7, 18),
               Pattern <- [[small_off_heap], [refc, byte], [refc, empty], [sub300, small_off_heap],
                           [sub100, nil], [refc, heap, sub100]]],
    compare_all("long sequences", Inputs, fun build/1, ?CONFIGS).

sequences(_, 0) -> [[]];
sequences(Kinds, N) ->
    Shorter = sequences(Kinds, N - 1),
    lists:usort(Shorter ++ [[K | S] || K <- Kinds, S <- Shorter, length(S) =:= N - 1]).

%% Random deep iolists (trees of the element kinds) of up to ~60
%% elements, so that packing (16 segments) is crossed both ways.
random_deep_iolists(_Config) ->
    case code:which(proper) of
        non_existing ->
            {skip, "PropEr (erlang-proper) is not installed"};
        _ ->
            Prop = proper:forall(tree(), fun(Tree) ->
                       Same = try compare_all("random iolist", [Tree], fun build_tree/1, ?CONFIGS) of
                                  ok -> true
                              catch exit:{test_case_failed, _} -> false
                              end,
                       proper:collect(leaves(Tree) div 10 * 10, Same)
                   end),
            Log = fun(Format, Args) -> ct:log(Format, Args) end,
            true = proper:quickcheck(Prop, [{numtests, 150}, {on_output, Log}, noshrink])
    end.

tree() ->
    proper_types:sized(fun(Size) -> proper_types:non_empty(tree(min(Size, 60))) end).

tree(Size) when Size =< 1 ->
    proper_types:list(proper_types:oneof(?KINDS));
tree(Size) ->
    proper_types:list(proper_types:frequency(
                        [{6, proper_types:oneof(?KINDS)},
                         {1, proper_types:lazy(fun() -> tree(Size div 3) end)},
                         {1, proper_types:lazy(fun() ->
                                 {tail, tree(Size div 3), proper_types:oneof([refc, heap, sub300])}
                             end)}])).

leaves(Kinds) when is_list(Kinds) -> lists:sum([leaves(K) || K <- Kinds]);
leaves({tail, Kinds, _}) -> leaves(Kinds) + 1;
leaves(_) -> 1.

build_tree(Tree) ->
    Parent = parent(),
    {Data, _} = build_tree(Tree, Parent, 1),
    Data.

build_tree(Kinds, Parent, I) when is_list(Kinds) ->
    lists:mapfoldl(fun(K, J) -> build_tree(K, Parent, J) end, I, Kinds);
build_tree({tail, Kinds, Last}, Parent, I) ->
    {Elems, J} = build_tree(Kinds, Parent, I),
    {Elems ++ element(Last, Parent, J rem 9), J + 1};
build_tree(Kind, Parent, I) ->
    {element(Kind, Parent, I rem 9), I + 1}.
