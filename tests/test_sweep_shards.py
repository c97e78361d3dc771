"""The deployment executor's shards (flows/sweep_shards.py, flows/shard.py): how a sweep sizes them, what a
shard's end leaves to run again, and what a shard writes (batched at ticks; nothing unflushed once it was
given up on), read from real trace files."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Crashed, Running

from domain.sweep_ledger import ledger, ledger_row
from domain.sweep_plan import WorkItem
from flows.shard import marked_as, run_shard_flow
from flows.sweep import SweepParams
from flows.sweep_shards import ShardRun, settle, shard_size, split
from orchestrator.records import RunRow, new_id
from orchestrator.traces import TraceStore
from tests.deploy_helpers import PALINDROME, SLOW_TEST, clone_task


def test_shards_are_about_four_per_run_slot_unless_a_size_is_asked() -> None:
    assert shard_size(None, 164, 2) == 21
    assert shard_size(None, 164, 6) == 7
    assert shard_size(None, 4, 4) == 1  # few tasks: one run-task run each
    assert shard_size(3, 164, 2) == 3


def test_split_keeps_every_item_once_in_order() -> None:
    items = [WorkItem(task_dir=f"t/{n}", task_id=f"t{n}", workflow="coding") for n in range(7)]
    shards = split(items, 3)
    assert [len(s) for s in shards] == [3, 3, 1]
    assert [i for s in shards for i in s] == items


def _run(task_id: str, run_id: str) -> RunRow:
    return RunRow(run_id=run_id, task_id=task_id, workflow="coding", task_dir=f"t/{task_id}", status="completed",
                  passed=True, sweep_id="sw")


def test_settle_takes_recorded_runs_adopts_unrecorded_ones_and_returns_the_rest(tmp_path: Path) -> None:
    store = TraceStore(str(tmp_path / "traces"))
    runs = [ShardRun(item=WorkItem(task_dir=f"t/{t}", task_id=t, workflow="coding"), run_id=f"r-{t}") for t in "abc"]
    # a: finished and recorded; b: wrote its runs row, then its host died before the ledger row; c: never ran
    store.write("runs", [_run("a", "r-a"), _run("b", "r-b")])
    store.write("sweep_tasks", [ledger_row(_run("a", "r-a").model_dump(), 0)])
    done, unfinished = settle(store, "sw", runs)
    assert [(r.task_id, r.adopted) for r in done] == [("a", False), ("b", True)]
    assert [r.run_id for r in unfinished] == ["r-c"]
    assert sorted(r["task_id"] for r in ledger(store, "sw")) == ["a", "b"]  # b's row is written, once
    again, left = settle(store, "sw", runs)
    assert [r.task_id for r in again] == ["a", "b"] and [r.run_id for r in left] == ["r-c"]
    assert len(store.rows("sweep_tasks", sweep_id="sw")) == 2


@flow(name="shard-state-probe")
def _probe(crash_first: bool) -> str | None:
    """What a shard sees before its next task, after the sweep marked it Crashed while it was starting
    (the engine then set it Running again), or when nobody touched it."""
    if crash_first:
        run_id = UUID(current_flow_run.get_id())
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Crashed(message="taken for lost"), force=True)
            client.set_flow_run_state(run_id, Running(), force=True)
    return marked_as()


@pytest.mark.parametrize(("crash_first", "seen"), [(True, "Crashed"), (False, None)], ids=["given-up", "untouched"])
def test_a_shard_once_marked_crashed_knows_it_even_when_running_again(
    prefect_api: str, crash_first: bool, seen: str | None
) -> None:
    assert _probe(crash_first) == seen


def _shard(root: Path, ids: list[str], slow: set[str]) -> tuple[SweepParams, list[ShardRun]]:
    """A shard's parameters and runs over copies of task_001, answered correctly by a replay worker;
    the ``slow`` ones take a few seconds in their tests."""
    replay = root / "replay.jsonl"
    replay.write_text("".join(json.dumps({"task_id": i, "content": PALINDROME}) + "\n" for i in ids))
    runs = []
    for task_id in ids:
        task = clone_task(root / "tasks", task_id)
        if task_id in slow:
            (task / "tests" / "test_slow.py").write_text(SLOW_TEST)
        runs.append(ShardRun(item=WorkItem(task_dir=str(task), task_id=task_id, workflow="coding"), run_id=new_id()))
    params = SweepParams(workers=[{"provider": "replay", "model": str(replay)}], sandbox="local")
    return params, runs


def test_a_shard_writes_its_runs_batched_one_file_per_table_at_its_ticks(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_SWEEP_TICK_S", "3600")  # no tick before the end: three runs, one flush
    params, runs = _shard(tmp_path, ["b-0", "b-1", "b-2"], slow=set())
    traces = str(tmp_path / "traces")
    store = TraceStore(traces, compact_after=0)
    assert run_shard_flow(params, "sw-batch", traces, "local", runs) == 3
    assert [len(store.files(t)) for t in ("calls", "runs", "sweep_tasks")] == [1, 1, 1]  # not one per run
    assert sorted(r["run_id"] for r in ledger(store, "sw-batch")) == sorted(r.run_id for r in runs)


def test_a_shard_given_up_on_mid_way_writes_nothing_it_had_not_flushed(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep marks the shard Crashed after its first run was flushed, while the second runs: the
    sweep reruns the second and third elsewhere, so the shard must write neither (no run doubled)."""
    monkeypatch.setenv("ORCH_SWEEP_TICK_RUNS", "1")  # a flush before each run but the first
    monkeypatch.setenv("ORCH_SWEEP_TICK_S", "3600")
    params, runs = _shard(tmp_path, ["g-0", "g-1", "g-2"], slow={"g-1"})
    traces = str(tmp_path / "traces")
    store = TraceStore(traces, compact_after=0)
    sweep_id = f"{uuid4().hex[:8]}-given-up"  # the shard's flow run name carries the first 8 characters
    marked: list[str] = []

    def mark_once_the_first_run_is_on_disk() -> None:
        end = time.monotonic() + 120
        while not store.files("sweep_tasks"):
            if time.monotonic() > end:
                return
            time.sleep(0.2)
        flow_runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={"flow_runs": {
            "name": {"any_": [f"shard of 3 · sweep {sweep_id[:8]}"]}}}, timeout=30).json()
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(flow_runs[0]["id"]), Crashed(message="taken for lost"), force=True)
        marked.append(flow_runs[0]["id"])

    marker = threading.Thread(target=mark_once_the_first_run_is_on_disk)
    marker.start()
    run_shard_flow(params, sweep_id, traces, "local", runs, return_state=True)
    marker.join()
    assert marked, "the first run never reached the disk"
    assert [r["run_id"] for r in store.rows("runs")] == [runs[0].run_id]
    assert [r["run_id"] for r in ledger(store, sweep_id)] == [runs[0].run_id]
    assert {r["run_id"] for r in store.rows("calls")} == {runs[0].run_id}  # none of the second run's rows
