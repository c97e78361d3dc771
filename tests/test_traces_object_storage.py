"""Trace tables on object storage: a real S3-compatible server (moto's) on loopback, pyarrow's S3 client."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.records import CallRow, RunRow
from orchestrator.traces import TraceStore
from tests.conftest import free_port, wait_http_ok

BUCKET = "orch-traces"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/moto-api/", 60, proc)
        admin = pafs.S3FileSystem(
            access_key="testing", secret_key="testing", region="us-east-1",
            endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True,
        )
        admin.create_dir(BUCKET)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def s3_uri(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    # Credentials travel the way they would in production: in the environment, not in the URI.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    query = f"endpoint_override={s3_server}&scheme=http&region=us-east-1"
    return f"s3://{BUCKET}/{tmp_path.name}?{query}"


def _call(run_id: str, purpose: str) -> CallRow:
    return CallRow(run_id=run_id, provider="replay", model="m", role="solver", purpose=purpose)


def test_machines_share_one_store_on_s3(s3_uri: str) -> None:
    # Two stores opened from the same URI stand for workers on two machines writing at once.
    machines = [TraceStore(s3_uri), TraceStore(s3_uri)]
    assert all(store.remote for store in machines)

    def writer(store: TraceStore, name: str) -> None:
        for i in range(5):
            store.write("calls", [_call(name, f"solve-{i}")])

    threads = [threading.Thread(target=writer, args=(s, f"m{n}")) for n, s in enumerate(machines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    machines[0].write("runs", [RunRow(run_id="r", task_id="t", workflow="coding", task_dir="x", status="completed")])

    reader = TraceStore(str(machines[0].root))  # the root round-trips, endpoint options included
    files = reader.files("calls")
    assert len(files) == 10 and all(str(f).endswith(".parquet") for f in files)
    assert pq.read_table(files[0], filesystem=reader.fs).num_rows == 1
    _, rows = reader.sql("SELECT run_id, count(*) FROM calls GROUP BY run_id ORDER BY run_id")
    assert rows == [("m0", 5), ("m1", 5)]
    assert reader.rows("runs", run_id="r")[0]["status"] == "completed"
    # A table nobody wrote yet still has its columns.
    columns, empty = reader.sql("SELECT * FROM attempts")
    assert empty == [] and "tests_passed" in columns


def test_a_credential_in_the_uri_is_refused(s3_server: str) -> None:
    with pytest.raises(ConfigurationError, match="AWS_SECRET_ACCESS_KEY"):
        TraceStore(f"s3://{BUCKET}/x?endpoint_override={s3_server}&access_key=AKIA&secret_key=s3cr3t")


def test_file_uri_is_a_local_store_with_atomic_renames(tmp_path: Path) -> None:
    store = TraceStore(f"file://{tmp_path}/traces")
    assert not store.remote
    path = store.write("runs", [RunRow(run_id="r", task_id="t", workflow="coding", task_dir="x", status="completed")])
    assert isinstance(path, Path) and path.parent == tmp_path / "traces" / "runs"
    assert not list(path.parent.glob("*.tmp"))
    assert TraceStore(tmp_path / "traces").rows("runs")[0]["run_id"] == "r"
