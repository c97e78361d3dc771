"""Orchestration strategies against one model call, on the real local models, hidden tests deciding.

A script, not a test. Directly over ``providers/`` and ``sandbox/`` (no Prefect), so each figure is
the strategy's own cost::

    nice -n 19 python bench/quality.py humaneval --strategies one,filter,fix,cascade [--every 4]
    nice -n 19 python bench/quality.py gsm8k --strategies one,sc [--limit 200] [--every 4]

HumanEval strategies (``--prompt flow`` is domain/prompts.py's prompt, ``card`` the EvalPlus instruct
prompt the model card's figure comes from; every code call stops at the closing fence):

- ``one``: one greedy call (the baseline);
- ``filter``: the greedy answer, then samples at ``--temperature`` until one passes the visible
  tests, up to ``--samples`` candidates in all (sample-and-filter with early stop);
- ``fix``: the greedy answer, then up to ``--rounds``-1 fix calls that show only the first failing
  example and its error (never the pytest log), at ``--temperature``;
- ``cascade``: SmolLM2-135M first, Qwen2.5-Coder-0.5B (greedy, then ``filter``) only when the
  visible tests fail;
- ``card-one`` / ``card-filter``: ``one`` / ``filter`` with the card prompt.

GSM8K strategies: ``one`` (greedy, domain/question_prompts.py's prompt) and ``sc`` (``--samples``
answers at ``--temperature``, majority vote by domain/answers.py).

Every model call and every test verdict is cached in ``--cache`` (JSONL, keyed by model, messages
and sampling parameters; verdicts by code and suite): strategies share calls (``filter`` starts from
``one``'s greedy answer), and a rerun only pays for what is new. Each strategy still counts the
tokens and seconds of every call it uses, cached or not, so its figures are what it costs alone.
Wall time = model seconds + sandbox seconds of the calls and test runs the strategy uses.

Hidden tests decide pass@1 and are only ever run on the one candidate a strategy returns; nothing of
them reaches a prompt or feedback. Writes one JSONL row per (strategy, problem) and one summary
row per strategy to ``--out`` and prints the table; ``--chart`` draws pass rate against tokens.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One llama.cpp thread unless told otherwise: on the shared 2-core machine under `nice -n 19`, two
# threads that spin at each barrier while the other is descheduled ran 0.7-1.5 tokens/s against 7-9
# for one thread (measured side by side at load average 9).
os.environ.setdefault("ORCH_LOCAL_THREADS", "1")

from domain.answers import majority_vote, parse_answer, score_answer  # noqa: E402
from domain.code_extract import extract_code  # noqa: E402
from domain.prompts import solve_messages  # noqa: E402
from domain.question_prompts import question_messages  # noqa: E402
from orchestrator.importers import create_benchmark, folder_name, write_tasks  # noqa: E402
from orchestrator.records import Completion, Limits, Message  # noqa: E402
from orchestrator.settings import get_settings  # noqa: E402
from orchestrator.taskspec import Task, load_task  # noqa: E402
from providers.local import LocalProvider  # noqa: E402
from sandbox import get_backend  # noqa: E402
from sandbox.pytest_runner import run_pytest  # noqa: E402

STRONG = "qwen2.5-coder-0.5b"
WEAK = "smollm2-135m"
#: stop a code reply at its closing fence: the prose after it costs tokens and is never used
CODE_STOP = ["\n```\n"]
#: EvalPlus's instruct prompt, which Qwen2.5-Coder's reported HumanEval figures use (no system message:
#: the chat template then adds the model's own default one)
CARD_INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
FEEDBACK_LINES = 6


# ---------------------------------------------------------------- cached model calls and verdicts


class Cache:
    """Model replies and test verdicts, appended as JSONL lines, keyed by everything that decides them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.entries[row["key"]] = row
        path.parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        row = {"key": key, **value}
        self.entries[key] = row
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        return row


