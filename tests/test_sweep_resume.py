"""A sweep killed with SIGKILL halfway, then resumed: every task exactly once, nothing doubled or lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from domain.sweep_ledger import finished
from orchestrator.importers import write_tasks
from orchestrator.importers.humaneval import HumanEval, canonical_replay_lines
from orchestrator.traces import TraceStore
from tests.sweep_helpers import artifacts

TASKS = 8


def ledger_files(traces: Path) -> list[Path]:
    return sorted((traces / "sweep_tasks").glob("*.parquet"), key=lambda p: p.stat().st_mtime)


def test_sigkill_halfway_then_resume_runs_each_task_exactly_once(cli, prefect_api, tmp_path, traces_dir):
    he = HumanEval()
    root = tmp_path / "humaneval"
    write_tasks(he.tasks(), root, limit=TASKS)
    replay = tmp_path / "canonical.jsonl"
    replay.write_text(canonical_replay_lines(he.problems()[:TASKS]))
    sweep_id = "killed-sweep-1"
    args = [
        "sweep",
        str(root),
        "--replay",
        str(replay),
        "--sandbox",
        "local",
        "--concurrency",
        "1",
        "--sweep-id",
        sweep_id,
        "--json",
    ]

    # A tick per run: each run's ledger row is a file of its own, as the orphan made below needs.
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "ORCH_TRACES_DIR": str(traces_dir),
           "ORCH_SWEEP_TICK_RUNS": "1"}  # fmt: skip
    exe = Path(sys.executable).with_name("orchestrator")
    # Its own process group, so the kill takes the sweep and its sandboxed pytest processes at once.
    proc = subprocess.Popen(
        [str(exe), *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while len(ledger_files(traces_dir)) < 3:  # evidence of progress: three runs recorded
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no progress from the sweep"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = TraceStore(traces_dir)
    before = store.rows("sweep_tasks", sweep_id=sweep_id)
    assert 3 <= len(before) < TASKS
    # Put the store in the state a kill between a run's own rows and its ledger row leaves behind:
    # the run is in `runs` but not in the ledger (each ledger row is a file of its own).
    orphan = ledger_files(traces_dir)[-1]
    orphan_run_id = pq.read_table(orphan).to_pylist()[0]["run_id"]
    orphan.unlink()

    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert (out["total"], out["passed"], out["failed"], out["errored"]) == (TASKS, TASKS, 0, 0)

    expected = {f"HumanEval/{i}" for i in range(TASKS)}
    ledger = store.rows("sweep_tasks", sweep_id=sweep_id)  # raw rows, no deduplication
    assert Counter(r["task_id"] for r in ledger) == Counter(expected)
    runs = store.rows("runs", sweep_id=sweep_id)
    assert Counter(r["task_id"] for r in runs) == Counter(expected)
    assert {r["run_id"] for r in runs} == {r["run_id"] for r in ledger}
    assert len(finished(store, sweep_id)) == TASKS  # what the summary counts: the same rows
    adopted = [r for r in ledger if r["adopted"]]
    assert [r["run_id"] for r in adopted] == [orphan_run_id]
    # the runs finished before the kill were not run again
    assert {r["run_id"] for r in before} - {orphan_run_id} <= {r["run_id"] for r in ledger}

    [chart] = (traces_dir / "charts").glob(f"*-{sweep_id}.png")
    drawn = chart.stat().st_mtime_ns
    again = cli("sweep", str(root), "--replay", str(replay), "--sandbox", "local", "--resume", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["sweep_id"] == sweep_id and json.loads(again.stdout)["total"] == TASKS
    assert len(store.rows("runs", sweep_id=sweep_id)) == TASKS
    # Nothing was left to run: the report shows the chart the last run drew, not drawn again.
    assert chart.stat().st_mtime_ns == drawn
    assert chart.name in artifacts(prefect_api, "sweep-humaneval-report")[0]["data"]
