"""The pure parts of bench/quality.py: what a fix prompt is shown, what the extraction adds back,
and the choice among candidates (the model runs themselves are the benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from sandbox import get_backend
from sandbox.pytest_runner import run_pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_bench"] = module
    spec.loader.exec_module(module)
    return module


STARTER = (
    "from typing import List\n\n\ndef is_palindrome(s: str) -> bool:\n    return s == s[::-1]\n\n\n"
    "def longest(xs: List[str]) -> str:\n    \"\"\"The longest palindrome.\n    >>> longest(['ab', 'aba'])\n"
    '    \'aba\'\n    """\n'
)


def test_merge_starter_adds_back_dropped_imports_and_helpers_but_not_stubs(quality):
    reply = (
        "def longest(xs: List[str]) -> str:\n    return max((x for x in xs if is_palindrome(x)), key=len)\n"
    )
    merged = quality.merge_starter(reply, STARTER)
    namespace: dict[str, object] = {}
    exec(merged, namespace)  # would be a NameError (List, is_palindrome) without the merge
    assert namespace["longest"](["ab", "aba"]) == "aba"  # type: ignore[operator]
    assert merged.count("def longest") == 1  # the starter's stub of the entry is not copied
    whole = STARTER.replace('    """\n', '    """\n    return xs[0]\n')
    assert quality.merge_starter(whole, STARTER) == whole  # nothing missing, nothing added
    assert quality.merge_starter("def longest(:\n", STARTER) == "def longest(:\n"  # unparsable: untouched


def test_fix_feedback_is_the_first_failing_example_without_the_namespace_dump(quality, tmp_path):
    tests = {
        "test_examples.py": (
            "import pytest\nimport solution\n\n"
            "@pytest.mark.parametrize(('call', 'expected'), [('f(1)', '2'), ('f(2)', '3')])\n"
            "def test_docstring_example(call, expected):\n"
            "    namespace = dict(vars(solution))\n"
            "    assert eval(call, namespace) == eval(expected, namespace), f'{call} should be {expected}'\n"
        )
    }
    from orchestrator.records import Limits
    from orchestrator.settings import get_settings

    result, report = run_pytest(
        get_backend("local", get_settings()), {"solution.py": "def f(x):\n    return x\n"}, tests, Limits()
    )
    assert report.failed == 2
    feedback = quality.first_failure(result.stdout + result.stderr)
    lines = feedback.splitlines()
    assert lines[0] == "test_docstring_example[f(1)-2]"
    assert "AssertionError: f(1) should be 2" in lines and "assert 1 == 2" in lines
    assert "f(2)" not in feedback and "__builtins__" not in feedback  # one example, no eval dump


def test_fix_feedback_finds_the_header_of_a_long_test_id(quality):
    output = (
        "F\n=== FAILURES ===\n_ test_docstring_example[f([1.0, 2.0, 3.0, 4.0, 5.0, 2.2, 9.0, 8.0, 7.0])-(2.0, 2.2)] _\n"
        "solution.py:3: in f\n    return x_mean\nE   NameError: name 'x_mean' is not defined\n=== 1 failed ===\n"
    )
    assert quality.first_failure(output).splitlines()[1:] == ["NameError: name 'x_mean' is not defined"]


def test_the_chosen_candidate_is_the_first_visible_pass_else_the_best_partial(quality):
    def candidate(passed: int, cases: int = 2) -> object:
        verdict = {"passed": passed == cases, "cases_passed": passed, "cases": cases}
        return quality.Candidate(code=f"# {passed}", visible=verdict, model="m", reply="")

    tried = [candidate(1), candidate(2), candidate(2)]
    assert quality.choose(tried) is tried[1]
    partial = [candidate(0), candidate(1), candidate(1)]
    assert quality.choose(partial) is partial[1]  # ties go to the earliest
    no_tests = [quality.Candidate(code="x", visible=None, model="m", reply="")]
    assert quality.choose(no_tests) is no_tests[0]