@dataclass
class Spend:
    """What a strategy used on one problem: every call and test run counts, cached or not."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    test_s: float = 0.0
    tokens_by_model: dict[str, int] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add_call(self, model: str, reply: dict[str, Any]) -> None:
        self.calls += 1
        self.prompt_tokens += reply["prompt_tokens"]
        self.completion_tokens += reply["completion_tokens"]
        self.model_s += reply["latency_s"]
        used = reply["prompt_tokens"] + reply["completion_tokens"]
        self.tokens_by_model[model] = self.tokens_by_model.get(model, 0) + used


class NotCached(Exception):
    """A model call the cache does not hold, in an offline replay."""


class Bench:
    def __init__(self, cache: Cache, max_tokens: int, timeout_s: float) -> None:
        self.cache = cache
        self.max_tokens = max_tokens
        self.settings = get_settings()
        self.provider = LocalProvider(self.settings)
        self.backend = get_backend("local", self.settings)
        self.limits = Limits(timeout_s=timeout_s)
        self.new_calls = 0
        self.offline = False  # True: only what the cache holds (a replay that stops at the first miss)

    def call(
        self,
        spend: Spend,
        model: str,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        seed: int = 0,
        stop: list[str] | None = None,
    ) -> str:
        params = {"max_tokens": self.max_tokens, "temperature": temperature, "seed": seed, "stop": stop}
        key = Cache.key(kind="call", model=model, messages=[m.model_dump() for m in messages], **params)
        reply = self.cache.get(key)
        if reply is None and self.offline:
            raise NotCached(model)
        if reply is None:
            done: Completion = self.provider.complete(messages, model, **params)
            reply = self.cache.put(
                key,
                {
                    "kind": "call",
                    "model": model,
                    "text": done.text,
                    "prompt_tokens": done.prompt_tokens,
                    "completion_tokens": done.completion_tokens,
                    "latency_s": round(done.latency_s, 3),
                },
            )
            self.new_calls += 1
        spend.add_call(model, reply)
        return str(reply["text"])

    def verdict(self, spend: Spend, files: dict[str, str], tests: dict[str, str]) -> dict[str, Any]:
        key = Cache.key(kind="verdict", files=files, tests=tests)
        row = self.cache.get(key)
        if row is None:
            result, report = run_pytest(self.backend, files, tests, self.limits)
            row = self.cache.put(
                key,
                {
                    "kind": "verdict",
                    "passed": report.all_passed,
                    "cases_passed": report.passed,
                    "cases": report.total,
                    "feedback": first_failure(result.stdout + result.stderr),
                    "duration_s": round(result.duration_s, 3),
                },
            )
        spend.test_s += row["duration_s"]
        return row

    def program_output(self, spend: Spend, code: str) -> str:
        """The stdout of a program run in a fresh sandbox session (cached like a verdict)."""
        key = Cache.key(kind="program", code=code)
        row = self.cache.get(key)
        if row is None:
            with self.backend.open(self.limits) as session:
                session.write_files({"program.py": code})
                result = session.run(["python3", "program.py"], self.limits)
            row = self.cache.put(
                key,
                {
                    "kind": "program",
                    "stdout": result.stdout[-2000:],
                    "exit_code": result.exit_code,
                    "duration_s": round(result.duration_s, 3),
                },
            )
        spend.test_s += row["duration_s"]
        return str(row["stdout"]) if row["exit_code"] == 0 else ""


def assertion_lines(lines: list[str]) -> list[str]:
    """The error and the compared values, without pytest's ``+  where 3.5 = eval(...)`` expansions
    (a dump of the test's namespace that is noise to a model)."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("+")]


def first_failure(output: str) -> str:
    """The first failing test's assertion or error, from pytest's short traceback: what a fix needs.

    ``--tb=short`` prints a ``____ test_name[...] ____`` header per failure (a single ``_`` a side when
    the id is long), source lines, then ``E `` lines with the error; only the ``E`` lines of the first
    failure are kept (and the test id, which names the example). A run with no such section (collection error, timeout) gives its last lines.
    """
    lines = output.splitlines()
    headers = [i for i, line in enumerate(lines) if re.match(r"^_+ .+ _+$", line)]
    if headers:
        start = headers[0]
        end = headers[1] if len(headers) > 1 else len(lines)
        section = lines[start:end]
        errors = assertion_lines([line[1:] for line in section if line.startswith("E ")])
        title = section[0].strip("_ ").strip()
        return "\n".join([title, *errors[:FEEDBACK_LINES]])
    tail = [line for line in lines if line.strip() and not line.startswith("=")]
    return "\n".join(tail[-FEEDBACK_LINES:])


# ---------------------------------------------------------------- HumanEval


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


@dataclass
class Config:
    samples: int = 5
    temperature: float = 0.8
    rounds: int = 3
    fix_temperature: float = 0.5
    merge: bool = True


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
        messages = self.messages(task, prompt)
        tried = [self.candidate(spend, task, model, messages)]
        while not tried[-1].visible_ok and len(tried) < samples:
            tried.append(
                self.candidate(
                    spend, task, model, messages, temperature=self.config.temperature, seed=len(tried)
                )
            )
        return tried

    def fix_loop(self, spend: Spend, task: Task, model: str, prompt: str) -> list[Candidate]:
        messages = self.messages(task, prompt)
        tried = [self.candidate(spend, task, model, messages)]
        while not tried[-1].visible_ok and len(tried) < self.config.rounds:
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

    def strategy(self, name: str) -> Callable[[Spend, Task], list[Candidate]]:
        c = self.config
        table: dict[str, Callable[[Spend, Task], list[Candidate]]] = {
            "one": lambda s, t: self.sample_filter(s, t, STRONG, "flow", 1),
            "filter": lambda s, t: self.sample_filter(s, t, STRONG, "flow", c.samples),
            "fix": lambda s, t: self.fix_loop(s, t, STRONG, "flow"),
            "card-one": lambda s, t: self.sample_filter(s, t, STRONG, "card", 1),
            "card-filter": lambda s, t: self.sample_filter(s, t, STRONG, "card", c.samples),
            "weak-one": lambda s, t: self.sample_filter(s, t, WEAK, "flow", 1),
            "cascade": self.cascade,
        }
        if name not in table:
            raise SystemExit(f"unknown humaneval strategy {name!r}; choose from {', '.join(table)}")
        return table[name]

    def cascade(self, spend: Spend, task: Task) -> list[Candidate]:
        strong = functools.partial(self.sample_filter, spend, task, STRONG, "flow", self.config.samples)
        if (
            not task.has_tests
        ):  # no visible tests, no escalation signal: the weak model's answer is unverifiable
            return strong()
        weak = self.sample_filter(spend, task, WEAK, "flow", 1)
        return weak if weak[-1].visible_ok else [*weak, *strong()]

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
            **spend_fields(spend),
        }


