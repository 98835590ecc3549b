#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Counts individual test cases after `meson test`, from BUILD_DIR/meson-logs/testlog.json:

- cmocka binaries (suite unit): the cases in their summary lines;
- pytest (suites integration, e2e, image): the <testcase> elements of the JUnit XML it wrote;
- anything else (lint): one check per meson test.

A meson test that failed although its own output shows no failed case (a crash, a timeout,
a teardown error, a missing summary) counts as one more failure: failures are never hidden.

Prints a per-suite breakdown to stderr and, last, `N passed, N failed[, N skipped]` to stdout.
Exit status 0 only when nothing failed and at least one case ran."""

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

FAIL_RESULTS = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT"}


def cmocka_counts(text):
    """(passed, failed, skipped) from a cmocka binary's stdout, or None when it shows no case.
    TAP (CMOCKA_MESSAGE_OUTPUT=tap, which test.sh sets): `ok N`, `not ok N`, `# SKIP`.
    Standard output: `[       OK ] name` lines against `[==========] N test(s) run.` (the
    summary with failures goes to stderr, which meson's testlog.json does not keep)."""
    tap = re.findall(r"^\s*(not ok|ok) \d+(.*)$", text, re.M)
    if tap:
        p = sum(1 for st, rest in tap if st == "ok" and "# SKIP" not in rest)
        s = sum(1 for st, rest in tap if st == "ok" and "# SKIP" in rest)
        return p, len(tap) - p - s, s
    ran = sum(int(n) for n in re.findall(r"^\[=+\] (\d+) test\(s\) run\.", text, re.M))
    ok = len(re.findall(r"^\[\s+OK\s+\] ", text, re.M))
    if not ran and not ok:
        return None
    return ok, max(ran - ok, 0), 0


def junit_counts(path):
    """pytest writes a second <testcase> for a test whose teardown failed too: one case each."""
    state = {}  # (classname, name) -> "failed" | "skipped" | "passed"
    for case in ET.parse(path).getroot().iter("testcase"):
        key = (case.get("classname"), case.get("name"))
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            state[key] = "failed"
        elif "skipped" in tags:
            state.setdefault(key, "skipped")
        else:
            state.setdefault(key, "passed")
    values = list(state.values())
    return values.count("passed"), values.count("failed"), values.count("skipped")


def main():
    build = Path(sys.argv[1])
    log = build / "meson-logs" / "testlog.json"
    totals = {}
    if not log.exists():
        print(f"count-tests: {log} is missing: meson test did not run", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    for line in log.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        t = json.loads(line)
        # "project:suite / name" (meson 1.0 has no separate suite field)
        suite = t["name"].split(" / ")[0].split(":")[-1] if " / " in t.get("name", "") else "?"
        result = t.get("result", "FAIL")
        text = (t.get("stdout") or "") + "\n" + (t.get("stderr") or "")
        counts = None
        if suite in ("integration", "e2e", "image"):
            xml = build / "tests" / suite / "pytest.xml"
            if xml.exists():  # test.sh removes it before each run
                try:
                    counts = junit_counts(xml)
                except ET.ParseError:
                    counts = None
        elif suite == "unit":
            counts = cmocka_counts(text)
        if counts is None:
            if result == "SKIP":
                counts = (0, 0, 1)
            elif result in FAIL_RESULTS:
                counts = (0, 1, 0)
            else:
                counts = (1, 0, 0)
        p, f, s = counts
        if result in FAIL_RESULTS and f == 0:
            f = 1  # the runner failed although no case did (crash, teardown, leak report)
        acc = totals.setdefault(suite, [0, 0, 0])
        acc[0] += p
        acc[1] += f
        acc[2] += s
    passed = sum(v[0] for v in totals.values())
    failed = sum(v[1] for v in totals.values())
    skipped = sum(v[2] for v in totals.values())
    for suite, (p, f, s) in sorted(totals.items()):
        print(f"  {suite}: {p} passed, {f} failed, {s} skipped", file=sys.stderr)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
