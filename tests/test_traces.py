import threading

import pyarrow.parquet as pq

from orchestrator.records import CallRow, RunRow
from orchestrator.traces import TABLES, TraceStore


def test_write_read_and_sql(tmp_path):
    store = TraceStore(tmp_path)
    store.write("calls", [CallRow(run_id="r1", provider="replay", model="m", role="solver", purpose="solve",
                                  prompt_tokens=10, completion_tokens=5, cost_usd=None)])
    store.write("calls", [CallRow(run_id="r2", provider="openai", model="gpt-4o-mini", role="solver",
                                  purpose="solve", prompt_tokens=3, completion_tokens=4, cost_usd=0.5)])
    columns, rows = store.sql("SELECT run_id, cost_usd FROM calls ORDER BY run_id")
    assert columns == ["run_id", "cost_usd"]
    assert rows == [("r1", None), ("r2", 0.5)]


def test_empty_tables_still_have_columns(tmp_path):
    columns, rows = TraceStore(tmp_path).sql("SELECT * FROM attempts")
    assert rows == []
    assert "tests_passed" in columns
    assert set(TABLES) >= {"runs", "calls", "attempts"}


def test_files_are_whole_and_no_temp_files_remain(tmp_path):
    store = TraceStore(tmp_path)
    path = store.write("runs", [RunRow(run_id="r", task_id="t", workflow="coding", task_dir="x", status="completed")])
    assert path is not None and path.suffix == ".parquet"
    assert pq.read_table(path).num_rows == 1
    assert not list((tmp_path / "runs").glob("*.tmp"))


def test_concurrent_writers_lose_nothing(tmp_path):
    store = TraceStore(tmp_path)

    def writer(n: int) -> None:
        for i in range(20):
            store.write("calls", [CallRow(run_id=f"w{n}", provider="p", model="m", role="solver",
                                          purpose=f"{i}")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, rows = store.sql("SELECT run_id, count(*) FROM calls GROUP BY run_id ORDER BY run_id")
    assert rows == [("w0", 20), ("w1", 20), ("w2", 20), ("w3", 20)]


def test_a_torn_temp_file_is_ignored(tmp_path):
    store = TraceStore(tmp_path)
    store.write("runs", [RunRow(run_id="ok", task_id="t", workflow="coding", task_dir="x", status="completed")])
    # What a crash in the middle of a write leaves behind: a partial temp file.
    (tmp_path / "runs" / "crashed.parquet.tmp").write_bytes(b"PAR1\x00\x01garbage")
    _, rows = store.sql("SELECT run_id FROM runs")
    assert rows == [("ok",)]
