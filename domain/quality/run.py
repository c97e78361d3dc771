"""One benchmark pass: every strategy on each problem in turn, one JSONL row per (strategy, problem).

Problem by problem, so a pass stopped early still compares the strategies on the same problems.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from domain.prompts import solve_messages
from domain.quality import gsm8k, humaneval
from domain.quality.harness import Bench, Config, NotCached
from orchestrator.errors import UserInputError
from orchestrator.importers import create_benchmark, folder_name, write_tasks
from orchestrator.taskspec import Task, load_task

Benchmark = Literal["humaneval", "gsm8k"]
#: the issue's sets: HumanEval-164 and GSM8K's first 200
FULL_SIZE: dict[str, int] = {"humaneval": 164, "gsm8k": 200}


def benchmark_tasks(name: str, folder: Path, limit: int) -> list[Task]:
    """The benchmark's first ``limit`` problems, in the benchmark's order, as task folders under ``folder``
    (written on first use; the folder names sort differently from the benchmark's order)."""
    records = list(create_benchmark(name).tasks())[:limit]
    with import_lock(folder):  # passes started side by side import once; the others wait, then read
        missing = [r for r in records if not (folder / folder_name(r.id) / "task.toml").is_file()]
        if missing:
            write_tasks(missing, folder)
    return [load_task(folder / folder_name(r.id), require_tests=False) for r in records]


@contextmanager
def import_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s import lock (waiting for it): a second pass started beside the first found
    its half-written folder and refused to import into it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.import.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def selected(tasks: list[Task], every: int, offset: int) -> Iterator[Task]:
    for index, task in enumerate(tasks):
        if index % every == offset:
            yield task


def subset_text(limit: int, every: int, offset: int) -> str:
    return f"first {limit}" + (f", every {every}th from {offset}" if every > 1 else "")


@dataclass
class Pass:
    """What to run: a benchmark, its strategies (the first is the baseline) and the problems."""

    benchmark: Benchmark
    strategies: list[str]
    limit: int | None = None
    every: int = 1
    offset: int = 0

    def check(self, config: Config) -> None:
        """Bad input named before any model call: unknown strategies, an empty or inverted subset."""
        if not self.strategies:
            raise UserInputError(f"{self.benchmark}: no strategies given")
        parse = humaneval.parse_strategy if self.benchmark == "humaneval" else gsm8k.parse_strategy
        for name in self.strategies:
            parse(name, config)
        if self.every < 1 or not 0 <= self.offset < self.every:
            raise UserInputError(f"--every {self.every} --offset {self.offset}: need every >= 1 and 0 <= offset < every")
        if self.limit is not None and not 1 <= self.limit <= FULL_SIZE[self.benchmark]:
            raise UserInputError(f"--limit {self.limit}: {self.benchmark} has {FULL_SIZE[self.benchmark]} problems")

    @property
    def size(self) -> int:
        return self.limit or FULL_SIZE[self.benchmark]

    def labels(self, config: Config) -> dict[str, str]:
        label = humaneval.label if self.benchmark == "humaneval" else gsm8k.label
        return {name: label(name, config) for name in self.strategies}


def run_pass(
    plan: Pass,
    bench: Bench,
    config: Config,
    work: Path,
    rows_path: Path,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run ``plan``, appending each problem's rows to ``rows_path`` as it finishes; returns the rows."""
    plan.check(config)
    tasks = list(selected(benchmark_tasks(plan.benchmark, work / plan.benchmark, plan.size), plan.every, plan.offset))
    runner: humaneval.HumanEvalRun | gsm8k.GSM8KRun = (
        humaneval.HumanEvalRun(bench, config) if plan.benchmark == "humaneval" else gsm8k.GSM8KRun(bench, config)
    )
    labels = plan.labels(config)
    subset = subset_text(plan.size, plan.every, plan.offset)
    progress(f"{plan.benchmark}: {len(tasks)} problems ({subset}); max_tokens {bench.max_tokens}")
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, Any]] = []
    started = time.perf_counter()
    for number, task in enumerate(tasks, start=1):
        try:
            done = [
                {"strategy": labels[name], "merge": config.merge, **runner.run(name, task)} for name in plan.strategies
            ]
        except NotCached as missing:
            progress(f"[{number}/{len(tasks)}] {task.id}: a {missing} call is not cached; --offline stops here")
            break
        out.extend(done)
        with rows_path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in done)
        marks = " ".join(f"{name}={'pass' if row['passed'] else 'fail'}" for name, row in zip(plan.strategies, done, strict=True))
        progress(
            f"[{number}/{len(tasks)}] {task.id}: {marks} ({time.perf_counter() - started:.0f}s, {bench.new_calls} new calls)"
        )
    return out


def task_texts(benchmark: str, folder: Path) -> dict[str, str]:
    """Each problem's request as the model reads it (the instruction and the starter file with its
    docstring), by task id: what the learned routers read (the whole benchmark). The instruction
    alone is one sentence that differs only in the function's name."""
    return {t.id: solve_messages(t)[-1].content for t in benchmark_tasks(benchmark, folder, FULL_SIZE[benchmark])}
