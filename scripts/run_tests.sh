#!/usr/bin/env bash
# Runs every test suite and check of the project, in order, and keeps going
# after a failure. Called by `make test` (after scripts/install_deps.sh).
#
# Each step's output goes to _build/test-logs/NN-step.log; the tail of a
# failing step's log is printed. Steps that report counts (cargo test, the
# header check, EUnit, Common Test, ExUnit) add their counts; every other
# step counts as one test. The last line of the output is always
# `N passed, M failed`; the exit status is non-zero when anything failed.
#
# Environment: STEP_TIMEOUT (seconds per step, default 1800), TAIL_LINES
# (lines of a failing log to print, default 60).
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

total_passed=0
total_failed=0
step_no=0
rows=()

# Set by the parsers: counts of the step that just ran.
passed=0
failed=0
note=""

# --- parsers: $1 = log file, $2 = exit status --------------------------------

# The log without colour escapes (rebar3 colours its output even in a file).
plain() {
    sed 's/\x1b\[[0-9;]*m//g' "$1"
}

# A step without counts: one test, passed when it exited 0.
count_one() {
    if [ "$2" -eq 0 ]; then passed=1; failed=0; else passed=0; failed=1; fi
}

# cargo test: one "test result: ok. N passed; M failed; ..." line per test
# binary and for the doc-tests; sum them.
parse_cargo_test() {
    local line found=0
    while IFS= read -r line; do
        if [[ $line =~ test\ result:\ [A-Za-z]+\.\ ([0-9]+)\ passed\;\ ([0-9]+)\ failed ]]; then
            passed=$((passed + BASH_REMATCH[1]))
            failed=$((failed + BASH_REMATCH[2]))
            found=1
        fi
    done < <(plain "$1")
    ((found)) || count_one "$1" "$2"
}

