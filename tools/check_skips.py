#!/usr/bin/env python3
"""Fails when a test was skipped that tests/allowed_skips.txt does not list (issue 21, item 4).

Usage: check_skips.py [--allowed tests/allowed_skips.txt] LOG_OR_JUNIT...

Reads what the test runners reported:
  - ctest's console output: the "The following tests did not run:" list (Skipped, Disabled, ...);
  - pytest's verbose output (-v, e.g. PYTEST_ADDOPTS=-v): lines "path::test SKIPPED (reason)";
  - JUnit XML (ctest --output-junit, pytest --junitxml): <testcase> elements holding <skipped>.
Every skipped test must be listed in the allowed file, one per line: the test's name (ctest's name,
or pytest's node id), whitespace, then the reason it may skip (required). '#' starts a comment.
Exits 1 on an unlisted skip, a listed name without a reason, or input holding no test results
at all (a wrong log would otherwise pass); a listed test that ran is only reported.
"""
import argparse
import re
import sys
import xml.etree.ElementTree as ET

CTEST_DID_NOT_RUN = re.compile(r"^\s*\d+\s+-\s+(\S.*?)\s+\(([^)]*)\)\s*$")
PYTEST_SKIPPED = re.compile(r"^(\S+::\S+)\s+SKIPPED\b(.*)$")
RESULTS_SEEN = re.compile(r"tests passed, \d+ tests failed out of \d+|^=+ .*\b(passed|failed|skipped)\b.* in [\d.]+s")


def read_allowed(path):
    allowed, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or not parts[1].strip():
                problems.append(f"{path}:{number}: '{parts[0]}' has no reason; write NAME REASON")
                continue
            allowed[parts[0]] = parts[1].strip()
    return allowed, problems


def skips_in_junit(path):
    skipped = []
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
            name = case.get("name", "?")
            classname = case.get("classname", "")
            # pytest: classname "tests.python.test_x" + name; ctest: name only (classname = name).
            if classname and classname != name and not name.startswith(classname):
                name = classname.replace(".", "/") + ".py::" + name
            skipped.append((name, "junit: skipped"))
    return skipped, True


def skips_in_log(path):
    skipped, in_did_not_run, saw_results = [], False, False
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if RESULTS_SEEN.search(line):
                saw_results = True
            if line.startswith("The following tests did not run:"):
                in_did_not_run = True
                continue
            if in_did_not_run:
                m = CTEST_DID_NOT_RUN.match(line)
                if m:
                    skipped.append((m.group(1), "ctest: " + m.group(2)))
                    continue
                in_did_not_run = False
            m = PYTEST_SKIPPED.match(line)
            if m:
                skipped.append((m.group(1), "pytest: SKIPPED" + m.group(2).split("[")[0].rstrip()))
    return skipped, saw_results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allowed", default="tests/allowed_skips.txt")
    parser.add_argument("inputs", nargs="+", help="console logs of ctest / pytest -v, or JUnit XML files")
    args = parser.parse_args()

    allowed, problems = read_allowed(args.allowed)
    skipped, saw_results = [], False
    for path in args.inputs:
        found, saw = skips_in_junit(path) if path.endswith(".xml") else skips_in_log(path)
        skipped += found
        saw_results |= saw
    if not saw_results:
        problems.append(f"no ctest or pytest results in {', '.join(args.inputs)}; is this the test log?")
    unlisted = [(name, how) for name, how in skipped if name not in allowed]
    for name, how in unlisted:
        problems.append(f"skipped but not in {args.allowed}: {name} ({how})")

    names = {name for name, _ in skipped}
    for name, reason in sorted(allowed.items()):
        state = "skipped" if name in names else "ran (the entry may be stale)"
        print(f"allowed skip: {name}: {state}; reason: {reason}")
    print(f"check_skips: {len(skipped)} skipped, {len(unlisted)} not allowed")
    for problem in problems:
        print("check_skips: FAIL: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
