"""Providers under faults, at load: a 50-task sweep with 30% of requests failing still finishes.

Two fake providers (OpenAI and Anthropic wire protocols) each fail 30% of model calls, chosen by a
seeded generator, evenly among: 429 with Retry-After, 500, a hang (the client times out), a
malformed 200 body, and a connection reset. Both models solve every task, falling back on each
other; cooldowns bench a model that answers 429 or fails more than N times a minute.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from flows.sweep import SweepParams, sweep_flow
from orchestrator.records import WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore
from tests.sweep_helpers import make_tasks, solving, sweep_calls
from tests.wire import FakeAnthropic, FakeOpenAI, FakeServer, Recorded, Reply

KEY = "sk-test-0123456789abcdef"
TASKS = 50
FAULT_RATE = 0.3
FAULTS = ("rate_limit", "server_error", "hang", "malformed", "reset")


class Faults:
    """Wraps a server's responder: 30% of model calls get one of the faults, the rest an answer."""

    def __init__(self, server: FakeServer, seed: int) -> None:
        self.server = server
        self.answer = solving(server)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        server.responder = self

    def __call__(self, request: Recorded) -> Reply:
        with self.lock:
            fault = self.rng.choice(FAULTS) if self.rng.random() < FAULT_RATE else None
            if fault:
                self.injected[fault] += 1
        if fault == "rate_limit":
            return self.server.error(429, "slow down", retry_after=0.2)
        if fault == "server_error":
            return self.server.error(500, "internal error")
        if fault == "hang":
            return self.server.hang()
        if fault == "malformed":
            return self.server.malformed()
        if fault == "reset":
            return self.server.reset()
        return self.answer(request)


@pytest.fixture
def servers(prefect_api, monkeypatch, tmp_path) -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    with FakeOpenAI(api_key=KEY) as openai, FakeAnthropic(api_key=KEY) as anthropic:
        for name, value in {**openai.env(), **anthropic.env()}.items():
            monkeypatch.setenv(name, value)
        for name, value in {
            "ORCH_CACHE": "off",
            "ORCH_CALL_TIMEOUT_S": "1",
            "ORCH_CALL_RETRIES": "6",
            "ORCH_RETRY_BASE_DELAY_S": "0.05",
            "ORCH_RETRY_MAX_DELAY_S": "0.5",
            "ORCH_COOLDOWN_S": "0.3",
            "ORCH_COOLDOWN_FAILURES": "3",
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        yield openai, anthropic


@pytest.mark.slow
def test_a_sweep_with_30_percent_faults_finishes_every_task_with_every_try_recorded(servers, tmp_path) -> None:
    openai, anthropic = servers
    faults = [Faults(openai, seed=7), Faults(anthropic, seed=8)]
    traces = tmp_path / "traces"
    report = sweep_flow(
        **SweepParams(
            tasks=str(make_tasks(tmp_path / "tasks", TASKS)),
            workers=[
                WorkerSpec(provider="openai", model="gpt-4o-mini"),
                WorkerSpec(provider="anthropic", model="claude-3-5-haiku-latest"),
            ],
            sandbox="local",
            max_rounds=1,
            concurrency=3,
            traces_dir=str(traces),
        ).model_dump()
    )

    rows = sweep_calls(TraceStore(traces), report.sweep_id)
    tries = [r for r in rows if r["attempt"] >= 1 and not r["cached"]]
    requests = len(openai.model_calls) + len(anthropic.model_calls)
    injected = faults[0].injected + faults[1].injected
    failed = Counter(r["error_kind"] for r in tries if not r["ok"])
    ok_cost = sum(r["cost_usd"] for r in tries if r["ok"])
    print(
        f"\nfault sweep: {report.total} tasks, {report.passed} passed, {report.errored} errored; "
        f"{requests} requests, {len(tries)} tries in calls, {sum(injected.values())} faults injected "
        f"{dict(injected)}; failed tries {dict(failed)}; "
        f"{sum(1 for r in rows if r['error_kind'] == 'cooldown')} cooldown skips; "
        f"cost: sweep ${report.cost_usd:.8f}, successful calls ${ok_cost:.8f}"
    )

    assert (report.total, report.passed, report.errored) == (TASKS, TASKS, 0)
    assert sum(injected.values()) >= 0.2 * requests and set(injected) == set(FAULTS)
    assert len(tries) == requests  # every request the servers saw is a try in `calls`
    assert sum(failed.values()) == sum(injected.values())  # and every injected fault a failed try
    assert sum(1 for r in tries if r["ok"]) == 2 * TASKS  # one answer per candidate
    assert report.cost_usd == pytest.approx(ok_cost, abs=1e-9)
    assert set(failed) <= {"rate_limit", "server_error", "timeout", "bad_response", "connection"}
