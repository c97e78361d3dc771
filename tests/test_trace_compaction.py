"""Compaction of the trace store: small files merged atomically, readers never see a row twice or miss one,
writers in several processes, kill -9 in the middle of a compaction, schema versions of the files."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.records import CallRow, CandidateResult, RunRow, RunSummary
from orchestrator.trace_files import SCHEMA_VERSION, SOURCES_KEY, VERSION_KEY, parse_name
from orchestrator.traces import TraceStore
from tasks.transcript import NOT_RECORDED, transcript_markdown

ROOT = Path(__file__).resolve().parents[1]


def _call(run_id: str, purpose: str) -> CallRow:
    return CallRow(run_id=run_id, provider="replay", model="m", role="solver", purpose=purpose)


def _counts(store: TraceStore) -> tuple[int, int]:
    _, rows = store.sql("SELECT count(*), count(DISTINCT (run_id, purpose)) FROM calls")
    return rows[0]


def test_small_files_are_merged_and_every_row_stays_once(tmp_path: Path) -> None:
    store = TraceStore(tmp_path, compact_after=4, delete_grace_s=0)
    for i in range(30):
        store.write("calls", [_call("r", str(i))])
    files = store.files("calls")
    assert len(files) < 10  # 30 writes, merged as they went
    assert any(parse_name(str(f)).level >= 1 for f in files)
    assert _counts(store) == (30, 30)
    assert sorted(int(r["purpose"]) for r in store.rows("calls")) == list(range(30))
    merged = next(f for f in files if parse_name(str(f)).level >= 1)
    meta = pq.read_metadata(merged).metadata
    assert int(meta[VERSION_KEY]) == SCHEMA_VERSION and json.loads(meta[SOURCES_KEY])
    # Explicit compaction merges what is left into one file.
    store.compact("calls")
    assert len(store.files("calls")) == 1 and _counts(store) == (30, 30)


def test_replaced_files_stay_for_the_grace_period(tmp_path: Path) -> None:
    store = TraceStore(tmp_path, compact_after=4, delete_grace_s=3600)
    for i in range(8):
        store.write("calls", [_call("r", str(i))])
    on_disk = list((tmp_path / "calls").glob("*.parquet"))
    # The 8 write files are still there (a reader may have listed them), yet none counts twice.
    assert len(on_disk) > len(store.files("calls"))
    assert _counts(store) == (8, 8)


def _write_many(root: str, name: str, count: int) -> None:
    # A short grace: replaced files are deleted while the test runs, yet not under a reader's feet.
    store = TraceStore(root, compact_after=4, delete_grace_s=2, fsync=False)
    for i in range(count):
        store.write("calls", [_call(name, str(i))])


def test_processes_write_and_compact_while_a_reader_never_sees_a_row_twice_or_lose_one(
    tmp_path: Path,
) -> None:
    root = str(tmp_path)
    writers, per_writer = 3, 60
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(root, f"w{n}", per_writer)) for n in range(writers)]
    reader = TraceStore(root, compact_after=0)
    seen: list[tuple[int, int]] = []
    for p in procs:
        p.start()
    while any(p.is_alive() for p in procs):
        seen.append(_counts(reader))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    seen.append(_counts(reader))
    assert all(total == distinct for total, distinct in seen), "a reader saw a row twice"
    totals = [total for total, _ in seen]
    assert totals == sorted(totals), "a reader missed rows it had seen before"
    assert seen[-1] == (writers * per_writer, writers * per_writer)
    assert len(seen) > 5  # the reader read while the writers wrote
    on_disk = len(list((tmp_path / "calls").glob("*.parquet")))
    assert on_disk > len(TraceStore(root).files("calls"))  # merged files' sources wait out the grace
    # Once the grace is over (0 here), the next compaction deletes what was replaced, and no row with it.
    TraceStore(root, compact_after=4, delete_grace_s=0).compact("calls", everything=False)
    assert len(list((tmp_path / "calls").glob("*.parquet"))) < on_disk
    assert _counts(reader) == (writers * per_writer, writers * per_writer)


def test_threads_write_and_compact_at_once(tmp_path: Path) -> None:
    threads = [threading.Thread(target=_write_many, args=(str(tmp_path), f"t{n}", 40)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _counts(TraceStore(tmp_path)) == (160, 160)


_COMPACT_FOREVER = """
import sys
from orchestrator.traces import TraceStore
store = TraceStore(sys.argv[1], compact_after=0, delete_grace_s=0)
print("ready", flush=True)
while True:
    store.compact("calls")