def choose(tried: list[Candidate]) -> Candidate:
    """The first candidate that passes the visible tests, else the one that passes most of them
    (ties: the earliest, so the greedy answer when nothing helps); without visible tests, the first."""
    passing = [c for c in tried if c.visible_ok]
    return passing[0] if passing else max(tried, key=lambda c: c.visible_score)


def first_function(source: str) -> str | None:
    """The entry function's name: the last top-level def of the HumanEval prompt (helpers come first)."""
    try:
        defs = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        return None
    return defs[-1] if defs else None


def spend_fields(spend: Spend) -> dict[str, Any]:
    fields = asdict(spend)
    fields["tokens"] = spend.tokens
    fields["model_s"] = round(spend.model_s, 2)
    fields["test_s"] = round(spend.test_s, 2)
    return fields


# ---------------------------------------------------------------- GSM8K


PAL_SYSTEM = (
    "You solve maths word problems by writing Python. Answer with exactly one ```python block: a short "
    "program that computes the answer step by step and prints only the final number."
)


class GSM8KRun:
    """``one``/``sc``: reasoning in prose; ``pal``/``pal-sc``: a program run in the sandbox, its output the answer."""

    STRATEGIES = ("one", "sc", "pal", "pal-sc")

    def __init__(self, bench: Bench, config: Config) -> None:
        self.bench, self.config = bench, config

    def answer(self, spend: Spend, task: Task, program: bool, temperature: float, seed: int) -> str | None:
        if not program:
            return parse_answer(
                self.bench.call(spend, STRONG, question_messages(task), temperature=temperature, seed=seed)
            ).answer
        messages = [
            Message(role="system", content=PAL_SYSTEM),
            Message(role="user", content=task.prompt.strip()),
        ]
        reply = self.bench.call(spend, STRONG, messages, temperature=temperature, seed=seed, stop=CODE_STOP)
        output = self.bench.program_output(spend, extract_code(reply))
        numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", output)
        return numbers[-1].replace(",", "") if numbers else None

    def run(self, name: str, task: Task) -> dict[str, Any]:
        if name not in self.STRATEGIES:
            raise SystemExit(f"unknown gsm8k strategy {name!r}; choose from {', '.join(self.STRATEGIES)}")
        spend = Spend()
        program = name.startswith("pal")
        if name in ("one", "pal"):
            answers = [self.answer(spend, task, program, 0.0, 0)]
        else:
            answers = [
                self.answer(spend, task, program, self.config.temperature, seed)
                for seed in range(1, self.config.samples + 1)
            ]
        vote = majority_vote(answers, task.spec)
        return {
            "task_id": task.id,
            "passed": bool(score_answer(vote.answer, task.spec)),
            "answer": vote.answer,
            "votes": vote.count,
            "candidates": len(answers),
            **spend_fields(spend),
        }


