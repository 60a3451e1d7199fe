defmodule ErlDriverCompat.Migrate do
  @moduledoc """
  The Elixir counterpart of the parse transform `erl_driver_compat_transform`:
  a module written against `:erl_ddll`, `Port` and the `:erlang` port
  functions runs its drivers through erl_driver_compat without other edits.

      defmodule MyApp.Legacy do
        use ErlDriverCompat.Migrate

        def start(dir) do
          :ok = :erl_ddll.load_driver(dir, ~c"my_drv")
          Port.open({:spawn, ~c"my_drv"}, [:binary])   # a pseudo-port
        end

        def send(port, data) when is_port(port), do: Port.command(port, data)
      end

  `use ErlDriverCompat.Migrate` replaces `def/2` and `defp/2` in the module by
  versions that rewrite the function bodies (and guards) before defining
  them:

    * `:erl_ddll.load/2`, `load_driver/2`, `unload/1`, `unload_driver/1` call
      the `ErlDriverCompat` function of the same name;
    * `:erlang.open_port/2`, `port_command/2,3`, `port_control/3`,
      `port_call/3`, `port_close/1`, `port_connect/2`, `port_info/1,2`,
      `is_port/1` call `ErlDriverCompat`;
    * `Port.open/2`, `Port.command/2,3`, `Port.close/1`, `Port.connect/2`,
      `Port.info/1,2` call `ErlDriverCompat.open_port/2`, `port_command/2,3`,
      `port_close/1`, `port_connect/2`, `port_info/1,2`;
    * captures of them (`&Port.close/1`, `&:erlang.port_info/2`) likewise;
    * `is_port/1` (imported from here instead of `Kernel`) is
      `ErlDriverCompat.is_port/1` in bodies; in guards (where no remote call
      is allowed) it is `is_port(x) or is_pid(x)`.

  Native ports and commands that are not drivers loaded through us still
  reach the `:erlang` functions through `ErlDriverCompat`.

  ## Limits

    * In guards, `is_port(x)` is true for every pid (a pseudo-port is a pid,
      and a guard cannot ask us): clauses that tell ports from processes
      by guards (`when is_port(x)` ... `when is_pid(x)`) send processes to
      the port clause. Test `is_port(x)` in the body there (it asks us).
      The Erlang parse transform decides such guards exactly; here each
      `def` clause is defined on its own, so a clause cannot hand over to
      the next one.
    * `ErlDriverCompat.is_port/1` is false once a pseudo-port has closed
      (natively true for a closed port).
    * Only `def`/`defp` bodies of the module are rewritten: not `defmacro`,
      not module-level code, not calls through `apply/3` with computed
      arguments or other modules (libraries) calling the BIFs.
    * `Port.list/0`, `Port.monitor/1` and `Port.demonitor/2` are not
      rewritten (a pseudo-port is monitored with `Process.monitor/1`).
  """

  @erl_ddll [load: 2, load_driver: 2, unload: 1, unload_driver: 1]
  @erlang [
    open_port: 2,
    port_command: 2,
    port_command: 3,
    port_control: 3,
    port_call: 3,
    port_close: 1,
    port_connect: 2,
    port_info: 1,
    port_info: 2,
    is_port: 1
  ]
  @port %{
    {:open, 2} => :open_port,
    {:command, 2} => :port_command,
    {:command, 3} => :port_command,
    {:close, 1} => :port_close,
    {:connect, 2} => :port_connect,
    {:info, 1} => :port_info,
    {:info, 2} => :port_info
  }

  @doc false
  defmacro __using__(_opts) do
    quote do
      import Kernel, except: [def: 1, def: 2, defp: 1, defp: 2, is_port: 1]
      import ErlDriverCompat.Migrate, only: [def: 1, def: 2, defp: 1, defp: 2, is_port: 1]
    end
  end

  @doc """
  `Kernel.def/2` with the calls of the module doc redirected to
  `ErlDriverCompat`.

  ## Example

      def open(dir) do
        :ok = :erl_ddll.load_driver(dir, ~c"my_drv")
        Port.open({:spawn, ~c"my_drv"}, [])
      end
  """
  defmacro def(call, expr \\ nil) do
    call = rewrite(call, __CALLER__)
    expr = rewrite(expr, __CALLER__)

    quote do
      Kernel.def(unquote(call), unquote(expr))
    end
  end

  @doc """
  `Kernel.defp/2` with the calls of the module doc redirected to
  `ErlDriverCompat`.

  ## Example

      defp send_to(port, data) when is_port(port), do: Port.command(port, data)
  """
  defmacro defp(call, expr \\ nil) do
    call = rewrite(call, __CALLER__)
    expr = rewrite(expr, __CALLER__)

    quote do
      Kernel.defp(unquote(call), unquote(expr))
    end
  end

  @doc """
  `ErlDriverCompat.is_port/1` in a body; `is_port(term) or is_pid(term)` in
  a guard (see the limits in the module doc).

  ## Example

      def kind(x) when is_port(x), do: if(is_port(x), do: :port, else: :pid)
  """
  defmacro is_port(term) do
    case __CALLER__.context do
      :guard ->
        quote do: Kernel.is_port(unquote(term)) or Kernel.is_pid(unquote(term))

      _ ->
        quote do: ErlDriverCompat.is_port(unquote(term))
    end
  end

  @doc false
  # The AST with the calls redirected (public for the tests).
  def rewrite(ast, caller) do
    Macro.prewalk(ast, &redirect(&1, caller))
  end

  # A guard (def heads, fn, case, receive clauses): no remote call is
  # allowed there, :erlang.is_port(x) becomes is_port(x) or is_pid(x).
  defp redirect({:when, m, args}, _caller) do
    {patterns, [guard]} = Enum.split(args, -1)
    {:when, m, patterns ++ [Macro.prewalk(guard, &guard_is_port/1)]}
  end

  # x |> M.f(args): M.f has one argument more than written
  defp redirect({:|>, m, [left, {{:., m2, [mod, fun]}, m3, args}]} = node, caller)
       when is_atom(fun) and is_list(args) do
    case target(mod, fun, length(args) + 1, caller) do
      nil -> node
      new -> {:|>, m, [left, {{:., m2, [ErlDriverCompat, new]}, m3, args}]}
    end
  end

  # &M.f/n
  defp redirect({:&, m, [{:/, m2, [{{:., m3, [mod, fun]}, m4, []}, arity]}]} = node, caller)
       when is_integer(arity) do
    case target(mod, fun, arity, caller) do
      nil -> node
      new -> {:&, m, [{:/, m2, [{{:., m3, [ErlDriverCompat, new]}, m4, []}, arity]}]}
    end
  end

  # M.f(args)
  defp redirect({{:., m, [mod, fun]}, m2, args} = node, caller)
       when is_atom(fun) and is_list(args) do
    case target(mod, fun, length(args), caller) do
      nil -> node
      new -> {{:., m, [ErlDriverCompat, new]}, m2, args}
    end
  end

  defp redirect(node, _caller), do: node

  defp guard_is_port({{:., _, [:erlang, :is_port]}, m, [term]}) do
    {:or, m, [{{:., m, [Kernel, :is_port]}, m, [term]}, {{:., m, [Kernel, :is_pid]}, m, [term]}]}
  end

  defp guard_is_port(node), do: node

  defp target(:erl_ddll, fun, arity, _caller) do
    if {fun, arity} in @erl_ddll, do: fun
  end

  defp target(:erlang, fun, arity, _caller) do
    if {fun, arity} in @erlang, do: fun
  end

  defp target({:__aliases__, _, _} = alias, fun, arity, caller) do
    if Macro.expand(alias, caller) == Port, do: Map.get(@port, {fun, arity})
  end

  defp target(_mod, _fun, _arity, _caller), do: nil
end
