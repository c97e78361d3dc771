"""HumanEval strategies: one call, sample-and-filter, generate-test-fix, the verified cascade.

Hidden tests decide pass@1 and only ever meet the one candidate a strategy returns (``run``); the
candidates are made and chosen on the visible tests alone, and nothing of ``hidden_tests/`` reaches
a prompt or fix feedback.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.code_extract import extract_code
from domain.prompts import solve_messages
from domain.quality.harness import Bench, Config, Spend, assertion_lines
from orchestrator.errors import UserInputError
from orchestrator.records import Message
from orchestrator.taskspec import Task

#: stop a code reply at its closing fence: the prose after it costs tokens and is never used
CODE_STOP = ["\n```\n"]
#: EvalPlus's instruct prompt, which Qwen2.5-Coder's reported HumanEval figures use (no system message:
#: the chat template then adds the model's own default one)
CARD_INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
#: ``filter3``, ``fix4``, ``card-filter``: a strategy and, optionally, its candidate or round budget
_NAME = re.compile(r"^(one|weak-one|card-one|cascade|filter|card-filter|fix)(\d*)$")
STRATEGIES = ("one", "filter<N>", "fix<N>", "cascade", "weak-one", "card-one", "card-filter<N>")


def merge_starter(code: str, starter: str) -> str:
    """Add back what the reply dropped from the starter: its imports and helper definitions.

    A reply that rewrites only the entry function loses ``from typing import List`` (a NameError at
    definition time) and helpers the prompt defines (``is_palindrome``, ``poly``): the benchmark
    gave them, so the file keeps them. Nothing is added to code that does not parse.
    """
    try:
        tree, start = ast.parse(code), ast.parse(starter)
    except SyntaxError:
        return code
    defined = {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    }
    imported = {ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)}
    starter_lines = starter.splitlines()
    missing: list[str] = []
    for node in start.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and ast.unparse(node) not in imported:
            missing.append(ast.unparse(node))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name not in defined:
            body = starter_lines[node.lineno - 1 - len(node.decorator_list) : node.end_lineno]
            has_body = any(not isinstance(s, ast.Expr) for s in node.body)  # not just a docstring
            if has_body:
                missing.append("\n".join(body))
    return ("\n\n".join(missing) + "\n\n\n" + code) if missing else code


def card_messages(task: Task) -> list[Message]:
    return [Message(role="user", content=f"{CARD_INSTRUCTION}\n```\n{task.entry_source().strip()}\n```\n")]


def fix_request(feedback: str) -> Message:
    return Message(
        role="user",
        content=(
            "Your function fails this example from the docstring:\n"
            f"```\n{feedback}\n```\n"
            "Correct the function. Reply with the complete corrected file in one ```python block."
        ),
    )


@dataclass
class Candidate:
    code: str
    visible: dict[str, Any] | None  # None: the task has no visible tests, nothing to filter on
    model: str
    reply: str

    @property
    def visible_ok(self) -> bool:
        return self.visible is None or bool(self.visible["passed"])

    @property
    def visible_score(self) -> float:
        if self.visible is None or not self.visible["cases"]:
            return 0.0
        return float(self.visible["cases_passed"]) / float(self.visible["cases"])


def choose(tried: list[Candidate]) -> Candidate:
    """The judge, deterministic: the first candidate that passes the visible tests, else the one that
    passes most of them (ties: the earliest, so the greedy answer when nothing helps); without
    visible tests, the first."""
    passing = [c for c in tried if c.visible_ok]
    return passing[0] if passing else max(tried, key=lambda c: c.visible_score)


def first_function(source: str) -> str | None:
    """The entry function's name: the last top-level def of the HumanEval prompt (helpers come first)."""
    try:
        defs = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        return None
    return defs[-1] if defs else None


