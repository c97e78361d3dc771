"""Per-run latency of each sandbox backend: pytest on a tiny test, N runs each. Prints figures.

usage: python bench/sandbox_bench.py [-n RUNS] [BACKEND ...]   (default: every backend)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.errors import ConfigurationError
from orchestrator.records import Limits
from orchestrator.settings import Settings
from sandbox import BACKENDS, get_backend
from sandbox.local import LocalBackend
from sandbox.pytest_runner import run_pytest

FILES = {"solution.py": "def add(a, b):\n    return a + b\n"}
TESTS = {"test_add.py": "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"}
LIMITS = Limits(timeout_s=60)


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return (
        f"{name:<22} n={len(ms):<3} median {statistics.median(ms):7.0f} ms   "
        f"min {ms[0]:7.0f} ms   max {ms[-1]:7.0f} ms"
    )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    parser.add_argument("backends", nargs="*", default=BACKENDS.names())
    args = parser.parse_args()
    settings = Settings()
    backends = {}
    for name in args.backends:  # set up first: local detection is cached and would hide its cost
        started = time.perf_counter()
        try:
            backends[name] = get_backend(name, settings)
        except ConfigurationError as exc:
            print(f"{name:<22} unavailable: {exc}")
            continue
        print(f"{name:<22} setup {(time.perf_counter() - started) * 1000:.0f} ms")
    print(summary("no sandbox (floor)", bare_pytest(args.runs)))
    for name, backend in backends.items():
        samples, label = [], name
        for _ in range(args.runs):
            started = time.perf_counter()
            result, report = run_pytest(backend, FILES, TESTS, LIMITS)
            samples.append(time.perf_counter() - started)
            if not report.all_passed:
                sys.exit(f"{name}: the tiny test did not pass: {result}")
            label = result.backend
        print(summary(label, samples))


if __name__ == "__main__":
    main()
