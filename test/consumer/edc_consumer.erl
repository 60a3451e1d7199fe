%% @doc The module of the fresh rebar3 project that
%% test/consumer/rebar3_consumer.sh builds with erl_driver_compat as a
%% dependency: loads consumer_drv through the dependency and drives one
%% pseudo-port. `erl -noshell -run edc_consumer main DriverDir' halts with
%% status 0 when every check passed, 1 otherwise.
-module(edc_consumer).

-export([main/1]).

%% @doc Runs the checks with the drivers in `DriverDir'; halts the VM.
-spec main([string()]) -> no_return().
main([Dir]) ->
    try check(Dir) of
        ok ->
            io:format("consumer: all checks passed~n"),
            halt(0)
    catch
        Class:Reason:Stack ->
            io:format("consumer: FAILED ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

check(Dir) ->
    process_flag(trap_exit, true),
    Priv = code:priv_dir(erl_driver_compat),
    Nif = filename:join(Priv, "liberl_driver_compat.so"),
    io:format("consumer: erl_driver_compat from ~ts~n", [code:which(erl_driver_compat)]),
    same("the NIF library is in the dependency's priv", true, filelib:is_regular(Nif)),
    same("load_driver", ok, erl_driver_compat:load_driver(Dir, "consumer_drv")),
    P = erl_driver_compat:open_port({spawn, "consumer_drv"}, [binary]),
    same("open_port gives a pseudo-port", true, is_pid(P)),
    same("port_command", true, erl_driver_compat:port_command(P, <<"hello">>)),
    same("the echoed data", {P, {data, <<"hello">>}},
         receive {P, _} = Msg -> Msg after 5000 -> timeout end),
    same("port_control", "olleh", erl_driver_compat:port_control(P, 1, "hello")),
    Ref = erlang:monitor(process, P),
    same("port_close", true, erl_driver_compat:port_close(P)),
    same("the port process ends", normal,
         receive {'DOWN', Ref, process, P, Why} -> Why after 5000 -> timeout end),
    %% As from a native port: the linked owner, trapping exits, gets
    %% {'EXIT', Port, normal} and nothing else.
    same("the exit signal of the closed port", {'EXIT', P, normal},
         receive {'EXIT', P, _} = Exit -> Exit after 5000 -> timeout end),
    same("no other message", none, receive M -> M after 0 -> none end),
    same("unload_driver", ok, erl_driver_compat:unload_driver("consumer_drv")),
    ok.

same(What, Value, Value) ->
    io:format("consumer: ok: ~ts~n", [What]);
same(What, Expected, Actual) ->
    erlang:error({mismatch, What, [{expected, Expected}, {actual, Actual}]}).
