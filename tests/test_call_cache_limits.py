"""The model-call layer's cache, budget, cooldowns and per-provider bounds, against the wire servers.

Every test calls :func:`tasks.model_call.call_model` with the real provider SDKs pointed at the fake
servers of tests/wire, and counts what reached the server and what the ``calls`` table says.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.budget import Budget, BudgetExhausted
from orchestrator.errors import ConfigurationError
from orchestrator.records import Completion, Message, WorkerSpec, new_id
from orchestrator.settings import Settings, get_settings, parse_expiry
from orchestrator.traces import TraceStore
from providers.cache import CallCache
from providers.limits import AdaptiveBound, shared_limits
from tasks.call_scope import RunScope, scoped
from tasks.model_call import CALL_TEXT_CAP, AllWorkersFailed, CallContext, call_model
from tests.wire import FakeAnthropic, FakeOpenAI, Recorded, Reply

KEY = "sk-test-0123456789abcdef"
ASK = [Message(role="user", content="Write add(a, b).")]
OPENAI = WorkerSpec(provider="openai", model="gpt-4o-mini")
ANTHROPIC = WorkerSpec(provider="anthropic", model="claude-3-5-haiku-latest")


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


def settings_for(tmp_path: Path, *servers: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "cache_path": tmp_path / "calls.sqlite",
        "call_retries": 0,
        "retry_base_delay_s": 0.0,
        "retry_max_delay_s": 0.5,
    }
    values["api_keys"] = {server.provider: SecretStr(KEY) for server in servers}
    values["base_urls"] = {server.provider: server.base_url for server in servers}
    return Settings(**{**values, **overrides})


def call(settings: Settings, store: TraceStore, run_id: str, workers: list[WorkerSpec] | None = None, **params: Any):
    ctx = CallContext(run_id=run_id, task_id="t1", purpose="solve")
    return call_model(workers or [OPENAI], ASK, ctx, settings=settings, store=store, **params)


def calls(store: TraceStore, run_id: str) -> list[dict[str, Any]]:
    return sorted(store.rows("calls", run_id=run_id), key=lambda r: r["ts"])


# ---------------------------------------------------------------- cache


def test_a_repeated_call_at_temperature_0_is_answered_from_the_cache(openai_server, tmp_path) -> None:
    openai_server.script(openai_server.reply("def add(a, b): return a + b", prompt_tokens=40, completion_tokens=9))
    settings = settings_for(tmp_path, openai_server)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()

    first, _ = call(settings, store, run_id, temperature=0.0)
    second, _ = call(settings, store, run_id, temperature=0.0)

    assert len(openai_server.model_calls) == 1
    assert second.text == first.text and second.cost_usd == 0.0 and first.cost_usd and first.cost_usd > 0
    live, hit = calls(store, run_id)
    assert (live["cached"], hit["cached"]) == (False, True)
    assert (hit["prompt_tokens"], hit["completion_tokens"]) == (40, 9)  # the original tokens
    assert hit["cost_usd"] == 0.0 and hit["ok"] and hit["latency_s"] < live["latency_s"] + 1


def test_sampling_calls_are_not_cached_unless_asked(openai_server, tmp_path) -> None:
    settings = settings_for(tmp_path, openai_server)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    call(settings, store, run_id, temperature=0.7)
    call(settings, store, run_id, temperature=0.7)
    assert len(openai_server.model_calls) == 2

    forced = new_id()
    with scoped(forced, RunScope(cache=True)):
        call(settings, store, forced, temperature=0.7)
        call(settings, store, forced, temperature=0.7)
    assert len(openai_server.model_calls) == 3


def test_the_key_holds_model_endpoint_params_and_sample(openai_server, tmp_path) -> None:
    settings = settings_for(tmp_path, openai_server)
    store = TraceStore(tmp_path / "traces")
    call(settings, store, new_id(), temperature=0.0)
    call(settings, store, new_id(), temperature=0.0, max_tokens=99)  # other parameters
    call(settings, store, new_id(), [WorkerSpec(provider="openai", model="gpt-4o")], temperature=0.0)
    resampled = new_id()
    with scoped(resampled, RunScope(sample=1)):
        call(settings, store, resampled, temperature=0.0)
    assert len(openai_server.model_calls) == 4
    off = new_id()
    with scoped(off, RunScope(cache=False)):
        call(settings, store, off, temperature=0.0)
    assert len(openai_server.model_calls) == 5
    with FakeOpenAI(api_key=KEY) as elsewhere:  # same model, another base URL
        call(settings_for(tmp_path, elsewhere), store, new_id(), temperature=0.0)
        assert len(elsewhere.model_calls) == 1


def test_errors_are_never_cached(openai_server, tmp_path) -> None:
    openai_server.script(openai_server.error(500, "boom"))
    settings = settings_for(tmp_path, openai_server)
    store = TraceStore(tmp_path / "traces")
    with pytest.raises(AllWorkersFailed):
        call(settings, store, new_id(), temperature=0.0)
    call(settings, store, new_id(), temperature=0.0)
    call(settings, store, new_id(), temperature=0.0)
    assert len(openai_server.model_calls) == 2  # the failure, then one success that the third reuses


def test_every_try_keeps_its_messages_and_reply_redacted_and_capped(openai_server, tmp_path) -> None:
    # what the transcript shows: a failed try (request, no reply), the answer, then a cache hit
    openai_server.script(openai_server.error(500, "boom"), openai_server.reply(f"key {KEY} " + "y" * 9000))
    settings = settings_for(tmp_path, openai_server, call_retries=1)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    asked = [Message(role="system", content="Be brief."), Message(role="user", content=f"my key is {KEY}")]
    ctx = CallContext(run_id=run_id, task_id="t1", purpose="solve")
    for _ in range(2):
        call_model([OPENAI], asked, ctx, settings=settings, store=store, temperature=0.0)
    failed, answered, hit = calls(store, run_id)
    assert (failed["ok"], answered["ok"], hit["cached"]) == (False, True, True)
    assert json.loads(answered["request"]) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "my key is ***"},
    ]
    assert failed["request"] == answered["request"] == hit["request"] and failed["reply"] is None
    redacted = "key *** " + "y" * 9000  # redacted first, then cut: no half of a key survives the cut
    assert answered["reply"] == hit["reply"] == redacted[:CALL_TEXT_CAP] + f"\n… ({len(redacted) - CALL_TEXT_CAP} more characters)"
    assert all(KEY not in (row["request"] or "") + (row["reply"] or "") for row in (failed, answered, hit))


def test_expired_entries_are_not_served(tmp_path) -> None:
    done = Completion(text="x", provider="openai", model="m", prompt_tokens=3, completion_tokens=1)
    lasting, expired = CallCache(tmp_path / "a.sqlite", 3600.0), CallCache(tmp_path / "b.sqlite", 0.0)
    for cache in (lasting, expired):
        cache.put("k", done)
    assert lasting.get("k") == done and expired.get("k") is None
    assert expired.stats().entries == 0  # the expired entry was deleted when it was asked for
    assert lasting.clear() == 1 and lasting.get("k") is None


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("12h", 43_200), ("1W", 604_800), ("never", None)])
def test_expiry_strings(text: str, seconds: float | None) -> None:
    assert parse_expiry(text) == seconds


def test_a_bad_expiry_is_one_clear_line(monkeypatch) -> None:
    monkeypatch.setenv("ORCH_CACHE_EXPIRY", "soon")
    with pytest.raises(ConfigurationError, match=r"ORCH_CACHE_EXPIRY='soon'.*e\.g\. 1W"):
        get_settings()


def _writer(path: str, worker: int, count: int) -> None:
    cache = CallCache(Path(path), None)
    for i in range(count):
        cache.put(f"{worker}-{i}", Completion(text=f"{worker}:{i}", provider="p", model="m"))
        assert cache.get(f"{worker}-{i}") is not None


def test_concurrent_processes_and_threads_share_one_cache_file(tmp_path) -> None:
    path = str(tmp_path / "shared.sqlite")
    CallCache(Path(path), None)
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_writer, args=(path, w, 150)) for w in range(3)]
    threads = [threading.Thread(target=_writer, args=(path, 10 + w, 150)) for w in range(3)]
    for worker in (*procs, *threads):
        worker.start()
    for worker in (*procs, *threads):
        worker.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    cache = CallCache(Path(path), None)
    assert cache.stats().entries == 900
    assert cache.get("2-149") == Completion(text="2:149", provider="p", model="m")


# ---------------------------------------------------------------- budget


def test_a_token_budget_refuses_the_call_that_would_cross_it_before_sending_it(openai_server, tmp_path) -> None:
    openai_server.responder = lambda req: openai_server.reply("ok", prompt_tokens=60, completion_tokens=40)
    settings = settings_for(tmp_path, openai_server, cache="off")
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    budget = Budget(max_tokens=350)
    with scoped(run_id, RunScope(budget=budget)):
        for _ in range(3):
            call(settings, store, run_id)
        with pytest.raises(BudgetExhausted, match="budget of 350 tokens: 300 spent, ~100 more expected"):
            call(settings, store, run_id)
    assert len(openai_server.model_calls) == 3 and budget.spent_tokens == 300
    assert budget.refused[run_id].startswith("budget of 350 tokens")


def test_cache_hits_cost_nothing_and_pass_an_exhausted_budget(openai_server, tmp_path) -> None:
    openai_server.responder = lambda req: openai_server.reply("ok", prompt_tokens=60, completion_tokens=40)
    settings = settings_for(tmp_path, openai_server)
    store = TraceStore(tmp_path / "traces")
    call(settings, store, new_id())
    run_id = new_id()
    with scoped(run_id, RunScope(budget=Budget(max_tokens=1, max_cost_usd=1e-9))):
        completion, _ = call(settings, store, run_id)
    assert completion.cost_usd == 0.0 and len(openai_server.model_calls) == 1


def test_a_dollar_budget_stops_after_an_unpriced_answer_unless_told_to_ignore(openai_server, tmp_path) -> None:
    settings = settings_for(tmp_path, openai_server, cache="off")
    store = TraceStore(tmp_path / "traces")
    unpriced = [WorkerSpec(provider="openai", model="no-such-price")]
    run_id = new_id()
    with scoped(run_id, RunScope(budget=Budget(max_cost_usd=1.0))):
        call(settings, store, run_id, unpriced)
        with pytest.raises(BudgetExhausted, match="openai:no-such-price has no price.*--ignore-unpriced"):
            call(settings, store, run_id, unpriced)
    lenient = new_id()
    budget = Budget(max_cost_usd=1.0, ignore_unpriced=True)
    with scoped(lenient, RunScope(budget=budget)):
        call(settings, store, lenient, unpriced)
        call(settings, store, lenient, unpriced)
    assert budget.unpriced == {"openai:no-such-price"} and "unpriced: openai:no-such-price" in budget.describe()


# ---------------------------------------------------------------- cooldown


def test_a_429_benches_the_model_and_its_fallback_serves(openai_server, anthropic_server, tmp_path) -> None:
    openai_server.script(openai_server.error(429, "slow down", retry_after=30))
    anthropic_server.default_text = "from the fallback"
    settings = settings_for(tmp_path, openai_server, anthropic_server, call_retries=3, cache="off", cooldown_s=1.0)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()

    first, used = call(settings, store, run_id, [OPENAI, ANTHROPIC])
    second, used_again = call(settings, store, run_id, [OPENAI, ANTHROPIC])

    assert (first.text, used, used_again) == ("from the fallback", ANTHROPIC, ANTHROPIC)
    # no retry of the benched model (3 were allowed) and no wait for its Retry-After: the fallback served
    assert len(openai_server.model_calls) == 1 and len(anthropic_server.model_calls) == 2
    rows = calls(store, run_id)
    assert [(r["provider"], r["ok"], r["error_kind"]) for r in rows] == [
        ("openai", False, "rate_limit"),
        ("anthropic", True, None),
        ("openai", False, "cooldown"),
        ("anthropic", True, None),
    ]
    assert "cooldown: 429 rate limit, Retry-After 30 s" in rows[0]["error"]
    assert rows[2]["attempt"] == 0 and "skipped while cooling down (429 rate limit" in rows[2]["error"]


def test_more_than_n_failures_a_minute_bench_the_model(openai_server, anthropic_server, tmp_path) -> None:
    openai_server.script(*[openai_server.error(500, "boom")] * 3)
    settings = settings_for(
        tmp_path, openai_server, anthropic_server, call_retries=0, cache="off", cooldown_failures=2, cooldown_s=60
    )
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    for _ in range(4):
        call(settings, store, run_id, [OPENAI, ANTHROPIC])
    # three failures (one more than N=2) bench it: the fourth call goes straight to the fallback
    assert len(openai_server.model_calls) == 3 and len(anthropic_server.model_calls) == 4
    rows = calls(store, run_id)
    assert "cooldown: 3 failures within 60 s (last: server_error)" in rows[4]["error"]
    assert rows[-2]["error_kind"] == "cooldown"


def test_when_every_worker_cools_down_the_call_waits_and_succeeds(openai_server, tmp_path) -> None:
    openai_server.script(openai_server.error(429, "slow down", retry_after=0.3), "done")
    settings = settings_for(tmp_path, openai_server, call_retries=0, cache="off", cooldown_s=0.3)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    with pytest.raises(AllWorkersFailed):
        call(settings, store, run_id)
    completion, _ = call(settings, store, run_id)  # benched, no fallback: waits out the cooldown
    assert completion.text == "done" and len(openai_server.model_calls) == 2


# ---------------------------------------------------------------- per-provider bounds


def test_calls_in_flight_per_provider_are_bounded_across_runs(openai_server, tmp_path) -> None:
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def slow(request: Recorded) -> Reply:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)  # the model's latency, so that calls overlap
        with lock:
            state["now"] -= 1
        return openai_server.reply("ok")

    openai_server.responder = slow
    settings = settings_for(tmp_path, openai_server, cache="off", provider_in_flight=3)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    call(settings, store, run_id)  # the SDK client is built once, before the threads race
    threads = [threading.Thread(target=call, args=(settings, store, run_id)) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(openai_server.model_calls) == 16
    assert state["peak"] <= 3
    [bound] = shared_limits(settings).bounds_for("openai", OPENAI.model)
    assert bound.peak == 3 and bound.in_flight == 0


def test_the_bound_halves_on_429_once_per_episode_and_recovers() -> None:
    clock = {"t": 0.0}
    bound = AdaptiveBound("openai", ceiling=8, rpm=None, clock=lambda: clock["t"])
    for _ in range(3):  # a burst of 429s is one back-off
        bound.acquire()
        bound.release(rate_limited=True, retry_after_s=2.0)
    assert (bound.limit, bound.cuts) == (4, 1)
    clock["t"] = 5.0
    bound.acquire()
    bound.release(rate_limited=True)
    assert bound.limit == 2
    clock["t"] = 10.0
    for _ in range(2 + 3 + 4 + 5):  # `limit` clean successes add one
        bound.acquire()
        bound.release()
    assert bound.limit == 6
    for _ in range(50):
        bound.acquire()
        bound.release()
    assert bound.limit == 8  # never above the configured ceiling


def test_requests_per_minute_are_bounded() -> None:
    clock = {"t": 100.0}
    bound = AdaptiveBound("openai:m", ceiling=None, rpm=2, clock=lambda: clock["t"])
    bound.acquire()
    bound.release()
    clock["t"] = 130.0
    bound.acquire()
    bound.release()
    assert bound.wait_s() == pytest.approx(30.0)  # the third must wait until the first leaves the window
    clock["t"] = 160.0
    assert bound.wait_s() == 0.0
