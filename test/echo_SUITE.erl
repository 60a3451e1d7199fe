%% Differential tests on echo_drv: the cycle of the README.
-module(echo_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([command_control_call_close/1]).

all() -> [command_control_call_close].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder(["echo_drv"])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

command_control_call_close(_Config) ->
    R = edc_diff:compare("echo cycle", fun(#{open_port := Open} = B) ->
        P = Open({spawn, "echo_drv"}, [binary]),
        true = (maps:get(port_command, B))(P, [<<"he">>, "llo"]),
        Msg = edc_diff:recv(1000),
        Ctl = (maps:get(port_control, B))(P, 1, "x"),
        Call = (maps:get(port_call, B))(P, 7, {ok, 42}),
        Info = (maps:get(port_info2, B))(P, connected),
        true = (maps:get(port_close, B))(P),
        After = catch (maps:get(port_control, B))(P, 1, "x"),
        {Msg, Ctl, Call, Info, element(1, After), edc_diff:flush()}
    end),
    {{{port, 1}, {data, <<"hello">>}}, <<"x">>, {ok, 42}, {connected, self}, 'EXIT', []} = R.