# ---------------------------------------------------------------- driver


def benchmark_tasks(name: str, folder: Path, limit: int) -> list[Task]:
    """The benchmark's first ``limit`` problems, in the benchmark's order, as task folders under ``folder``
    (written on first use; the folder names sort differently from the benchmark's order)."""
    records = list(create_benchmark(name).tasks())[:limit]
    missing = [r for r in records if not (folder / folder_name(r.id) / "task.toml").is_file()]
    if missing:
        write_tasks(missing, folder)
    return [load_task(folder / folder_name(r.id), require_tests=False) for r in records]


def selected(tasks: list[Task], every: int, offset: int) -> Iterator[Task]:
    for index, task in enumerate(tasks):
        if index % every == offset:
            yield task


def label(benchmark: str, name: str, config: Config) -> str:
    if name in ("filter", "card-filter", "sc", "pal-sc"):
        return f"{name}(n={config.samples},T={config.temperature})"
    if name == "fix":
        return f"fix(rounds={config.rounds},T={config.fix_temperature})"
    if name == "cascade":
        return f"cascade(weak->filter n={config.samples},T={config.temperature})"
    return name


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {
        "problems": n,
        "passed": sum(r["passed"] for r in rows),
        "pass_at_1": round(sum(r["passed"] for r in rows) / n, 4) if n else 0.0,
        "tokens": sum(r["tokens"] for r in rows),
        "calls": sum(r["calls"] for r in rows),
        "model_s": round(sum(r["model_s"] for r in rows), 1),
        "test_s": round(sum(r["test_s"] for r in rows), 1),
        "cost_usd": 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=["humaneval", "gsm8k"])
    parser.add_argument(
        "--strategies", default="one", help="Comma-separated, first is the baseline for ratios."
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="First N problems (humaneval 164, gsm8k 200)."
    )
    parser.add_argument("--every", type=int, default=1, help="Every k-th problem of those (a subset).")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=0.8, help="Sampling temperature (filter, sc).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fix-temperature", type=float, default=0.5)
    parser.add_argument(
        "--no-merge", action="store_true", help="Keep replies as extracted (no starter merge)."
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="Per call (default 512).")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "bench-out" / "quality", help="Task folders, cache."
    )
    parser.add_argument("--cache", type=Path, default=None, help="Default: WORK/cache.jsonl.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where the JSONL go.")
    parser.add_argument("--tag", default="", help="Suffix of the results file name.")
    parser.add_argument(
        "--offline", action="store_true", help="Replay the cache only; stop at the first miss."
    )
    args = parser.parse_args()

    limit = args.limit or (164 if args.benchmark == "humaneval" else 200)
    max_tokens = args.max_tokens or 512
    config = Config(
        samples=args.samples,
        temperature=args.temperature,
        rounds=args.rounds,
        fix_temperature=args.fix_temperature,
        merge=not args.no_merge,
    )
    bench = Bench(Cache(args.cache or args.work / "cache.jsonl"), max_tokens=max_tokens, timeout_s=20.0)
    bench.offline = args.offline
    tasks = list(
        selected(benchmark_tasks(args.benchmark, args.work / args.benchmark, limit), args.every, args.offset)
    )
    runner: HumanEvalRun | GSM8KRun = (
        HumanEvalRun(bench, config) if args.benchmark == "humaneval" else GSM8KRun(bench, config)
    )
    subset = f"first {limit}" + (f", every {args.every}th from {args.offset}" if args.every > 1 else "")
    print(f"{args.benchmark}: {len(tasks)} problems ({subset}); max_tokens {max_tokens}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.benchmark}-{len(tasks)}" + (f"-{args.tag}" if args.tag else "")
    rows_path, summary_path = args.out / f"{stem}.rows.jsonl", args.out / f"{stem}.summary.jsonl"
    summaries: list[dict[str, Any]] = []
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    labels = {name: label(args.benchmark, name, config) for name in names}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    started = time.perf_counter()
    # Problem by problem, every strategy on each: a run stopped early still compares them on the same problems.
    for number, task in enumerate(tasks, start=1):
        try:
            done = {
                name: {"strategy": labels[name], "merge": config.merge, **runner.run(name, task)}
                for name in names
            }
        except NotCached as missing:
            print(f"[{number}/{len(tasks)}] {task.id}: a {missing} call is not cached; --offline stops here")
            break
        for name, row in done.items():
            rows[name].append(row)
        with rows_path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in done.values())
        marks = " ".join(f"{name}={'pass' if rows[name][-1]['passed'] else 'fail'}" for name in names)
        print(
            f"[{number}/{len(tasks)}] {task.id}: {marks} ({time.perf_counter() - started:.0f}s, "
            f"{bench.new_calls} new calls)",
            flush=True,
        )
    for name in names:
        summary = {
            "benchmark": args.benchmark,
            "subset": subset,
            "strategy": labels[name],
            "merge": config.merge,
            "max_tokens": max_tokens,
            **summarise(rows[name]),
        }
        base = summaries[0] if summaries else summary
        summary["tokens_ratio"] = round(summary["tokens"] / base["tokens"], 2) if base["tokens"] else None
        summary["points_over_baseline"] = round(100 * (summary["pass_at_1"] - base["pass_at_1"]), 1)
        summary["wall_s"] = round(summary["model_s"] + summary["test_s"], 1)
        summaries.append(summary)
    with summary_path.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(s) + "\n" for s in summaries)
    print_table(summaries)
    print(f"rows: {rows_path}\nsummary: {summary_path}")
    return 0