# test/header/check.sh: "N passed, M failed" (the last such line).
parse_passed_failed() {
    local line
    line=$(plain "$1" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=${BASH_REMATCH[1]}
        failed=${BASH_REMATCH[2]}
    else
        count_one "$1" "$2"
    fi
}

# rebar3 eunit. Its summary is one of "N tests, M failures" (progress
# formatter), "All N tests passed." / "N tests passed." / "Test passed."
# (verbose) or "Failed: F.  Skipped: S.  Passed: P." (verbose; skipped
# tests were cancelled by a failing setup and count as failed).
parse_eunit() {
    local line
    line=$(plain "$1" | grep -E '[0-9]+ tests?, [0-9]+ failures?|[0-9]+ tests passed\.|^ *Test passed\.|Failed: [0-9]+\. +Skipped: [0-9]+\. +Passed: [0-9]+\.' | tail -n 1)
    if [[ $line =~ ([0-9]+)\ tests?,\ ([0-9]+)\ failures? ]]; then
        local total=${BASH_REMATCH[1]}
        failed=${BASH_REMATCH[2]}
        if [[ $line =~ ([0-9]+)\ cancel ]]; then
            failed=$((failed + BASH_REMATCH[1]))
        fi
        passed=$((total > failed ? total - failed : 0))
    elif [[ $line =~ Failed:\ ([0-9]+)\.\ +Skipped:\ ([0-9]+)\.\ +Passed:\ ([0-9]+) ]]; then
        failed=$((BASH_REMATCH[1] + BASH_REMATCH[2]))
        passed=${BASH_REMATCH[3]}
    elif [[ $line =~ ([0-9]+)\ tests\ passed ]]; then
        passed=${BASH_REMATCH[1]}
    elif [[ $line =~ Test\ passed ]]; then
        passed=1
    else
        count_one "$1" "$2"
    fi
}

# rebar3 ct: a summary line made of "All N tests passed." or "Failed F
# tests.", "Skipped S (U, A) tests." and "Passed P tests.". A test case
# skipped automatically (A: its init_per_suite/group failed) counts as
# failed, as rebar3 counts it; user skips (U) count as neither.
parse_ct() {
    local line
    line=$(plain "$1" | grep -E 'All [0-9]+ tests passed\.|Failed [0-9]+ tests\.|Passed [0-9]+ tests\.' | tail -n 1)
    if [ -z "$line" ]; then
        ct_progress "$1" "$2"
        return
    fi
    [[ $line =~ All\ ([0-9]+)\ tests\ passed ]] && passed=${BASH_REMATCH[1]}
    [[ $line =~ Passed\ ([0-9]+)\ tests ]] && passed=${BASH_REMATCH[1]}
    [[ $line =~ Failed\ ([0-9]+)\ tests ]] && failed=${BASH_REMATCH[1]}
    if [[ $line =~ Skipped\ ([0-9]+)\ \(([0-9]+),\ ([0-9]+)\) ]]; then
        failed=$((failed + BASH_REMATCH[3]))
        note="${BASH_REMATCH[2]} skipped, ${BASH_REMATCH[3]} auto-skipped"
    fi
    return 0
}

# rebar3 ct cut short (the VM crashed, a suite did not compile): no
# summary line. Count the progress output instead: a green dot per passed
# test case, a "%%% SUITE ==> case: FAILED" line per failed one, plus one
# failure for the run itself.
ct_progress() {
    local dots fails
    dots=$(grep -o $'\e\\[0;32m\\.' "$1" | wc -l)
    fails=$(plain "$1" | grep -cE '^%%% .* ==> .*: FAILED')
    if ((dots + fails == 0)); then
        count_one "$1" "$2"
        return
    fi
    passed=$dots
    failed=$((fails + 1))
    note="no summary: counted from progress, +1 for the cut-short run (exit status $2)"
}

# mix test: "[D doctests, ]N tests, M failures[, E excluded][, I invalid]
# [, S skipped]"; invalid tests (setup_all failed) count as failed,
# excluded and skipped ones as neither.
parse_exunit() {
    local line
    line=$(plain "$1" | grep -E '^([0-9]+ doctests?, )?[0-9]+ tests?, [0-9]+ failures?' | tail -n 1)
    if [[ $line =~ ([0-9]+)\ tests?,\ ([0-9]+)\ failures? ]]; then
        local total=${BASH_REMATCH[1]} excluded=0 skipped=0 invalid=0
        failed=${BASH_REMATCH[2]}
        [[ $line =~ ([0-9]+)\ doctests? ]] && total=$((total + BASH_REMATCH[1]))
        [[ $line =~ ([0-9]+)\ excluded ]] && excluded=${BASH_REMATCH[1]}
        [[ $line =~ ([0-9]+)\ skipped ]] && skipped=${BASH_REMATCH[1]}
        [[ $line =~ ([0-9]+)\ invalid ]] && invalid=${BASH_REMATCH[1]}
        failed=$((failed + invalid))
        passed=$((total - failed - excluded - skipped))
        ((passed < 0)) && passed=0
        ((excluded + skipped)) && note="$excluded excluded, $skipped skipped"
    else
        count_one "$1" "$2"
    fi
}

# --- running a step ------------------------------------------------------------

# step NAME PARSER COMMAND...
step() {
    local name=$1 parser=$2
    shift 2
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

    passed=0 failed=0 note=""
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
    rows+=("$(printf '%-4s  %-40s %6d %6d %5ds  %s' "$status" "$name" "$passed" "$failed" "$secs" "$note")")

    echo "    $status: $passed passed, $failed failed (${secs}s${note:+, $note}) — log: $log"
    if [ "$status" = FAIL ]; then
        echo "    ---- last $TAIL_LINES lines of $log ----"
        tail -n "$TAIL_LINES" "$log" | sed 's/^/    | /'
        echo "    ----"
    fi
    echo
}

# --- the steps, in order -------------------------------------------------------

step "cargo fmt --check" count_one cargo fmt --check
step "cargo clippy -D warnings" count_one cargo clippy --release --all-targets -- -D warnings
step "cargo test" parse_cargo_test cargo test --release
step "make nif test-drivers" count_one make --no-print-directory nif test-drivers
step "header check (test/header/check.sh)" parse_passed_failed bash test/header/check.sh
step "rebar3 eunit" parse_eunit rebar3 eunit
step "rebar3 ct" parse_ct rebar3 ct
step "mix test" parse_exunit mix test
step "mix format --check-formatted" count_one mix format --check-formatted
# shellcheck disable=SC2016 # expanded by the inner shell
step "erlc +warnings_as_errors src/*.erl" count_one bash -c \
    'out=$(mktemp -d) && trap "rm -rf $out" EXIT && erlc +warnings_as_errors -o "$out" src/*.erl'

step "rebar3 dialyzer" count_one rebar3 dialyzer

# --- summary -------------------------------------------------------------------

echo "==> Summary (logs in $LOG_DIR/)"
printf '%-4s  %-40s %6s %6s %6s  %s\n' "" "step" "passed" "failed" "time" "notes"
for row in "${rows[@]}"; do
    echo "$row"
done
printf '%-4s  %-40s %6d %6d\n' "" "total" "$total_passed" "$total_failed"
echo
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
