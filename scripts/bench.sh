#!/usr/bin/env bash
# `make bench`: builds the NIF and the Erlang application, compiles
# bench/bench_drv.c against erl_driver_compat's header, and runs
# bench/edc_bench.erl, which loads bench_drv natively and through
# erl_driver_compat in one VM and prints native vs compat ns/op.
# Numbers only: nothing here fails because something is slow.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

BUILD="$ROOT/bench/build"
EBIN="$ROOT/_build/default/lib/erl_driver_compat/ebin"
CC="${CC:-cc}"

echo "==> Building the NIF (make nif) and the Erlang modules (rebar3 compile)"
make --no-print-directory nif
rebar3 compile

mkdir -p "$BUILD"

echo "==> Compiling bench/bench_drv.c and bench/edc_bench.erl"
INCLUDE="$(erl -noshell -pa "$EBIN" \
    -eval 'io:format("~ts", [filename:absname(erl_driver_compat:include_dir())]), halt().')"
# Remove first: never overwrite a .so in place (a VM may have it mapped).
rm -f "$BUILD/bench_drv.so"
"$CC" -shared -fPIC -O2 -g -Wall -Wextra -Werror -I"$INCLUDE" \
    -o "$BUILD/bench_drv.so" bench/bench_drv.c
erlc +warnings_as_errors -o "$BUILD" bench/edc_bench.erl

echo "==> Running the benchmark"
echo
exec erl -noshell -pa "$EBIN" -pa "$BUILD" -run edc_bench main "$BUILD"
