"""The orchestrator as a service, for real on loopback: ``scripts/serve.sh`` starts a Prefect server,
creates the process work pool, deploys ``prefect.yaml`` and starts a worker; runs are triggered through
the REST API (what the UI's Run button calls) and their results, logs and artifacts are read back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.traces import TraceStore
from tests.conftest import ROOT, free_port, write_replay
from tests.deploy_helpers import PALINDROME, PrefectApi, clone_task, serve, serve_env
from tests.netns import pid_gone

POOL = "orch-test"
QUALITY = "quality-bench/nightly"


@dataclass
class Stack:
    api: PrefectApi
    env: dict[str, str]
    start_output: str
    nightly: dict[str, Any]
    nightly_runs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = serve_env(
        state,
        PREFECT_HOME=str(state / "prefect-home"),
        ORCH_PREFECT_PORT=str(port),
        ORCH_WORK_POOL=POOL,
        ORCH_WORKER_NAME="worker-a",
        # One flow run at a time per worker, so that a sweep's runs must spread over the workers.
        ORCH_WORKER_LIMIT="1",
    )
    env.pop("PREFECT_API_URL", None)  # the script starts and uses its own server
    try:
        started = serve("start", env=env)
        api = PrefectApi(f"http://127.0.0.1:{port}/api")
        nightly = api.deployment("sweep/nightly")
        nightly_runs = _scheduled_runs(api, nightly["id"])
        api.pause_schedules(nightly)  # read as deployed above; the tests trigger their own runs
        api.pause_schedules(api.deployment(QUALITY))
        yield Stack(api, env, started.stdout, nightly, nightly_runs)
    finally:
        serve("stop", env=env, check=False)


def _scheduled_runs(api: PrefectApi, deployment_id: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """The runs the server's scheduler created from the schedule (it does so shortly after the deploy)."""
    end = time.monotonic() + timeout_s
    while True:
        runs = api.flow_runs(deployment_id={"any_": [deployment_id]}, state={"type": {"any_": ["SCHEDULED"]}})
        if runs or time.monotonic() > end:
            return runs
        time.sleep(0.5)


def test_serve_starts_server_pool_deployments_and_worker_once(stack: Stack) -> None:
    assert f"UI: {stack.api.url.removesuffix('/api')}" in stack.start_output
    again = serve("start", env=stack.env)
    assert "Prefect server already running" in again.stdout
    assert "worker worker-a already running" in again.stdout
    for paused in ("sweep/nightly", QUALITY):  # re-deploying made them active again
        stack.api.pause_schedules(stack.api.deployment(paused))
    assert stack.api.get(f"/work_pools/{POOL}")["type"] == "process"
    workers = stack.api.post(f"/work_pools/{POOL}/workers/filter", {})
    assert [(w["name"], w["status"]) for w in workers] == [("worker-a", "ONLINE")]
    for name in ("run-task/run-task", "sweep/nightly", QUALITY):
        deployment = stack.api.deployment(name)
        assert deployment["work_pool_name"] == POOL
        # Stored unresolved: each worker's flow runs find the project on their own machine.
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $ORCH_PROJECT_DIR }}"}}
        ]


