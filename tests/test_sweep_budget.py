"""Sweeps against the wire-protocol servers: the cache across sweeps, budgets, resume, --retry-errors.

The real Prefect engine (the session's server), the real OpenAI SDK against tests/wire's fake
server, the local sandbox running each task's pytest; the server's request log is the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.utilities.callables import parameter_schema

from domain.sweep_ledger import ledger
from flows.sweep import SweepParams, sweep_flow
from orchestrator.records import WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore
from tests.sweep_helpers import make_tasks, solving, sweep_calls
from tests.wire import FakeOpenAI, Recorded, Reply

KEY = "sk-test-0123456789abcdef"
WORKER = WorkerSpec(provider="openai", model="gpt-4o-mini")
PER_RUN = 150  # tokens of one run: one call of 100 prompt + 50 completion tokens


@pytest.fixture
def server(prefect_api, monkeypatch, tmp_path) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        fake.responder = solving(fake)
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ORCH_CACHE_PATH", str(tmp_path / "calls.sqlite"))
        monkeypatch.setenv("ORCH_RETRY_BASE_DELAY_S", "0")
        get_settings.cache_clear()
        yield fake


def sweep(tasks: Path, traces: Path, **params: object):
    base = {
        "tasks": str(tasks),
        "workers": [WORKER],
        "sandbox": "local",
        "max_rounds": 1,
        "concurrency": 1,
        "traces_dir": str(traces),
    }
    return sweep_flow(**SweepParams.model_validate({**base, **params}).model_dump())


def test_a_rerun_with_the_cache_on_makes_no_network_call(server, tmp_path) -> None:
    tasks, traces = make_tasks(tmp_path / "tasks", 4), tmp_path / "traces"
    first = sweep(tasks, traces, concurrency=2)
    assert len(server.model_calls) == 4 and first.passed == 4
    assert first.cost_usd == pytest.approx(4 * (100 * 0.15 + 50 * 0.60) / 1e6)

    second = sweep(tasks, traces, concurrency=2)  # a new sweep of the same tasks

    assert len(server.model_calls) == 4  # not one more request
    assert (second.passed, second.total, second.cost_usd) == (4, 4, 0.0)
    rows = sweep_calls(TraceStore(traces), second.sweep_id)
    assert len(rows) == 4 and all(r["cached"] and r["cost_usd"] == 0.0 for r in rows)
    assert {(r["prompt_tokens"], r["completion_tokens"]) for r in rows} == {(100, 50)}  # original tokens

    uncached = sweep(tasks, traces, cache=False)
    assert len(server.model_calls) == 8 and uncached.cost_usd == first.cost_usd


def test_a_budget_stops_the_sweep_where_it_would_be_crossed_and_a_resume_finishes(server, tmp_path) -> None:
    tasks, traces = make_tasks(tmp_path / "tasks", 6), tmp_path / "traces"
    # Room for 3.5 runs: after 3, one more mean run would cross it, so runs 4-6 do not start.
    stopped = sweep(tasks, traces, max_tokens=int(3.5 * PER_RUN), cache=False)

    assert len(server.model_calls) == 3
    assert (stopped.total, stopped.passed, stopped.failed, stopped.skipped) == (3, 3, 0, 3)
    assert stopped.prompt_tokens + stopped.completion_tokens == 3 * PER_RUN
    record = ledger(TraceStore(traces), stopped.sweep_id)
    assert [r["status"] for r in record] == ["completed"] * 3 + ["skipped"] * 3
    assert all(r["error"] == "skipped: budget of 525 tokens: 450 spent, ~150 more expected for "
               "the next run and those in flight" for r in record[3:])

    resumed = sweep(tasks, traces, sweep_id=stopped.sweep_id, max_tokens=10 * PER_RUN, cache=False)

    assert len(server.model_calls) == 6  # only the three that had not run
    assert (resumed.total, resumed.passed, resumed.skipped) == (6, 6, 0)
    assert resumed.prompt_tokens + resumed.completion_tokens == 6 * PER_RUN


def test_a_sweep_budget_never_crosses_its_limit_at_concurrency(server, tmp_path) -> None:
    tasks, traces = make_tasks(tmp_path / "tasks", 8), tmp_path / "traces"
    limit = int(4.5 * PER_RUN)
    report = sweep(tasks, traces, max_tokens=limit, cache=False, concurrency=3)
    spent = report.prompt_tokens + report.completion_tokens
    assert spent <= limit and report.total + report.skipped == 8 and report.skipped >= 3
    assert len(server.model_calls) == report.total


def test_retry_errors_reruns_only_the_errored_runs_and_counts_each_task_once(server, tmp_path) -> None:
    tasks, traces = make_tasks(tmp_path / "tasks", 4), tmp_path / "traces"
    solve = server.responder
    assert solve is not None
    healthy = {"on": False}

    def flaky(request: Recorded) -> Reply | str:
        asked = " ".join(m["content"] for m in server.messages(request))
        if "value_2()" in asked and not healthy["on"]:
            return server.error(400, "this prompt is refused today")  # permanent: the run errors
        return solve(request)

    server.responder = flaky
    original = sweep(tasks, traces, cache=False)
    assert (original.total, original.passed, original.errored) == (4, 3, 1)

    healthy["on"] = True
    before = len(server.model_calls)
    retried = sweep(tasks, traces, sweep_id=original.sweep_id, retry_errors=True, cache=False)

    assert len(server.model_calls) == before + 1  # value_2 only
    assert (retried.total, retried.passed, retried.errored) == (4, 4, 0)
    assert [t.task_id for t in retried.tasks] == [f"value_{k:03d}" for k in range(4)]


def test_a_failed_run_is_not_rerun_by_retry_errors(server, tmp_path) -> None:
    tasks, traces = make_tasks(tmp_path / "tasks", 2), tmp_path / "traces"
    solve = server.responder
    assert solve is not None

    def wrong_for_one(request: Recorded) -> Reply:
        asked = " ".join(m["content"] for m in server.messages(request))
        if "value_1()" in asked:
            return server.reply("```python\ndef value_1():\n    return -1\n```")
        return solve(request)

    server.responder = wrong_for_one
    first = sweep(tasks, traces, cache=False)
    assert (first.passed, first.failed, first.errored) == (1, 1, 0)
    again = sweep(tasks, traces, sweep_id=first.sweep_id, retry_errors=True, cache=False)
    assert len(server.model_calls) == 2 and (again.total, again.failed) == (2, 1)


def test_the_sweep_form_has_the_budget_cache_and_retry_fields() -> None:
    sweep_fields = parameter_schema(sweep_flow).model_dump()["properties"]
    assert {"cache", "max_cost", "max_tokens", "ignore_unpriced", "retry_errors"} <= set(sweep_fields)
    with pytest.raises(ValueError, match="max_cost"):
        SweepParams(max_cost=0)


def test_a_resumed_sweep_counts_every_call_its_runs_made(tmp_path) -> None:
    """Stopped and superseded runs spent too, and so did the judge: the ledger's latest runs alone
    would undercount what a resumed sweep's budget starts from."""
    from domain.sweep_ledger import spent_by_sweep
    from orchestrator.records import CallRow, RunRow

    store = TraceStore(tmp_path)
    assert spent_by_sweep(store, "s1") == (0, 0.0)  # nothing written yet
    runs = [("r1", "s1", "stopped"), ("r2", "s1", "completed"), ("r3", "other", "completed")]
    store.write("runs", [RunRow(run_id=r, task_id="t", workflow="coding", task_dir="d", status=st, sweep_id=s)
                         for r, s, st in runs])
    store.write("calls", [
        CallRow(run_id="r1", provider="openai", model="m", role="solver", purpose="solve",
                prompt_tokens=100, completion_tokens=50, cost_usd=0.25),
        CallRow(run_id="r2", provider="openai", model="m", role="judge", purpose="judge",
                prompt_tokens=10, completion_tokens=5, cost_usd=None),
        CallRow(run_id="r3", provider="openai", model="m", role="solver", purpose="solve",
                prompt_tokens=1000, completion_tokens=1000, cost_usd=9.0),
    ])
    assert spent_by_sweep(store, "s1") == (165, 0.25)
