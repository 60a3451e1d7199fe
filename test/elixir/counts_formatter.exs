defmodule ErlDriverCompat.CountsFormatter do
  @moduledoc """
  An ExUnit formatter that writes the counts of the run as JSON to the file
  named by `EDC_EXUNIT_REPORT` when the suite finishes, for
  `scripts/run_tests.sh`:

      {"passed": P, "failed": F, "skipped": S, "excluded": E, "invalid": I}

  Doctests count as tests; `invalid` tests are those whose `setup_all`
  failed. It runs next to the usual CLI formatter (see `test_helper.exs`).
  """
  use GenServer

  @impl GenServer
  def init(_opts) do
    {:ok, %{passed: 0, failed: 0, skipped: 0, excluded: 0, invalid: 0}}
  end

  @impl GenServer
  def handle_cast({:test_finished, %ExUnit.Test{state: state}}, counts) do
    {:noreply, Map.update!(counts, outcome(state), &(&1 + 1))}
  end

  def handle_cast({:suite_finished, _times}, counts) do
    if path = System.get_env("EDC_EXUNIT_REPORT") do
      File.mkdir_p!(Path.dirname(path))
      File.write!(path, to_json(counts))
    end

    {:noreply, counts}
  end

  def handle_cast(_event, counts), do: {:noreply, counts}

  defp outcome(nil), do: :passed
  defp outcome({:failed, _}), do: :failed
  defp outcome({:skipped, _}), do: :skipped
  defp outcome({:excluded, _}), do: :excluded
  defp outcome({:invalid, _}), do: :invalid

  defp to_json(counts) do
    fields = for {k, v} <- Enum.sort(counts), do: ~s("#{k}": #{v})
    "{" <> Enum.join(fields, ", ") <> "}\n"
  end
end
