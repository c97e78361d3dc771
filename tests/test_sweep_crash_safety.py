"""Crash safety of a sweep's data: ``kill -9`` at random points, ten times in a row, each followed by a resume;
two sweeps writing to one trace store at once. Compaction runs throughout (a low threshold), so kills also land
in the middle of merges."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from domain.sweep_ledger import finished_count
from orchestrator.importers import write_tasks
from orchestrator.importers.humaneval import HumanEval, canonical_replay_lines
from orchestrator.traces import TABLES, TraceStore

# Enough tasks that a sweep outlasts the kills: with batched trace writes a start gets through ~8 of
# them before a kill lands (30 were done after 4 kills).
TASKS = 100
KILLS = 10
#: Small files merged every few writes, replaced files deleted soon after: compactions happen all the time.
STORE_ENV = {"ORCH_TRACES_COMPACT_FILES": "3", "ORCH_TRACES_DELETE_GRACE_S": "1", "ORCH_TRACES_FSYNC": "0"}


def _humaneval(tmp_path: Path, count: int) -> tuple[Path, Path]:
    he = HumanEval()
    root = tmp_path / "humaneval"
    write_tasks(he.tasks(), root, limit=count)
    replay = tmp_path / "canonical.jsonl"
    replay.write_text(canonical_replay_lines(he.problems()[:count]))
    return root, replay


def _sweep_args(root: Path, replay: Path, sweep_id: str, concurrency: int = 2) -> list[str]:
    return [
        "sweep", str(root), "--replay", str(replay), "--sandbox", "local", "--max-rounds", "1",
        "--concurrency", str(concurrency), "--sweep-id", sweep_id, "--json",
    ]  # fmt: skip


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("orchestrator")
    # Its own process group, so that the kill takes the sweep and its sandboxed pytest processes at once.
    return subprocess.Popen(
        [str(exe), *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ledger(store: TraceStore, sweep_id: str) -> list[dict[str, object]]:
    return store.rows("sweep_tasks", sweep_id=sweep_id)


def _check_store(store: TraceStore, sweep_id: str, context: str) -> dict[str, int]:
    """Every table reads (DuckDB and Arrow); no run, ledger row or attempt is there twice. Returns the
    number of attempts of each run in the ledger."""
    for table in store.table_names():
        if table not in TABLES and not store.files(table):
            continue  # a folder of other files (the sweep's charts), not a trace table
        total = store.sql(f"SELECT count(*) FROM {table}")[1][0][0]
        assert table not in TABLES or total == store.read(table).num_rows, (
            f"{context}: {table} reads differently in DuckDB and Arrow"
        )
    ledger = _ledger(store, sweep_id)
    doubled = [k for k, n in Counter((r["task_id"], r["sample"]) for r in ledger).items() if n > 1]
    assert not doubled, f"{context}: ledger rows doubled: {doubled}"
    runs = store.rows("runs", sweep_id=sweep_id)
    assert not [k for k, n in Counter(r["run_id"] for r in runs).items() if n > 1], (
        f"{context}: a run doubled"
    )
    # A task is run once: a run killed after its `runs` row is adopted on resume, not run again.
    assert not [k for k, n in Counter(r["task_id"] for r in runs).items() if n > 1], (
        f"{context}: a task ran twice"
    )
    assert {r["run_id"] for r in ledger} <= {r["run_id"] for r in runs}, (
        f"{context}: a ledger row without its run"
    )
    _, attempts = store.sql("SELECT count(*), count(DISTINCT attempt_id) FROM attempts")
    assert attempts[0][0] == attempts[0][1], f"{context}: attempts rows doubled"
    per_run = dict(store.sql("SELECT run_id, count(*) FROM attempts GROUP BY run_id")[1])
    return {str(r["run_id"]): per_run.get(r["run_id"], 0) for r in ledger}


def test_kill_9_ten_times_at_random_points_then_resume_loses_and_doubles_nothing(
    prefect_api, tmp_path, traces_dir
):
    seed = int(os.environ.get("ORCH_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    root, replay = _humaneval(tmp_path, TASKS)
    sweep_id = "killed-ten-times"
    args = _sweep_args(root, replay, sweep_id)
    # A flush every 2 runs: batches of more than one run, and enough flushes for kills to land between
    # them (with the default tick a replayed sweep of 30 records everything in its first flush).
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "ORCH_TRACES_DIR": str(traces_dir), **STORE_ENV,
           "ORCH_SWEEP_TICK_RUNS": "2"}  # fmt: skip
    store = TraceStore(traces_dir, compact_after=0)
    kept: dict[str, int] = {}  # run_id -> attempts rows, of every run the ledger held after some kill
    points = []
    for kill in range(KILLS):
        context = f"seed {seed}, kill {kill + 1}"
        done_before = finished_count(store, sweep_id)
        if done_before == TASKS:
            break  # the sweep finished before it could be killed again (a slow CI machine keeps going)
        proc = _start(args, env)
        # A random point: a random time after start (start-up, routing, pytest, trace writes), or just
        # after a run's ledger row appeared (then often in the middle of the next run's writes or a merge).
        after_progress = rng.random() < 0.4
        delay = rng.uniform(0.0, 1.0) if after_progress else rng.uniform(0.2, 3.0)
        deadline = time.monotonic() + 180
        try:
            if after_progress:
                while finished_count(store, sweep_id) == done_before and proc.poll() is None:
                    assert time.monotonic() < deadline, f"{context}: no progress from the sweep"
                    time.sleep(0.1)  # polling the store for progress (not synchronisation by sleep)
            time.sleep(delay)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        points.append(
            (kill + 1, "after a run" if after_progress else "after start", round(delay, 2), proc.returncode)
        )
        now = _check_store(store, sweep_id, context)
        lost = {r: n for r, n in kept.items() if now.get(r) != n}
        assert not lost, f"{context}: finished runs lost rows (run: attempts before): {lost}"
        kept.update(now)
    # The resume that follows the last kill runs what is left to the end.
    resumed = subprocess.run(
        [str(Path(sys.executable).with_name("orchestrator")), *args],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, f"seed {seed}: {resumed.stderr[-2000:]}"
    out = json.loads(resumed.stdout)
    assert (out["total"], out["passed"], out["errored"]) == (TASKS, TASKS, 0), (seed, points, out)
    final = _check_store(store, sweep_id, f"seed {seed}, after the last resume")
    assert {r: final.get(r) for r in kept} == kept
    assert Counter(str(r["task_id"]) for r in _ledger(store, sweep_id)) == Counter(
        f"HumanEval/{i}" for i in range(TASKS)
    )
    assert sum(1 for p in points if p[3] == -signal.SIGKILL) >= KILLS // 2, points  # killed, not finished


def test_two_sweeps_write_to_one_store_at_once(prefect_api, tmp_path, traces_dir):
    root, replay = _humaneval(tmp_path, 4)
    # A tick per run: enough files from both sweeps that compaction runs beside the other writer.
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "ORCH_TRACES_DIR": str(traces_dir), **STORE_ENV,
           "ORCH_SWEEP_TICK_RUNS": "1"}  # fmt: skip
    procs = {sid: _start(_sweep_args(root, replay, sid, concurrency=1), env) for sid in ("left", "right")}
    store = TraceStore(traces_dir, compact_after=0)
    for sid, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{sid}: {stderr[-2000:]}"
        assert (json.loads(stdout)["total"], json.loads(stdout)["passed"]) == (4, 4)
    for sid in procs:
        _check_store(store, sid, sid)
        assert len(_ledger(store, sid)) == 4 and len(store.rows("runs", sweep_id=sid)) == 4
    _, [(runs, distinct)] = store.sql("SELECT count(*), count(DISTINCT run_id) FROM runs")
    assert runs == distinct == 8
    # Both wrote often enough to merge each other's files: compaction ran beside a second writer.
    assert any("-L" in str(f) for f in store.files("attempts"))
