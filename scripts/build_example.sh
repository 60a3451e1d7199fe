# Shared by scripts/demo.sh and scripts/bench.sh (sourced, not run):
# builds the NIF and the Erlang application, then compiles one driver
# against erl_driver_compat's own header and one Erlang module into
# $BUILD. Sets ROOT, EBIN and BUILD.
#
#   build_example <driver.c> <module.erl> <build dir>
build_example() {
    local driver_src="$1" module_src="$2"
    ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$ROOT"
    export PATH="$HOME/.cargo/bin:$PATH"
    BUILD="$ROOT/$3"
    EBIN="$ROOT/_build/default/lib/erl_driver_compat/ebin"
    local cc="${CC:-cc}" include name

    echo "==> Building the NIF (make nif) and the Erlang modules (rebar3 compile)"
    make --no-print-directory nif
    rebar3 compile
    mkdir -p "$BUILD"

    echo "==> Compiling $driver_src and $module_src against erl_driver_compat's erl_driver.h"
    include="$(erl -noshell -pa "$EBIN" \
        -eval 'io:format("~ts", [filename:absname(erl_driver_compat:include_dir())]), halt().')"
    echo "    include dir: $include"
    name="$(basename "$driver_src" .c)"
    # Remove first: never overwrite a .so in place (a VM may have it mapped).
    rm -f "$BUILD/$name.so"
    "$cc" -shared -fPIC -O2 -g -Wall -Wextra -Werror -I"$include" \
        -o "$BUILD/$name.so" "$driver_src"
    erlc +warnings_as_errors -o "$BUILD" "$module_src"
}