"""


def test_kill_9_in_the_middle_of_compactions_loses_and_doubles_nothing(tmp_path: Path) -> None:
    store = TraceStore(tmp_path, compact_after=0, delete_grace_s=0, fsync=False)
    total = 0
    for kill in range(5):
        for i in range(40):
            store.write("calls", [_call(f"k{kill}", str(i))])
        total += 40
        proc = subprocess.Popen(
            [sys.executable, "-c", _COMPACT_FOREVER, str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        # Kill it once it has merged at least once and is (most likely) in the middle of another merge.
        while not any(parse_name(p.name).level for p in (tmp_path / "calls").glob("*.parquet")):
            assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05 * kill)  # a different point of the work each round
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _counts(store) == (total, total)
        assert len(store.rows("calls")) == total
    store.compact("calls")
    assert _counts(store) == (total, total) and len(store.files("calls")) == 1


def test_files_carry_the_schema_version(tmp_path: Path) -> None:
    store = TraceStore(tmp_path)
    path = Path(str(store.write("calls", [_call("r", "solve")])))
    assert parse_name(path.name).version == SCHEMA_VERSION
    assert path.name.startswith(f"v{SCHEMA_VERSION}-")
    assert int(pq.read_metadata(path).metadata[VERSION_KEY]) == SCHEMA_VERSION


def test_files_of_the_older_schema_are_read_and_rewritten(tmp_path: Path) -> None:
    # What the store wrote before versions existed: "<run>-<uuid>.parquet", no metadata, and (as an older
    # row model would) without a column that today's has.
    (tmp_path / "runs").mkdir(parents=True)
    old = pa.table(
        {
            "run_id": ["old"],
            "task_id": ["t"],
            "workflow": ["coding"],
            "task_dir": ["x"],
            "status": ["completed"],
            "passed": [True],
        }
    )
    pq.write_table(old, tmp_path / "runs" / "old-0123456789ab.parquet")
    store = TraceStore(tmp_path)
    store.write("runs", [RunRow(run_id="new", task_id="t", workflow="coding", task_dir="x", status="failed")])
    _, rows = store.sql("SELECT run_id, passed, sweep_id FROM runs ORDER BY run_id")
    assert rows == [("new", None, None), ("old", True, None)]
    assert {r["run_id"]: r["sandbox"] for r in store.rows("runs")} == {"new": None, "old": None}
    store.compact("runs")
    [merged] = store.files("runs")
    assert parse_name(str(merged)).version == SCHEMA_VERSION
    assert pq.read_schema(merged).names == TraceStore(tmp_path).read("runs").schema.names
    assert sorted(r["run_id"] for r in store.rows("runs")) == ["new", "old"]


def test_calls_of_schema_2_read_without_messages_and_the_transcript_says_so(tmp_path: Path) -> None:
    # a calls file as version 2 wrote it: no request or reply columns
    store = TraceStore(tmp_path)
    row = _call("r", "solve").model_dump(exclude={"request", "reply"})
    (tmp_path / "calls").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "calls" / "v2-0-r-0123456789ab.parquet")
    store.write("calls", [_call("r", "fix").model_copy(update={"request": '[{"role": "user", "content": "fix it"}]'})])
    by_purpose = {c["purpose"]: c for c in store.rows("calls", run_id="r")}
    assert by_purpose["solve"]["request"] is None and by_purpose["fix"]["request"] is not None
    summary = RunSummary(
        run_id="r", task_id="t", workflow="reasoning", passed=False, rounds=1, tests_passed=0, tests_failed=0,
        prompt_tokens=0, completion_tokens=0, cost_usd=None, duration_s=0.0,
        candidates=[CandidateResult(candidate_id="c", worker="replay:m", output="42", rounds=1, passed=None)],
    )
    calls = [{**c, "candidate_id": "c"} for c in by_purpose.values()]
    text = transcript_markdown(summary, [], calls)
    assert NOT_RECORDED in text and "fix it" in text and "42" in text


def test_a_file_of_a_newer_schema_names_the_fix(tmp_path: Path) -> None:
    store = TraceStore(tmp_path)
    store.write("calls", [_call("r", "solve")])
    newer = tmp_path / "calls" / f"v{SCHEMA_VERSION + 1}-0-r-0123456789ab.parquet"
    pq.write_table(pa.table({"run_id": ["r"]}), newer)
    with pytest.raises(ConfigurationError, match=r"schema version \d+, newer .*upgrade orchestrator"):
        store.sql("SELECT count(*) FROM calls")


def test_a_table_whose_module_is_not_imported_is_still_queryable(tmp_path: Path) -> None:
    folder = tmp_path / "widgets"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"n": [1, 2]}), folder / "v2-0-x-0123456789ab.parquet")
    pq.write_table(pa.table({"n": [3], "m": ["a"]}), folder / "v2-1-x-0123456789ac.parquet")
    store = TraceStore(tmp_path)
    assert "widgets" in store.table_names()
    assert store.sql("SELECT sum(n), count(m) FROM widgets")[1] == [(6, 1)]
    store.compact("widgets")
    assert len(store.files("widgets")) == 1
    assert store.sql("SELECT sum(n), count(m) FROM widgets")[1] == [(6, 1)]


def test_a_file_of_the_older_schema_that_no_longer_fits_names_the_file_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir(parents=True)
    old = pa.table(
        {
            "run_id": ["old"],
            "task_id": ["t"],
            "workflow": ["coding"],
            "task_dir": ["x"],
            "status": ["completed"],
            "passed": ["yes"],
            "rounds": pa.array([2], pa.int32()),
        }
    )
    path = tmp_path / "runs" / "old-0123456789ab.parquet"
    pq.write_table(old, path)
    store = TraceStore(tmp_path)
    store.write("runs", [RunRow(run_id="new", task_id="t", workflow="coding", task_dir="x", status="failed")])
    fix = rf"{path}.*'passed' as string, today's is bool: move the file out .*convert that column"
    with pytest.raises(ConfigurationError, match=fix):
        store.sql("SELECT count(*) FROM runs")
    with pytest.raises(ConfigurationError, match=fix):
        store.rows("runs")
    # Once converted, it reads in today's types (an int32 column of an older writer reads as BIGINT).
    pq.write_table(old.set_column(5, "passed", pa.array([True])), path)
    assert store.sql("SELECT run_id, passed, rounds + 0 FROM runs ORDER BY run_id")[1] == [
        ("new", None, 0),
        ("old", True, 2),
    ]
    assert store.sql("SELECT typeof(rounds) FROM runs LIMIT 1")[1] == [("BIGINT",)]


def test_a_compacted_files_sources_are_read_once_per_process_not_once_per_store(tmp_path: Path) -> None:
    """A sweep opens a TraceStore per write; the footer cache must not grow with every one of them."""
    from orchestrator import trace_files

    store = TraceStore(tmp_path, compact_after=4, delete_grace_s=3600)  # the replaced files stay listed
    for i in range(8):
        store.write("calls", [_call("r", str(i))])
    assert _counts(TraceStore(tmp_path)) == (8, 8)
    cached = len(trace_files._sources_cache)
    for _ in range(5):
        assert _counts(TraceStore(tmp_path)) == (8, 8)
    assert cached > 0 and len(trace_files._sources_cache) == cached
