"""Scale-out for real on one machine: a Prefect server on PostgreSQL, workers on separate "hosts"
(network namespaces with their own addresses), the trace store on an S3-compatible server, a worker's
host lost mid-sweep and the server restarted mid-sweep.

The topology is what docs/deployment.md tells users to run, set up with the same commands:
``scripts/serve.sh server`` on the server host (here the root namespace, at the bridge's address) and
``scripts/serve.sh worker NAME`` on each worker host (``ip netns exec``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from orchestrator.traces import TraceStore
from tests.conftest import ROOT, free_port, wait_http_ok
from tests.deploy_helpers import PALINDROME, PrefectApi, clone_task, serve, serve_env
from tests.netns import Host, Network
from tests.postgres import Postgres

POOL = "orch-multihost"
BUCKET = "orch-multihost"
#: Prefect's minimum heartbeat period; a run silent for CRASH_AFTER seconds is marked Crashed.
HEARTBEAT = "30"
CRASH_AFTER = "40"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
#: A task whose tests take a few seconds: long enough for a run to be caught running.
SLOW_TEST = "import time\n\n\ndef test_takes_a_while():\n    time.sleep(6)\n"


@dataclass
class Cluster:
    net: Network
    api: PrefectApi
    server_env: dict[str, str]
    hosts: dict[str, Host]  # worker name -> its host
    worker_envs: dict[str, dict[str, str]]
    s3: str  # host:port of the S3-compatible server

    def traces_uri(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}?endpoint_override={self.s3}&scheme=http&region=us-east-1"

    def start_worker(self, name: str) -> None:
        host = self.hosts[name]
        proc = subprocess.run(
            host.command("bash", str(ROOT / "scripts" / "serve.sh"), "worker", name),
            env=self.worker_envs[name], capture_output=True, text=True, timeout=300, check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _network_or_fail() -> Network:
    if os.geteuid() != 0:
        pytest.fail("tests/test_multihost.py makes network namespaces: run it as root (CI does)")
    return Network().open()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("multihost")
    net = _network_or_fail()
    pg = Postgres(free_port())
    moto: subprocess.Popen[bytes] | None = None
    server_env: dict[str, str] | None = None
    worker_envs: dict[str, dict[str, str]] = {}
    try:
        pg.start()
        s3 = f"{net.address}:{free_port()}"
        moto = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", net.address, "-p", s3.split(":")[1]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_http_ok(f"http://{s3}/moto-api/", 60, moto)
        pafs.S3FileSystem(
            access_key="testing", secret_key="testing", region="us-east-1",
            endpoint_override=s3, scheme="http", allow_bucket_creation=True,
        ).create_dir(BUCKET)

        port = free_port()
        server_env = serve_env(
            base / "server",
            PREFECT_HOME=str(base / "server" / "prefect-home"),
            PREFECT_API_DATABASE_CONNECTION_URL=pg.url,
            ORCH_PREFECT_HOST=net.address, ORCH_PREFECT_PORT=str(port),
            ORCH_WORK_POOL=POOL, ORCH_CRASH_AFTER_SECONDS=CRASH_AFTER,
        )
        server_env.pop("PREFECT_API_URL", None)
        serve("server", env=server_env)
        api = PrefectApi(f"http://{net.address}:{port}/api")
        api.pause_schedules(api.deployment("sweep/nightly"))

        hosts = {}
        for name in ("host-a", "host-b"):
            hosts[name] = net.add_host()
            worker_envs[name] = serve_env(
                base / name,
                PREFECT_HOME=str(base / name / "prefect-home"),
                PREFECT_API_URL=api.url, ORCH_WORK_POOL=POOL,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY=HEARTBEAT,
                # one run at a time: a sweep's runs must spread over the hosts
                ORCH_WORKER_LIMIT="1",
                **S3_ENV,
            )
        cluster = Cluster(net, api, server_env, hosts, worker_envs, s3)
        for name in hosts:
            cluster.start_worker(name)
        yield cluster
    finally:
        for env in worker_envs.values():
            serve("stop", env=env, check=False)
        if server_env is not None:
            serve("stop", env=server_env, check=False)
        net.close()
        if moto is not None:
            moto.kill()
            moto.wait(timeout=20)
        pg.stop()


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


def _client_env(cluster: Cluster) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": cluster.api.url, "PREFECT_CLIENT_MAX_RETRIES": "10", **S3_ENV}


def _sweep_runs(cluster: Cluster, sweep_id: str) -> list[dict[str, Any]]:
    run_task = cluster.api.deployment("run-task/run-task")
    return [
        r for r in cluster.api.flow_runs(deployment_id={"any_": [run_task["id"]]})
        if r["parameters"].get("sweep_id") == sweep_id
    ]


def _poll(what: str, check: Any, deadline_s: float) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not happen within {deadline_s}s")
        time.sleep(0.5)


def _running_on(cluster: Cluster, name: str) -> Any:
    """Poll helper: a run-task flow run RUNNING on the worker ``name``, or None."""
    run_task = cluster.api.deployment("run-task/run-task")
    for run in cluster.api.flow_runs(deployment_id={"any_": [run_task["id"]]}, state={"type": {"any_": ["RUNNING"]}}):
        if cluster.api.worker_of(run["id"]) == name:
            return run
    return None


def _assert_each_task_once(cluster: Cluster, traces: str, sweep_id: str, ids: list[str]) -> None:
    store = TraceStore(traces)
    runs = store.rows("runs", sweep_id=sweep_id)
    assert Counter(r["task_id"] for r in runs) == Counter(ids)
    assert all(r["status"] == "passed" for r in runs), runs
    ledger = store.rows("sweep_tasks", sweep_id=sweep_id)
    assert Counter(r["task_id"] for r in ledger) == Counter(ids)


def test_one_sweep_shared_by_the_hosts(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"mh-{n}" for n in range(4)]
    tasks, replay = _tasks(tmp_path, ids)
    traces = cluster.traces_uri("shared")
    params = {
        "tasks": str(tasks), "workers": [{"provider": "replay", "model": str(replay)}], "sandbox": "local",
        "name": "multihost", "traces_dir": traces, "executor": "deployment", "concurrency": 4,
    }
    # The sweep itself is a run of the nightly deployment, on one of the hosts like its task runs.
    sweep_run = cluster.api.trigger("sweep/nightly", {"params": params})
    run = cluster.api.wait_final(sweep_run, timeout_s=300)
    assert run["state_type"] == "COMPLETED", run["state"]
    sweep_id = run["parameters"]["params"].get("sweep_id") or TraceStore(traces).rows("sweep_tasks")[0]["sweep_id"]
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


def test_a_lost_host_s_runs_crash_and_are_rerun_once(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"lost-{n}" for n in range(4)]
    tasks, replay = _tasks(tmp_path, ids, slow=True)
    traces = cluster.traces_uri("lost")
    sweep = subprocess.Popen(
        _sweep_cmd(cluster, tasks, replay, traces, "lost"), env=_client_env(cluster), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        victim = _poll("a run running on host-b", lambda: _running_on(cluster, "host-b"), 180)
        host = cluster.hosts["host-b"]
        host.kill_all()  # the machine is gone: worker and flow-run processes, SIGKILL
        host.cut()
        lost_at = time.monotonic()
        crashed = _poll(
            "the lost run marked Crashed",
            lambda: (r := cluster.api.get(f"/flow_runs/{victim['id']}"))["state_type"] == "CRASHED" and r,
            int(CRASH_AFTER) + int(HEARTBEAT) + 60,
        )
        print(f"lost run marked Crashed {time.monotonic() - lost_at:.0f}s after its host died")
        assert "heartbeat" in crashed["state"]["message"]
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, out + err
    summary = json.loads(out)
    assert (summary["total"], summary["passed"]) == (4, 4)
    runs = _sweep_runs(cluster, summary["sweep_id"])
    victim_task = Path(victim["parameters"]["task_dir"]).name
    # The lost run's task ran again, on the host that is left; every other task ran once.
    assert Counter(Path(r["parameters"]["task_dir"]).name for r in runs) == Counter(ids + [victim_task])
    rerun = [r for r in runs if r["state_type"] == "COMPLETED" and Path(r["parameters"]["task_dir"]).name == victim_task]
    assert [cluster.api.worker_of(r["id"]) for r in rerun] == ["host-a"]
    _assert_each_task_once(cluster, traces, summary["sweep_id"], ids)


def test_server_restart_mid_sweep(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"restart-{n}" for n in range(3)]
    tasks, replay = _tasks(tmp_path, ids, slow=True)
    traces = cluster.traces_uri("restart")
    sweep_id = "restart-sweep"
    sweep = subprocess.Popen(
        _sweep_cmd(cluster, tasks, replay, traces, "restart", "--sweep-id", sweep_id), env=_client_env(cluster),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _poll("a run running on host-a", lambda: _running_on(cluster, "host-a"), 180)
        serve("stop", env=cluster.server_env)
        serve("server", env=cluster.server_env)
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    if sweep.returncode != 0:  # the sweep's client gave up while the server was away: resume it
        resumed = subprocess.run(
            _sweep_cmd(cluster, tasks, replay, traces, "restart", "--sweep-id", sweep_id),
            env=_client_env(cluster), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )
        assert resumed.returncode == 0, out + err + resumed.stdout + resumed.stderr
        out = resumed.stdout
    summary = json.loads(out)
    assert (summary["sweep_id"], summary["total"], summary["passed"]) == (sweep_id, 3, 3)
    _assert_each_task_once(cluster, traces, sweep_id, ids)
    # The worker that kept running reconnected: it is online on the restarted server.
    workers = cluster.api.post(f"/work_pools/{POOL}/workers/filter", {})
    assert any(w["name"] == "host-a" and w["status"] == "ONLINE" for w in workers), workers