def test_nightly_sweep_schedule_is_visible(stack: Stack) -> None:
    [schedule] = stack.nightly["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "UTC"
    assert stack.nightly["parameters"]["tasks"] == "runs"
    starts = sorted(datetime.fromisoformat(r["expected_start_time"]) for r in stack.nightly_runs)
    assert starts, "the server scheduled no nightly runs"
    assert all((s.astimezone(UTC).hour, s.minute) == (2, 0) for s in starts)
    assert starts[0] > datetime.now(UTC)


def test_nightly_quality_benchmark_is_deployed_with_its_schedule(stack: Stack) -> None:
    quality = stack.api.deployment(QUALITY)
    [schedule] = quality["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * *" and schedule["schedule"]["timezone"] == "UTC"
    assert quality["entrypoint"] == "flows/quality_bench.py:quality_bench_flow"
    assert quality["parameters"] == {"work": "bench-out/quality"}  # one entry per field, not one JSON line


def test_bad_parameters_are_refused_before_any_run(stack: Stack) -> None:
    deployment = stack.api.deployment("run-task/run-task")
    resp = stack.api.send(
        "POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"task_dir": "x", "max_rounds": "lots"}}
    )
    assert resp.status_code in (409, 422)
    assert "max_rounds" in resp.text


def test_run_task_deployment_runs_on_the_worker(stack: Stack, tmp_path: Path) -> None:
    task = clone_task(tmp_path / "tasks", "task_001")
    replay = write_replay(tmp_path / "replay.jsonl", "task_001", PALINDROME)
    traces = tmp_path / "traces"
    run_id = stack.api.trigger(
        "run-task/run-task",
        {
            "task_dir": str(task),
            "workers": [{"provider": "replay", "model": str(replay), "role": "solver"}],
            "sandbox": "local",
            "traces_dir": str(traces),
        },
    )
    run = stack.api.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert stack.api.worker_of(run_id) == "worker-a"
    # the steps run in the triggered run itself (no subflow), which is named after the task
    assert stack.api.subflow_runs(run_id) == []
    assert run["name"] == "task_001"
    logs = stack.api.logs_with("verdict: ", run_id)
    assert "Executing deployment step: set_working_directory" in logs
    assert any(line.startswith(f"round 1 replay:{replay}") and "4 passed, 0 failed" in line for line in logs)
    ours = [line for line in logs if not line.startswith("Finished in state")]  # Prefect's own last line
    assert ours[-1].startswith("verdict: task_001 (coding) PASSED after 1 round(s)"), logs[-3:]
    [row] = TraceStore(traces).rows("runs")
    assert row["task_id"] == "task_001" and row["passed"] is True
    assert row["flow_run_id"] == run_id


def test_sweep_deployment_runs_and_publishes_artifacts(stack: Stack, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    ids = ["alpha", "beta"]
    for task_id in ids:
        clone_task(tasks, task_id)
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps({"task_id": i, "content": PALINDROME}) + "\n" for i in ids))
    traces = tmp_path / "traces"
    params = {
        "tasks": str(tasks), "workers": [{"provider": "replay", "model": str(replay)}], "sandbox": "local",
        "name": "deploy-test",
        "traces_dir": str(traces), "executor": "local", "concurrency": 2,
    }
    run_id = stack.api.trigger("sweep/nightly", params)
    run = stack.api.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    artifacts = {a["key"]: a for a in stack.api.artifacts(run_id)}
    assert {"sweep-deploy-test-tasks", "sweep-deploy-test-models", "sweep-deploy-test-report"} <= set(artifacts)
    table = artifacts["sweep-deploy-test-tasks"]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert sorted((r["task"], r["passed"]) for r in rows) == [("alpha", "yes"), ("beta", "yes")]
    assert "**2 of 2 passed (100.0%)**" in artifacts["sweep-deploy-test-report"]["data"]
    assert Counter(r["task_id"] for r in TraceStore(traces).rows("runs")) == Counter(ids)


def test_two_workers_share_a_sweep(stack: Stack, tmp_path: Path) -> None:
    serve("worker", "worker-b", env=stack.env)
    tasks = tmp_path / "tasks"
    ids = [f"shared-{n}" for n in range(4)]
    for task_id in ids:
        clone_task(tasks, task_id)
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps({"task_id": i, "content": PALINDROME}) + "\n" for i in ids))
    traces = tmp_path / "traces"
    # The sweep runs here, as `orchestrator sweep` does; each task is a run of the run-task deployment.
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("orchestrator")), "sweep", str(tasks), "--replay", str(replay),
            "--sandbox", "local", "--concurrency", "4", "--executor", "deployment", "--name", "shared",
            "--traces", str(traces), "--json",
        ],
        env={**stack.env, "PREFECT_API_URL": stack.api.url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["total"], summary["passed"]) == (4, 4)

    run_task = stack.api.deployment("run-task/run-task")
    runs = [
        r for r in stack.api.flow_runs(deployment_id={"any_": [run_task["id"]]})
        if r["parameters"].get("sweep_id") == summary["sweep_id"]
    ]
    assert sorted(Path(r["parameters"]["task_dir"]).name for r in runs) == ids  # each task once, on the pool
    assert all(r["state_type"] == "COMPLETED" for r in runs)
    assert {stack.api.worker_of(r["id"]) for r in runs} == {"worker-a", "worker-b"}
    rows = TraceStore(traces).rows("runs", sweep_id=summary["sweep_id"])
    assert Counter(r["task_id"] for r in rows) == Counter(ids)


def test_stop_ends_workers_then_server(stack: Stack) -> None:
    """Runs last in this module: the fixture's own stop then finds nothing left to stop."""
    state = Path(stack.env["ORCH_SERVE_DIR"])
    pids = {p.stem: int(p.read_text()) for p in state.glob("*.pid")}
    assert set(pids) >= {"server", "worker-worker-a"}
    out = serve("stop", env=stack.env).stdout.splitlines()
    # Workers first, the server last (a worker whose server is gone retries for a while).
    assert out[-1].startswith("serve: stopped server")
    assert all(line.startswith("serve: stopped worker-") for line in out[:-1]) and len(out) == len(pids)
    for pid in pids.values():
        assert pid_gone(pid)  # gone, or a zombie not yet reaped by its new parent (dead all the same)
    assert not list(state.glob("*.pid"))
    with pytest.raises(httpx.HTTPError):
        stack.api.get("/health")
