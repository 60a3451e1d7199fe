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
    * captures and pipes of them (`&Port.close/1`, `port |> Port.close()`)
      likewise;
    * `is_port/1` (imported from here instead of `Kernel`) is
      `ErlDriverCompat.is_port/1` in bodies.

  Native ports and commands that are not drivers loaded through us still
  reach the `:erlang` functions through `ErlDriverCompat`.

  ## is_port/1 in guards

  A pseudo-port is a pid, and a guard cannot call us. In `def`/`defp`
  clauses and in `case` clauses a guard that mentions `is_port/1` (or
  `:erlang.is_port/1`) is decided exactly: the clause gets a weaker guard
  (`is_port(x)` becomes `is_port(x) or is_pid(x)`; under `not`, the native
  `is_port(x)`), its body first evaluates the original guard with
  `ErlDriverCompat.is_port/1`, and when that is false matching goes on with
  the following clauses, as it would have: for a function, through a
  private function `__edc_migrate_NAME/ARITY__` holding all its clauses
  (defined at the end of the module), for a `case`, through a `fn` holding
  the following clauses. Tail calls stay tail calls.

  ## Limits

    * In `fn`, `receive`, `with` and `rescue`/`catch` clauses only the
      weaker guard is used: `is_port(x)` is true for every pid there (and
      `not is_port(x)` false). Clauses of functions with default arguments
      (`\\\\`), and with `rescue`/`after` bodies, too.
    * A function whose clauses reach the private function raises
      `FunctionClauseError` from it when no clause matches.
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
  `ErlDriverCompat`, and `is_port/1` in its guard decided exactly.

  ## Example

      def open(dir) do
        :ok = :erl_ddll.load_driver(dir, ~c"my_drv")
        Port.open({:spawn, ~c"my_drv"}, [])
      end
  """
  defmacro def(call, expr \\ nil), do: define(:def, call, expr, __CALLER__)

  @doc """
  `Kernel.defp/2` with the calls of the module doc redirected to
  `ErlDriverCompat`, and `is_port/1` in its guard decided exactly.

  ## Example

      defp send_to(port, data) when is_port(port), do: Port.command(port, data)
  """
  defmacro defp(call, expr \\ nil), do: define(:defp, call, expr, __CALLER__)

  # Every clause of a function is recorded (for the function of the
  # following clauses, made by __before_compile__/1); a clause whose guard
  # mentions is_port/1 gets the weaker guard, and a body that checks the
  # exact guard first and otherwise calls that function:
  #
  #     def f(p1 = a1, p2 = a2) when weaker do
  #       if exact, do: body, else: __edc_migrate_f/2__(k + 1, a1, a2)
  #     end
  defp define(kind, call, expr, caller) do
    body_call = rewrite(call, caller)
    expr = rewrite(expr, caller)

    case head(call) do
      {name, args, guards} when is_atom(name) and is_list(args) and expr != nil ->
        arity = length(args)

        if Enum.any?(args, &match?({:\\, _, _}, &1)) do
          # Default arguments (several arities): the weaker guard only.
          quote do: Kernel.unquote(kind)(unquote(body_call), unquote(expr))
        else
          index = record(caller.module, {kind, name, arity}, {args, guards, expr})

          case {port_guard?(guards), expr} do
            {true, [do: body]} ->
              vars = arg_vars(arity)
              next = helper_call(name, arity, index + 1, vars)

              quote do
                Kernel.unquote(kind)(
                  unquote(aliased_head(name, args, vars, relaxed(guards))),
                  do: if(unquote(exact(guards, caller)), do: unquote(body), else: unquote(next))
                )
              end

            _ ->
              quote do: Kernel.unquote(kind)(unquote(body_call), unquote(expr))
          end
        end

      _ ->
        quote do: Kernel.unquote(kind)(unquote(body_call), unquote(expr))
    end
  end

  # {name, args, guards} of a function head (guards: [] or several).
  defp head({:when, _, [head, guards]}) do
    {name, args, []} = head(head)
    {name, args, split_when(guards)}
  end

  defp head({name, _, args}) when is_atom(name) and is_list(args), do: {name, args, []}
  defp head({name, _, context}) when is_atom(name) and is_atom(context), do: {name, [], []}
  defp head(_), do: {nil, nil, []}

  defp split_when({:when, _, [g, rest]}), do: [g | split_when(rest)]
  defp split_when(g), do: [g]

  # Records a clause (while the module's code is being expanded: before its
  # body runs); returns its index among the function's clauses.
  defp record(module, key, clause) do
    clauses = Module.get_attribute(module, :edc_migrate_clauses)

    # The first clause of the module (also of a module nested in one that
    # uses us: the imports are lexical) registers the hook that defines
    # the private functions.
    clauses =
      if clauses == nil do
        Module.put_attribute(module, :before_compile, __MODULE__)
        []
      else
        clauses
      end

    n = Enum.count(clauses, &(elem(&1, 0) == key))
    Module.put_attribute(module, :edc_migrate_clauses, [{key, n + 1, clause} | clauses])
    n + 1
  end

  defp arg_vars(arity), do: for(i <- 1..arity//1, do: Macro.var(:"edc_arg#{i}", __MODULE__))

  defp helper_name(name, arity), do: :"__edc_migrate_#{name}/#{arity}__"

  defp helper_call(name, arity, index, vars) do
    {helper_name(name, arity), [], [index | vars]}
  end

  defp aliased_head(name, args, vars, guards) do
    head = {name, [], Enum.zip_with(args, vars, fn arg, var -> {:=, [], [arg, var]} end)}
    with_guards(head, guards)
  end

  defp with_guards(head, []), do: head

  defp with_guards(head, guards) do
    {:when, [], [head, Enum.reduce(Enum.reverse(guards), fn g, acc -> {:when, [], [g, acc]} end)]}
  end

  @doc false
  # The function of the clauses from the k-th on, for every function with a
  # clause whose guard mentions is_port/1.
  defmacro __before_compile__(env) do
    (Module.get_attribute(env.module, :edc_migrate_clauses) || [])
    |> Enum.reverse()
    |> Enum.group_by(&elem(&1, 0), fn {_, index, clause} -> {index, clause} end)
    |> Enum.filter(fn {_, clauses} ->
      Enum.any?(clauses, fn {_, {_, guards, _}} -> port_guard?(guards) end)
    end)
    |> Enum.map(fn {{kind, name, arity}, clauses} -> helper(kind, name, arity, clauses, env) end)
  end

  defp helper(kind, name, arity, clauses, env) do
    vars = arg_vars(arity)
    k = Macro.var(:edc_from, __MODULE__)
    helper = helper_name(name, arity)

    defined =
      for {index, {args, guards, expr}} <- clauses do
        from = quote do: unquote(k) <= unquote(index)

        {guards, expr} =
          case {port_guard?(guards), expr} do
            {true, [do: body]} ->
              next = helper_call(name, arity, index + 1, vars)
              exact = exact(guards, env)

              {relaxed(guards),
               [do: quote(do: if(unquote(exact), do: unquote(body), else: unquote(next)))]}

            _ ->
              {guards, expr}
          end

        guards = if guards == [], do: [from], else: Enum.map(guards, &{:and, [], [from, &1]})
        params = [k | Enum.zip_with(args, vars, fn arg, var -> {:=, [], [arg, var]} end)]
        head = with_guards({helper, [], params}, guards)

        quote do
          Kernel.defp(unquote(head), unquote(expr))
        end
      end

    no_match =
      quote do
        Kernel.defp unquote({helper, [], [{:_, [], nil} | vars]}) do
          raise FunctionClauseError,
            module: __MODULE__,
            function: unquote(name),
            arity: unquote(arity),
            args: unquote(vars)
        end
      end

    _ = kind
    {:__block__, [], defined ++ [no_match]}
  end

  # Guards (a list: `when g1 when g2`) that mention is_port/1.
  defp port_guard?(guards), do: Enum.any?(guards, &mentions_is_port?/1)

  defp mentions_is_port?(ast) do
    {_, found} =
      Macro.prewalk(ast, false, fn
        {:is_port, _, [_]} = node, _ -> {node, true}
        {{:., _, [:erlang, :is_port]}, _, [_]} = node, _ -> {node, true}
        node, acc -> {node, acc}
      end)

    found
  end

  # A weaker guard: true whenever the exact one is. is_port(x) becomes
  # is_port(x) or is_pid(x), and under `not` the native is_port(x) (a
  # pseudo-port is not native: `not is_port(x)` stays true for it); a
  # conjunct with is_port/1 anywhere else becomes true.
  defp relaxed(guards) do
    for guard <- guards do
      guard
      |> conjuncts()
      |> Enum.map(fn conjunct ->
        case relax(conjunct, true) do
          {:ok, relaxed} -> relaxed
          :unknown -> true
        end
      end)
      |> Enum.reduce(fn c, acc -> {:and, [], [acc, c]} end)
    end
  end

  defp relax({:is_port, m, [x]}, positive), do: {:ok, port_test(m, x, positive)}

  defp relax({{:., _, [:erlang, :is_port]}, m, [x]}, positive),
    do: {:ok, port_test(m, x, positive)}

  defp relax({:not, m, [a]}, positive) do
    with {:ok, a} <- relax(a, not positive), do: {:ok, {:not, m, [a]}}
  end

  defp relax({op, m, [a, b]}, positive) when op in [:and, :or] do
    with {:ok, a} <- relax(a, positive), {:ok, b} <- relax(b, positive) do
      {:ok, {op, m, [a, b]}}
    end
  end

  defp relax(ast, _positive) do
    if mentions_is_port?(ast), do: :unknown, else: {:ok, ast}
  end

  defp port_test(m, x, true), do: port_or_pid(m, x)
  defp port_test(m, x, false), do: {{:., m, [Kernel, :is_port]}, m, [x]}

  defp conjuncts({:and, _, [a, b]}), do: conjuncts(a) ++ conjuncts(b)
  defp conjuncts(g), do: [g]

  defp port_or_pid(m, x) do
    {:or, m, [{{:., m, [Kernel, :is_port]}, m, [x]}, {{:., m, [Kernel, :is_pid]}, m, [x]}]}
  end

  # The guards as a body expression: each guard true (an exception making
  # that guard false, as in a guard); is_port/1 asks erl_driver_compat.
  defp exact(guards, caller) do
    guards
    |> Enum.map(fn guard ->
      quote do
        try do
          unquote(rewrite(guard, caller)) == true
        catch
          _, _ -> false
        end
      end
    end)
    |> Enum.reduce(fn g, acc -> quote(do: unquote(acc) or unquote(g)) end)
  end

  @doc """
  `ErlDriverCompat.is_port/1` in a body; `is_port(term) or is_pid(term)` in
  a guard, which the `def`, `defp` and `case` clauses of the module then
  check exactly in their bodies (see the module doc).

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

  defp clause_port_guard?({:->, _, [[{:when, _, [_pattern, guards]}], _]}),
    do: port_guard?(split_when(guards))

  defp clause_port_guard?(_), do: false

  # A guard (def heads, fn, case, receive clauses): no remote call is
  # allowed there, :erlang.is_port(x) becomes is_port(x) or is_pid(x).
  defp redirect({:when, m, args}, _caller) do
    {patterns, [guard]} = Enum.split(args, -1)
    {:when, m, patterns ++ [Macro.prewalk(guard, &guard_is_port/1)]}
  end

  # case with a clause whose guard mentions is_port/1: the weaker guard
  # selects the clause, its body checks the exact guard and otherwise goes
  # on with the following clauses (a case in a fn, split again when one of
  # them also has such a guard).
  defp redirect({:case, m, [expr, [do: clauses]]} = node, caller) when is_list(clauses) do
    case Enum.split_while(clauses, &(not clause_port_guard?(&1))) do
      {_, []} ->
        node

      {before, [{:->, cm, [[{:when, _, [pattern, guards]}], body]} | following]} ->
        guards = split_when(guards)
        value = Macro.unique_var(:edc_value, __MODULE__)
        other = Macro.unique_var(:edc_other, __MODULE__)
        rest = Macro.unique_var(:edc_rest, __MODULE__)

        rest_body =
          case following do
            [] -> quote(do: raise(CaseClauseError, term: unquote(other)))
            _ -> {:case, m, [other, [do: following]]}
          end

        split =
          {:->, cm,
           [
             [with_guards({:=, [], [pattern, value]}, relaxed(guards))],
             quote do
               if unquote(exact(guards, caller)),
                 do: unquote(body),
                 else: unquote(rest).(unquote(value))
             end
           ]}

        catch_all = {:->, [], [[{:_, [], nil}], quote(do: unquote(rest).(unquote(value)))]}

        quote do
          unquote(value) = unquote(expr)
          unquote(rest) = fn unquote(other) -> unquote(rest_body) end
          unquote({:case, m, [value, [do: before ++ [split, catch_all]]]})
        end
    end
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
