%% @private
%% @doc The process behind one pseudo-port.
%%
%% Its pid is the port's identity. The driver callbacks for `port_command',
%% `port_control' and `port_call' run in the caller (a NIF call); this
%% process handles what reaches a port as messages and signals:
%% `{Owner, {command, Data}}', `{Owner, close}', `{Owner, {connect, Pid}}',
%% exit signals from linked processes (it traps exits), and the internal
%% `{'$edc_exit', Reason}' that ends it when the port terminates.
-module(erl_driver_compat_port).

-export([spawn_for/1,
         spawn_for/2,
         parallelism/1,
         process_kind/1,
         go/2,
         abort/1,
         deliver/2,
         log_bad_value/1]).

-export([init/0,
         init_parallel/0]).

%% @doc Spawns an idle port process linked to the caller (the owner), with
%% the VM's default `parallelism'.
-spec spawn_for(pid()) -> pid().
spawn_for(Owner) ->
    spawn_for(Owner, erlang:system_info(port_parallelism)).

%% @doc Spawns an idle port process linked to the caller (the owner). The
%% port's `parallelism' option (the driver never sees it) is told by the
%% process's initial call, so {@link parallelism/1} knows it from the
%% moment the process exists, without asking it.
-spec spawn_for(pid(), boolean()) -> pid().
spawn_for(Owner, true) when Owner =:= self() ->
    spawn_opt(?MODULE, init_parallel, [], [link]);
spawn_for(Owner, false) when Owner =:= self() ->
    spawn_opt(?MODULE, init, [], [link]).

%% @doc The `parallelism' option of the pseudo-port `Pid', or `undefined'
%% when `Pid' is no pseudo-port's process (or has ended).
-spec parallelism(pid()) -> boolean() | undefined.
parallelism(Pid) when node(Pid) =:= node() ->
    case erlang:process_info(Pid, initial_call) of
        {initial_call, {?MODULE, init_parallel, 0}} -> true;
        {initial_call, {?MODULE, init, 0}} -> false;
        _ -> undefined
    end;
parallelism(_Pid) ->
    undefined.

%% @doc What the local pid `Pid' is, in one look: a pseudo-port's process
%% (open, starting or closing; it stands for a port, so it can never own
%% one), another live process, or an ended one.
-spec process_kind(pid()) -> port | process | ended.
process_kind(Pid) ->
    case erlang:process_info(Pid, initial_call) of
        {initial_call, {?MODULE, Entry, 0}} when Entry =:= init; Entry =:= init_parallel -> port;
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

%% @doc Delivers what a NIF call handed back: messages for the calling
%% process, in emission order, and log lines about driver API misuse.
-spec deliver([term()], [binary() | string()]) -> ok.
deliver(Msgs, Logs) ->
    Self = self(),
    lists:foreach(fun(M) -> Self ! M end, Msgs),
    lists:foreach(fun(L) -> logger:error("erl_driver_compat: ~ts", [L]) end, Logs).

%% @private
-spec init() -> no_return().
init() ->
    start().

%% @private
-spec init_parallel() -> no_return().
init_parallel() ->
    start().

-spec start() -> no_return().
start() ->
    process_flag(trap_exit, true),
    receive
        {'$edc_go', Resource} -> loop(Resource);
        '$edc_abort' -> exit(normal)
    end.

-spec loop(reference()) -> no_return().
loop(Res) ->
    receive
        {'$edc_exit', Reason} ->
            exit(Reason);
        {'$edc_exit', Reason, Unlink} ->
            %% driver_exit: the connected process gets no exit signal.
            unlink(Unlink),
            exit(Reason);
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
            case result(erl_driver_compat_nif:msg_close(Res, From)) of
                {closed, Connected} ->
                    %% Natively a trapping owner sees {'EXIT', Port, normal}
                    %% before {Port, closed}.
                    unlink(Connected),
                    exit(Connected, normal),
                    Connected ! {self(), closed},
                    exit(normal);
                {badsig, Connected} ->
                    badsig(Connected),
                    loop(Res);
                ok ->
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
            case result(erl_driver_compat_nif:msg_exit(Res, From, Reason =:= normal)) of
                true -> exit(Reason);
                false -> loop(Res)
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

%% @doc Logs what a native port logs when it gets data that is not iodata.
-spec log_bad_value(pid()) -> ok.
log_bad_value(Port) ->
    case erl_driver_compat_nif:info(Port) of
        {Command, _, _, _, _, _} ->
            Name = hd(string:split(unicode:characters_to_list(Command), " ")),
            logger:error("Bad value on output port '~ts'~n", [Name]);
        undefined ->
            ok
    end.

result({'$edc', Value, Msgs, Logs}) ->
    deliver(Msgs, Logs),
    Value;
result(Value) ->
    Value.
