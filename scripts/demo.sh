#!/usr/bin/env bash
# `make demo`: builds the NIF and the Erlang application, compiles the
# example driver examples/kv_drv.c against erl_driver_compat's header, and
# runs examples/demo.erl (kv_drv step by step through erl_driver_compat,
# the same session side by side with a native port, a compatibility
# report, and the check tool's report (erl_driver_compat:check/1) of
# kv_drv and of Debian's prebuilt trace_file_drv). Exits non-zero when any
# of it fails.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/build_example.sh"
build_example examples/kv_drv.c examples/demo.erl examples/build

echo "==> Running the demo"
echo
# Relative paths (we are in the repository root) read better in the output.
exec erl -noshell -pa "$EBIN" -pa "$BUILD" \
    -run demo main examples/build test/drivers/build
