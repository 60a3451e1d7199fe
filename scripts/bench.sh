#!/usr/bin/env bash
# `make bench`: builds the NIF and the Erlang application, compiles
# bench/bench_drv.c against erl_driver_compat's header, and runs
# bench/edc_bench.erl, which loads bench_drv natively and through
# erl_driver_compat in one VM and prints native vs compat ns/op.
# Numbers only: nothing here fails because something is slow.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/build_example.sh"
build_example bench/bench_drv.c bench/edc_bench.erl bench/build

echo "==> Running the benchmark"
echo
exec erl -noshell -pa "$EBIN" -pa "$BUILD" -run edc_bench main "$BUILD"
