%% Differential tests of the {line, L} option: driver_output data is cut
%% into {eol, Line} / {noeol, Chunk} messages, partial lines are kept.
-module(line_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([lines_and_chunks/1, partial_lines_join/1, binary_lines/1,
         crlf_and_empty_lines/1, bare_line_option/1]).

all() -> [lines_and_chunks, partial_lines_join, binary_lines,
          crlf_and_empty_lines, bare_line_option].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder(["echo_drv"])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

session(Opts, Commands) ->
    fun(#{open_port := Open, port_command := Cmd}) ->
            P = Open({spawn, "echo_drv"}, Opts),
            [true = Cmd(P, C) || C <- Commands],
            edc_diff:flush()
    end.

lines_and_chunks(_Config) ->
    R = edc_diff:compare("line 5", session([{line, 5}], ["hello world 12345 long line\nx"])),
    [{{port, 1}, {data, {noeol, "hello"}}}, {_, {data, {noeol, " worl"}}} | _] = R,
    {_, {data, {eol, "ne"}}} = lists:last(R).

partial_lines_join(_Config) ->
    R = edc_diff:compare("partial", session([{line, 10}], ["ab", "c\nde", "f\n"])),
    [{_, {data, {eol, "abc"}}}, {_, {data, {eol, "def"}}}] = R.

binary_lines(_Config) ->
    R = edc_diff:compare("binary", session([{line, 3}, binary], ["abcdefg\n", "\n"])),
    [{_, {data, {noeol, <<"abc">>}}}, {_, {data, {noeol, <<"def">>}}},
     {_, {data, {eol, <<"g">>}}}, {_, {data, {eol, <<>>}}}] = R.

crlf_and_empty_lines(_Config) ->
    R = edc_diff:compare("crlf", session([{line, 80}], ["ab\r\ncd\n\n"])),
    [{_, {data, {eol, "ab"}}}, {_, {data, {eol, "cd"}}}, {_, {data, {eol, []}}}] = R.

bare_line_option(_Config) ->
    Long = lists:duplicate(600, $a),
    R = edc_diff:compare("line", session([line], [Long ++ "\n"])),
    [{_, {data, {noeol, First}}}, {_, {data, {eol, Rest}}}] = R,
    {512, 88} = {length(First), length(Rest)}.
