#!/usr/bin/env python3
"""Counts of a test report, for scripts/run_tests.sh.

    report_counts.py junit   [--ct | --eunit] FILE...
    report_counts.py exunit  FILE

Prints one line, `PASSED FAILED SKIPPED NOTE...`, and exits 0; exits 2
(printing the reason on stderr) when no report could be read, so that the
runner can tell "no report" from "zero tests".

junit: JUnit/surefire XML (Common Test's cth_surefire, EUnit's
eunit_surefire, cargo-nextest). Every <testcase> counts once: with a
<failure> or <error> child it failed, with a <skipped> child it was
skipped, otherwise it passed.
  --ct     Common Test: init/end_per_suite/group/testcase entries are not
           tests (not counted when they pass; a failed one counts as one
           failure); a case skipped automatically (`{tc_auto_skip, ...}`:
           its init_per_suite/group failed) counts as failed, as rebar3
           counts it; user skips stay skipped.
  --eunit  EUnit: a skipped test was cancelled (a setup failed or it timed
           out) and counts as failed.

exunit: the JSON written by test/elixir/counts_formatter.exs; invalid tests
(their setup_all failed) count as failed, excluded ones as skipped.
"""

import json
import sys
import xml.etree.ElementTree as ET

CT_CONFIG_FUNCS = {
    "init_per_suite", "end_per_suite", "init_per_group", "end_per_group",
    "init_per_testcase", "end_per_testcase",
}


def fail(reason):
    print(reason, file=sys.stderr)
    sys.exit(2)


def junit(paths, mode):
    passed = failed = skipped = 0
    config_failures = []
    auto_skipped = 0
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            fail(f"{path}: {e}")
        for case in root.iter("testcase"):
            name = case.get("name", "")
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            skip = case.find("skipped")
            if mode == "ct" and name in CT_CONFIG_FUNCS:
                if failure is not None:
                    failed += 1
                    config_failures.append(name)
                continue
            if failure is not None:
                failed += 1
            elif skip is not None:
                text = (skip.text or "") + skip.get("message", "")
                if mode == "eunit" or (mode == "ct" and "tc_auto_skip" in text):
                    failed += 1
                    auto_skipped += 1
                else:
                    skipped += 1
            else:
                passed += 1
    notes = []
    if auto_skipped:
        what = "cancelled" if mode == "eunit" else "auto-skipped"
        notes.append(f"{auto_skipped} {what} (counted as failed)")
    if config_failures:
        notes.append("failed: " + ", ".join(sorted(set(config_failures))))
    return passed, failed, skipped, "; ".join(notes)


def exunit(path):
    try:
        with open(path, encoding="utf-8") as f:
            c = json.load(f)
        failed = c["failed"] + c["invalid"]
        skipped = c["skipped"] + c["excluded"]
        passed = c["passed"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{path}: {e}")
    note = f"{c['invalid']} invalid (counted as failed)" if c["invalid"] else ""
    return passed, failed, skipped, note


def main(argv):
    if len(argv) < 2:
        fail(__doc__)
    kind, args = argv[1], argv[2:]
    if kind == "junit":
        mode = "plain"
        if args and args[0] in ("--ct", "--eunit"):
            mode, args = args[0][2:], args[1:]
        if not args:
            fail("no report files")
        result = junit(args, mode)
    elif kind == "exunit" and len(args) == 1:
        result = exunit(args[0])
    else:
        fail(__doc__)
    print(*result[:3], result[3])


if __name__ == "__main__":
    main(sys.argv)
