%% @private
%% @doc The process behind one pseudo-port.
%%
%% Its pid is the port's identity. The driver callbacks for `port_command',
%% `port_control' and `port_call' run in the caller (a NIF call); this
%% process handles what reaches a port as messages and signals:
%% `{Owner, {command, Data}}', `{Owner, close}', `{Owner, {connect, Pid}}',
%% exit signals from linked processes (it traps exits), the VM timers of
%% the driver's timer (`{timeout, _, {'$edc_timeout', Gen}}'), finished
%% driver_async jobs (`{'$edc_async', Id}'), monitored processes that died
%% (`{'$edc_down', Id}'), and the
%% internal `{'$edc_exit', Reason, Unlink, Late}' that ends it when the
%% port terminates (see erl_driver_compat_effects).
-module(erl_driver_compat_port).

-export([spawn_for/1,
         process_kind/1,
         go/2,
         abort/1,
         log_bad_value/1]).

-export([init/0]).

%% @doc Spawns an idle port process linked to the caller (the owner).
-spec spawn_for(pid()) -> pid().
spawn_for(Owner) when Owner =:= self() ->
    spawn_opt(?MODULE, init, [], [link]).

%% @doc What the local pid `Pid' is, in one look: a pseudo-port's process
%% (open, starting or closing; it stands for a port, so it can never own
%% one), another live process, or an ended one.
-spec process_kind(pid()) -> port | process | ended.
process_kind(Pid) ->
    case erlang:process_info(Pid, initial_call) of
        {initial_call, {?MODULE, init, 0}} -> port;
        {initial_call, _} -> process;
        undefined -> ended
    end.

%% @doc Starts the port process once `start' succeeded.
-spec go(pid(), reference()) -> ok.
go(Pid, Resource) ->
    Pid ! {'$edc_go', Resource},
    ok.

%% @doc Ends a port process whose `start' failed, without signalling the
%% owner.
-spec abort(pid()) -> ok.
abort(Pid) ->
    unlink(Pid),
    Pid ! '$edc_abort',
    ok.

%% @private
-spec init() -> no_return().
init() ->
    process_flag(trap_exit, true),
    receive
        {'$edc_go', Resource} -> loop(Resource);
        '$edc_abort' -> exit(normal)
    end.

-spec loop(reference()) -> no_return().
loop(Res) ->
    receive
        {'$edc_exit', Reason, Unlink, Late} ->
            %% driver_exit: the connected process gets no exit signal.
            is_pid(Unlink) andalso unlink(Unlink),
            Late =:= [] orelse signal_links(Reason),
            erl_driver_compat_effects:perform([{deliver, Late}]),
            exit(Reason);
        {'$edc_actions', Actions} ->
            %% Effects of a callback run without a wrapper (see
            %% erl_driver_compat_effects).
            erl_driver_compat_effects:perform(Actions),
            loop(Res);
        {timeout, _Ref, {'$edc_timeout', Gen}} ->
            %% The driver's timer; stale generations are ignored by the NIF.
            _ = result(erl_driver_compat_nif:msg_timeout(Res, Gen)),
            loop(Res);
        {'$edc_async', Id} ->
            %% A driver_async job finished: ready_async runs in the NIF.
            _ = result(erl_driver_compat_nif:msg_async(Res, Id)),
            loop(Res);
        {'$edc_down', Id} ->
            %% A process the driver monitors died: process_exit runs in
            %% the NIF (nothing for a monitor removed meanwhile).
            _ = result(erl_driver_compat_nif:msg_down(Res, Id)),
            loop(Res);
        {From, {command, Data}} when is_pid(From) ->
            case result(erl_driver_compat_nif:msg_command(Res, From, Data)) of
                ok -> ok;
                {badsig, Connected} -> badsig(Connected);
                {bad_value, Connected} ->
                    log_bad_value(self()),
                    badsig(Connected)
            end,
            loop(Res);
        {From, close} when is_pid(From) ->
            Result = erl_driver_compat_nif:msg_close(Res, From),
            case erl_driver_compat_effects:value(Result) of
                {closed, Connected} ->
                    %% Natively the links see {'EXIT', Port, normal}, then
                    %% what stop emitted, then the owner {Port, closed}.
                    signal_links(normal),
                    _ = result(Result),
                    Connected ! {self(), closed},
                    exit(normal);
                {badsig, Connected} ->
                    _ = result(Result),
                    badsig(Connected),
                    loop(Res);
                ok ->
                    _ = result(Result),
                    loop(Res)
            end;
        {From, {connect, New}} when is_pid(From), is_pid(New) ->
            %% A port is not a process that can own a port: natively
            %% {connect, Port} is a bad message (badsig to the owner).
            %% (The NIF answers at once; process_info would wait for New.)
            Result = case erl_driver_compat_nif:is_port(New) of
                         true -> erl_driver_compat_nif:msg_bad(Res);
                         false -> erl_driver_compat_nif:msg_connect(Res, From, New)
                     end,
            case result(Result) of
                {connected, Old} -> _ = Old ! {self(), connected}, ok;
                {badsig, Connected} -> badsig(Connected);
                ok -> ok
            end,
            loop(Res);
        {'$edc_link', Pid, ReplyTo, Ref} ->
            catch link(Pid),
            ReplyTo ! {Ref, linked},
            loop(Res);
        {'EXIT', From, Reason} ->
            Result = erl_driver_compat_nif:msg_exit(Res, From, Reason =:= normal),
            case erl_driver_compat_effects:value(Result) of
                true ->
                    %% What stop emitted goes out after the exit signals.
                    signal_links(Reason),
                    _ = result(Result),
                    exit(Reason);
                false ->
                    _ = result(Result),
                    loop(Res)
            end;
        _Other ->
            %% A native port answers a message it does not understand with
            %% the exit signal badsig to its connected process.
            case result(erl_driver_compat_nif:msg_bad(Res)) of
                {badsig, Connected} -> badsig(Connected);
                ok -> ok
            end,
            loop(Res)
    end.

badsig(Connected) ->
    exit(Connected, badsig).

%% Sends the port's exit signal to every linked process now (unlinking
%% them, so that the exit itself sends nothing more), as a native port does
%% before the messages its stop emitted. An exit signal sent with exit/2 is
%% what a link delivers, except for `kill', which exit/2 would make
%% untrappable: that reason is left to the links.
signal_links(kill) ->
    ok;
signal_links(Reason) ->
    {links, Links} = process_info(self(), links),
    lists:foreach(fun(L) -> unlink(L), exit(L, Reason) end, Links).

%% @doc Logs what a native port logs when it gets data that is not iodata.
-spec log_bad_value(pid()) -> ok.
log_bad_value(Port) ->
    case erl_driver_compat_nif:info(Port) of
        {Command, _, _, _, _, _, _} ->
            Name = hd(binary:split(Command, <<" ">>)),
            logger:error("Bad value on output port '~ts'~n", [Name]);
        undefined ->
            ok
    end.

result(Result) ->
    erl_driver_compat_effects:unwrap(Result).
