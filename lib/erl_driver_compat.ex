defmodule ErlDriverCompat do
  @moduledoc """
  Run legacy Erlang linked-in drivers as NIF-backed pseudo-ports.

  Elixir interface of the Erlang module `:erl_driver_compat`: every function
  here delegates to the function of the same name there, with the same
  arguments, replies, messages and errors. The functions mirror `:erl_ddll`
  and the port functions of `:erlang`.

  A driver loaded with `load_driver/2` runs inside our NIF library. Its ports
  are processes: the pid is the port, so links, monitors and
  `send(port, {owner, {:command, data}})` work as with a native port, but
  `Kernel.is_port/1` is `false` for them; use `is_port/1` here. Native ports
  passed to the port functions are handed to the `:erlang` functions, and
  `open_port/2` of a name that is not a driver loaded through us opens a
  native port, so the module can replace `Port`/`:erlang` calls throughout an
  application.

  Names, paths and commands may be Elixir strings, charlists or (for driver
  names) atoms; port data is any iodata. Strings that the Erlang side
  returns (driver names, paths, `format_error/1` texts) are charlists, as in
  Erlang; `compile_driver/3` returns Elixir strings.

  ## Errors

  Functions that can fail return `:ok` / `{:ok, value}` or
  `{:error, reason}`, with the reasons of `:erl_ddll` where they mean the
  same; `format_error/1` describes them. Their `!` variants
  (`load_driver!/2`, `unload_driver!/1`, `load!/2`, `unload!/1`,
  `check_driver!/2`, `compile_driver!/3`) return the value itself and raise
  `ErlDriverCompat.Error` (its message is the `format_error/1` text)
  instead. The port functions raise `ArgumentError` on bad arguments or a
  closed port, as the `:erlang` functions do.

  To move code written against `:erl_ddll`, `Port` and `:erlang` without
  editing it, see `ErlDriverCompat.Migrate`.

  ## Example

      :ok = ErlDriverCompat.load_driver(dir, "echo_drv")
      port = ErlDriverCompat.open_port({:spawn, "echo_drv"}, [:binary])
      true = ErlDriverCompat.port_command(port, "hello")

      receive do
        {^port, {:data, "hello"}} -> :ok
      end

      "x" = ErlDriverCompat.port_control(port, 1, "x")
      true = ErlDriverCompat.port_close(port)
  """

  import Kernel, except: [is_port: 1]

  @typedoc "A pseudo-port (a pid) or a native port."
  @type port_ref :: pid() | port()

  @typedoc "A port as the port functions take it: also a name registered with `Process.register/2`."
  @type port_arg :: port_ref() | atom()

  @typedoc "A driver name: the file name of the driver without `.so`."
  @type driver_name :: String.t() | charlist() | atom()

  @typedoc "What `open_port/2` opens: `{:spawn, command}` or `{:spawn_driver, command}`."
  @type port_name :: {:spawn | :spawn_driver, String.t() | charlist() | atom()}

  @typedoc "An option of `open_port/2`, as for `Port.open/2`."
  @type port_option :: :erl_driver_compat.port_option()

  @typedoc "The `reason` of an `{:error, reason}` returned by this module."
  @type error_reason :: :erl_driver_compat.error_reason()

  @typedoc "What `driver_info/1` tells about a loaded driver."
  @type driver_info :: %{
          path: charlist(),
          version: {integer(), integer()},
          locking: :driver | :port_level,
          ports: non_neg_integer(),
          outputv: boolean()
        }

  ## Drivers

  @doc """
  Loads the driver `name` from `dir/name.so` through the compat layer, like
  `:erl_ddll.load_driver/2`.

  The calling process holds a reference to the driver until it calls
  `unload_driver/1` or exits. Loading a name that is already loaded from the
  same file adds a reference and returns `:ok`. The error reasons are those
  of `:erl_ddll` where they mean the same; `format_error/1` describes them.

  ## Example

      iex> ErlDriverCompat.load_driver("test/drivers/build", "echo_drv")
      :ok
      iex> ErlDriverCompat.load_driver("/nonexistent", "echo_drv")
      {:error, {:open_error, ~c"No such file or directory (os error 2)"}}
  """
  @spec load_driver(String.t() | charlist(), driver_name()) :: :ok | {:error, error_reason()}
  defdelegate load_driver(dir, name), to: :erl_driver_compat

  @doc """
  Drops the calling process's reference to the driver, like
  `:erl_ddll.unload_driver/1`. The driver's `finish` runs when no process
  references it and its last port has closed.

  ## Example

      iex> ErlDriverCompat.unload_driver("echo_drv")
      :ok
      iex> ErlDriverCompat.unload_driver("echo_drv")
      {:error, :not_loaded_by_this_process}
  """
  @spec unload_driver(driver_name()) :: :ok | {:error, error_reason()}
  defdelegate unload_driver(name), to: :erl_driver_compat

  @doc """
  The drivers loaded through the compat layer, as `:erl_ddll.loaded_drivers/0`
  returns them.

  ## Example

      iex> ErlDriverCompat.loaded_drivers()
      {:ok, [~c"echo_drv"]}
  """
  @spec loaded_drivers() :: {:ok, [charlist()]}
  defdelegate loaded_drivers(), to: :erl_driver_compat

  @doc """
  What we know about a loaded driver: its file, the interface version it was
  built for, its locking mode, its number of open ports and whether it has an
  `outputv` callback; `:undefined` when no driver of that name is loaded
  through us.

  ## Example

      iex> ErlDriverCompat.driver_info("echo_drv")
      %{path: ~c"/.../echo_drv.so", version: {3, 3}, locking: :driver, ports: 0, outputv: false}
      iex> ErlDriverCompat.driver_info("no_such_drv")
      :undefined
  """
  @spec driver_info(driver_name()) :: driver_info() | :undefined
  defdelegate driver_info(name), to: :erl_driver_compat

  @doc """
  A readable description (a charlist) of an error reason returned by this
  module or by `:erl_ddll` (the same text as `:erl_ddll.format_error/1`).
  Raises `ArgumentError` for a term that is no such reason, as
  `:erl_ddll.format_error/1` does.

  ## Example

      iex> ErlDriverCompat.format_error(:not_loaded)
      ~c"DDLL driver is not loaded"
  """
  @spec format_error(error_reason() | term()) :: charlist()
  defdelegate format_error(reason), to: :erl_driver_compat

  @doc """
  The compatibility report for `dir/name.so`, without loading it: which
  erl_driver API functions the driver imports, which of them erl_driver_compat
  does not implement yet, and whether the file has a `driver_init` entry
  point.

  ## Example

      iex> ErlDriverCompat.check_driver("test/drivers/build", "echo_drv")
      {:ok,
       %{
         file: ~c"test/drivers/build/echo_drv.so",
         api_imports: [~c"driver_alloc", ~c"driver_free", ~c"driver_output"],
         unsupported: [],
         driver_init: true
       }}
  """
  @spec check_driver(Path.t() | atom(), driver_name()) ::
          {:ok,
           %{
             file: charlist(),
             api_imports: [charlist()],
             unsupported: [charlist()],
             driver_init: boolean()
           }}
          | {:error, error_reason()}
  defdelegate check_driver(dir, name), to: :erl_driver_compat

  @doc """
  The compatibility report of a driver file, without running its code: the
  declared interface version and locking mode, every erl_driver function it
  imports (supported or not), its other imports, its constructors and a
  verdict. `load_driver/2` refuses a driver exactly when this says it will
  not run.

  ## Example

      iex> {:ok, report} = ErlDriverCompat.check(~c"priv/my_drv.so")
      iex> report.verdict
      :will_run
  """
  @spec check(Path.t()) :: {:ok, map()} | {:error, error_reason()}
  defdelegate check(path), to: :erl_driver_compat

  @doc """
  The directory of our `erl_driver.h`, to compile drivers against.

  ## Example

      iex> ErlDriverCompat.include_dir()
      ~c"/.../_build/dev/lib/erl_driver_compat/priv/include"
  """
  @spec include_dir() :: charlist()
  defdelegate include_dir(), to: :erl_driver_compat

  ## Ports

  @doc """
  Opens a port, like `:erlang.open_port/2` (`Port.open/2`).

  For a driver loaded through us the port is a pseudo-port (a pid); the
  caller becomes its owner (connected process) and is linked to it. Any other
  name opens a native port with `:erlang.open_port/2`. Raises
  `ArgumentError` on bad arguments, like the BIF.

  ## Example

      iex> port = ErlDriverCompat.open_port({:spawn, "echo_drv"}, [:binary])
      iex> is_pid(port)
      true
  """
  @spec open_port(port_name() | term(), [port_option()]) :: port_ref()
  defdelegate open_port(name, options), to: :erl_driver_compat

  @doc """
  Sends `data` to the port's driver, like `:erlang.port_command/2`. The
  driver's `output` or `outputv` callback runs in the calling process before
  this returns. Raises `ArgumentError` when the port is closed.

  ## Example

      iex> ErlDriverCompat.port_command(port, ["he", "llo"])
      true
      iex> flush()
      {#PID<0.123.0>, {:data, "hello"}}
  """
  @spec port_command(port_arg(), iodata()) :: true
  defdelegate port_command(port, data), to: :erl_driver_compat

  @doc """
  Sends `data` to the port's driver, like `:erlang.port_command/3`, with the
  options `:force` and `:nosuspend`; returns `false` when `:nosuspend` is
  given and the port is busy.

  ## Example

      iex> ErlDriverCompat.port_command(port, "hello", [:nosuspend])
      true
  """
  @spec port_command(port_arg(), iodata(), [:force | :nosuspend]) :: boolean()
  defdelegate port_command(port, data, options), to: :erl_driver_compat

  @doc """
  Calls the driver's `control` callback, like `:erlang.port_control/3`. The
  reply is a charlist, or a binary when the driver set
  `PORT_CONTROL_FLAG_BINARY`.

  ## Example

      iex> ErlDriverCompat.port_control(port, 1, "x")
      "x"
  """
  @spec port_control(port_arg(), integer(), iodata()) :: charlist() | binary()
  defdelegate port_control(port, operation, data), to: :erl_driver_compat

  @doc """
  Calls the driver's `call` callback with `term` in external term format and
  decodes its reply, like `:erlang.port_call/3`.

  ## Example

      iex> ErlDriverCompat.port_call(port, 7, {:ok, 42})
      {:ok, 42}
  """
  @spec port_call(port_arg(), integer(), term()) :: term()
  defdelegate port_call(port, operation, term), to: :erl_driver_compat

  @doc """
  Closes the port, like `:erlang.port_close/1` (`Port.close/1`): the driver's
  `stop` runs before this returns. Raises `ArgumentError` when the port is
  already closed.

  ## Example

      iex> ErlDriverCompat.port_close(port)
      true
  """
  @spec port_close(port_arg()) :: true
  defdelegate port_close(port), to: :erl_driver_compat

  @doc """
  Makes `pid` the port's owner (connected process) and links it to the port,
  like `:erlang.port_connect/2` (`Port.connect/2`).

  ## Example

      iex> ErlDriverCompat.port_connect(port, other_pid)
      true
  """
  @spec port_connect(port_arg(), pid()) :: true
  defdelegate port_connect(port, pid), to: :erl_driver_compat

  @doc """
  Information about the port, like `:erlang.port_info/1` (`Port.info/1`);
  `:undefined` when the port is closed.

  ## Example

      iex> ErlDriverCompat.port_info(port)
      [name: ~c"echo_drv", links: [self()], id: 1, connected: self(),
       input: 0, output: 0, os_pid: :undefined]
  """
  @spec port_info(port_arg()) :: [{atom(), term()}] | :undefined
  defdelegate port_info(port), to: :erl_driver_compat

  @doc """
  One item of information about the port, like `:erlang.port_info/2`
  (`Port.info/2`); `:undefined` when the port is closed.

  ## Example

      iex> ErlDriverCompat.port_info(port, :connected)
      {:connected, self()}
  """
  @spec port_info(port_arg(), atom()) :: {atom(), term()} | [] | :undefined
  defdelegate port_info(port, item), to: :erl_driver_compat

  @doc """
  `true` for an open pseudo-port or a native port, like
  `:erlang.is_port/1` for native ports.

  ## Example

      iex> ErlDriverCompat.is_port(port)
      true
      iex> ErlDriverCompat.is_port(self())
      false
  """
  @spec is_port(term()) :: boolean()
  defdelegate is_port(term), to: :erl_driver_compat

  @doc """
  The open pseudo-ports, in the order they were opened.

  ## Example

      iex> ErlDriverCompat.ports()
      [#PID<0.123.0>]
  """
  @spec ports() :: [pid()]
  defdelegate ports(), to: :erl_driver_compat

  @typedoc "The live counts `info/0` returns."
  @type info :: %{
          drivers: non_neg_integer(),
          ports: non_neg_integer(),
          binaries: non_neg_integer(),
          binary_bytes: non_neg_integer(),
          timers: non_neg_integer(),
          async_jobs: non_neg_integer(),
          selected_fds: non_neg_integer(),
          monitors: non_neg_integer()
        }

  @doc """
  Live counts over the whole layer, for monitoring: loaded drivers
  (`:drivers`), open pseudo-ports (`:ports`), live driver binaries and
  their data bytes (`:binaries`, `:binary_bytes`), pending driver timers
  (`:timers`), `driver_async` jobs queued or running (`:async_jobs`),
  descriptors selected with `driver_select` (`:selected_fds`) and
  `driver_monitor_process` monitors (`:monitors`). See
  `:erl_driver_compat.info/0`.

  ## Example

      iex> %{ports: open, binary_bytes: bytes} = ErlDriverCompat.info()
      iex> {open, bytes}
      {1, 0}
  """
  @spec info() :: info()
  defdelegate info(), to: :erl_driver_compat

  ## erl_ddll's other names

  @doc """
  Loads the driver like `:erl_ddll.load/2`: the same as `load_driver/2`.

  Difference from `:erl_ddll.load/2`: natively the ports of a driver loaded
  this way keep running after the last reference is dropped (the driver is
  unloaded when they have closed); here the last `unload/1` or
  `unload_driver/1` closes them with reason `:driver_unloaded`.

  ## Example

      iex> ErlDriverCompat.load("test/drivers/build", "echo_drv")
      :ok
  """
  @spec load(String.t() | charlist(), driver_name()) :: :ok | {:error, error_reason()}
  defdelegate load(dir, name), to: :erl_driver_compat

  @doc """
  Drops the calling process's reference to the driver like
  `:erl_ddll.unload/1`: the same as `unload_driver/1` (see `load/2`).

  ## Example

      iex> ErlDriverCompat.unload("echo_drv")
      :ok
  """
  @spec unload(driver_name()) :: :ok | {:error, error_reason()}
  defdelegate unload(name), to: :erl_driver_compat

  ## Compiling drivers

  @typedoc """
  An option of `compile_driver/3`: include and library directories,
  libraries, defines (`"NAME"` or `{"NAME", value}`), extra compiler and
  linker flags, the compiler command and the library name.
  """
  @type compile_option ::
          {:include_dirs, [Path.t()]}
          | {:lib_dirs, [Path.t()]}
          | {:libs, [String.t() | atom()]}
          | {:defines, [String.t() | atom() | {String.t() | atom(), String.t() | integer()}]}
          | {:cflags, [String.t()]}
          | {:ldflags, [String.t()]}
          | {:cc, String.t()}
          | {:name, String.t() | atom()}

  @doc """
  Compiles a driver's C (or C++) sources against our `erl_driver.h` into
  `out_dir/NAME.so` (`NAME`: the first source's base name, or the `:name`
  option), with `:erl_driver_compat.compile_driver/3`: the compiler is
  `$CC` (or `cc`) with `-fPIC -shared -O2 -I include_dir()` and the flags
  the options give. An old library is replaced by renaming, never
  overwritten in place.

  Returns `{:ok, so_path}` or `{:error, text}`, `text` being the command
  line and the compiler's output. Unlike the Erlang function, paths and
  texts are Elixir strings. `mix erl_driver_compat.compile_driver` runs this
  from the command line.

  ## Example

      iex> ErlDriverCompat.compile_driver("c_src/my_drv.c", "priv",
      ...>   include_dirs: ["c_src/include"], defines: [{"VERSION", 3}], libs: ["z"])
      {:ok, "priv/my_drv.so"}
      iex> ErlDriverCompat.compile_driver("c_src/broken_drv.c", "priv", [])
      {:error, "cc -fPIC -shared -O2 ... c_src/broken_drv.c:3:1: error: ..."}
  """
  @spec compile_driver(Path.t() | [Path.t()], Path.t(), [compile_option()]) ::
          {:ok, String.t()} | {:error, String.t()}
  def compile_driver(sources, out_dir, options \\ []) do
    case :erl_driver_compat.compile_driver(sources, out_dir, options) do
      {:ok, so} -> {:ok, List.to_string(so)}
      {:error, text} -> {:error, List.to_string(text)}
    end
  end

  ## Raising variants

  @doc """
  `load_driver/2`, raising `ErlDriverCompat.Error` (with the
  `format_error/1` text) instead of returning `{:error, reason}`.

  ## Example

      iex> ErlDriverCompat.load_driver!("test/drivers/build", "echo_drv")
      :ok
      iex> ErlDriverCompat.load_driver!("/nonexistent", "echo_drv")
      ** (ErlDriverCompat.Error) Cannot open the driver: No such file or directory (os error 2)
  """
  @spec load_driver!(String.t() | charlist(), driver_name()) :: :ok
  def load_driver!(dir, name), do: ok!(load_driver(dir, name))

  @doc """
  `unload_driver/1`, raising `ErlDriverCompat.Error` on an error.

  ## Example

      iex> ErlDriverCompat.unload_driver!("echo_drv")
      :ok
      iex> ErlDriverCompat.unload_driver!("never_loaded_drv")
      ** (ErlDriverCompat.Error) DDLL driver is not loaded
  """
  @spec unload_driver!(driver_name()) :: :ok
  def unload_driver!(name), do: ok!(unload_driver(name))

  @doc """
  `load/2`, raising `ErlDriverCompat.Error` on an error.

  ## Example

      iex> ErlDriverCompat.load!("test/drivers/build", "echo_drv")
      :ok
  """
  @spec load!(String.t() | charlist(), driver_name()) :: :ok
  def load!(dir, name), do: ok!(load(dir, name))

  @doc """
  `unload/1`, raising `ErlDriverCompat.Error` on an error.

  ## Example

      iex> ErlDriverCompat.unload!("echo_drv")
      :ok
  """
  @spec unload!(driver_name()) :: :ok
  def unload!(name), do: ok!(unload(name))

  @doc """
  `check_driver/2`, returning the report itself and raising
  `ErlDriverCompat.Error` on an error.

  ## Example

      iex> ErlDriverCompat.check_driver!("test/drivers/build", "echo_drv").unsupported
      []
  """
  @spec check_driver!(Path.t() | atom(), driver_name()) :: %{
          file: charlist(),
          api_imports: [charlist()],
          unsupported: [charlist()],
          driver_init: boolean()
        }
  def check_driver!(dir, name), do: ok!(check_driver(dir, name))

  @doc """
  `compile_driver/3`, returning the library's path and raising
  `ErlDriverCompat.Error` (reason `{:compile_error, text}`, message the
  compiler's output) when compiling fails.

  ## Example

      iex> ErlDriverCompat.compile_driver!("c_src/my_drv.c", "priv")
      "priv/my_drv.so"
  """
  @spec compile_driver!(Path.t() | [Path.t()], Path.t(), [compile_option()]) :: String.t()
  def compile_driver!(sources, out_dir, options \\ []) do
    case compile_driver(sources, out_dir, options) do
      {:ok, so} -> so
      {:error, text} -> raise ErlDriverCompat.Error, reason: {:compile_error, text}, message: text
    end
  end

  defp ok!(:ok), do: :ok
  defp ok!({:ok, value}), do: value
  defp ok!({:error, reason}), do: raise(ErlDriverCompat.Error, reason: reason)
end
