"""The learned router on real local models: SmolLM2-135M (weak, cheap) vs Qwen2.5-Coder-0.5B (strong, slow).

A script, not a test: ``python bench/router_bench.py [--tasks 40] [--out DIR] [--folds 5]``.

1. imports the first N HumanEval problems as task folders (``orchestrator import humaneval``);
2. runs each through the coding flow with both local models as solvers (one round, greedy), so the
   traces hold both candidates of every task, their verdicts (hidden tests) and their call latency;
3. trains the learned router on those traces and measures it by k-fold over tasks: agreement with
   the judge's first choice on held-out runs, CPT(50%) and APGR (RouteLLM), with the cost in seconds
   of model time (both models are free in dollars).

Re-running with the same ``--out`` reuses the runs already in its traces and only adds missing tasks.
Without PREFECT_API_URL, Prefect starts a temporary local server for this process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

WEAK = "local:smollm2-135m"
STRONG = "local:qwen2.5-coder-0.5b"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40, help="HumanEval problems to use (the first N).")
    parser.add_argument("--out", type=Path, default=Path("bench-out/router"), help="Tasks, traces and router file.")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=512, help="Per model call (bounds the run time).")
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    os.environ["ORCH_MAX_TOKENS"] = str(args.max_tokens)

    from domain.router_learned import evaluate, read_traces, save_router, train
    from domain.workers import parse_worker
    from flows.run_task import run_task_flow
    from orchestrator.settings import get_settings
    from orchestrator.taskspec import discover_tasks, load_task
    from orchestrator.traces import TraceStore

    tasks_dir, traces_dir = args.out / "tasks", args.out / "traces"
    orchestrator = Path(sys.executable).with_name("orchestrator")
    subprocess.run([str(orchestrator), "import", "humaneval", str(tasks_dir), "--limit", str(args.tasks)], check=True)
    store = TraceStore(traces_dir)
    done = {row["task_id"] for row in store.rows("routes")}
    workers = [parse_worker(WEAK), parse_worker(STRONG)]
    folders = discover_tasks(tasks_dir)[: args.tasks]
    started = time.perf_counter()
    for number, folder in enumerate(folders, start=1):
        task = load_task(folder, require_tests=False)
        if task.id in done:
            continue
        summary = run_task_flow(
            task_dir=str(folder), workers=workers, max_rounds=1, sandbox=args.sandbox, traces_dir=str(traces_dir)
        )
        marks = " ".join(f"{c.worker.split(':')[1]}={'pass' if c.passed else 'fail'}" for c in summary.candidates)
        print(f"[{number}/{len(folders)}] {task.id}: {marks} ({summary.duration_s:.1f}s)", flush=True)
    print(f"runs took {time.perf_counter() - started:.0f}s", flush=True)

    settings = get_settings()
    data = read_traces(store)
    router = train(store, neighbours=settings.learned_router_neighbours, margin=settings.learned_router_margin)
    path = save_router(router, args.out / "learned_router.json")
    report = evaluate(
        data, neighbours=settings.learned_router_neighbours, margin=settings.learned_router_margin, folds=args.folds
    )

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    print(f"\nlearned router: {path} (cost basis: {data.cost_basis})")
    for name, stats in router.file.models.items():
        print(f"  {name:32s} pass rate {stats.quality:.3f} over {stats.tasks} tasks, mean cost {stats.cost:.2f}")
    print(f"tasks: {report.tasks}; weak {report.weak} -> strong {report.strong} on {report.pair_tasks} tasks")
    print(f"agreement with the judge's first choice (held-out): {pct(report.agreement)} of {report.runs} runs")
    print(f"at margin {report.margin}: {pct(report.strong_share)} strong calls, PGR {pct(report.pgr)}")
    print(f"CPT(50%): {pct(report.cpt50)}")
    print(f"APGR: {'n/a' if report.apgr is None else f'{report.apgr:.3f}'} (random routing 0.500)")
    if report.note:
        print(f"note: {report.note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
