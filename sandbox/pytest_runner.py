"""Run one test suite against a candidate: ``run_pytest`` (the verdict of record, isolated).

``run_pytest`` is ``sandbox.suites.run_suites`` for one suite: the candidate's module runs in a
process of its own and cannot reach the verdict. ``run_in_process`` is the weaker mode a task can
choose explicitly (``verdict = "in_process"`` in task.toml) for tests that need the candidate's
objects in the test process: one fresh pytest process per suite imports the candidate, and the
verdict comes from the JUnit XML report pytest writes into REPORT_DIR, never from the exit code (a
candidate that exits early leaves no report and fails). The working tree is read-only to the code
under test; ``--confcutdir .`` keeps conftests from outside the tree out, ``-c`` keeps stray ini
files out, ``-p no:cacheprovider`` keeps pytest from writing into the tree. What in-process code can
still do (forge the report, patch pytest, fool ``==``) is written down in docs/sandbox.md.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Literal

from orchestrator.errors import UserInputError
from orchestrator.records import CaseOutcome, ExecResult, Limits, TestCase, TestReport
from sandbox.base import REPORT_DIR_FROM_WORKDIR, SandboxBackend, checked_relpath

#: Where the test files go, relative to WORKDIR.
TESTS_DIR = "tests"
REPORT_NAME = "junit.xml"
_OUTCOME_OF_TAG: dict[str, CaseOutcome] = {"error": "error", "failure": "failed", "skipped": "skipped"}
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
    backend: SandboxBackend,
    files: dict[str, str],
    tests: dict[str, str],
    limits: Limits,
    *,
    entry: str | None = None,
    mode: Literal["isolated", "in_process"] = "isolated",
) -> tuple[ExecResult, TestReport]:
    """Run ``tests`` (placed under tests/) against ``files`` (placed at the top), whose ``entry``
    (default: solution.py, or the only top-level .py file) is the candidate's module."""
    from sandbox.suites import run_suites  # it builds on this module's in-process runner

    return run_suites(backend, files, {"visible": tests}, limits, entry=entry, mode=mode)["visible"]


def run_in_process(
    backend: SandboxBackend, files: dict[str, str], tests: dict[str, str], limits: Limits
) -> tuple[ExecResult, TestReport]:
    """One fresh pytest process that imports the candidate; the verdict from its JUnit report."""
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
    return result, report.model_copy(update={"verdict_mode": "in_process"})


def parse_junit(data: bytes | None) -> TestReport:
    """Every test case's outcome and message; a missing or malformed report counts as no report (a failure).

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
    cases = []
    for case in root.iter("testcase"):
        children = {child.tag: child for child in case}
        tag = next((t for t in ("error", "failure", "skipped") if t in children), None)
        outcome: CaseOutcome = _OUTCOME_OF_TAG.get(tag or "", "passed")
        detail = children.get("error", children.get("failure"))
        message = "" if detail is None else (detail.get("message") or detail.text or "")
        cases.append(TestCase(name=case.get("name", ""), outcome=outcome, message=message))
    return TestReport.of_cases(cases, report_found=True)
