"""The sweep's write batch (orchestrator/trace_batch.py): rows wait in memory, a flush writes one file per
table with ``runs`` and then ``sweep_tasks`` last, reads in the batch's context see the pending rows."""

from __future__ import annotations

import contextvars
import threading

import pytest

from domain.sweep_ledger import run_row
from orchestrator.records import CallRow, RunRow, SweepTaskRow
from orchestrator.settings import get_settings
from orchestrator.trace_batch import Ticker, batched
from orchestrator.traces import TraceStore


def _call(run_id: str) -> CallRow:
    return CallRow(run_id=run_id, provider="replay", model="m", role="solver", purpose="solve")


def _run(run_id: str) -> RunRow:
    return RunRow(run_id=run_id, task_id=f"t-{run_id}", workflow="reasoning", task_dir="x", status="completed",
                  sweep_id="s")  # fmt: skip


def _ledger(run_id: str) -> SweepTaskRow:
    return SweepTaskRow(sweep_id="s", task_id=f"t-{run_id}", run_id=run_id, workflow="reasoning", task_dir="x",
                        status="completed")  # fmt: skip


def _written_at(store: TraceStore, table: str) -> list[int]:
    """Each file's write time, from its name (``v2-<time_ns hex>-...``)."""
    return sorted(int(p.name.split("-")[1], 16) for p in store.files(table))  # type: ignore[union-attr]


def test_rows_wait_for_the_flush_then_one_file_per_table_with_runs_and_the_ledger_last(tmp_path):
    store = TraceStore(tmp_path, compact_after=0)
    with batched(store) as batch:
        for n in range(5):  # what five runs write, in the order a run writes them
            store.write("calls", [_call(f"r{n}")])
            store.write("runs", [_run(f"r{n}")])
            store.write("sweep_tasks", [_ledger(f"r{n}")])
        assert store.files("calls") == [] and store.files("runs") == []  # nothing on disk yet
        # in the batch's context, reads and the sweep's lookup of a run's row see what waits
        assert store.read("calls").num_rows == 5
        assert [r["run_id"] for r in store.rows("runs", run_id="r3")] == ["r3"]
        assert run_row(store, "r4")["task_id"] == "t-r4"
        assert batch.flush() == 15
        store.write("calls", [_call("late")])  # after the flush: waits for the next one (the block's end)
    assert [len(store.files(t)) for t in ("calls", "runs", "sweep_tasks")] == [2, 1, 1]
    assert store.read("calls").num_rows == 6 and store.read("sweep_tasks").num_rows == 5
    calls, [runs], [ledger] = _written_at(store, "calls"), _written_at(store, "runs"), _written_at(store, "sweep_tasks")
    assert calls[0] < runs < ledger  # on disk, a ledger row means its run's rows are there


def test_writes_from_threads_started_with_the_context_join_the_batch_and_an_error_still_flushes(tmp_path):
    store = TraceStore(tmp_path, compact_after=0)
    with pytest.raises(RuntimeError), batched(store):
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(store.write, "calls", [_call(f"t{n}")]))
            for n in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.files("calls") == []
        raise RuntimeError("the sweep failed")
    assert len(store.files("calls")) == 1 and store.read("calls").num_rows == 4


def test_another_store_and_the_outside_of_the_block_write_at_once(tmp_path):
    store, other = TraceStore(tmp_path / "a", compact_after=0), TraceStore(tmp_path / "b", compact_after=0)
    with batched(store):
        other.write("calls", [_call("o")])
        assert len(other.files("calls")) == 1
        fresh = threading.Thread(target=store.write, args=("calls", [_call("no-context")]))  # a fresh context
        fresh.start()
        fresh.join()
        assert len(store.files("calls")) == 1
    store.write("calls", [_call("after")])
    assert len(store.files("calls")) == 2 and store.read("calls").num_rows == 2


def test_discard_drops_what_waits_and_what_comes_after_still_flushes(tmp_path):
    store = TraceStore(tmp_path, compact_after=0)
    with batched(store) as batch:
        store.write("calls", [_call("r0")])
        store.write("runs", [_run("r0")])
        assert batch.discard() == 2
        assert batch.count("calls") == batch.count("runs") == 0
        store.write("runs", [_run("r1")])
    assert store.files("calls") == [] and [r["run_id"] for r in store.rows("runs")] == ["r1"]


def test_a_ticker_ticks_every_n_runs_or_s_seconds_counted_from_its_last_tick(monkeypatch):
    monkeypatch.setenv("ORCH_SWEEP_TICK_RUNS", "3")
    monkeypatch.setenv("ORCH_SWEEP_TICK_S", "3600")
    ticker = Ticker(done=10)  # a resumed sweep starts with runs done
    assert [ticker.tick(done) for done in range(11, 17)] == [False, False, True, False, False, True]
    assert ticker.tick(16, force=True) and not ticker.tick(17)
    get_settings.cache_clear()
    monkeypatch.setenv("ORCH_SWEEP_TICK_S", "0")
    assert Ticker(done=5).tick(5)  # no seconds to wait: due at once, with no run finished
