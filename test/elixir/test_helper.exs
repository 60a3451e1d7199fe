defmodule ErlDriverCompat.TestSupport do
  @moduledoc """
  Helpers of the ExUnit suite: where the test drivers are, a process that
  keeps them loaded, and `both/1`, which runs one scenario against native
  ports (`:erl_ddll` + `:erlang`) and against pseudo-ports
  (`ErlDriverCompat`) through the Erlang suites' harness, `test/edc_diff.erl`
  (compiled and loaded below, before any test runs).
  """

  @doc "Directory of the compiled test drivers (`make test-drivers`; `:edc_diff.drivers_dir/0`)."
  def drivers_dir, do: List.to_string(:edc_diff.drivers_dir())

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
  Runs `scenario.(backend)` against native ports and against pseudo-ports
  with the differential harness the Common Test suites use
  (`test/edc_diff.erl`: backends, a fresh process per run, normalised
  results); returns `{native_result, compat_result}`.
  """
  def both(scenario) do
    {:edc_diff.run(:native, scenario), :edc_diff.run(:compat, scenario)}
  end

  @doc "All messages in the mailbox, waiting 50 ms for stragglers (`:edc_diff.flush/0`)."
  def flush, do: :edc_diff.flush()

  @doc "The next message, or `:timeout` after `timeout` ms (`:edc_diff.recv/1`)."
  def recv(timeout \\ 1_000), do: :edc_diff.recv(timeout)

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
end

# The differential harness shared with the Common Test suites. Loaded from
# its source path, so that edc_diff:drivers_dir/0 (code:which/1) finds
# test/drivers/build next to it.
edc_diff = String.to_charlist(Path.expand("../edc_diff.erl", __DIR__))
{:ok, :edc_diff, beam} = :compile.file(edc_diff, [:binary, :debug_info, :report])
{:module, :edc_diff} = :code.load_binary(:edc_diff, edc_diff, beam)

ErlDriverCompat.TestSupport.check_drivers!(["echo_drv"])
# capture_log needs Elixir's :logger (the library itself does not use it).
{:ok, _} = Application.ensure_all_started(:logger)
# With EDC_EXUNIT_REPORT set (scripts/run_tests.sh), the counts also go to
# that file as JSON.
formatters =
  if System.get_env("EDC_EXUNIT_REPORT") do
    Code.require_file("counts_formatter.exs", __DIR__)
    [ExUnit.CLIFormatter, ErlDriverCompat.CountsFormatter]
  else
    [ExUnit.CLIFormatter]
  end

ExUnit.start(formatters: formatters)
