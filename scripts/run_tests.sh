#!/usr/bin/env bash
# Runs every test suite and check of the project, in order, and keeps going
# after a failure. Called by `make test` (after scripts/install_deps.sh).
#
# Each step's output goes to _build/test-logs/NN-step.log; the tail of a
# failing step's log is printed. Test counts come from machine-readable
# reports, never from the coloured console output: JUnit XML of
# cargo-nextest (scripts/nextest.toml), EUnit (eunit_surefire) and Common
# Test (cth_surefire) as rebar.config asks for them, and the JSON of
# test/elixir/counts_formatter.exs for ExUnit; scripts/report_counts.py
# reads them. Every other step counts as one test (passed when it exits 0).
# A step that exits non-zero fails even when its report shows no failure,
# and a step whose report is missing counts as one failure.
#
# The last line of the output is always `N passed, M failed` (with
# `, K skipped` when tests were skipped); the exit status is non-zero when
# anything failed.
#
# Environment: STEP_TIMEOUT (seconds per step, default 1800), TAIL_LINES
# (lines of a failing log to print, default 60), STEPS (an extended regular
# expression: run only the steps whose name matches, e.g. STEPS='eunit|ct').
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Nothing here needs Hex; make sure Mix never tries to reach it.
export HEX_OFFLINE=1

LOG_DIR=_build/test-logs
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
TAIL_LINES=${TAIL_LINES:-60}
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# The reports (paths fixed by scripts/nextest.toml and rebar.config).
NEXTEST_REPORT=${CARGO_TARGET_DIR:-target}/nextest/ci/junit.xml
EUNIT_REPORTS=_build/test/reports/eunit
CT_REPORT=_build/test/reports/ct.xml
export EDC_EXUNIT_REPORT=$PWD/_build/test/reports/exunit.json

total_passed=0
total_failed=0
total_skipped=0
step_no=0
rows=()

# Set by the parsers: counts of the step that just ran.
passed=0
failed=0
skipped=0
note=""

# --- parsers: $1 = log file, $2 = exit status --------------------------------

# A step without counts: one test, passed when it exited 0.
count_one() {
    if [ "$2" -eq 0 ]; then passed=1; failed=0; else passed=0; failed=1; fi
}

# counts_from ARGS...: the counts scripts/report_counts.py reads from a
# report; a missing or unreadable report is one failure.
counts_from() {
    local out
    if out=$(python3 scripts/report_counts.py "$@" 2>&1); then
        read -r passed failed skipped note <<<"$out"
    else
        passed=0 failed=1 skipped=0
        note="no report: ${out//$'\n'/ }"
    fi
}

