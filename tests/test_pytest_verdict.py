"""The verdict: counts come from the JUnit report pytest writes, and only from it."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserInputError
from sandbox.local import LocalBackend
from sandbox.pytest_runner import parse_junit, run_pytest
from tests.sandbox_contract import CORRECT, LIMITS, TESTS

REPORT = b"""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1"
skipped="1" tests="5"><testcase classname="t" name="ok1"/><testcase classname="t" name="ok2"/>
<testcase classname="t" name="bad"><failure message="assert 1 == 2">...</failure></testcase>
<testcase classname="t" name="skip"><skipped message="later"/></testcase>
<testcase classname="t" name="teardown"><failure message="f"/><error message="teardown"/></testcase>
</testsuite></testsuites>"""


def test_counts_each_case_once_error_before_failure_before_skip() -> None:
    report = parse_junit(REPORT)
    assert report.report_found
    assert (report.passed, report.failed, report.errors, report.skipped) == (2, 1, 1, 1)
    assert not report.all_passed


@pytest.mark.parametrize(
    "data",
    [None, b"", b"not xml at all", b"<html><testcase/></html>", b"<testsuites><testsuite>"],
    ids=["none", "empty", "garbage", "not-junit", "truncated"],
)
def test_a_missing_or_malformed_report_is_a_failure(data: bytes | None) -> None:
    report = parse_junit(data)
    assert not report.report_found and not report.all_passed


def test_a_report_without_tests_does_not_pass() -> None:
    report = parse_junit(b"<testsuites><testsuite tests='0'/></testsuites>")
    assert report.report_found and report.total == 0 and not report.all_passed


def test_task_conftest_and_nested_tests_are_honoured() -> None:
    files = {
        "solution.py": CORRECT,
        "conftest.py": "import pytest\n\n@pytest.fixture\ndef pair():\n    return (20, 22)\n",
    }
    tests = {
        **TESTS,
        "more/test_fixture.py": "from solution import add\n\ndef test_pair(pair):\n    assert add(*pair) == 42\n",
    }
    result, report = run_pytest(LocalBackend(), files, tests, LIMITS)
    assert (report.passed, report.failed, report.errors) == (5, 0, 0), result.stdout


def test_a_task_pytest_ini_is_read() -> None:
    files = {"solution.py": CORRECT, "pytest.ini": "[pytest]\naddopts = -k small\n"}
    _, report = run_pytest(LocalBackend(), files, TESTS, LIMITS)
    assert (report.passed, report.total) == (1, 1)


def test_a_file_that_is_both_task_file_and_test_is_refused() -> None:
    with pytest.raises(UserInputError, match="both a task file and a test file"):
        run_pytest(LocalBackend(), {"tests/test_add.py": "x"}, TESTS, LIMITS)


def test_in_process_code_cannot_forge_the_report() -> None:
    """Once a documented limit (an xfail): the report is now the trusted runner's, out of reach."""
    forged = '<testsuites><testsuite><testcase classname="x" name="y"/></testsuite></testsuites>'
    attack = f"import os\nopen('../report/junit.xml', 'w').write({forged!r})\nos._exit(0)\n"
    _, report = run_pytest(LocalBackend(), {"solution.py": attack}, TESTS, LIMITS)
    assert report.verdict_mode == "isolated"
    assert not report.all_passed


def test_the_in_process_mode_stays_forgeable_and_says_so() -> None:
    """The weaker mode a task may choose: pytest imports the candidate, which can write the report."""
    forged = '<testsuites><testsuite><testcase classname="x" name="y"/></testsuite></testsuites>'
    attack = f"import os\nopen('../report/junit.xml', 'w').write({forged!r})\nos._exit(0)\n"
    _, report = run_pytest(LocalBackend(), {"solution.py": attack}, TESTS, LIMITS, mode="in_process")
    assert report.verdict_mode == "in_process"
    assert report.all_passed  # forged: why a task opts into this mode only when it must
