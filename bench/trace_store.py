"""The trace store at a year of nightly history, and the same history in Delta Lake, side by side.

``python bench/trace_store.py [--rows 1000000] [--nights 365] [--writes-per-night 1] [--live-runs 200] [--json | --json-out FILE]``

Generates ``--rows`` ``attempts`` rows (and a run, a ledger row per two attempts, a sweep per night) as
``--nights`` nightly sweeps, each night's rows appended in ``--writes-per-night`` writes, then one last
night of single-run writes (what a live sweep does: one small file per run). Measured, medians of
``--repeat``:

- this store (orchestrator/traces.py: a file per write, merged as they pile up): the writes, a
  pass-rate-by-model query, the reads a sweep does at start and resume (in a fresh process, as a new
  sweep would), and ``orchestrator traces sql "select count(*) from runs"`` as a whole command;
- Delta Lake (the ``deltalake`` package): the same appends, ``optimize.compact()`` + ``vacuum``, the same
  query through ``DeltaTable.to_pyarrow_dataset()`` registered in DuckDB (DuckDB's delta extension is
  downloaded at run time, not available here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import duckdb
import pyarrow as pa

from orchestrator.traces import TABLES, TraceStore, arrow_schema

ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))
MODELS = [f"replay:model-{i}:solver" for i in range(8)]
PASS_RATE_SQL = "SELECT worker, avg(passed::INT) AS pass_rate, count(*) AS n FROM attempts GROUP BY worker"
# What `orchestrator sweep` reads before its first task (flows/sweep.py): the ledger of the sweep it
# resumes, the orphan runs to adopt, what the sweep spent so far; and earlier sweeps of its name (its
# report's comparison). Timed in a fresh process.
_SWEEP_START = """
import json, sys, time
t0 = time.perf_counter()
c0 = time.process_time()
from orchestrator.traces import TraceStore
from domain.sweep_ledger import finished, orphan_runs, spent_by_sweep, sweeps
store = TraceStore(sys.argv[1], compact_after=0)
t1, c1 = time.perf_counter(), time.process_time()
earlier = sweeps(store, "nightly")
done = finished(store, sys.argv[2])
orphans = orphan_runs(store, sys.argv[2])
spent = spent_by_sweep(store, sys.argv[2])
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"imports_s": t1 - t0, "reads_s": t2 - t1, "reads_cpu_s": c2 - c1, "sweeps": len(earlier), "finished": len(done),
                  "orphans": len(orphans)}))
