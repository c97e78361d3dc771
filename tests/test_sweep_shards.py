"""The deployment executor's shards (flows/sweep_shards.py): how a sweep sizes them, and what a shard's
end leaves to run again, read from real trace files."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Crashed, Running

from domain.sweep_ledger import ledger, ledger_row
from domain.sweep_plan import WorkItem
from flows.shard import marked_as
from flows.sweep_shards import ShardRun, settle, shard_size, split
from orchestrator.records import RunRow
from orchestrator.traces import TraceStore


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
