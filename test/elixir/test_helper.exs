defmodule ErlDriverCompat.TestSupport do
  @moduledoc """
  Helpers of the ExUnit suite: where the test drivers are, a process that
  keeps them loaded, and a small differential harness that runs one
  scenario against native ports (`:erl_ddll` + `:erlang`) and against
  pseudo-ports (`ErlDriverCompat`).
  """

  @doc "Directory of the compiled test drivers (`make test-drivers`)."
  def drivers_dir do
    System.get_env("EDC_TEST_DRIVERS") || Path.expand("../drivers/build", __DIR__)
  end

  @doc "Raises unless the named test drivers are built."
  def check_drivers!(names) do
    for name <- names do
      so = Path.join(drivers_dir(), name <> ".so")

      unless File.regular?(so) do
        raise "test driver #{so} is missing: run `make test-drivers` first"
      end
    end

    :ok
  end

  @doc """
  Starts a process that loads the drivers natively and through the compat
  layer and keeps them loaded (a driver is unloaded when the last process
  that loaded it exits) until `stop_holder/1`.
  """
  def start_holder(names) do
    parent = self()
    dir = drivers_dir()

    pid =
      spawn(fn ->
        for name <- names do
          :ok = :erl_ddll.load_driver(String.to_charlist(dir), String.to_charlist(name))
          :ok = ErlDriverCompat.load_driver(dir, name)
        end

        send(parent, {self(), :loaded})

        receive do
          :stop -> :ok
        end
      end)

    receive do
      {^pid, :loaded} -> pid
    after
      10_000 -> raise "could not load the test drivers #{inspect(names)}"
    end
  end

  @doc "Stops a holder: its references to the drivers are dropped."
  def stop_holder(pid) do
    ref = Process.monitor(pid)
    send(pid, :stop)

    receive do
      {:DOWN, ^ref, :process, ^pid, _} -> :ok
    end
  end

  @doc """
  The functions a scenario uses to work with ports: the `:erlang` BIFs and
  `:erl_ddll` (`:native`) or `ErlDriverCompat` (`:compat`).
  """
  def backend(:native) do
    %{
      kind: :native,
      load_driver: &:erl_ddll.load_driver/2,
      unload_driver: &:erl_ddll.unload_driver/1,
      open_port: &:erlang.open_port/2,
      port_command: &:erlang.port_command/2,
      port_command3: &:erlang.port_command/3,
      port_control: &:erlang.port_control/3,
      port_call: &:erlang.port_call/3,
      port_close: &:erlang.port_close/1,
      port_connect: &:erlang.port_connect/2,
      port_info: &:erlang.port_info/1,
      port_info2: &:erlang.port_info/2,
      is_port: &:erlang.is_port/1
    }
  end

  def backend(:compat) do
    %{
      kind: :compat,
      load_driver: &ErlDriverCompat.load_driver/2,
      unload_driver: &ErlDriverCompat.unload_driver/1,
      open_port: &ErlDriverCompat.open_port/2,
      port_command: &ErlDriverCompat.port_command/2,
      port_command3: &ErlDriverCompat.port_command/3,
      port_control: &ErlDriverCompat.port_control/3,
      port_call: &ErlDriverCompat.port_call/3,
      port_close: &ErlDriverCompat.port_close/1,
      port_connect: &ErlDriverCompat.port_connect/2,
      port_info: &ErlDriverCompat.port_info/1,
      port_info2: &ErlDriverCompat.port_info/2,
      is_port: &ErlDriverCompat.is_port/1
    }
  end

  @doc """
  Runs `scenario.(backend)` in a fresh process and returns its result with
  ports and pids replaced by stable names: the ports the scenario opened
  become `{:port, n}` (n = order of opening), the scenario process `:self`,
  other pids `:pid`, other ports `:port`, references `:ref`. An exception
  becomes `{:raised, module}`, an exit `{:exited, reason}`.
  """
  def run(kind, scenario, timeout \\ 5_000) do
    parent = self()
    tag = make_ref()
    b0 = backend(kind)

    {pid, mref} =
      spawn_monitor(fn ->
        Process.put(:edc_ports, [])

        b =
          Map.put(b0, :open_port, fn name, opts ->
            port = b0.open_port.(name, opts)
            Process.put(:edc_ports, Process.get(:edc_ports) ++ [port])
            port
          end)

        result =
          try do
            scenario.(b)
          rescue
            e -> {:raised, e.__struct__}
          catch
            :exit, reason -> {:exited, reason}
          end

        send(parent, {tag, normalise(result, Process.get(:edc_ports), self())})
      end)

    receive do
      {^tag, result} ->
        Process.demonitor(mref, [:flush])
        result

      {:DOWN, ^mref, :process, ^pid, reason} ->
        {:scenario_process_died, normalise(reason, [], pid)}
    after
      timeout ->
        Process.exit(pid, :kill)
        {:scenario_timeout, kind}
    end
  end

  @doc "Runs `scenario` both ways; returns `{native_result, compat_result}`."
  def both(scenario) do
    {run(:native, scenario), run(:compat, scenario)}
  end

  @doc "All messages in the mailbox, waiting `timeout` ms for stragglers."
  def flush(timeout \\ 50) do
    receive do
      m -> [m | flush(timeout)]
    after
      timeout -> []
    end
  end

  @doc "The next message, or `:timeout`."
  def recv(timeout \\ 1_000) do
    receive do
      m -> m
    after
      timeout -> :timeout
    end
  end

  @doc "Waits until `fun.()` is truthy (polling), at most `timeout` ms."
  def eventually(fun, timeout \\ 1_000) do
    cond do
      fun.() ->
        true

      timeout <= 0 ->
        false

      true ->
        Process.sleep(10)
        eventually(fun, timeout - 10)
    end
  end

  defp normalise(term, ports, self) when is_port(term) or is_pid(term) do
    case Enum.find_index(ports, &(&1 == term)) do
      nil -> anonymous(term, self)
      n -> {:port, n + 1}
    end
  end

  defp normalise(term, _ports, _self) when is_reference(term), do: :ref

  defp normalise([head | tail], ports, self) do
    [normalise(head, ports, self) | normalise(tail, ports, self)]
  end

  defp normalise(term, ports, self) when is_tuple(term) do
    term |> Tuple.to_list() |> normalise(ports, self) |> List.to_tuple()
  end

  defp normalise(term, ports, self) when is_map(term) and not is_struct(term) do
    Map.new(term, fn {k, v} -> {normalise(k, ports, self), normalise(v, ports, self)} end)
  end

  defp normalise(term, _ports, _self), do: term

  defp anonymous(self, self), do: :self
  defp anonymous(term, _self) when is_port(term), do: :port
  defp anonymous(_term, _self), do: :pid
end

ErlDriverCompat.TestSupport.check_drivers!(["echo_drv"])
# capture_log needs Elixir's :logger (the library itself does not use it).
{:ok, _} = Application.ensure_all_started(:logger)
ExUnit.start()