def table_main(argv: list[str]) -> int:
    """``table ROWS.jsonl ... [--out SUMMARY.jsonl]``: one table over several runs' rows (e.g. the
    halves of a subset run as two processes), strategies in first-seen order, the first the baseline."""
    parser = argparse.ArgumentParser(prog="quality.py table")
    parser.add_argument("rows", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="Also write the summaries here (JSONL).")
    args = parser.parse_args(argv)
    by_strategy: dict[str, dict[str, dict[str, Any]]] = {}
    for path in args.rows:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                by_strategy.setdefault(row["strategy"], {})[row["task_id"]] = row  # a rerun's row wins
    common = set.intersection(*(set(rows) for rows in by_strategy.values())) if by_strategy else set()
    summaries = []
    for name, rows in by_strategy.items():
        kept = [rows[t] for t in rows if t in common]  # the same problems for every strategy
        summary = {
            "benchmark": kept[0]["task_id"].split("/")[0].lower() if kept else "",
            "subset": f"{len(args.rows)} row files merged",
            "strategy": name,
            "files": [p.name for p in args.rows],
            **summarise(kept),
        }
        base = summaries[0] if summaries else summary
        summary["tokens_ratio"] = round(summary["tokens"] / base["tokens"], 2) if base["tokens"] else None
        summary["points_over_baseline"] = round(100 * (summary["pass_at_1"] - base["pass_at_1"]), 1)
        summary["wall_s"] = round(summary["model_s"] + summary["test_s"], 1)
        summaries.append(summary)
    print_table(summaries)
    if args.out is not None:
        args.out.write_text("".join(json.dumps(s) + "\n" for s in summaries), encoding="utf-8")
    return 0


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = f"{'strategy':44} {'problems':>8} {'pass@1':>8} {'Δ pts':>6} {'tokens':>9} {'× base':>7} {'wall s':>8}"
    print(header)
    print("-" * len(header))
    for s in summaries:
        print(
            f"{s['strategy']:44} {s['problems']:>8} {100 * s['pass_at_1']:>7.1f}% {s['points_over_baseline']:>+6.1f} "
            f"{s['tokens']:>9} {s['tokens_ratio']:>7} {s['wall_s']:>8}"
        )


if __name__ == "__main__":
    raise SystemExit(table_main(sys.argv[2:]) if sys.argv[1:2] == ["table"] else main())
