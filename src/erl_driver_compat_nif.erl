%% @private
%% @doc NIF stubs of the native library (`priv/liberl_driver_compat.so').
%%
%% Loaded from `code:priv_dir(erl_driver_compat)', with a fallback relative
%% to this beam file (as jiffy does), so that the library also works from a
%% plain `-pa' path without an application directory structure.
-module(erl_driver_compat_nif).

-export([load_driver/2,
         unload_driver/1,
         loaded_drivers/0,
         driver_info/1,
         driver_loaded/1,
         open/5,
         command/2,
         control/3,
         call/3,
         close/1,
         connect/2,
         info/1,
         is_port/1,
         ports/0,
         msg_command/3,
         msg_close/2,
         msg_connect/3,
         msg_exit/3,
         msg_bad/1,
         msg_timeout/2,
         timeout_now/2,
         msg_async/2,
         pool_put/1,
         pool_status/0,
         adopt_created/0,
         msg_down/2,
         set_async_threads/1,
         msg_select/4,
         msg_is_busy/1,
         is_busy/1,
         command3/3,
         binary_refc/1,
         check_driver/1,
         stats/0]).

-on_load(init/0).

-define(LIB, "liberl_driver_compat").

-spec init() -> ok | {error, term()}.
init() ->
    case erlang:load_nif(filename:join(priv_dir(), ?LIB), 0) of
        ok ->
            %% Before any driver_async: the pool starts at the first one.
            _ = set_async_threads(async_threads()),
            ok;
        Error ->
            Error
    end.

%% The size of the driver_async thread pool: the application environment
%% setting `async_threads' (1..1024), or for `default' (and when the
%% application is not loaded) the VM's own, `+A'.
-spec async_threads() -> pos_integer().
async_threads() ->
    case application:get_env(erl_driver_compat, async_threads) of
        {ok, N} when is_integer(N), N >= 1, N =< 1024 ->
            N;
        {ok, default} ->
            erlang:system_info(thread_pool_size);
        undefined ->
            erlang:system_info(thread_pool_size);
        {ok, Bad} ->
            logger:warning("erl_driver_compat: async_threads must be an integer "
                           "in 1..1024 or default, not ~p; using +A", [Bad]),
            erlang:system_info(thread_pool_size)
    end.

-spec priv_dir() -> file:filename().
priv_dir() ->
    case code:priv_dir(erl_driver_compat) of
        {error, bad_name} ->
            Ebin = filename:dirname(code:which(?MODULE)),
            filename:join(filename:dirname(Ebin), "priv");
        Dir ->
            Dir
    end.

-define(NIF_STUB, erlang:nif_error({not_loaded, ?MODULE})).

-spec load_driver(iodata() | atom(), iodata() | atom()) -> ok | {error, term()}.
load_driver(_Dir, _Name) -> ?NIF_STUB.
-spec unload_driver(iodata() | atom()) -> ok | {error, term()}.
unload_driver(_Name) -> ?NIF_STUB.
-spec loaded_drivers() -> [string()].
loaded_drivers() -> ?NIF_STUB.
-spec driver_info(iodata() | atom()) -> undefined | tuple().
driver_info(_Name) -> ?NIF_STUB.
-spec driver_loaded(binary()) -> boolean().
driver_loaded(_Name) -> ?NIF_STUB.
-spec open(pid(), pid(), binary(), binary(),
           {boolean(), boolean(), non_neg_integer(), boolean(),
            default | disabled | {pos_integer(), pos_integer()}}) -> tuple().
open(_Pid, _Owner, _Driver, _Command, _Opts) -> ?NIF_STUB.
-spec command(pid(), iodata()) -> term().
command(_Port, _Data) -> ?NIF_STUB.
-spec control(pid(), integer(), iodata()) -> term().
control(_Port, _Op, _Data) -> ?NIF_STUB.
-spec call(pid(), integer(), term()) -> term().
call(_Port, _Op, _Arg) -> ?NIF_STUB.
-spec close(pid()) -> true | flushing | tuple().
close(_Port) -> ?NIF_STUB.
-spec connect(pid(), pid()) -> term().
connect(_Port, _Pid) -> ?NIF_STUB.
-spec info(pid()) -> undefined | #{name := binary(), id := non_neg_integer(),
                                   connected := pid(), input := non_neg_integer(),
                                   output := non_neg_integer(),
                                   locking := driver | port_level,
                                   parallelism := boolean(),
                                   queue_size := non_neg_integer()}.
info(_Port) -> ?NIF_STUB.
-spec is_port(term()) -> boolean().
is_port(_Term) -> ?NIF_STUB.
-spec ports() -> [pid()].
ports() -> ?NIF_STUB.
-spec msg_command(reference(), pid(), term()) -> term().
msg_command(_Res, _From, _Data) -> ?NIF_STUB.
-spec msg_close(reference(), pid()) -> term().
msg_close(_Res, _From) -> ?NIF_STUB.
-spec msg_connect(reference(), pid(), pid()) -> term().
msg_connect(_Res, _From, _New) -> ?NIF_STUB.
-spec msg_exit(reference(), pid(), boolean() | kill) -> term().
msg_exit(_Res, _From, _Normal) -> ?NIF_STUB.
-spec msg_bad(reference()) -> term().
msg_bad(_Res) -> ?NIF_STUB.
-spec msg_timeout(reference(), non_neg_integer()) -> term().
msg_timeout(_Res, _Gen) -> ?NIF_STUB.
-spec timeout_now(pid(), non_neg_integer()) -> term().
timeout_now(_Port, _Gen) -> ?NIF_STUB.
-spec msg_async(reference(), non_neg_integer()) -> term().
msg_async(_Res, _Id) -> ?NIF_STUB.

%% @doc Hands idle port processes to the NIF for `driver_create_port'.
-spec pool_put([pid()]) -> ok.
pool_put(_Pids) -> ?NIF_STUB.

%% @doc `{Idle, Missed}': idle port processes left, and the
%% `driver_create_port' calls that found none since the last call.
-spec pool_status() -> {non_neg_integer(), non_neg_integer()}.
pool_status() -> ?NIF_STUB.

%% @doc Called by an idle port process started as a port that
%% `driver_create_port' made: the port's resource, or `undefined'.
-spec adopt_created() -> reference() | undefined.
adopt_created() -> ?NIF_STUB.
-spec msg_down(reference(), non_neg_integer()) -> term().
msg_down(_Res, _Id) -> ?NIF_STUB.
-spec set_async_threads(pos_integer()) -> boolean().
set_async_threads(_Threads) -> ?NIF_STUB.
-spec msg_select(reference(), reference(), non_neg_integer(), boolean()) -> term().
msg_select(_Res, _Obj, _Seq, _Input) -> ?NIF_STUB.
-spec is_busy(pid()) -> boolean().
is_busy(_Port) -> ?NIF_STUB.
-spec msg_is_busy(reference()) -> boolean().
msg_is_busy(_Res) -> ?NIF_STUB.
-spec command3(pid(), iodata(), boolean()) -> term().
command3(_Port, _Data, _Force) -> ?NIF_STUB.
-spec check_driver(string()) -> tuple().
check_driver(_Path) -> ?NIF_STUB.
-spec binary_refc(binary()) -> integer().
binary_refc(_Bin) -> ?NIF_STUB.
%% @doc Live counts for `erl_driver_compat:info/0': `[Drivers, Ports,
%% Binaries, BinaryBytes, Timers, AsyncJobs, SelectedFds, Monitors]'.
-spec stats() -> [non_neg_integer()].
stats() -> ?NIF_STUB.
