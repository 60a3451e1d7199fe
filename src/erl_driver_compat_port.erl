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
%% (`{'$edc_down', Id}'), the poll set's messages for the descriptors the
%% driver selected (`{select, Obj, Seq, ready_input | ready_output}', see
%% `select.rs'), and the
%% internal `{'$edc_exit', Reason, Unlink, Late}' that ends it when the
%% port terminates (see erl_driver_compat_effects).
%%
%% A close of a port whose driver queue is not empty waits for the queue
%% to empty (the driver's `flush' runs), as natively: the process then
%% signals its links at once and stays, {@link closing/2}, until the port
%% ends (`{'$edc_flushing', Reason}' tells it so when the close came from
%% `port_close/1').
%%
%% While the driver has marked the port busy it keeps the commands that
%% wait for it (callers registered with `{'$edc_wait', Pid, Ref}', command
%% messages) and lets them run on `'$edc_unbusy'' (see "Busy port" below).
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
         keeper/0,
         process_kind/1,
         go/2,
         abort/1,
         start_created/2,
         log_bad_value/1]).

-export([init/0,
         pool_init/0,
         loop/1]).

-define(POOL, erl_driver_compat_port_pool).
%% Idle port processes kept at first; doubled (up to ?POOL_MAX) whenever
%% a driver_create_port found the pool empty.
-define(POOL_MIN, 16).
-define(POOL_MAX, 4096).
%% An open port whose process has had no message for this long hibernates
%% (erlang:hibernate/3): its heap shrinks to its live data, which makes an
%% idle pseudo-port a fraction of a fresh process's size. The timeout is
%% long against any round trip, so busy ports never pay a hibernation.
-define(HIBERNATE_MS, 1000).

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

%% @doc The pool's keeper process, `undefined' before the first port.
-spec keeper() -> pid() | undefined.
keeper() ->
    whereis(?POOL).

%% The keeper is started by the first port opened; starting it waits until
%% the pool is filled (also when another process won the race to start it).
ensure_pool() ->
    case keeper() of
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
    ask_pool(sync).

%% Synchronous, so that a process creating ports one after the other
%% never finds the pool empty.
refill() ->
    ask_pool(refill).

%% Sends the keeper {Request, self(), Ref} and waits until it is ready
%% (or gone).
ask_pool(Request) ->
    case keeper() of
        undefined ->
            ok;
        Pool ->
            Ref = erlang:monitor(process, Pool),
            Pool ! {Request, self(), Ref},
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

%% @private The open port's loop (exported for erlang:hibernate/3).
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
        {'$edc_flushing', Reason} ->
            signal_links(Reason),
            closing(Res, Reason);
        {From, {command, _}} = Msg when is_pid(From) ->
            user_message(Res, Msg),
            loop(Res);
        {From, close} = Msg when is_pid(From) ->
            user_message(Res, Msg),
            loop(Res);
        {From, {connect, New}} = Msg when is_pid(From), is_pid(New) ->
            user_message(Res, Msg),
            loop(Res);
        '$edc_unbusy' ->
            %% The driver cleared busy: the waiting commands go.
            wake(Res),
            loop(Res);
        {'$edc_wait', Pid, Ref} when is_pid(Pid) ->
            %% port_command found the port busy (erl_driver_compat).
            waiter(Res, Pid, Ref),
            loop(Res);
        {'$edc_waiter_down', Mon, process, _, _} ->
            %% A waiting caller ended (see waiter/3).
            drop_waiter(Mon),
            loop(Res);
        {'$edc_link', Pid, ReplyTo, Ref} ->
            catch link(Pid),
            ReplyTo ! {Ref, linked},
            loop(Res);
        {'EXIT', From, Reason} ->
            Result = erl_driver_compat_nif:msg_exit(Res, From, exit_kind(Reason)),
            case erl_driver_compat_effects:value(Result) of
                true ->
                    %% What stop emitted goes out after the exit signals.
                    signal_links(Reason),
                    _ = result(Result),
                    exit(Reason);
                flushing ->
                    _ = result(Result),
                    signal_links(Reason),
                    closing(Res, Reason);
                false ->
                    _ = result(Result),
                    loop(Res)
            end;
        Other ->
            user_message(Res, Other),
            loop(Res)
    after ?HIBERNATE_MS ->
            erlang:hibernate(?MODULE, loop, [Res])
    end.

%% The port is closing: its close waits for the driver's queue to empty
%% (port_control and port_call still reach the driver, through the NIF).
%% Its links have been signalled; like a native closing port it ignores
%% commands, closes and exit signals, until the port ends with the reason
%% it was closed with.
-spec closing(reference(), term()) -> no_return().
closing(Res, Reason) ->
    receive
        {'$edc_exit', _Reason, _Unlink, Late} ->
            erl_driver_compat_effects:perform([{deliver, Late}]),
            exit(Reason);
        {'$edc_actions', Actions} ->
            erl_driver_compat_effects:perform(Actions),
            closing(Res, Reason);
        _Ignored ->
            closing(Res, Reason)
    end.

%% How the NIF treats an exit signal's reason: `normal' may be ignored,
%% `kill' ends the port without waiting for its queue.
exit_kind(normal) -> true;
exit_kind(kill) -> kill;
exit_kind(_) -> false.

%% What reaches a port from Erlang code: `{From, {command, Data}}',
%% `{From, close}', `{From, {connect, New}}' and anything else (badsig).
%% While a command waits for the busy port, the messages after it wait
%% too, in order: natively its sender is suspended, so nothing it sends
%% later reaches the port before the command (we cannot tell the senders
%% apart).
user_message(Res, Msg) ->
    case deferring() of
        true -> defer(Msg);
        false ->
            case user(Res, Msg) of
                busy -> set_busy_q(busy_q() ++ [{msgs, [Msg]}]);
                ok -> ok
            end
    end.

%% `busy' when the message is a command the busy port did not take.
user(Res, {From, {command, Data}}) when is_pid(From) ->
    case result(erl_driver_compat_nif:msg_command(Res, From, Data)) of
        ok -> ok;
        busy -> busy;
        {badsig, Connected} -> badsig(Connected), ok;
        {bad_value, Connected} ->
            log_bad_value(self()),
            badsig(Connected),
            ok
    end;
user(Res, {From, close}) when is_pid(From) ->
    Result = erl_driver_compat_nif:msg_close(Res, From),
    case erl_driver_compat_effects:value(Result) of
        {closed, Connected} ->
            %% Natively the links see {'EXIT', Port, normal}, then
            %% what stop emitted, then the owner {Port, closed}.
            signal_links(normal),
            _ = result(Result),
            Connected ! {self(), closed},
            exit(normal);
        flushing ->
            %% The links see {'EXIT', Port, normal} now; {Port, closed}
            %% comes when the queue has emptied.
            _ = result(Result),
            signal_links(normal),
            closing(Res, normal);
        {badsig, Connected} ->
            _ = result(Result),
            badsig(Connected),
            ok;
        ok ->
            _ = result(Result),
            ok
    end;
user(Res, {From, {connect, New}}) when is_pid(From), is_pid(New) ->
    %% A port is not a process that can own a port: natively
    %% {connect, Port} is a bad message (badsig to the owner).
    %% (The NIF answers at once; process_info would wait for New.)
    Result = case erl_driver_compat_nif:is_port(New) of
                 true -> erl_driver_compat_nif:msg_bad(Res);
                 false -> erl_driver_compat_nif:msg_connect(Res, From, New)
             end,
    case result(Result) of
        {connected, Old} -> _ = Old ! {self(), connected}, ok;
        {badsig, Connected} -> badsig(Connected), ok;
        ok -> ok
    end;
user(Res, _Other) ->
    %% A native port answers a message it does not understand with
    %% the exit signal badsig to its connected process.
    case result(erl_driver_compat_nif:msg_bad(Res)) of
        {badsig, Connected} -> badsig(Connected);
        ok -> ok
    end,
    ok.

%%--------------------------------------------------------------------
%% Busy port. The commands waiting for the driver to clear busy, in the
%% order they found it busy: callers of port_command (`{wait, Pid, Ref,
%% Monitor}', woken with `{Ref, go}', answering `{'$edc_retried', Ref,
%% {done, BusyAfter} | busy}') and messages (`{msgs, [Msg]}': a command message and
%% what arrived after it). Natively the driver clearing busy resumes every
%% suspended caller at once, and they retry in the order second, third,
%% ..., last, first (measured on OTP 25); those that find the port busy
%% again are suspended again, in that order. Here they go one at a time
%% in the same order, each after the previous one's command has run. Kept
%% in the process dictionary (the port process's state is its resource).
%%--------------------------------------------------------------------

busy_q() ->
    case get('$edc_busy_q') of
        undefined -> [];
        Q -> Q
    end.

set_busy_q(Q) ->
    put('$edc_busy_q', Q),
    ok.

deferring() ->
    lists:keymember(msgs, 1, busy_q()).

%% Adds Msg to the last group of waiting messages.
defer(Msg) ->
    {After, [{msgs, Msgs} | Before]} =
        lists:splitwith(fun(I) -> element(1, I) =/= msgs end, lists:reverse(busy_q())),
    set_busy_q(lists:reverse(Before, [{msgs, Msgs ++ [Msg]} | lists:reverse(After)])).

waiter(Res, Pid, Ref) ->
    Item = {wait, Pid, Ref, erlang:monitor(process, Pid, [{tag, '$edc_waiter_down'}])},
    case {busy_q(), erl_driver_compat_nif:msg_is_busy(Res)} of
        {[], false} ->
            %% Cleared since the caller found it busy.
            run_items(Res, [Item]);
        {Q, Busy} ->
            set_busy_q(Q ++ [Item]),
            Busy orelse wake(Res),
            ok
    end.

drop_waiter(Mon) ->
    set_busy_q([I || I <- busy_q(), not (element(1, I) =:= wait andalso element(4, I) =:= Mon)]).

wake(Res) ->
    case {busy_q(), erl_driver_compat_nif:msg_is_busy(Res)} of
        {[First | Rest], false} ->
            set_busy_q([]),
            run_items(Res, Rest ++ [First]);
        _ ->
            ok
    end.

%% Runs the waiting commands in order while the port is not busy. Whether
%% a command left the port busy is read right after it ran (by the caller,
%% before it returns): natively the callers resumed with it retry at once
%% and would find it busy, whatever happens later.
run_items(_Res, []) ->
    ok;
run_items(Res, [Item | Rest]) ->
    case run_item(Res, Item) of
        true ->
            %% Busy again: the rest wait again, after those that already
            %% found it busy.
            set_busy_q(busy_q() ++ Rest);
        false ->
            run_items(Res, Rest)
    end.

%% Whether the port is busy after the item's command.
run_item(Res, {wait, Pid, Ref, Mon} = Item) ->
    Pid ! {Ref, go},
    receive
        {'$edc_retried', Ref, {done, Busy}} ->
            erlang:demonitor(Mon, [flush]),
            Busy;
        {'$edc_retried', Ref, busy} ->
            set_busy_q(busy_q() ++ [Item]),
            true;
        {'$edc_waiter_down', Mon, process, Pid, _} ->
            erl_driver_compat_nif:msg_is_busy(Res)
    end;
run_item(Res, {msgs, Msgs}) ->
    replay(Res, Msgs).

replay(Res, []) ->
    erl_driver_compat_nif:msg_is_busy(Res);
replay(Res, [Msg | Rest] = Msgs) ->
    case user(Res, Msg) of
        busy ->
            set_busy_q(busy_q() ++ [{msgs, Msgs}]),
            true;
        ok ->
            replay(Res, Rest)
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
        #{name := Command} ->
            Name = hd(binary:split(Command, <<" ">>)),
            logger:error("Bad value on output port '~ts'~n", [Name]);
        undefined ->
            ok
    end.

result(Result) ->
    erl_driver_compat_effects:unwrap(Result).
