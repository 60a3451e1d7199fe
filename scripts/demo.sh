#!/usr/bin/env bash
# `make demo`: builds the NIF and the Erlang application, compiles the
# example driver examples/kv_drv.c against erl_driver_compat's header, and
# runs examples/demo.erl (kv_drv step by step through erl_driver_compat,
# the same session side by side with a native port, and a compatibility
# report). Exits non-zero when any of it fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

BUILD="$ROOT/examples/build"
EBIN="$ROOT/_build/default/lib/erl_driver_compat/ebin"
CC="${CC:-cc}"

echo "==> Building the NIF (make nif) and the Erlang modules (rebar3 compile)"
make --no-print-directory nif
rebar3 compile

mkdir -p "$BUILD"

echo "==> Compiling examples/kv_drv.c against erl_driver_compat's erl_driver.h"
INCLUDE="$(erl -noshell -pa "$EBIN" \
    -eval 'io:format("~ts", [filename:absname(erl_driver_compat:include_dir())]), halt().')"
echo "    include dir: $INCLUDE"
# Remove first: never overwrite a .so in place (a VM may have it mapped).
rm -f "$BUILD/kv_drv.so"
"$CC" -shared -fPIC -O2 -g -Wall -Wextra -Werror -I"$INCLUDE" \
    -o "$BUILD/kv_drv.so" examples/kv_drv.c

echo "==> Compiling examples/demo.erl"
erlc +warnings_as_errors -o "$BUILD" examples/demo.erl

echo "==> Running the demo"
echo
# Relative paths (we are in the repository root) read better in the output.
exec erl -noshell -pa "$EBIN" -pa "$BUILD" \
    -run demo main examples/build test/drivers/build
