%% @private
%% @doc The process behind one pseudo-port.
%%
%% Its pid is the port's identity. The driver callbacks for `port_command',
%% `port_control' and `port_call' run in the caller (a NIF call); this
%% process handles what reaches a port as messages and signals:
%% `{Owner, {command, Data}}', `{Owner, close}', `{Owner, {connect, Pid}}',
%% exit signals from linked processes (it traps exits), the VM timers of
%% the driver's timer (`{timeout, _, {'$edc_timeout', Gen}}'), finished
%% driver_async jobs (`{'$edc_async', Id}'), the poll set's messages for
%% the descriptors the driver selected (`{select, Obj, Seq, ready_input |
%% ready_output}', see `select.rs'), and the
%% internal `{'$edc_exit', Reason, Unlink, Late}' that ends it when the
%% port terminates (see erl_driver_compat_effects).
%%
%% `driver_create_port' must return a port synchronously from inside a
%% driver callback, where no process can be spawned: the ports it creates
%% are processes of a pool of idle port processes kept by a registered
%% keeper process (started with the first port), handed to the NIF, and
%% refilled after each creation before the creator goes on (the pool
%% grows when a burst of creations found it empty). A created port's
%% process is started with {@link start_created/2}: it links to its owner
%% and takes the port over from the NIF.
-module(erl_driver_compat_port).

-export([spawn_for/1,
         process_kind/1,
         go/2,
         abort/1,
         start_created/2,
         log_bad_value/1]).

-export([init/0,
         pool_init/0]).

-define(POOL, erl_driver_compat_port_pool).
%% Idle port processes kept at first; doubled (up to ?POOL_MAX) whenever
%% a driver_create_port found the pool empty.
-define(POOL_MIN, 16).
-define(POOL_MAX, 4096).

%% @doc Spawns an idle port process linked to the caller (the owner).
-spec spawn_for(pid()) -> pid().
spawn_for(Owner) when Owner =:= self() ->
    ensure_pool(),
    spawn_opt(?MODULE, init, [], [link]).

%% @doc Starts the idle process `Port' that a callback made a port of with
%% `driver_create_port', linked to `Owner' (before this returns, as
%% natively the link exists when the driver gets the port), and has the
%% pool refilled. Called by whoever carries out the callback's effects;
%% by the idle process itself when the callback ran without a wrapper.
-spec start_created(pid(), pid()) -> ok.
start_created(Port, Owner) when Port =:= self() ->
    self() ! {'$edc_created', Owner, none},
    refill();
start_created(Port, Owner) when Owner =:= self() ->
    link(Port),
    Port ! {'$edc_created', Owner, none},
    refill();
start_created(Port, Owner) ->
    Ref = erlang:monitor(process, Port),
    Port ! {'$edc_created', Owner, {self(), Ref}},
    receive
        {Ref, linked} -> erlang:demonitor(Ref, [flush]);
        {'DOWN', Ref, process, Port, _} -> ok
    end,
    refill().

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
    idle().

-spec idle() -> no_return().
idle() ->
    receive
        {'$edc_go', Resource} -> loop(Resource);
        '$edc_abort' -> exit(normal);
        {'$edc_created', Owner, ReplyTo} -> created(Owner, ReplyTo);
        {'$edc_actions', Actions} ->
            %% start_created from a callback run without a wrapper.
            erl_driver_compat_effects:perform(Actions),
            idle();
        {'EXIT', _From, Reason} ->
            %% The process it was spawned for (the opener, or the pool's
            %% keeper) is gone.
            exit(Reason)
    end.

%% An idle process of the pool becomes the port driver_create_port made
%% of it: it leaves the keeper, links to its owner, takes the port over.
created(Owner, ReplyTo) ->
    {links, Links} = process_info(self(), links),
    lists:foreach(fun unlink/1, Links -- [Owner]),
    link(Owner),
    case ReplyTo of
        {Pid, Ref} -> Pid ! {Ref, linked}, ok;
        none -> ok
    end,
    case erl_driver_compat_nif:adopt_created() of
        undefined -> exit(normal);
        Resource -> loop(Resource)
    end.

%%--------------------------------------------------------------------
%% The pool of idle port processes
%%--------------------------------------------------------------------

%% The keeper is started by the first port opened; starting it waits until
%% the pool is filled (also when another process won the race to start it).
ensure_pool() ->
    case whereis(?POOL) of
        undefined -> start_pool();
        _ -> ok
    end.

start_pool() ->
    Keeper = spawn(?MODULE, pool_init, []),
    try register(?POOL, Keeper) of
        true -> Keeper ! start
    catch
        error:badarg -> exit(Keeper, kill)
    end,
    case whereis(?POOL) of
        undefined ->
            ok;
        Pool ->
            Ref = erlang:monitor(process, Pool),
            Pool ! {sync, self(), Ref},
            receive
                {Ref, ready} -> erlang:demonitor(Ref, [flush]), ok;
                {'DOWN', Ref, process, Pool, _} -> ok
            end
    end.

%% Synchronous, so that a process creating ports one after the other
%% never finds the pool empty.
refill() ->
    case whereis(?POOL) of
        undefined ->
            ok;
        Pool ->
            Ref = erlang:monitor(process, Pool),
            Pool ! {refill, self(), Ref},
            receive
                {Ref, ready} -> erlang:demonitor(Ref, [flush]), ok;
                {'DOWN', Ref, process, Pool, _} -> ok
            end
    end.

%% @private
-spec pool_init() -> no_return().
pool_init() ->
    %% Idle processes that end (killed) must not take the keeper along.
    process_flag(trap_exit, true),
    receive start -> ok end,
    pool_loop(fill(?POOL_MIN)).

pool_loop(Target) ->
    receive
        {refill, From, Ref} ->
            Target1 = fill(Target),
            From ! {Ref, ready},
            pool_loop(Target1);
        {sync, From, Ref} ->
            From ! {Ref, ready},
            pool_loop(Target);
        _Other ->
            pool_loop(Target)
    end.

%% Tops the pool up to Target idle processes, doubling Target first when
%% creations found it empty; returns the target.
fill(Target0) ->
    {Idle, Missed} = erl_driver_compat_nif:pool_status(),
    Target = case Missed of
                 0 -> Target0;
                 _ -> min(2 * Target0, ?POOL_MAX)
             end,
    New = [spawn_opt(?MODULE, init, [], [link]) || _ <- lists:seq(1, Target - Idle)],
    ok = erl_driver_compat_nif:pool_put(New),
    Target.

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
        {select, Obj, Seq, Event} when is_reference(Obj), is_integer(Seq), Seq >= 0,
                                        (Event =:= ready_input orelse
                                         Event =:= ready_output) ->
            %% A descriptor of driver_select is ready: ready_input or
            %% ready_output runs unless the selection is stale (the NIF
            %% checks), and the selection is armed again.
            Input = Event =:= ready_input,
            case result(erl_driver_compat_nif:msg_select(Res, Obj, Seq, Input)) of
                ok -> ok;
                {badsig, Connected} -> badsig(Connected)
            end,
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