def parse_strategy(name: str, config: Config) -> tuple[str, int]:
    """``filter3`` -> ("filter", 3); a bare ``filter``/``fix`` takes the config's samples/rounds."""
    match = _NAME.match(name)
    if match is None:
        raise UserInputError(f"unknown humaneval strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    kind, number = match.groups()
    if number and kind not in ("filter", "card-filter", "fix"):
        raise UserInputError(f"humaneval strategy {kind!r} takes no number ({name!r})")
    default = config.rounds if kind == "fix" else config.samples
    budget = int(number) if number else default
    if budget < 1:
        raise UserInputError(f"humaneval strategy {name!r}: the number must be 1 or more")
    return kind, budget


def label(name: str, config: Config) -> str:
    """The strategy as the table names it (the numbers that change what it does)."""
    kind, budget = parse_strategy(name, config)
    if kind in ("filter", "card-filter"):
        return f"{kind}(n={budget},T={config.temperature})"
    if kind == "fix":
        return f"fix(rounds={budget},T={config.fix_temperature})"
    if kind == "cascade":
        return f"cascade(weak->filter n={config.samples},T={config.temperature})"
    return kind


class HumanEvalRun:
    def __init__(self, bench: Bench, config: Config) -> None:
        self.bench, self.config = bench, config

    def candidate(
        self,
        spend: Spend,
        task: Task,
        model: str,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> Candidate:
        reply = self.bench.call(spend, model, messages, temperature=temperature, seed=seed, stop=CODE_STOP)
        entry_name = first_function(task.entry_source())
        code = extract_code(reply, entry_name)
        if self.config.merge:
            code = merge_starter(code, task.entry_source())
        visible = None
        if task.has_tests:
            visible = self.bench.verdict(spend, self.files(task, code), task.visible_tests())
        return Candidate(code=code, visible=visible, model=model, reply=reply)

    @staticmethod
    def files(task: Task, code: str) -> dict[str, str]:
        return {**task.starter_files(), task.spec.entry: code}

    def messages(self, task: Task, prompt: str) -> list[Message]:
        return card_messages(task) if prompt == "card" else solve_messages(task)

    def sample_filter(
        self, spend: Spend, task: Task, model: str, prompt: str, samples: int
    ) -> list[Candidate]:
        """Sample-and-filter with early stop: the greedy answer, then samples at the temperature
        (seeds 1, 2, ...) until one passes the visible tests, ``samples`` candidates at most. Without
        early stop, the samples after a visible pass could only tie with it on the visible tests
        (the judge keeps the first): they would cost tokens and change no choice."""
        messages = self.messages(task, prompt)
        tried = [self.candidate(spend, task, model, messages)]
        while not tried[-1].visible_ok and len(tried) < samples:
            tried.append(
                self.candidate(
                    spend, task, model, messages, temperature=self.config.temperature, seed=len(tried)
                )
            )
        return tried

    def fix_loop(self, spend: Spend, task: Task, model: str, prompt: str, rounds: int) -> list[Candidate]:
        """Generate, test, fix: up to ``rounds`` candidates in all, each fix shown only the first
        failing visible example and its assertion (never the pytest log)."""
        messages = self.messages(task, prompt)
        tried = [self.candidate(spend, task, model, messages)]
        while not tried[-1].visible_ok and len(tried) < rounds:
            last = tried[-1]
            assert last.visible is not None  # visible_ok is True without visible tests
            conversation = [
                *messages,
                Message(role="assistant", content=f"```python\n{last.code}```"),
                fix_request("\n".join(assertion_lines(last.visible["feedback"].splitlines()))),
            ]
            tried.append(
                self.candidate(
                    spend, task, model, conversation, temperature=self.config.fix_temperature, seed=len(tried)
                )
            )
        return tried

    def cascade(self, spend: Spend, task: Task) -> list[Candidate]:
        """The weak model first; the strong one (``filter``) only when its answer fails the visible tests."""
        c = self.config
        if not task.has_tests:  # no escalation signal: the weak model's answer is unverifiable
            return self.sample_filter(spend, task, c.strong, "flow", c.samples)
        weak = self.sample_filter(spend, task, c.weak, "flow", 1)
        return weak if weak[-1].visible_ok else [*weak, *self.sample_filter(spend, task, c.strong, "flow", c.samples)]

    def strategy(self, name: str) -> Callable[[Spend, Task], list[Candidate]]:
        kind, budget = parse_strategy(name, self.config)
        strong, weak = self.config.strong, self.config.weak
        table: dict[str, Callable[[Spend, Task], list[Candidate]]] = {
            "one": lambda s, t: self.sample_filter(s, t, strong, "flow", 1),
            "filter": lambda s, t: self.sample_filter(s, t, strong, "flow", budget),
            "fix": lambda s, t: self.fix_loop(s, t, strong, "flow", budget),
            "card-one": lambda s, t: self.sample_filter(s, t, strong, "card", 1),
            "card-filter": lambda s, t: self.sample_filter(s, t, strong, "card", budget),
            "weak-one": lambda s, t: self.sample_filter(s, t, weak, "flow", 1),
            "cascade": self.cascade,
        }
        return table[kind]

    def run(self, name: str, task: Task) -> dict[str, Any]:
        spend = Spend()
        tried = self.strategy(name)(spend, task)
        chosen = choose(tried)
        hidden = self.bench.verdict(Spend(), self.files(task, chosen.code), task.hidden_tests())
        return {
            "task_id": task.id,
            "passed": bool(hidden["passed"]),
            "visible_tests": task.has_tests,
            "visible_passed": chosen.visible_ok if chosen.visible is not None else None,
            "candidates": len(tried),
            "chosen": tried.index(chosen),
            "chosen_model": chosen.model,
            **spend.fields(),
        }
