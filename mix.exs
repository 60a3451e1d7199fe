defmodule Mix.Tasks.Compile.ErlDriverCompatNif do
  @moduledoc """
  Builds the Rust NIF of erl_driver_compat with cargo and copies it into
  `priv/liberl_driver_compat.so`.

  Runs `cargo build --release --manifest-path native/erl_driver_compat/Cargo.toml`
  in the directory of this `mix.exs` (so it also works when the project is a
  path or git dependency), then replaces `priv/liberl_driver_compat.so` when
  the built library differs from it. The old file is deleted before the new
  one is copied: overwriting a shared object that a running VM has mapped
  crashes that VM, whereas an unlinked file stays valid for whoever maps it.

  No Hex and no network access beyond crates.io (through cargo) are needed.
  `cargo` is taken from `PATH`, or from `~/.cargo/bin` when it is not there.
  """
  use Mix.Task.Compiler

  @root __DIR__
  @manifest "native/erl_driver_compat/Cargo.toml"
  @lib "liberl_driver_compat.so"

  @impl Mix.Task.Compiler
  def run(_args) do
    with {:ok, cargo} <- find_cargo(),
         :ok <- cargo_build(cargo),
         {:ok, built} <- built_library(cargo) do
      install(built, Path.join([@root, "priv", @lib]))
    end
  end

  defp find_cargo do
    home_cargo = Path.join([System.user_home() || "~", ".cargo", "bin", "cargo"])

    cond do
      path = System.find_executable("cargo") -> {:ok, path}
      File.regular?(home_cargo) -> {:ok, home_cargo}
      true -> error("cargo not found: install Rust (rustup or apt-get install cargo)")
    end
  end

  defp cargo_build(cargo) do
    Mix.shell().info("==> erl_driver_compat: cargo build --release")
    args = ["build", "--release", "--manifest-path", @manifest]

    case System.cmd(cargo, args, cd: @root, stderr_to_stdout: true, into: IO.stream()) do
      {_, 0} -> :ok
      {_, status} -> error("cargo build failed (exit status #{status})")
    end
  end

  # Cargo decides where the library goes (CARGO_TARGET_DIR, a
  # .cargo/config.toml `build.target-dir`, the workspace root): ask it.
  defp built_library(cargo) do
    args = ["metadata", "--format-version", "1", "--no-deps", "--manifest-path", @manifest]

    target_dir =
      case System.cmd(cargo, args, cd: @root, stderr_to_stdout: false) do
        {json, 0} ->
          case Regex.run(~r/"target_directory":"((?:[^"\\]|\\.)*)"/, json) do
            [_, dir] -> String.replace(dir, ~r/\\(.)/, "\\1")
            nil -> Path.join(@root, "target")
          end

        _ ->
          Path.join(@root, "target")
      end

    built = Path.join([target_dir, "release", @lib])

    if File.regular?(built) do
      {:ok, built}
    else
      error("cargo build did not produce #{built}")
    end
  end

  defp install(built, dest) do
    if File.regular?(dest) and File.read!(dest) == File.read!(built) do
      {:noop, []}
    else
      File.mkdir_p!(Path.dirname(dest))
      # Delete first, never overwrite in place (see the moduledoc).
      File.rm(dest)
      File.cp!(built, dest)
      Mix.shell().info("==> erl_driver_compat: installed #{Path.relative_to(dest, @root)}")
      {:ok, []}
    end
  end

  defp error(message) do
    Mix.shell().error("erl_driver_compat: " <> message)

    diagnostic = %Mix.Task.Compiler.Diagnostic{
      compiler_name: "erl_driver_compat_nif",
      file: Path.join(@root, @manifest),
      message: message,
      position: nil,
      severity: :error
    }

    {:error, [diagnostic]}
  end
end

defmodule ErlDriverCompat.MixProject do
  use Mix.Project

  def project do
    [
      app: :erl_driver_compat,
      version: "0.1.0",
      elixir: "~> 1.14",
      description: "Run legacy Erlang linked-in drivers as NIF-backed pseudo-ports",
      # rebar3's `test` profile also builds into _build/test: keep Mix's
      # artifacts apart. A parent project overrides this for its deps.
      build_path: "_build/mix",
      compilers: [:erl_driver_compat_nif | Mix.compilers()],
      erlc_paths: ["src"],
      elixirc_paths: ["lib"],
      test_paths: ["test/elixir"],
      start_permanent: Mix.env() == :prod,
      deps: []
    ]
  end

  def application do
    [extra_applications: []]
  end
end
