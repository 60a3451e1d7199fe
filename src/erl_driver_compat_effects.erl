%% @private
%% @doc Carries out what a driver callback handed back with its result.
%%
%% The one decoder of the effects term the NIF builds (its one encoder is
%% `effects.rs' in the Rust crate):
%%
%% ```
%% {'$edc', Value, Messages, Reports, Actions}
%% Report = {Driver :: binary(), PortPid, Function :: atom() | undefined,
%%           Detail :: binary()}
%% Action = {exit_port, PortPid, Reason, Unlink :: pid() | false, Late}
%%        | {deliver, Late}
%%        | {start_timer, PortPid, Ms, Gen}
%%        | {unbusy, PortPid}
%%        | {start_created, PortPid, Owner}
%% Late   = [{To :: pid(), Message}]
%% '''
%%
%% `Late' are messages the driver's `stop' emitted: natively they reach
%% their receivers after the port's exit signals, so the port process sends
%% them after signalling its links (see erl_driver_compat_port).
%% `start_timer' starts the VM timer behind the port's driver timer: the
%% port process hands `{timeout, _, {'$edc_timeout', Gen}}' back to the
%% NIF, which ignores generations that are no longer current (`timer.rs').
%% `unbusy' tells the port process that the driver cleared the port's busy
%% state: it lets the commands that wait for that run (see
%% erl_driver_compat_port).
%% `start_created' starts the idle port process that `driver_create_port'
%% made a port of (see erl_driver_compat_port).
%%
%% A `Report' is a problem of a driver's port: a misuse of the API
%% function `Function', or (`undefined') another problem. Each is logged
%% with `logger:error/2' as a structured report (see {@link report/0}),
%% with {@link format_report/1} as its `report_cb' and the domain
%% `[erl_driver_compat]'.
%%
%% A NIF result without effects is the plain value. Effects are carried
%% out in order: messages (sent to the calling process, in emission
%% order), reports, actions. When no wrapper runs after the callback
%% (a driver thread, a resource `down' callback), the NIF sends the actions
%% to the port process as `{'$edc_actions', Actions}' and that process
%% carries them out with {@link perform/1}.
-module(erl_driver_compat_effects).

-export([unwrap/2,
         unwrap/1,
         value/1,
         perform/1,
         format_report/1]).

-export_type([action/0,
              late/0,
              report/0]).

-type action() :: {exit_port, pid(), term(), pid() | false, late()}
                | {deliver, late()}
                | {start_timer, pid(), non_neg_integer(), non_neg_integer()}
                | {unbusy, pid()}
                | {start_created, pid(), pid()}
                | {timeout_message, pid(), non_neg_integer()}.
%% Work for the Erlang side (`timeout_message' is made here, not by the
%% NIF).
-type late() :: [{pid(), term()}].
%% Messages from `stop', sent after the port's exit signals.
-type report() :: #{what := driver_api_misuse | driver_problem,
                    driver := string(),
                    port := pid(),
                    function => atom(),
                    detail := string()}.
%% What is logged for a driver's problem: `driver_api_misuse' (with the
%% API `function' misused; the port is failed with
%% `{driver_api_misuse, Function}') or `driver_problem'.

%% @doc Carries out the effects in `Result' (if any) and returns the value,
%% or raises `Reason' with `Args' when the value is `{'$edc_error', Reason}'.
-spec unwrap(term(), [term()]) -> term().
unwrap({'$edc', Value, Msgs, Logs, Actions}, Args) ->
    apply_effects(Msgs, Logs, Actions),
    case Value of
        {'$edc_error', Reason} -> erlang:error(Reason, Args);
        _ -> Value
    end;
unwrap(Value, _Args) ->
    Value.

%% @doc As {@link unwrap/2} for results that are never errors (the calls
%% the port process makes).
-spec unwrap(term()) -> term().
unwrap({'$edc', Value, Msgs, Logs, Actions}) ->
    apply_effects(Msgs, Logs, Actions),
    Value;
unwrap(Value) ->
    Value.

%% @doc The value in `Result', without carrying out its effects.
-spec value(term()) -> term().
value({'$edc', Value, _Msgs, _Logs, _Actions}) ->
    Value;
value(Value) ->
    Value.

%% @doc Carries out actions.
-spec perform([action()]) -> ok.
perform([Action | Actions]) ->
    _ = perform_one(Action),
    perform(Actions);
perform([]) ->
    ok.

timer_message({start_timer, Port, 0, Gen}) -> {timeout_message, Port, Gen};
timer_message(Action) -> Action.

%% Plain loops: this runs after every callback with effects (no fun is
%% made per call).
apply_effects(Msgs, Logs, Actions) ->
    send_self(Msgs),
    log_all(Logs),
    perform(Actions).

send_self([M | Ms]) ->
    self() ! M,
    send_self(Ms);
send_self([]) ->
    ok.

log_all([L | Ls]) ->
    log(L),
    log_all(Ls);
log_all([]) ->
    ok.

log({Driver, Port, Function, Detail}) ->
    Report0 = #{driver => unicode:characters_to_list(Driver), port => Port,
                detail => unicode:characters_to_list(Detail)},
    Report = case Function of
                 undefined -> Report0#{what => driver_problem};
                 _ -> Report0#{what => driver_api_misuse, function => Function}
             end,
    logger:error(Report, #{report_cb => fun ?MODULE:format_report/1,
                           domain => [erl_driver_compat]}).

%% @doc The text of a {@link report()} (the `report_cb' of its log
%% event): `"erl_driver_compat: driver D (port P): Detail"'.
-spec format_report(report()) -> {io:format(), [term()]}.
format_report(#{driver := Driver, port := Port, detail := Detail}) ->
    {"erl_driver_compat: driver ~ts (port ~p): ~ts", [Driver, Port, Detail]}.

%% The port terminated: its process exits with Reason (see
%% erl_driver_compat_port's loop).
perform_one({exit_port, Port, Reason, Unlink, Late}) ->
    Port ! {'$edc_exit', Reason, Unlink, Late},
    ok;
%% Carried out by a port process that is terminating by itself, once it
%% has signalled its links.
perform_one({deliver, Late}) ->
    lists:foreach(fun({To, Msg}) -> To ! Msg end, Late);
%% Started by whoever ran the callback: no extra hop through the port
%% process. The VM cancels it if the port process exits first. A timer of
%% 0 ms expires at once (the VM's timer wheel would wait for its next
%% tick, about a millisecond): natively its timeout is the port's next
%% task, so the caller runs it now, before anything else it does with the
%% port. A 0 ms timer set by that timeout goes to the port process as its
%% timeout message (a driver re-arming 0 ms timers from `timeout' keeps
%% its port busy, not the caller); so does one set by a callback the port
%% process itself runs.
perform_one({start_timer, Port, 0, Gen}) when Port =/= self() ->
    case erl_driver_compat_nif:timeout_now(Port, Gen) of
        {'$edc', _Ok, Msgs, Logs, Actions} ->
            apply_effects(Msgs, Logs, lists:map(fun timer_message/1, Actions));
        _Ok ->
            ok
    end;
perform_one({start_timer, Port, 0, Gen}) ->
    perform_one({timeout_message, Port, Gen});
%% A 0 ms timer set by a timeout run by timeout_now/2 or by the port
%% process (see above).
perform_one({timeout_message, Port, Gen}) ->
    Port ! {timeout, undefined, {'$edc_timeout', Gen}},
    ok;
perform_one({start_timer, Port, Ms, Gen}) ->
    _ = erlang:start_timer(Ms, Port, {'$edc_timeout', Gen}),
    ok;
%% The port process wakes the commands waiting for the port.
perform_one({unbusy, Port}) ->
    Port ! '$edc_unbusy',
    ok;
%% driver_create_port: the new port's process starts, linked to its owner.
perform_one({start_created, Port, Owner}) ->
    erl_driver_compat_port:start_created(Port, Owner).
