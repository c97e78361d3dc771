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


@pytest.mark.parametrize("mode", ["isolated", "in_process"])
def test_both_modes_report_every_test_with_its_failure(mode) -> None:
    # One report carries per-test outcomes, so nothing needs to run a suite twice to see them.
    files = {"solution.py": "def add(a, b):\n    return a - b\n"}
    tests = {
        "test_cases.py": "import pytest\nfrom solution import add\n\n\ndef test_zero():\n    assert add(1, 0) == 1\n\n\n"
        "@pytest.mark.parametrize('b', [1, 2])\ndef test_sum(b):\n    assert add(1, b) == {1: 2, 2: 3}[b]\n\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('no fixture today')\n\n\n"
        "def test_setup(broken):\n    pass\n"
    }
    _, report = run_pytest(LocalBackend(), files, tests, LIMITS, mode=mode)
    outcomes = {case.name: case.outcome for case in report.cases}
    assert outcomes == {"test_zero": "passed", "test_sum[1]": "failed", "test_sum[2]": "failed", "test_setup": "error"}
    assert (report.passed, report.failed, report.errors) == (1, 2, 1)
    failure = next(case for case in report.cases if case.name == "test_sum[1]")
    assert "assert 0 == 2" in failure.message and failure.function == "test_sum"
    assert "no fixture today" in next(case for case in report.cases if case.name == "test_setup").message
