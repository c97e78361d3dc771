"""Prefect API failures are bookkeeping failures: they never fail a task that would pass.

Through tests/flaky_api.py, a real proxy in front of the session's real Prefect server that answers
runs of requests with 503.
"""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
from prefect.artifacts import create_markdown_artifact
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from orchestrator.traces import TraceStore
from tasks.bookkeeping import bookkeeping

from .flaky_api import FlakyProxy
from .sweep_helpers import make_tasks


def _artifact(api: str, key: str) -> list[dict]:
    resp = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def test_a_sweep_through_a_flaky_api_loses_no_task(cli, prefect_api, tmp_path, traces_dir):
    root = make_tasks(tmp_path / "tasks", 6)
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(
        json.dumps({"task_id": f"value_{k:03d}", "content": f"```python\ndef value_{k}():\n    return {k}\n```"}) + "\n"
        for k in range(6)
    ))  # fmt: skip
    # Every 9th request and the 2 after it answer 503: a third of the API's answers.
    with FlakyProxy(prefect_api, outage=3, every=9) as proxy:
        proc = cli(
            "sweep", str(root), "--replay", str(replay), "--sandbox", "local", "--max-rounds", "1",
            "--concurrency", "4", "--name", "flaky-api", "--json",
            env={"PREFECT_API_URL": proxy.api_url},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["total"], out["passed"], out["errored"]) == (6, 6, 0), out
    assert proxy.injected > 0 and proxy.forwarded > 0
    ledger = TraceStore(traces_dir).rows("sweep_tasks", sweep_id=out["sweep_id"])
    assert sorted(r["status"] for r in ledger) == ["completed"] * 6
    [table] = _artifact(prefect_api, "sweep-flaky-api-tasks")
    assert sorted(row["task"] for row in json.loads(table["data"])) == [f"value_{k:03d}" for k in range(6)]


def test_bookkeeping_outlasts_an_outage_longer_than_the_clients_own_retries(prefect_api):
    # Without the Prefect client's retries, the first 4 requests fail: only bookkeeping's retries get through.
    with FlakyProxy(prefect_api, outage=4, every=10_000) as proxy, temporary_settings(
        {PREFECT_API_URL: proxy.api_url, PREFECT_CLIENT_MAX_RETRIES: 0}
    ):
        created = bookkeeping("a test artifact", create_markdown_artifact, "# recorded", key="flaky-bookkeeping")
    assert created is not None and proxy.injected == 4
    assert [a["data"] for a in _artifact(prefect_api, "flaky-bookkeeping")][0] == "# recorded"


def test_a_request_the_api_refuses_is_logged_not_retried(prefect_api, caplog):
    def read_missing_artifact(api: str) -> None:
        httpx.get(f"{api}/artifacts/{uuid4()}", timeout=30).raise_for_status()  # the real server's 404

    with FlakyProxy(prefect_api, outage=0, every=1) as proxy:
        result = bookkeeping("a missing artifact", read_missing_artifact, proxy.api_url)
    assert result is None and proxy.forwarded == 1  # a 4xx: our request is wrong, one try, then logged
    assert "a missing artifact was not recorded in Prefect: HTTPStatusError" in caplog.text
