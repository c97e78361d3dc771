"""Run a test suite under pytest in a fresh sandbox session and read the verdict from its report.

The verdict comes from the JUnit XML report pytest writes into REPORT_DIR, never from the exit
code: a candidate that exits early (``os._exit(0)`` at import) leaves no report and fails. The
working tree (task files, candidate file, tests) is read-only to the code under test, so it cannot
rewrite a test or add a ``conftest.py``; ``--confcutdir .`` keeps conftests from outside the tree
out, ``-c`` keeps stray ini files out, and ``-p no:cacheprovider`` keeps pytest from writing into
the tree. What in-process code can still do is written down in docs/sandbox.md.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from orchestrator.errors import UserInputError
from orchestrator.records import ExecResult, Limits, TestReport
from sandbox.base import REPORT_DIR_FROM_WORKDIR, SandboxBackend, checked_relpath

#: Where the test files go, relative to WORKDIR.
TESTS_DIR = "tests"
REPORT_NAME = "junit.xml"
#: A task may ship its own pytest.ini at the top of its files; no other ini file is read.
TASK_INI = "pytest.ini"


def pytest_argv(has_ini: bool) -> list[str]:
    return [
        "python3", "-m", "pytest", TESTS_DIR,
        "-p", "no:cacheprovider",
        "-q", "--tb=short", "--no-header",
        "-c", TASK_INI if has_ini else "/dev/null",
        "--rootdir", ".",
        "--confcutdir", ".",
        f"--junitxml={REPORT_DIR_FROM_WORKDIR}/{REPORT_NAME}",
    ]  # fmt: skip


def run_pytest(
    backend: SandboxBackend, files: dict[str, str], tests: dict[str, str], limits: Limits
) -> tuple[ExecResult, TestReport]:
    """Run ``tests`` (placed under tests/) against ``files`` (placed at the top) in a fresh session."""
    layout = dict(files)
    for rel, text in tests.items():
        path = f"{TESTS_DIR}/{checked_relpath(rel)}"
        if path in layout:
            raise UserInputError(f"{path} is both a task file and a test file; rename one of them")
        layout[path] = text
    with backend.open(limits) as session:
        session.write_files(layout)
        result = session.run(pytest_argv(TASK_INI in files), limits)
        report = parse_junit(session.read_report(REPORT_NAME))
    return result, report


def parse_junit(data: bytes | None) -> TestReport:
    """Count outcomes per test case; a missing or malformed report counts as no report (a failure).

    A case with an <error> counts as an error, else with a <failure> as failed, else with a
    <skipped> as skipped, else as passed. Collection errors are <error> cases too.
    """
    if not data:
        return TestReport(report_found=False)
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return TestReport(report_found=False)
    if root.tag not in ("testsuites", "testsuite"):
        return TestReport(report_found=False)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if "error" in tags:
            counts["errors"] += 1
        elif "failure" in tags:
            counts["failed"] += 1
        elif "skipped" in tags:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return TestReport(report_found=True, **counts)
