#!/usr/bin/env bash
# `make bench`: builds the NIF and the Erlang application, compiles
# bench/bench_drv.c and bench/bench_v_drv.c against erl_driver_compat's
# header, and runs bench/edc_bench.erl, which loads both drivers natively
# and through erl_driver_compat in one VM and prints native vs compat
# ns/op. Results also go to _build/bench/results.json.
# Numbers only: nothing here fails because something is slow.
#   BENCH_PORTS=N   ports in the scale rows (default 100000)
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/build_example.sh"
build_example bench/bench_drv.c bench/edc_bench.erl bench/build

rm -f "$BUILD/bench_v_drv.so"
"${CC:-cc}" -shared -fPIC -O2 -g -Wall -Wextra -Werror -I"$ROOT/priv/include" \
    -o "$BUILD/bench_v_drv.so" bench/bench_v_drv.c
mkdir -p "$ROOT/_build/bench"

echo "==> Running the benchmark"
echo
# +Q: room for the native ports of the scale rows (each VM port slot).
exec erl +Q 262144 -noshell -pa "$EBIN" -pa "$BUILD" \
    -run edc_bench main "$BUILD" "$ROOT/_build/bench/results.json" "${BENCH_PORTS:-100000}"
