"""Scale-out for real on one machine: a Prefect server on PostgreSQL, workers on separate "hosts"
(network namespaces with their own addresses), the trace store on an S3-compatible server, a worker's
host lost mid-sweep and the server restarted mid-sweep.

The topology is what docs/deployment.md tells users to run, set up with the same commands:
``scripts/serve.sh server`` on the server host (here the root namespace, at the bridge's address) and
``scripts/serve.sh worker NAME`` on each worker host (``ip netns exec``), with basic auth on the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.traces import TraceStore
from tests.conftest import ROOT
from tests.deploy_helpers import PALINDROME, SLOW_TEST, clone_task, serve, serve_env
from tests.multihost_cluster import Cluster, start_cluster

POOL = "orch-multihost"
SHARD = "run-shard/run-shard"
#: Prefect's minimum heartbeat period (PREFECT_FLOWS_HEARTBEAT_FREQUENCY); a run silent for
#: CRASH_AFTER seconds (ORCH_CRASH_AFTER_SECONDS) is marked Crashed by the sweep waiting on it.
HEARTBEAT = 30
CRASH_AFTER = 60  # twice the heartbeat: a loaded machine delays beats and their storage


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("tests/test_multihost.py makes network namespaces: run it as root (CI does)")
    with start_cluster(
        tmp_path_factory.mktemp("multihost"), ["host-a", "host-b"], pool=POOL,
        # two runs at a time per host (the nightly sweep's own run takes one): a sweep's runs spread
        limit=2, heartbeat_s=HEARTBEAT, crash_after_s=CRASH_AFTER,
    ) as cluster:
        yield cluster


def _tasks(root: Path, ids: list[str], slow: bool = False) -> tuple[Path, Path]:
    tasks = root / "tasks"
    for task_id in ids:
        task = clone_task(tasks, task_id)
        if slow:
            (task / "tests" / "test_slow.py").write_text(SLOW_TEST)
    replay = root / "replay.jsonl"
    replay.write_text("".join(json.dumps({"task_id": i, "content": PALINDROME}) + "\n" for i in ids))
    return tasks, replay


def _sweep_cmd(cluster: Cluster, tasks: Path, replay: Path, traces: str, name: str, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).with_name("orchestrator")), "sweep", str(tasks), "--replay", str(replay),
        "--sandbox", "local", "--concurrency", "4", "--executor", "deployment", "--name", name,
        "--traces", traces, "--json", *extra,
    ]


def _sweep_runs(cluster: Cluster, sweep_id: str, deployment: str = "run-task/run-task") -> list[dict[str, Any]]:
    runs = cluster.api.deployment(deployment)
    return [
        r for r in cluster.api.flow_runs(deployment_id={"any_": [runs["id"]]})
        if r["parameters"].get("sweep_id") == sweep_id
    ]


def _shard_tasks(run: dict[str, Any]) -> list[str]:
    return [r["item"]["task_id"] for r in run["parameters"]["runs"]]


def _poll(what: str, check: Any, deadline_s: float) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not happen within {deadline_s}s")
        time.sleep(0.5)


def _running_on(cluster: Cluster, name: str, deployment: str = "run-task/run-task") -> Any:
    """Poll helper: a flow run of the deployment RUNNING on the worker ``name``, or None."""
    runs = cluster.api.deployment(deployment)
    for run in cluster.api.flow_runs(deployment_id={"any_": [runs["id"]]}, state={"type": {"any_": ["RUNNING"]}}):
        if cluster.api.worker_of(run["id"]) == name:
            return run
    return None


def _assert_each_task_once(cluster: Cluster, traces: str, sweep_id: str, ids: list[str]) -> None:
    store = TraceStore(traces)
    runs = store.rows("runs", sweep_id=sweep_id)
    assert Counter(r["task_id"] for r in runs) == Counter(ids)
    assert all(r["status"] == "completed" and r["passed"] for r in runs), runs
    ledger = store.rows("sweep_tasks", sweep_id=sweep_id)
    assert Counter(r["task_id"] for r in ledger) == Counter(ids)


def test_the_api_asks_every_client_for_the_auth_string(cluster: Cluster) -> None:
    # The server, the deploy, the workers and the sweeps of this module all ran with it: without it, refused.
    assert httpx.post(f"{cluster.api.url}/flow_runs/filter", json={}, timeout=15).status_code == 401
    assert isinstance(cluster.api.post("/flow_runs/filter", {}), list)  # the tests' client sends it


def test_one_sweep_shared_by_the_hosts(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"mh-{n}" for n in range(4)]
    tasks, replay = _tasks(tmp_path, ids)
    traces = cluster.traces_uri("shared")
    params = {
        "tasks": str(tasks), "workers": [{"provider": "replay", "model": str(replay)}], "sandbox": "local",
        "name": "multihost", "traces_dir": traces, "executor": "deployment", "concurrency": 4,
    }
    # The sweep itself is a run of the nightly deployment, on one of the hosts like its task runs.
    sweep_run = cluster.api.trigger("sweep/nightly", params)
    run = cluster.api.wait_final(sweep_run, timeout_s=300)
    assert run["state_type"] == "COMPLETED", run["state"]
    sweep_id = run["parameters"].get("sweep_id") or TraceStore(traces).rows("sweep_tasks")[0]["sweep_id"]
    runs = _sweep_runs(cluster, sweep_id)
    assert sorted(Path(r["parameters"]["task_dir"]).name for r in runs) == ids
    assert {cluster.api.worker_of(r["id"]) for r in runs} == {"host-a", "host-b"}
    _assert_each_task_once(cluster, traces, sweep_id, ids)
    artifacts = {a["key"]: a for a in cluster.api.artifacts(sweep_run)}
    assert {"sweep-multihost-tasks", "sweep-multihost-models", "sweep-multihost-report"} <= set(artifacts)
    table = artifacts["sweep-multihost-tasks"]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert sorted((r["task"], r["passed"]) for r in rows) == [(i, "yes") for i in ids]
    assert "**4 of 4 passed (100.0%)**" in artifacts["sweep-multihost-report"]["data"]


def test_a_lost_host_s_shard_crashes_and_only_its_unfinished_tasks_rerun(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"lost-{n}" for n in range(8)]
    tasks, replay = _tasks(tmp_path, ids, slow=True)
    traces = cluster.traces_uri("lost")
    # Four shards of two, four at a time on two hosts of two slots: host-b holds two of them.
    sweep = subprocess.Popen(
        _sweep_cmd(cluster, tasks, replay, traces, "lost", "--shard-size", "2"), env=cluster.client_env(), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        victim = _poll("a shard running on host-b", lambda: _running_on(cluster, "host-b", SHARD), 180)
        host = cluster.hosts["host-b"]
        host.kill_all()  # the machine is gone: worker and flow-run processes, SIGKILL
        host.cut()
        lost_at = time.monotonic()
        crashed = _poll(
            "the lost shard marked Crashed",
            lambda: (r := cluster.api.get(f"/flow_runs/{victim['id']}"))["state_type"] == "CRASHED" and r,
            CRASH_AFTER + HEARTBEAT + 60,
        )
        print(f"lost shard marked Crashed {time.monotonic() - lost_at:.0f}s after its host died")
        assert "its worker's host is gone" in crashed["state"]["message"]
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, out + err
    summary = json.loads(out)
    assert (summary["total"], summary["passed"]) == (8, 8)
    shards = _sweep_runs(cluster, summary["sweep_id"], SHARD)
    for shard in shards:  # for the log: which host ran what, and how it ended
        print(shard["name"], shard["state_type"], cluster.api.worker_of(shard["id"]), _shard_tasks(shard))
    lost = [r for r in shards if r["state_type"] == "CRASHED"]
    done = [r for r in shards if r["state_type"] == "COMPLETED"]
    assert victim["id"] in {r["id"] for r in lost} and len(lost) + len(done) == len(shards)
    # The lost shard's unfinished tasks ran again in a new shard, on the host that is left; what it
    # finished before the loss was not run again: every task has one runs row and one ledger row.
    store = TraceStore(traces)
    finished_by_lost = {r["task_id"] for r in store.rows("runs", sweep_id=summary["sweep_id"])
                        if r["run_id"] in {run["run_id"] for s in lost for run in s["parameters"]["runs"]}}
    redone = Counter(t for r in done for t in _shard_tasks(r) if t in set(_shard_tasks(victim)))
    assert set(redone) == set(_shard_tasks(victim)) - finished_by_lost and all(n == 1 for n in redone.values())
    assert {cluster.api.worker_of(r["id"]) for r in done if set(_shard_tasks(r)) & set(redone)} <= {"host-a"}
    _assert_each_task_once(cluster, traces, summary["sweep_id"], ids)


def test_server_restart_mid_sweep(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"restart-{n}" for n in range(3)]
    tasks, replay = _tasks(tmp_path, ids, slow=True)
    traces = cluster.traces_uri("restart")
    sweep_id = "restart-sweep"
    sweep = subprocess.Popen(
        _sweep_cmd(cluster, tasks, replay, traces, "restart", "--sweep-id", sweep_id), env=cluster.client_env(),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _poll("a run running on host-a", lambda: _running_on(cluster, "host-a"), 180)
        serve("stop", env=cluster.server_env)
        cluster.start_server()
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    if sweep.returncode != 0:  # the sweep's client gave up while the server was away: resume it
        resumed = subprocess.run(
            _sweep_cmd(cluster, tasks, replay, traces, "restart", "--sweep-id", sweep_id),
            env=cluster.client_env(), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )
        assert resumed.returncode == 0, out + err + resumed.stdout + resumed.stderr
        out = resumed.stdout
    summary = json.loads(out)
    assert (summary["sweep_id"], summary["total"], summary["passed"]) == (sweep_id, 3, 3)
    _assert_each_task_once(cluster, traces, sweep_id, ids)
    # The worker that kept running reconnected: it is online on the restarted server.
    workers = cluster.api.post(f"/work_pools/{POOL}/workers/filter", {})
    assert any(w["name"] == "host-a" and w["status"] == "ONLINE" for w in workers), workers


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--db", "mysql"], {}, "--db takes postgres"),
        (["--db", "postgres"], {"PGHOST": "/nonexistent", "PGPORT": "1"}, "PostgreSQL does not answer at PGHOST=/nonexistent"),
    ],
    ids=["unknown-database", "postgres-not-running"],
)
def test_serve_server_refuses_a_bad_database_in_one_line(tmp_path: Path, args: list[str], env: dict[str, str], says: str) -> None:
    state = tmp_path / "serve"
    proc = serve("server", *args, env=serve_env(state, **env), check=False, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
    assert not list(state.glob("*.pid"))  # nothing started
