"""Tests generated for coding tasks without tests: checked in the real sandbox, used, reviewed, promoted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.run_task import run_task_flow
from orchestrator.records import CandidateResult, WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.taskspec import load_task
from orchestrator.traces import TraceStore
from sandbox import get_backend
from sandbox.pytest_runner import parse_junit
from tasks.coding import run_task_suites
from tasks.testgen import (
    TaskWithGeneratedTests,
    check_generated,
    collected_tests,
    complete_prefix,
    remove_tests,
    review_generated_tests,
)

from .conftest import RUNS, write_replay

EXAMPLES = RUNS / "replay" / "examples.jsonl"
GOOD_TESTS = json.loads(EXAMPLES.read_text().splitlines()[-2])["content"]
SOLUTION = json.loads(EXAMPLES.read_text().splitlines()[-1])["content"]
SOLUTION_CODE = SOLUTION.split("```python\n", 1)[1].rsplit("```", 1)[0]
OTHER_SOLUTION = (
    "def run_length_encode(text):\n    out, i = [], 0\n    while i < len(text):\n        j = i\n"
    "        while j < len(text) and text[j] == text[i]:\n            j += 1\n"
    "        out.append(f'{text[i]}{j - i}')\n        i = j\n    return ''.join(out)\n"
)


@pytest.fixture(scope="module")
def task004():
    return load_task(RUNS / "task_004", require_tests=False)


@pytest.fixture(scope="module")
def backend():
    return get_backend("local", get_settings())


def fenced(code: str) -> str:
    return f"```python\n{code}```"


# ---------------------------------------------------------------- pieces


def test_cases_are_read_from_junit_xml():
    report = b"""<testsuites><testsuite>
      <testcase classname="tests.test_g" name="test_a"/>
      <testcase classname="tests.test_g" name="test_b[1-2]"><failure message="assert 1 == 2">x</failure></testcase>
      <testcase classname="tests.test_g" name="test_c"><error message="fixture 'db' not found"/></testcase>
      <testcase classname="tests.test_g" name="test_d"><skipped/></testcase>
    </testsuite></testsuites>"""
    cases = parse_junit(report).cases
    assert parse_junit(report).report_found
    assert [(c.name, c.outcome, c.message) for c in cases] == [
        ("test_a", "passed", ""), ("test_b[1-2]", "failed", "assert 1 == 2"),
        ("test_c", "error", "fixture 'db' not found"), ("test_d", "skipped", ""),
    ]
    assert cases[1].function == "test_b"
    assert not parse_junit(b"not xml").report_found and not parse_junit(None).report_found


def test_tests_are_found_and_removed_with_their_decorators():
    source = (
        "import pytest\n\n\ndef helper():\n    return 1\n\n\n@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_a(x):\n    assert x\n\n\ndef test_b():\n    assert helper()\n\n\nclass TestC:\n"
        "    def test_c(self):\n        assert True\n"
    )
    assert collected_tests(source) == ["test_a", "test_b", "test_c"]
    kept = remove_tests(source, {"test_a", "test_c"})
    assert collected_tests(kept) == ["test_b"] and "parametrize" not in kept and "def helper" in kept


def test_a_reply_cut_off_mid_test_keeps_its_whole_tests():
    cut = GOOD_TESTS.split("```python\n", 1)[1].rsplit("def test_empty_string", 1)[0] + 'def test_empty_string():\n    assert run_length_encode("'
    prefix = complete_prefix(cut)
    assert prefix is not None and collected_tests(prefix) == [
        "test_example_from_the_task", "test_runs_are_case_sensitive", "test_spaces_and_digits_repeat_too",
        "test_single_character",
    ]
    assert complete_prefix("def broken(:\n    pass\n") is None


# ---------------------------------------------------------------- checking a generated suite in the sandbox


def test_a_good_suite_is_accepted_as_it_is(task004, backend):
    checked = check_generated(GOOD_TESTS.split("```python\n", 1)[1].rsplit("```", 1)[0], task004, backend)
    assert checked.problem is None and checked.accepted_code is not None
    assert (checked.tests, checked.stub_passed, checked.stub_failed, checked.stub_errors) == (5, 0, 5, 0)
    assert checked.dropped == []


def test_tests_that_pass_on_the_starter_are_dropped(task004, backend):
    code = (
        "from rle import run_length_encode\n\n\ndef test_vacuous():\n    assert callable(run_length_encode)\n\n\n"
        "def test_real():\n    assert run_length_encode('aab') == 'a2b1'\n"
    )
    checked = check_generated(code, task004, backend)
    assert checked.dropped == ["test_vacuous"] and checked.stub_passed == 1
    assert checked.accepted_code is not None and collected_tests(checked.accepted_code) == ["test_real"]


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("def test_x(:\n", "not valid Python"),
        ("from rle import run_length_encode\n\nVALUE = 3\n", "no test functions"),
        ("from rle import does_not_exist\n\n\ndef test_x():\n    assert does_not_exist()\n", "do not run against the starter"),
        ("def test_fixture(db):\n    assert db\n", "do not run against the starter"),
        (
            # a file that tests its own copy of the function passes on the starter: it checks nothing
            "def run_length_encode(t):\n    return 'a3'\n\n\ndef test_x():\n    assert run_length_encode('aaa') == 'a3'\n",
            "every test passes on the unimplemented starter",
        ),
    ],
)
def test_unusable_suites_are_rejected_with_the_reason(task004, backend, code, problem):
    checked = check_generated(code, task004, backend)
    assert checked.accepted_code is None and problem in (checked.problem or "")


# ---------------------------------------------------------------- the coding flow with generated tests


def replay(path: Path) -> list[WorkerSpec]:
    return [WorkerSpec(provider="replay", model=str(path))]


@pytest.mark.usefixtures("prefect_api")
def test_a_task_without_tests_gets_generated_tests_and_a_correct_solution_passes_them(traces_dir):
    summary = run_task_flow(task_dir=str(RUNS / "task_004"), workers=replay(EXAMPLES), sandbox="local",
                            traces_dir=str(traces_dir))
    assert summary.passed and summary.tests_passed == 5 and summary.tests_failed == 0
    store = TraceStore(traces_dir)
    (gen,) = store.rows("generated_tests", run_id=summary.run_id)
    assert gen["accepted"] and gen["attempt"] == 1 and gen["stub_failed"] == 5
    assert gen["tester"] == f"replay:{EXAMPLES}:tester"
    stored = Path(gen["folder"]) / "test_generated.py"
    assert stored.read_text() == gen["accepted_code"]
    assert Path(gen["folder"]).is_relative_to(traces_dir)
    (attempt,) = store.rows("attempts", run_id=summary.run_id)
    assert attempt["passed"] and attempt["suite"] == "visible" and attempt["tests_passed"] == 5
    purposes = sorted(c["purpose"] for c in store.rows("calls", run_id=summary.run_id))
    assert purposes == ["solve", "write-tests"]
    assert not (RUNS / "task_004" / "tests").exists()  # the task folder is left as it was


@pytest.mark.usefixtures("prefect_api")
def test_a_rejected_suite_goes_back_to_the_tester_once(tmp_path, traces_dir):
    replayed = write_replay(tmp_path / "r.jsonl", "task_004", fenced("def test_x(:\n"), GOOD_TESTS, SOLUTION)
    summary = run_task_flow(task_dir=str(RUNS / "task_004"), workers=replay(replayed), sandbox="local",
                            traces_dir=str(traces_dir))
    assert summary.passed
    rows = sorted(TraceStore(traces_dir).rows("generated_tests", run_id=summary.run_id), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["accepted"]) for r in rows] == [(1, False), (2, True)]
    assert "not valid Python" in rows[0]["problem"] and rows[0]["folder"] is None


def test_no_usable_suite_fails_the_run_with_one_clear_line(cli, tmp_path, traces_dir):
    vacuous = fenced("def test_nothing():\n    assert True\n")
    replayed = write_replay(tmp_path / "r.jsonl", "task_004", vacuous, vacuous, SOLUTION)
    proc = cli("run", str(RUNS / "task_004"), "--replay", str(replayed), "--sandbox", "local")
    assert proc.returncode == 1
    assert "the generated tests were not usable" in proc.stderr and "add tests/ to the task" in proc.stderr
    rows = TraceStore(traces_dir).rows("generated_tests")
    assert len(rows) == 2 and not any(r["accepted"] for r in rows)


# ---------------------------------------------------------------- AlphaCodium review and promotion


def with_outcomes(task, candidate: CandidateResult, backend) -> CandidateResult:
    """The candidate with its per-test outcomes, as the test round leaves them."""
    files = {**task.starter_files(), task.spec.entry: candidate.output}
    _, report = run_task_suites(backend, task, files, {"visible": task.visible_tests()})["visible"]
    return candidate.model_copy(update={"test_cases": report.cases})


def test_a_test_every_candidate_fails_alike_is_suspect(task004, tmp_path, traces_dir, backend):
    folder = tmp_path / "generated"
    folder.mkdir()
    (folder / "test_generated.py").write_text(
        "from rle import run_length_encode\n\n\ndef test_right():\n    assert run_length_encode('aab') == 'a2b1'\n\n\n"
        "def test_wrong_expectation():\n    assert run_length_encode('aaa') == 'a4'\n\n\n"
        "def test_empty():\n    assert run_length_encode('') == ''\n"
    )
    task = TaskWithGeneratedTests(folder=task004.folder, spec=task004.spec, prompt=task004.prompt, generated_dir=folder)
    breaks_on_empty = "def run_length_encode(text):\n    return text[0] + str(len(text))\n"
    candidates = [
        with_outcomes(task, CandidateResult(candidate_id=cid, worker="w", output=code, rounds=1, passed=False), backend)
        for cid, code in (("one", SOLUTION_CODE), ("two", OTHER_SOLUTION), ("three", breaks_on_empty))
    ]
    review = review_generated_tests.fn(task, candidates, "run1", str(traces_dir))
    assert review.suspect == ["test_wrong_expectation"]  # test_empty fails for one candidate only
    assert review.passes_trusted == {"one": True, "two": True, "three": False}
    (row,) = TraceStore(traces_dir).rows("suspect_tests", run_id="run1")
    assert row["test"] == "test_wrong_expectation" and row["candidates"] == 3 and "a4" in row["failure"]

    alone = review_generated_tests.fn(task, candidates[:1], "run2", str(traces_dir))
    assert alone.suspect == [] and alone.passes_trusted == {}  # one candidate cannot agree with anyone
    differing = [candidates[0], with_outcomes(task, candidates[1].model_copy(
        update={"output": "def run_length_encode(t):\n    return 'a5'\n"}), backend)]
    assert review_generated_tests.fn(task, differing, "run3", str(traces_dir)).suspect == []


def test_promote_copies_accepted_tests_without_suspect_ones(cli, task_copy, tmp_path, traces_dir):
    task = task_copy("task_004")
    out = json.loads(cli("run", str(task), "--replay", str(EXAMPLES), "--sandbox", "local", "--json").stdout)
    run_id = out["run_id"]
    # as if the run's review had flagged a test
    from orchestrator.records import SuspectTestRow

    TraceStore(traces_dir).write("suspect_tests", [SuspectTestRow(
        run_id=run_id, task_id="task_004", file="test_generated.py", test="test_single_character", candidates=2,
        failure="assert 'z1' == 'z'",
    )])
    proc = cli("tests", "promote", run_id, str(task))
    assert proc.returncode == 0, proc.stderr
    assert "left out suspect: test_single_character" in proc.stdout
    promoted = (task / "tests" / "test_generated.py").read_text()
    assert collected_tests(promoted) == [
        "test_example_from_the_task", "test_runs_are_case_sensitive", "test_spaces_and_digits_repeat_too",
        "test_empty_string",
    ]
    assert load_task(task).has_tests  # now an ordinary task with tests

    again = cli("tests", "promote", run_id, str(task))
    assert again.returncode == 2 and "pass --force" in again.stderr
    assert cli("tests", "promote", run_id, str(task), "--force", "--keep-suspect").returncode == 0
    assert "test_single_character" in (task / "tests" / "test_generated.py").read_text()

    wrong_task = cli("tests", "promote", run_id, str(RUNS / "task_001"))
    assert wrong_task.returncode == 2 and "not 'task_001'" in wrong_task.stderr
    unknown = cli("tests", "promote", "nosuchrun", str(task))
    assert unknown.returncode == 2 and "no accepted generated tests" in unknown.stderr
