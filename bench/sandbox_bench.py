"""Per-suite and per-task cost of the verdict, old way vs new, on each sandbox backend. Prints figures.

usage: python bench/sandbox_bench.py [-n RUNS] [--humaneval N] [--concurrency C] [BACKEND ...]

Two workloads, each run the old way (``in_process``: a fresh sandbox session and a fresh pytest
process per suite, the candidate imported into it) and the new (``isolated``: ``run_suites``, the
tests in the warm trusted runner, the candidate in a process of its own, both suites of a task in
one session of a warm sandbox):

- a one-test suite, ``-n`` times (per-suite latency);
- HumanEval's first N canonical solutions (default 164), visible and hidden suite each (the
  per-task figure). Every hidden suite must pass, and each suite's counts must be the same both
  ways, or the script exits 1 (a few docstring examples of HumanEval are wrong: visible fails).

Medians throughout (the machine is shared and noisy). The first isolated run of each backend
includes starting its warm sandbox; it is reported separately ("warm-up").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from orchestrator.errors import ConfigurationError
from orchestrator.importers.humaneval import HumanEval, problem_to_task
from orchestrator.records import Limits
from orchestrator.settings import Settings
from sandbox import BACKENDS, get_backend
from sandbox.base import SandboxBackend
from sandbox.local import LocalBackend
from sandbox.suites import run_suites

FILES = {"solution.py": "def add(a, b):\n    return a + b\n"}
TESTS = {"test_add.py": "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"}
LIMITS = Limits(timeout_s=60)


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.0f}"


def bare_pytest(runs: int) -> list[float]:
    """The floor: the same pytest run with no sandbox at all."""
    python = LocalBackend().isolation.python
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in {**FILES, **{f"tests/{k}": v for k, v in TESTS.items()}}.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(text)
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp,
                           capture_output=True, check=True)  # fmt: skip
            samples.append(time.perf_counter() - started)
    return samples


def tiny(backend: SandboxBackend, mode: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        ((result, report),) = run_suites(backend, FILES, {"visible": TESTS}, LIMITS, mode=mode).values()  # type: ignore[arg-type]
        samples.append(time.perf_counter() - started)
        if not report.all_passed:
            sys.exit(f"{backend.name} {mode}: the tiny test did not pass: {result}")
    return samples


def humaneval_tasks(limit: int) -> list[tuple[str, dict[str, str], dict[str, dict[str, str]], Limits]]:
    tasks = []
    for problem in HumanEval().problems()[:limit]:
        folder = problem_to_task(problem)
        files = {"solution.py": problem["prompt"] + problem["canonical_solution"]}
        suites = {"hidden": {"test_check.py": folder.files["hidden_tests/test_check.py"]}}
        if "tests/test_examples.py" in folder.files:
            suites = {"visible": {"test_examples.py": folder.files["tests/test_examples.py"]}, **suites}
        tasks.append((folder.id, files, suites, Limits(**folder.toml["limits"])))
    return tasks


Counts = dict[tuple[str, str], tuple[int, int, int, int]]


def humaneval(
    backend: SandboxBackend, mode: str, limit: int, concurrency: int, counts: Counts
) -> tuple[list[float], list[float], float, list[str]]:
    """Per-task and per-suite seconds, the wall time of the whole set, and the ids whose hidden
    suite (the verdict of record) failed; fills ``counts`` with each suite's test counts."""
    tasks = humaneval_tasks(limit)
    per_task: list[float] = []
    per_suite: list[float] = []
    failed: list[str] = []

    def one(task: tuple[str, dict[str, str], dict[str, dict[str, str]], Limits]) -> None:
        task_id, files, suites, limits = task
        started = time.perf_counter()
        outcomes = run_suites(backend, files, suites, limits, mode=mode)  # type: ignore[arg-type]
        per_task.append(time.perf_counter() - started)
        per_suite.extend(result.duration_s for result, _ in outcomes.values())
        for suite, (_, report) in outcomes.items():
            counts[task_id, suite] = (report.passed, report.failed, report.errors, report.skipped)
        if not outcomes["hidden"][1].all_passed:
            failed.append(task_id)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, tasks))
    return per_task, per_suite, time.perf_counter() - started, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    parser.add_argument("--humaneval", type=int, default=164, metavar="N")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--skip-old", action="store_true", help="only the isolated (new) way")
    parser.add_argument("backends", nargs="*", default=BACKENDS.names())
    args = parser.parse_args()
    settings = Settings()
    backends = {}
    for name in args.backends:
        try:
            backends[name] = get_backend(name, settings)
        except ConfigurationError as exc:
            print(f"{name:<8} unavailable: {exc}")
    print(
        f"floor: bare `python -m pytest` on the one-test suite, no sandbox: median {ms(bare_pytest(args.runs))} ms"
    )
    modes = ["isolated"] if args.skip_old else ["in_process", "isolated"]
    rows = []
    exit_code = 0
    counts: dict[tuple[str, str], Counts] = {}
    print(
        f"HumanEval first {args.humaneval}, visible + hidden suite each, concurrency {args.concurrency}; medians in ms;"
    )
    print("passed = the hidden suite (the benchmark's own check, the verdict of record)")
    print(
        f"{'backend':<8} {'verdict':<11} {'warm-up':>8} {'tiny suite':>11} {'HE suite':>9} {'HE task':>8} {'HE wall s':>10} {'passed':>7}",
        flush=True,
    )
    for name, backend in backends.items():
        for mode in modes:
            warmup = ""
            if mode == "isolated":
                started = time.perf_counter()
                tiny(backend, mode, 1)
                warmup = f"{(time.perf_counter() - started) * 1000:.0f}"
            suite = tiny(backend, mode, args.runs)
            counts[name, mode] = {}
            task, he_suite, wall, failed = humaneval(
                backend, mode, args.humaneval, args.concurrency, counts[name, mode]
            )
            passed = args.humaneval - len(failed)
            exit_code |= bool(failed)
            rows.append((name, mode, warmup, ms(suite), ms(he_suite), ms(task), wall, passed))
            print(
                f"{name:<8} {mode:<11} {warmup:>8} {ms(suite):>11} {ms(he_suite):>9} {ms(task):>8} {wall:>10.1f} {passed:>4}/{args.humaneval}",
                flush=True,
            )
            if failed:
                print(f"{name} {mode}: FAILED {failed}", flush=True)
    for name in backends:
        if (name, "in_process") in counts and (name, "isolated") in counts:
            old_counts, new_counts = counts[name, "in_process"], counts[name, "isolated"]
            differ = sorted(k for k in old_counts if old_counts[k] != new_counts.get(k))
            print(
                f"{name}: suites whose test counts differ between the two ways: {len(differ)} of {len(old_counts)} {differ[:10]}"
            )
            exit_code |= bool(differ)
    by = {(r[0], r[1]): r for r in rows}
    for name in backends:
        if (name, "in_process") in by and (name, "isolated") in by:
            old, new = float(by[name, "in_process"][5]), float(by[name, "isolated"][5])
            print(f"{name}: per task, in_process / isolated = {old / new:.1f}x")
    if ("local", "isolated") in by and ("docker", "isolated") in by:
        print(
            f"docker / local per task (isolated): {float(by['docker', 'isolated'][5]) / float(by['local', 'isolated'][5]):.2f}x"
        )
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