"""


#: CPU seconds (this process's threads and its children) of each median_of call, by its wall median: on a
#: shared machine the wall clock depends on the load, CPU time much less.
CPU: dict[float, float] = {}


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def median_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, cpus, result = [], [], None
    for _ in range(repeat):
        cpu, started = _cpu(), time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    CPU[statistics.median(times)] = statistics.median(cpus)
    return statistics.median(times), result


def night(night_no: int, attempts: int) -> dict[str, pa.Table]:
    """One nightly sweep's rows: ``attempts`` attempts, a run and a ledger row per two of them."""
    runs = max(attempts // 2, 1)
    sweep_id = f"sweep-{night_no:04d}"
    run_ids = [f"{sweep_id}-r{i:06d}" for i in range(runs)]
    workers = [MODELS[(night_no + i) % len(MODELS)] for i in range(runs)]
    passed = [(i * 7 + night_no) % 10 < 6 + (i % len(MODELS)) % 3 for i in range(runs)]
    n = len(run_ids)

    def typed(table: str, columns: dict[str, list[Any]]) -> pa.Table:
        schema = arrow_schema(TABLES[table])
        return pa.table({f.name: columns.get(f.name, pa.nulls(len(next(iter(columns.values()))), f.type))
                         for f in schema}, schema=schema)  # fmt: skip

    attempt_runs = [r for r in run_ids for _ in (0, 1)][:attempts]
    attempt_idx = list(range(len(attempt_runs)))
    tables = {
        "attempts": typed("attempts", {
            "run_id": attempt_runs,
            "attempt_id": [f"{r}-a{i % 2}" for i, r in zip(attempt_idx, attempt_runs, strict=True)],
            "candidate_id": [f"{r}-c" for r in attempt_runs],
            "worker": [workers[i // 2] for i in attempt_idx],
            "round": [1] * len(attempt_runs),
            "code": ["def f(x):\n    return x\n"] * len(attempt_runs),
            "sandbox": ["local"] * len(attempt_runs),
            "suite": ["visible" if i % 2 == 0 else "hidden" for i in attempt_idx],
            "exit_code": [0] * len(attempt_runs),
            "report_found": [True] * len(attempt_runs),
            "passed": [passed[i // 2] for i in attempt_idx],
            "tests_passed": [3] * len(attempt_runs),
            "tests_failed": [0] * len(attempt_runs),
            "tests_errors": [0] * len(attempt_runs),
            "duration_s": [0.3] * len(attempt_runs),
            "timed_out": [False] * len(attempt_runs),
            "killed": [False] * len(attempt_runs),
            "output_excerpt": ["3 passed in 0.01s"] * len(attempt_runs),
        }),
        "runs": typed("runs", {
            "run_id": run_ids, "task_id": [f"HumanEval/{i % 164}" for i in range(n)], "workflow": ["coding"] * n,
            "task_dir": [f"/tasks/{i % 164}" for i in range(n)], "status": ["completed"] * n, "passed": passed,
            "sweep_id": [sweep_id] * n, "workers": [json.dumps([w]) for w in workers],
        }),
        "sweep_tasks": typed("sweep_tasks", {
            "sweep_id": [sweep_id] * n, "task_id": [f"HumanEval/{i % 164}" for i in range(n)],
            "sample": [i // 164 for i in range(n)], "run_id": run_ids, "workflow": ["coding"] * n,
            "task_dir": [f"/tasks/{i % 164}" for i in range(n)], "status": ["completed"] * n, "passed": passed,
        }),
        "sweeps": typed("sweeps", {
            "sweep_id": [sweep_id, sweep_id], "name": ["nightly"] * 2, "event": ["started", "finished"],
            "tasks": ["/tasks"] * 2, "total": [0, n], "passed": [0, sum(passed)],
        }),
    }  # fmt: skip
    return tables


def history(rows: int, nights: int, writes_per_night: int) -> list[tuple[str, pa.Table]]:
    """The writes of a year, in order: each night's tables cut into ``writes_per_night`` appends."""
    per_night = rows // nights
    writes: list[tuple[str, pa.Table]] = []
    for n in range(nights):
        for table, data in night(n, per_night).items():
            step = -(-data.num_rows // writes_per_night)
            writes.extend((table, data.slice(i, step)) for i in range(0, data.num_rows, step))
    return writes


def last_night(single_runs: int, nights: int) -> list[tuple[str, pa.Table]]:
    """A live sweep's writes: per run, its attempts and its runs row, then its ledger row (one file each)."""
    tables = night(nights, single_runs * 2)
    writes = []
    for i in range(single_runs):
        for table in ("attempts", "runs", "sweep_tasks"):
            step = 2 if table == "attempts" else 1
            writes.append((table, tables[table].slice(i * step, step)))
    return writes


def sweep_start(root: Path, resumed: str, source: Path | None = None) -> dict[str, Any]:
    """The sweep's start reads in a fresh process; ``source``: an earlier commit's tree imported instead."""
    env = {**os.environ, **({"PYTHONPATH": str(source.resolve())} if source else {})}
    out = subprocess.run([sys.executable, "-c", _SWEEP_START, str(root), resumed], check=True, env=env,
                         cwd=root, capture_output=True, text=True).stdout  # fmt: skip
    return cast(dict[str, Any], json.loads(out))


def bench_store(root: Path, writes: list[tuple[str, pa.Table]], live: list[tuple[str, pa.Table]], repeat: int,
                resumed: str, baseline: Path | None = None) -> dict[str, Any]:  # fmt: skip
    store = TraceStore(root, fsync=False)  # default compaction threshold (ORCH_TRACES_COMPACT_FILES)
    history_s = 0.0  # the attempts table's appends (the other tables' are written too, untimed)
    for table, data in writes:
        started = time.perf_counter()
        store.append(table, data)
        if table == "attempts":
            history_s += time.perf_counter() - started
    live_s = 0.0
    for table, data in live:
        started = time.perf_counter()
        store.append(table, data)
        if table == "attempts":
            live_s += time.perf_counter() - started
    live_write_ms = live_s / sum(1 for table, _ in live if table == "attempts") * 1000
    query_s, result = median_of(repeat, lambda: TraceStore(root, compact_after=0).sql(PASS_RATE_SQL))
    rows = TraceStore(root).sql("SELECT count(*) FROM attempts")[1][0][0]
    starts, before = [], []
    for _ in range(repeat):  # interleaved with the baseline's, so both see the same load
        starts.append(sweep_start(root, resumed))
        if baseline is not None:
            before.append(sweep_start(root, resumed, baseline))
    env = {**os.environ, "ORCH_TRACES_DIR": str(root)}
    command_s, _ = median_of(
        repeat,
        lambda: subprocess.run(
            [ORCHESTRATOR, "traces", "sql", "select count(*) from runs"],
            env=env,
            check=True,
            capture_output=True,
        ),
    )
    return {
        "history_write_s": history_s,
        "live_write_ms": live_write_ms,
        "files": len(store.files("attempts")),
        "attempts_rows": rows,
        "pass_rate_query_s": query_s,
        "pass_rate_query_cpu_s": CPU[query_s],
        "models": len(result[1]),
        "sweep_start_reads_s": statistics.median(s["reads_s"] for s in starts),
        "sweep_start_reads_cpu_s": statistics.median(s["reads_cpu_s"] for s in starts),
        "sweep_start_imports_s": statistics.median(s["imports_s"] for s in starts),
        "resumed_finished": starts[0]["finished"],
        **({"baseline_sweep_start_reads_s": statistics.median(s["reads_s"] for s in before),
            "baseline_sweep_start_reads_cpu_s": statistics.median(s["reads_cpu_s"] for s in before)}
           if before else {}),  # fmt: skip
        "traces_sql_command_s": command_s,
        "traces_sql_command_cpu_s": CPU[command_s],
    }


def bench_delta(root: Path, writes: list[tuple[str, pa.Table]], live: list[tuple[str, pa.Table]], repeat: int
                ) -> dict[str, Any]:  # fmt: skip
    from deltalake import DeltaTable, write_deltalake

    attempts = [data for table, data in writes if table == "attempts"]
    live_attempts = [data for table, data in live if table == "attempts"]
    path = str(root / "attempts")
    started = time.perf_counter()
    for data in attempts:
        write_deltalake(path, data, mode="append")
    history_s = time.perf_counter() - started
    started = time.perf_counter()
    for data in live_attempts:
        write_deltalake(path, data, mode="append")
    live_write_ms = (time.perf_counter() - started) / len(live_attempts) * 1000

    def query() -> list[tuple[Any, ...]]:
        con = duckdb.connect()
        con.register("attempts", DeltaTable(path).to_pyarrow_dataset())
        return con.execute(PASS_RATE_SQL).fetchall()

    before_s, _ = median_of(repeat, query)
    files_before = len(DeltaTable(path).file_uris())
    started = time.perf_counter()
    table = DeltaTable(path)
    table.optimize.compact()
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    compact_s = time.perf_counter() - started
    after_s, result = median_of(repeat, query)
    return {
        "history_write_s": history_s,
        "live_write_ms": live_write_ms,
        "files_before_compact": files_before,
        "compact_s": compact_s,
        "files": len(DeltaTable(path).file_uris()),
        "attempts_rows": sum(r[2] for r in result),
        "pass_rate_query_uncompacted_s": before_s,
        "pass_rate_query_s": after_s,
        "pass_rate_query_cpu_s": CPU[after_s],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="attempts rows of history")
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--writes-per-night", type=int, default=1)
    parser.add_argument("--live-runs", type=int, default=200, help="single-run writes of the last night")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-delta", action="store_true")
    parser.add_argument("--baseline", type=Path,
                        help="also time the sweep's start reads with this source tree (an earlier commit's `git archive`)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument(
        "--json-out", type=Path, help="also write the figures as JSON here (bench/throughput.py)"
    )
    opts = parser.parse_args()

    writes = history(opts.rows, opts.nights, opts.writes_per_night)
    live = last_night(opts.live_runs, opts.nights)
    work = Path(tempfile.mkdtemp(prefix="trace-store-bench-"))
    try:
        ours = bench_store(work / "store", writes, live, opts.repeat, f"sweep-{opts.nights:04d}", opts.baseline)
        delta = None if opts.no_delta else bench_delta(work / "delta", writes, live, opts.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"attempts_writes": sum(1 for t, _ in writes if t == "attempts"), "store": ours, "delta": delta}
    if opts.json_out:
        opts.json_out.write_text(json.dumps(report))
    if opts.json:
        print(json.dumps(report))
        return
    print_table(report, opts)


def print_table(report: dict[str, Any], opts: argparse.Namespace) -> None:
    ours, delta = report["store"], report["delta"]
    print(f"trace store, {ours['attempts_rows']:,} attempts rows: {opts.nights} nights x {opts.writes_per_night} "
          f"appends a table, then {opts.live_runs} single-run writes; medians of {opts.repeat}")  # fmt: skip
    rows = [
        ("history appends, attempts (s)", ours["history_write_s"], delta and delta["history_write_s"]),
        ("one live single-run write, attempts (ms)", ours["live_write_ms"], delta and delta["live_write_ms"]),
        ("compaction (s)", "inline", delta and delta["compact_s"]),
        ("attempts files after", ours["files"], delta and delta["files"]),
        ("pass rate by model, DuckDB (s)  [target < 1]", ours["pass_rate_query_s"], delta and delta["pass_rate_query_s"]),
        ("  same, Delta before compaction (s)", "", delta and delta["pass_rate_query_uncompacted_s"]),
        ("sweep start/resume reads (s)  [target < 2]", ours["sweep_start_reads_s"], ""),
        *([("  same, baseline source (s)", ours["baseline_sweep_start_reads_s"], "")]
          if "baseline_sweep_start_reads_s" in ours else []),  # fmt: skip
        ("`traces sql 'select count(*) from runs'` (s)  [< 1]", ours["traces_sql_command_s"], ""),
    ]  # fmt: skip
    print(f"| {'figure':<52} | {'this store':>10} | {'Delta Lake':>10} |")
    print(f"|{'-' * 54}|{'-' * 12}:|{'-' * 12}:|")
    for label, a, b in rows:
        print(f"| {label:<52} | {_fmt(a):>10} | {_fmt(b):>10} |")
    cpu = [
        (
            "  CPU s: pass rate by model",
            ours["pass_rate_query_cpu_s"],
            delta and delta["pass_rate_query_cpu_s"],
        ),
        ("  CPU s: sweep start/resume reads", ours["sweep_start_reads_cpu_s"], ""),
        *([("  CPU s: same, baseline source", ours["baseline_sweep_start_reads_cpu_s"], "")]
          if "baseline_sweep_start_reads_cpu_s" in ours else []),  # fmt: skip
        ("  CPU s: `traces sql` whole command", ours["traces_sql_command_cpu_s"], ""),
    ]
    for label, a, b in cpu:
        print(f"| {label:<52} | {_fmt(a):>10} | {_fmt(b):>10} |")
    print(
        f"(load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs)"
    )
    if delta:
        print(f"ratio, pass-rate query Delta / this store: {delta['pass_rate_query_s'] / ours['pass_rate_query_s']:.2f}"
              f"; live write: {delta['live_write_ms'] / ours['live_write_ms']:.2f}")  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


if __name__ == "__main__":
    main()
