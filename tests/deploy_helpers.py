"""Helpers for the tests that drive the service: ``scripts/serve.sh``, Prefect's REST API, task copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, RUNS

SERVE = ROOT / "scripts" / "serve.sh"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RETRY_STATUSES = {429, 502, 503}

#: A correct answer for the shipped task_001 (is_palindrome), as a model would reply.
PALINDROME = (
    "```python\nimport re\n\ndef is_palindrome(text):\n"
    "    s = re.sub(r'[^a-z0-9]', '', text.lower())\n    return s == s[::-1]\n```"
)
#: A test file that takes a few seconds: long enough for a run to be caught running.
SLOW_TEST = "import time\n\n\ndef test_takes_a_while():\n    time.sleep(6)\n"


def serve_env(state: Path, **extra: str) -> dict[str, str]:
    """The environment for ``serve.sh`` in a test: its own state folder, fast polling, INFO logs to the API."""
    env = {
        **os.environ,
        "ORCH_SERVE_DIR": str(state),
        "ORCH_PYTHON": sys.executable,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        # Flow runs started with this environment beat often enough for a sweep's watch over its runs
        # (flows/pool_runs.py; docs/deployment.md, "When a worker host dies").
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The worker's "submitting flow run" line and the flows' own lines are INFO.
        "PREFECT_LOGGING_LEVEL": "INFO",
        **extra,
    }
    env.pop("ORCH_PROJECT_DIR", None)
    return env


def serve(*args: str, env: dict[str, str], check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", str(SERVE), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        logs = "".join(
            f"\n--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(Path(env["ORCH_SERVE_DIR"]).glob("*.log"))
        )
        raise AssertionError(f"serve.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}{logs}")
    return proc


def clone_task(dest_root: Path, task_id: str, source: str = "task_001") -> Path:
    """A copy of a shipped task under a new id (sweeps need distinct ids)."""
    dest = dest_root / task_id
    shutil.copytree(RUNS / source, dest)
    toml = dest / "task.toml"
    toml.write_text(toml.read_text().replace(f'id = "{source}"', f'id = "{task_id}"', 1))
    return dest


class PrefectApi:
    """The few calls of Prefect's REST API the tests make (what the UI's buttons call)."""

    def __init__(self, url: str, auth: str | None = None) -> None:
        """``auth``: the server's PREFECT_SERVER_API_AUTH_STRING (user:password), sent as basic auth."""
        self.url = url
        user, _, password = (auth or "").partition(":")
        self.http = httpx.Client(base_url=url, timeout=15, auth=(user, password) if auth else None)

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One request; a busy server (503 while SQLite is locked, 429) is retried a few times, as
        Prefect's own client does."""
        for attempt in range(6):
            resp = self.http.request(method, path, json=body)
            if resp.status_code not in RETRY_STATUSES:
                break
            time.sleep(0.5 * 2**attempt)
        return resp

    def get(self, path: str) -> Any:
        return self._json(self.send("GET", path))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self.send("POST", path, body))

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        if resp.is_error:
            raise AssertionError(f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}")
        return resp.json()

    def deployment(self, name: str) -> dict[str, Any]:
        return self.get(f"/deployments/name/{name}")

    def trigger(self, name: str, parameters: dict[str, Any]) -> str:
        """Create a flow run of a deployment, as the UI's Run button does; a worker picks it up."""
        deployment = self.deployment(name)
        run = self.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})
        return str(run["id"])

    def wait_final(self, flow_run_id: str, timeout_s: float = 240) -> dict[str, Any]:
        """Poll the flow run until it reaches a final state (bounded)."""
        end = time.monotonic() + timeout_s
        while True:
            run: dict[str, Any] = self.get(f"/flow_runs/{flow_run_id}")
            if run["state_type"] in FINAL_STATES:
                return run
            if time.monotonic() > end:
                raise TimeoutError(f"flow run {flow_run_id} still {run['state_type']} after {timeout_s}s")
            time.sleep(0.5)

    def flow_runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        return self.post("/flow_runs/filter", {"flow_runs": flow_run_filter})

    def subflow_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        return self.flow_runs(parent_flow_run_id={"any_": [flow_run_id]})

    def logs(self, *flow_run_ids: str) -> list[str]:
        body = {"logs": {"flow_run_id": {"any_": list(flow_run_ids)}}, "sort": "TIMESTAMP_ASC"}
        return [entry["message"] for entry in self.post("/logs/filter", body)]

    def logs_with(self, needle: str, *flow_run_ids: str, timeout_s: float = 30) -> list[str]:
        """The runs' logs once a line containing ``needle`` arrived: a run's last lines reach the API in a
        batch shortly after its final state does."""
        end = time.monotonic() + timeout_s
        while True:
            lines = self.logs(*flow_run_ids)
            if any(needle in line for line in lines):
                return lines
            if time.monotonic() > end:
                raise AssertionError(f"no log line with {needle!r} after {timeout_s}s; got {lines}")
            time.sleep(0.5)

    def pause_schedules(self, deployment: dict[str, Any]) -> None:
        """Switch a deployment's schedules off, so that 02:00 UTC cannot fire in the middle of a test."""
        for schedule in deployment["schedules"]:
            path = f"/deployments/{deployment['id']}/schedules/{schedule['id']}"
            resp = self.send("PATCH", path, {"active": False})
            if resp.is_error:
                raise AssertionError(f"PATCH {path}: {resp.status_code} {resp.text}")

    def artifacts(self, flow_run_id: str) -> list[dict[str, Any]]:
        body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
        return self.post("/artifacts/filter", body)

    def worker_of(self, flow_run_id: str) -> str:
        """The worker that submitted a flow run, from the line each worker logs to the run."""
        for message in self.logs_with("submitting flow run", flow_run_id):
            if message.startswith("Worker '") and "submitting flow run" in message:
                return message.split("'")[1]
        raise AssertionError(f"no worker logged submitting flow run {flow_run_id}")