parse_nextest() { counts_from junit "$NEXTEST_REPORT"; }
parse_eunit() { counts_from junit --eunit "$EUNIT_REPORTS"/*.xml; }
parse_ct() { counts_from junit --ct "$CT_REPORT"; }
parse_exunit() { counts_from exunit "$EDC_EXUNIT_REPORT"; }

# libtest's "test result: ok. N passed; M failed; K ignored" lines (cargo
# miri has no report format of its own), summed.
parse_libtest() {
    local line found=0
    while IFS= read -r line; do
        if [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]]; then
            passed=$((passed + BASH_REMATCH[1]))
            failed=$((failed + BASH_REMATCH[2]))
            skipped=$((skipped + BASH_REMATCH[3]))
            found=1
        fi
    done < <(grep -E '^test result: ' "$1")
    ((found)) || count_one "$1" "$2"
}

# test/header/check.sh ends with its own "N passed, M failed" line.
parse_passed_failed() {
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=${BASH_REMATCH[1]}
        failed=${BASH_REMATCH[2]}
    else
        count_one "$1" "$2"
    fi
}

# --- running a step ------------------------------------------------------------

# skip_step NAME WHY: a step that cannot run on this machine, shown and
# counted as one skipped test.
skip_step() {
    step_no=$((step_no + 1))
    echo "==> [$step_no] $1"
    echo "    SKIP: $2"
    echo
    total_skipped=$((total_skipped + 1))
    rows+=("$(printf '%-4s  %-40s %6d %6d %7d %5ds  %s' SKIP "$1" 0 0 1 0 "$2")")
}

# step NAME PARSER COMMAND...
step() {
    local name=$1 parser=$2
    shift 2
    if [ -n "${STEPS:-}" ] && ! [[ $name =~ $STEPS ]]; then
        return 0
    fi
    step_no=$((step_no + 1))
    local slug
    slug=$(printf '%02d-%s' "$step_no" "$(echo "$name" | tr -cs 'A-Za-z0-9' '-' | sed 's/-*$//')")
    local log="$LOG_DIR/$slug.log"

    echo "==> [$step_no] $name"
    echo "    \$ $*"
    local start=$SECONDS rc
    {
        echo "\$ $*"
        timeout --kill-after=30 "$STEP_TIMEOUT" "$@" </dev/null
    } >"$log" 2>&1
    rc=$?
    local secs=$((SECONDS - start))
    [ "$rc" -eq 124 ] && echo "(timed out after ${STEP_TIMEOUT}s)" >>"$log"

    passed=0 failed=0 skipped=0 note=""
    "$parser" "$log" "$rc"
    # A step that failed without reporting a failed test still failed.
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
        note="${note:+$note; }exit status $rc"
    fi

    local status=PASS
    [ "$failed" -gt 0 ] && status=FAIL
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    total_skipped=$((total_skipped + skipped))
    rows+=("$(printf '%-4s  %-40s %6d %6d %7d %5ds  %s' "$status" "$name" "$passed" "$failed" "$skipped" "$secs" "$note")")

    echo "    $status: $passed passed, $failed failed, $skipped skipped (${secs}s${note:+, $note}) — log: $log"
    if [ "$status" = FAIL ]; then
        echo "    ---- last $TAIL_LINES lines of $log ----"
        tail -n "$TAIL_LINES" "$log" | sed 's/^/    | /'
        echo "    ----"
    fi
    echo
}

# --- the steps, in order -------------------------------------------------------

# Reports of an earlier run must not be counted again.
rm -rf "$NEXTEST_REPORT" "$EUNIT_REPORTS" "$CT_REPORT" "$EDC_EXUNIT_REPORT"
mkdir -p "$EUNIT_REPORTS"

step "cargo fmt --check" count_one cargo fmt --check
step "cargo clippy -D warnings" count_one cargo clippy --release --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest (Rust unit tests)" parse_nextest \
        cargo nextest run --release --config-file scripts/nextest.toml --profile ci
else
    # Without cargo-nextest there is no report: the exit status decides.
    step "cargo test (no cargo-nextest: one test)" count_one cargo test --release
fi
# The unsafe core under Miri (fake drivers re-entering the API, driver
# binaries, entry views, timers, the port queue), where a nightly
# toolchain with Miri is installed; the tests that need a C compiler or a
# VM are left out by the filters (so are the binding table's tests: Miri
# does not promise that two pointers to one function compare equal).
if cargo +nightly miri --version >/dev/null 2>&1; then
    step "cargo miri (unsafe core)" parse_libtest \
        cargo +nightly miri test -p erl_driver_compat --lib -- port:: binary:: abi:: timer:: queue::
else
    skip_step "cargo miri (unsafe core)" "no nightly toolchain with Miri here"
fi
step "make nif test-drivers" count_one make --no-print-directory nif test-drivers
step "header check (test/header/check.sh)" parse_passed_failed bash test/header/check.sh
step "rebar3 eunit" parse_eunit rebar3 eunit
step "rebar3 ct" parse_ct rebar3 ct
step "mix test" parse_exunit mix test
step "mix format --check-formatted" count_one mix format --check-formatted
# --force: a compilation that is up to date would show no warnings.
step "mix compile --warnings-as-errors" count_one mix compile --force --warnings-as-errors
# shellcheck disable=SC2016 # expanded by the inner shell
step "erlc +warnings_as_errors src/*.erl" count_one bash -c \
    'out=$(mktemp -d) && trap "rm -rf $out" EXIT && erlc +warnings_as_errors -o "$out" src/*.erl'
step "rebar3 dependency (test/consumer)" count_one bash test/consumer/rebar3_consumer.sh
step "Mix dependency (test/consumer)" count_one bash test/consumer/mix_consumer.sh
step "rebar3 dialyzer" count_one rebar3 dialyzer

# --- summary -------------------------------------------------------------------

echo "==> Summary (logs in $LOG_DIR/)"
printf '%-4s  %-40s %6s %6s %7s %6s  %s\n' "" "step" "passed" "failed" "skipped" "time" "notes"
for row in "${rows[@]}"; do
    echo "$row"
done
printf '%-4s  %-40s %6d %6d %7d\n' "" "total" "$total_passed" "$total_failed" "$total_skipped"
echo
if [ "$total_skipped" -gt 0 ]; then
    echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
else
    echo "$total_passed passed, $total_failed failed"
fi
[ "$total_failed" -eq 0 ]
