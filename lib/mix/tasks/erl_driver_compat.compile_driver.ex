defmodule Mix.Tasks.ErlDriverCompat.CompileDriver do
  @shortdoc "Compiles a legacy driver's C sources against erl_driver_compat's erl_driver.h"

  @moduledoc """
  Compiles a legacy linked-in driver's C (or C++) sources into
  `OUT_DIR/NAME.so`, ready for `ErlDriverCompat.load_driver/2`, with
  `:erl_driver_compat.compile_driver/3`: the compiler is `$CC` (or `cc`;
  `$CXX` or `c++` for C++ sources) with `-fPIC -shared -O2` and
  `-I` `ErlDriverCompat.include_dir/0`.

      mix erl_driver_compat.compile_driver SOURCE... [options]

  ## Options

    * `--out DIR` (`-o`) - the output directory (default `priv`)
    * `--name NAME` - the library's name without `.so` (default: the first
      source's base name without extension); it is the driver name to load
    * `--include DIR` (`-I`), `--lib-dir DIR` (`-L`), `--lib NAME` (`-l`) -
      include and library directories, libraries; may be repeated
    * `--define NAME` or `--define NAME=VALUE` (`-D`) - may be repeated
    * `--cflags FLAGS`, `--ldflags FLAGS` - extra flags separated by blanks,
      before and after the sources (`--cflags="-Wall -Werror"`)
    * `--cc COMMAND` - the compiler command (default `$CC`, else `cc`)

  The project is compiled first (`mix compile`), so that erl_driver_compat
  is on the code path. Compiler errors are printed and the task exits
  with a non-zero status.

  ## Examples

      mix erl_driver_compat.compile_driver c_src/my_drv.c
      mix erl_driver_compat.compile_driver c_src/a.c c_src/b.c --name my_drv -o priv/lib \\
          -I c_src/include -D NDEBUG -D VERSION=3 -l z --cflags="-Wall -Werror"

  As a step of your own build (in `mix.exs`; the alias runs after the
  normal `compile`):

      defp aliases do
        [compile: ["compile", "erl_driver_compat.compile_driver c_src/my_drv.c"]]
      end
  """
  use Mix.Task

  @switches [
    out: :string,
    name: :string,
    include: :keep,
    lib_dir: :keep,
    lib: :keep,
    define: :keep,
    cflags: :keep,
    ldflags: :keep,
    cc: :string
  ]
  @aliases [o: :out, I: :include, L: :lib_dir, l: :lib, D: :define]

  @impl Mix.Task
  def run(args) do
    {opts, sources, invalid} = OptionParser.parse(args, strict: @switches, aliases: @aliases)

    if invalid != [] do
      Mix.raise("erl_driver_compat.compile_driver: invalid options #{inspect(invalid)}")
    end

    if sources == [] do
      Mix.raise(
        "erl_driver_compat.compile_driver: no source file given (see `mix help erl_driver_compat.compile_driver`)"
      )
    end

    Mix.Task.run("compile", [])
    out = Keyword.get(opts, :out, "priv")

    case ErlDriverCompat.compile_driver(sources, out, build_options(opts)) do
      {:ok, so} ->
        Mix.shell().info("==> erl_driver_compat: compiled #{Path.relative_to_cwd(so)}")
        # A priv/ made by this task is not yet linked into _build (Mix
        # links it when the application is built, if it exists then).
        if Mix.Project.get(), do: Mix.Project.build_structure()
        {:ok, so}

      {:error, text} ->
        Mix.shell().error(text)
        Mix.raise("erl_driver_compat.compile_driver: compiling #{Enum.join(sources, " ")} failed")
    end
  end

  @doc false
  # The options of `:erl_driver_compat.compile_driver/3` from the switches.
  def build_options(opts) do
    all = fn key -> Keyword.get_values(opts, key) end
    words = fn key -> Enum.flat_map(all.(key), &String.split/1) end

    defines =
      for define <- all.(:define) do
        case String.split(define, "=", parts: 2) do
          [name, value] -> {name, value}
          [name] -> name
        end
      end

    [
      include_dirs: all.(:include),
      lib_dirs: all.(:lib_dir),
      libs: all.(:lib),
      defines: defines,
      cflags: words.(:cflags),
      ldflags: words.(:ldflags)
    ] ++
      for(
        {key, value} <- opts,
        key in [:name, :cc],
        do: {key, value}
      )
  end
end
