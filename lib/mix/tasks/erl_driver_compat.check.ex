defmodule Mix.Tasks.ErlDriverCompat.Check do
  @shortdoc "Prints the compatibility report of driver .so files (exit status: the verdict)"

  @moduledoc """
  Prints `:erl_driver_compat.check/1` of each driver file, without running
  any of its code: the declared interface version and locking mode (from
  the driver entry found in the file's data, or "unknown until loaded"),
  every erl_driver function it imports with supported/unsupported, the
  other undefined symbols and who provides them, its constructors, and a
  verdict.

      mix erl_driver_compat.check PATH.so...

  The exit status reflects the verdict (the worst of all files): 0 will
  run, 1 will run with warnings, 2 will not run (or the file cannot be
  read or is not a driver object for this machine). `load_driver/2`
  refuses exactly the drivers whose verdict is "will not run".

  The project is compiled first (`mix compile`), so that erl_driver_compat
  and its NIF are available.
  """
  use Mix.Task

  @impl Mix.Task
  def run([]) do
    Mix.raise(
      "erl_driver_compat.check: no driver file given (usage: mix erl_driver_compat.check PATH.so...)"
    )
  end

  def run(paths) do
    Mix.Task.run("compile", [])

    status =
      paths
      |> Enum.map(fn path ->
        result = :erl_driver_compat.check(String.to_charlist(path))
        IO.write(:erl_driver_compat_check.format_result(String.to_charlist(path), result))
        :erl_driver_compat_check.status(result)
      end)
      |> Enum.max()

    if status != 0, do: exit({:shutdown, status})
    :ok
  end
end
