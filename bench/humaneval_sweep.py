"""HumanEval's canonical solutions through the whole sweep: import, replay, sandboxed pytest, traces.

A script, not a test (the suite runs a subset of 10): ``python bench/humaneval_sweep.py
[--limit N] [--concurrency N] [--sandbox local|docker] [--workdir DIR]``. It runs the real commands
``orchestrator import humaneval`` and ``orchestrator sweep --json``, prints the figures, and exits 1
unless every canonical solution passes. Without PREFECT_API_URL the sweep starts Prefect's temporary
server in its process; that start-up is in "sweep command" but not in "sweep flow".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.traces import TraceStore

ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))


def run(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    proc = subprocess.run([ORCHESTRATOR, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"`orchestrator {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=164)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--sandbox", default="local")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the tasks and traces here")
    opts = parser.parse_args()

    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="humaneval-sweep-"))
    tasks, replay, traces = workdir / "humaneval", workdir / "canonical.jsonl", workdir / "traces"
    env = {
        **os.environ,
        "ORCH_TRACES_DIR": str(traces),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    }

    _, import_s = run(
        "import",
        "humaneval",
        str(tasks),
        "--limit",
        str(opts.limit),
        "--force",
        "--canonical-replay",
        str(replay),
        env=env,
    )
    sweep_args = [
        "sweep",
        str(tasks),
        "--replay",
        str(replay),
        "--sandbox",
        opts.sandbox,
        "--concurrency",
        str(opts.concurrency),
        "--name",
        "humaneval-canonical",
        "--json",
    ]
    proc, sweep_s = run(*sweep_args, env=env)
    out = json.loads(proc.stdout)

    store = TraceStore(traces)
    run_ids = {r["run_id"] for r in store.rows("runs", sweep_id=out["sweep_id"])}
    attempts = [a for a in store.read("attempts").to_pylist() if a["run_id"] in run_ids]
    visible_failed = sorted({a["run_id"] for a in attempts if a["suite"] == "visible" and not a["passed"]})
    pytest_s = sum(a["duration_s"] for a in attempts)

    print(f"command:           orchestrator {' '.join(sweep_args)}")
    print(f"import:            {opts.limit} problems in {import_s:.1f}s")
    print(
        f"passed:            {out['passed']}/{out['total']} "
        f"(failed {out['failed']}, errored {out['errored']})"
    )
    print(
        f"sweep command:     {sweep_s:.1f}s wall clock, "
        f"concurrency {opts.concurrency}, sandbox {opts.sandbox}"
    )
    print(f"sweep flow:        {out['duration_s']:.1f}s ({out['total'] / out['duration_s']:.2f} tasks/s)")
    print(
        f"pytest runs:       {len(attempts)} taking {pytest_s:.1f}s in all "
        f"({pytest_s / max(len(attempts), 1):.2f}s each)"
    )
    print(
        f"visible failures:  {len(visible_failed)} run(s) whose docstring examples failed "
        "(the hidden check decides)"
    )
    print(f"work folder:       {workdir}")
    sys.exit(0 if out["passed"] == out["total"] == opts.limit else 1)


if __name__ == "__main__":
    main()
