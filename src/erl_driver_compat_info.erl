%% @private
%% @doc `port_info/1,2' of a pseudo-port, built as `erlang:port_info/1,2'
%% builds it for a native port.
%%
%% One job: turn the NIF's description of the port (`erl_driver_compat_nif:info/1')
%% and the port process's own `process_info' into the items, in the
%% native order, with `undefined' and `badarg' where the BIF gives them.
-module(erl_driver_compat_info).

-export([all/2,
         item/3]).

%% @doc `erlang:port_info/1' of the pseudo-port `Pid' (`Port' is the
%% argument as given: the pid or a registered name).
-spec all(Port :: pid() | atom(), Pid :: pid()) -> [{atom(), term()}] | undefined.
all(Port, Pid) ->
    case erl_driver_compat_nif:info(Pid) of
        undefined ->
            closed_info(Port, Pid, [Port]);
        Info ->
            %% As natively: registered_name first, and only when
            %% registered.
            Registered = case info_item(Pid, registered_name, Info) of
                             [] -> [];
                             RegName -> [RegName]
                         end,
            Registered ++
                [info_item(Pid, Item, Info)
                 || Item <- [name, links, id, connected, input, output, os_pid]]
    end.

%% @doc `erlang:port_info/2' of the pseudo-port `Pid' (`Port' is the
%% argument as given): badarg for an item a port does not have.
-spec item(Port :: pid() | atom(), Pid :: pid(), Item :: term()) ->
          {atom(), term()} | [] | undefined.
item(Port, Pid, Item) ->
    case erl_driver_compat_nif:info(Pid) of
        undefined ->
            %% Natively any item of a closed port gives undefined.
            closed_info(Port, Pid, [Port, Item]);
        Info ->
            case lists:member(Item, [name, links, id, connected, input, output, os_pid,
                                     memory, queue_size, locking, monitors,
                                     monitored_by, parallelism, registered_name]) of
                false -> erlang:error(badarg, [Port, Item]);
                true -> info_item(Pid, Item, Info)
            end
    end.

%% No open pseudo-port: `undefined' for a closed one (and for a registered
%% name, which natively gives undefined when it is not a port's); badarg
%% for a pid that is a live process and no pseudo-port, or a remote pid. A
%% pid whose process has ended cannot be told from a closed pseudo-port.
closed_info(Port, _Pid, _Args) when is_atom(Port) ->
    undefined;
closed_info(_Port, Pid, Args) when node(Pid) =/= node() ->
    erlang:error(badarg, Args);
closed_info(_Port, Pid, Args) ->
    case erl_driver_compat_port:process_kind(Pid) of
        process -> erlang:error(badarg, Args);
        _ -> undefined
    end.

info_item(_Port, name, #{name := Name}) -> {name, port_name(Name)};
info_item(Port, links, _) -> {links, links(Port)};
info_item(_Port, id, #{id := Id}) -> {id, Id};
info_item(_Port, connected, #{connected := C}) -> {connected, C};
info_item(_Port, input, #{input := In}) -> {input, In};
info_item(_Port, output, #{output := Out}) -> {output, Out};
info_item(_Port, os_pid, _) -> {os_pid, undefined};
info_item(Port, memory, _) -> {memory, proc_info(Port, memory, 0)};
info_item(_Port, queue_size, #{queue_size := Q}) -> {queue_size, Q};
info_item(_Port, locking, #{locking := driver}) -> {locking, driver_level};
info_item(_Port, locking, #{locking := port_level}) -> {locking, port_level};
info_item(Port, monitors, _) -> {monitors, proc_info(Port, monitors, [])};
info_item(Port, monitored_by, _) ->
    %% The NIF's own monitor on the port process (a resource) is not shown.
    {monitored_by, [P || P <- proc_info(Port, monitored_by, []), is_pid(P)]};
info_item(_Port, parallelism, #{parallelism := P}) -> {parallelism, P};
info_item(Port, registered_name, _) ->
    case proc_info(Port, registered_name, []) of
        [] -> [];
        Name -> {registered_name, Name}
    end.

%% As natively, the name is the command's bytes, one list element each
%% (UTF-8 is not decoded).
port_name(Command) ->
    binary_to_list(Command).

%% A port made by driver_create_port comes from the pool of idle port
%% processes, linked to the pool's keeper until it has taken the port
%% over (it unlinks right after): that link is ours, not the port's.
links(Port) -> proc_info(Port, links, []) -- [erl_driver_compat_port:keeper()].

proc_info(Pid, Item, Default) ->
    case erlang:process_info(Pid, Item) of
        {Item, Value} -> Value;
        _ -> Default
    end.
