"""Model calls from tasks: retries through providers.calling, every try a `calls` row, fallback by role.

The hooks of the cache (providers/cache.py), the cooldowns (providers/cooldown.py), the per-provider
bounds (providers/limits.py) and the run's budget (orchestrator/budget.py, via tasks/call_scope.py)
meet here; each mechanism lives in its own module.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from orchestrator.budget import Usage
from orchestrator.records import CallRow, Completion, Message, WorkerSpec
from orchestrator.settings import Settings
from orchestrator.traces import TraceStore
from providers.base import Provider, ProviderError, create_provider
from providers.cache import cache_key, cache_wanted, endpoint_of, key_params, open_cache
from providers.calling import TryOutcome, complete_with_retries
from providers.cooldown import shared_cooldowns
from providers.credentials import redact
from providers.limits import shared_limits
from providers.pricing import unit_prices
from tasks.call_scope import count_call, scope_for


class CallContext(BaseModel):
    """Where a call belongs: stored with every try."""

    run_id: str
    task_id: str
    purpose: str
    candidate_id: str | None = None


#: Characters of one message or reply a ``calls`` row keeps (a 32k-token context is ~128k characters;
#: the transcript needs what a reader scans, not every token of a long document).
CALL_TEXT_CAP = 8000


def _capped(text: str, settings: Settings) -> str:
    text = redact(text, settings)  # before the cut, so that no secret survives half-cut
    return text if len(text) <= CALL_TEXT_CAP else text[:CALL_TEXT_CAP] + f"\n… ({len(text) - CALL_TEXT_CAP} more characters)"


def request_text(messages: Sequence[Message], settings: Settings) -> str:
    """A call's messages as a ``calls.request`` value: JSON, redacted, each message capped."""
    return json.dumps([{"role": m.role, "content": _capped(m.content, settings)} for m in messages], ensure_ascii=False)


class AllWorkersFailed(Exception):
    """Every worker (and fallback) for a call failed; the message lists why, key-free."""


_providers: dict[tuple[str, str], Provider] = {}
_providers_lock = threading.Lock()


def provider_for(run_id: str, worker: WorkerSpec, settings: Settings) -> Provider:
    """One provider object per run and provider name, so stateful providers (replay) restart per run."""
    key = (run_id, worker.provider)
    with _providers_lock:
        if key not in _providers:
            _providers[key] = create_provider(worker.provider, settings)
        return _providers[key]


def release_run(run_id: str) -> None:
    with _providers_lock:
        for key in [k for k in _providers if k[0] == run_id]:
            del _providers[key]


@contextmanager
def run_resources(run_id: str) -> Iterator[None]:
    """The run's provider objects live until the run ends, however it ends."""
    try:
        yield
    finally:
        release_run(run_id)


def _prompt_estimate(messages: Sequence[Message], worker: WorkerSpec, settings: Settings) -> Usage:
    """A lower bound on a call's spend before any call has been measured: the prompt (4 chars a token)."""
    tokens = sum(len(m.content) for m in messages) // 4
    prices = unit_prices(worker.provider, worker.model, settings)
    return Usage(tokens=tokens, cost_usd=tokens * prices[0] / 1_000_000 if prices else 0.0)


def call_model(
    workers: Sequence[WorkerSpec],
    messages: Sequence[Message],
    ctx: CallContext,
    *,
    settings: Settings,
    store: TraceStore,
    **params: Any,
) -> tuple[Completion, WorkerSpec]:
    """Call the first worker; when its retries are exhausted, fall back to the next one.

    Returns the completion and the worker that produced it. Raises :class:`AllWorkersFailed`, or
    :class:`orchestrator.budget.BudgetExhausted` (before anything is sent) when the run's budget
    refuses the call. On the way, from the run's :class:`tasks.call_scope.RunScope` and the settings:

    - the model-call cache answers a call it has seen (the run's scope may force it on or off,
      else ORCH_CACHE decides); a hit is a ``calls`` row with ``cached=true``, the original
      tokens, cost 0 and the hit's latency;
    - workers cooling down (providers/cooldown.py) are skipped while another can serve (a
      ``cooldown`` row says why), and waited for when none can;
    - every try holds a slot of its provider's and model's bounds (providers/limits.py).
    """
    scope = scope_for(ctx.run_id)
    shaping = key_params(params, settings)
    wanted = cache_wanted(settings.cache, scope.cache, float(shaping["temperature"]))
    call_cache = open_cache(settings) if wanted else None
    cooldowns = shared_cooldowns(settings)

    def _bench_key(worker: WorkerSpec) -> str:
        # Per endpoint too: another base URL is another account or server, with its own limits.
        return f"{worker.model_label}@{endpoint_of(worker.provider, settings)}"
    limits = shared_limits(settings)
    budget = scope.budget
    ticket: int | None = None
    request = request_text(messages, settings)

    def write(worker: WorkerSpec, origin: str | None, **fields: Any) -> None:
        row = CallRow(
            run_id=ctx.run_id,
            candidate_id=ctx.candidate_id,
            provider=worker.provider,
            model=worker.model,
            role=worker.role,
            purpose=ctx.purpose,
            fallback_from=origin,
            **fields,
        )
        store.write("calls", [row])
        count_call(row)

    ready = [w for w in workers if cooldowns.remaining(_bench_key(w))[0] == 0]
    benched = sorted((w for w in workers if w not in ready), key=lambda w: cooldowns.remaining(_bench_key(w))[0])
    if ready:
        for worker in benched:
            left, why = cooldowns.remaining(_bench_key(worker))
            write(
                worker, None, attempt=0, ok=False, error_kind="cooldown",
                error=f"skipped while cooling down ({why}); {left:.1f} s left",
            )
    order = [*ready, *benched]

    errors: list[str] = []
    fallback_from: str | None = None
    try:
        for index, worker in enumerate(order):
            provider = provider_for(ctx.run_id, worker, settings)
            key = None
            if call_cache is not None and getattr(provider, "cacheable", True):
                started = time.perf_counter()
                key = cache_key(
                    provider=worker.provider, model=worker.model, endpoint=endpoint_of(worker.provider, settings),
                    messages=messages, params=shaping, sample=scope.sample,
                )
                hit = call_cache.get(key)
                if hit is not None:
                    completion = hit.model_copy(update={"cost_usd": 0.0, "latency_s": time.perf_counter() - started})
                    write(
                        worker, fallback_from, attempt=1, ok=True, cached=True,
                        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                        latency_s=completion.latency_s, cost_usd=0.0, response_id=completion.response_id,
                        request=request, reply=_capped(completion.text, settings),
                    )
                    return completion, worker
            left, _ = cooldowns.remaining(_bench_key(worker))
            if left > 0:  # every worker left is cooling down: wait for this one, the first back
                time.sleep(min(left, settings.retry_max_delay_s))
            if budget is not None and ticket is None:
                ticket = budget.reserve(ctx.run_id, _prompt_estimate(messages, worker, settings))
            rest = order[index + 1 :]

            def give_up(exc: ProviderError, worker: WorkerSpec = worker, rest: list[WorkerSpec] = rest) -> bool:
                """Stop retrying a model that is cooling down while a fallback is ready."""
                if cooldowns.remaining(_bench_key(worker))[0] == 0:
                    return False
                return any(cooldowns.remaining(_bench_key(o))[0] == 0 for o in rest)

            def record(outcome: TryOutcome, worker: WorkerSpec = worker, origin: str | None = fallback_from) -> None:
                completion = outcome.completion
                error = redact(outcome.error, settings) if outcome.error else None
                if not outcome.ok:
                    benched_for = cooldowns.record_failure(
                        _bench_key(worker), outcome.error_kind or "error", outcome.retry_after_s
                    )
                    if benched_for is not None:
                        error = f"{error}; cooldown: {benched_for}"
                elif budget is not None and completion is not None:
                    budget.charge(
                        ctx.run_id, worker.model_label,
                        completion.prompt_tokens + completion.completion_tokens, completion.cost_usd,
                    )
                write(
                    worker, origin, attempt=outcome.attempt, ok=outcome.ok, error_kind=outcome.error_kind,
                    error=error,
                    prompt_tokens=completion.prompt_tokens if completion else 0,
                    completion_tokens=completion.completion_tokens if completion else 0,
                    latency_s=outcome.latency_s,
                    cost_usd=completion.cost_usd if completion else None,
                    response_id=completion.response_id if completion else None,
                    request=request, reply=_capped(completion.text, settings) if completion else None,
                )

            try:
                completion = complete_with_retries(
                    provider,
                    messages,
                    worker.model,
                    settings=settings,
                    on_try=record,
                    limits=limits,
                    give_up=give_up,
                    task_id=ctx.task_id,
                    **params,
                )
            except ProviderError as exc:
                errors.append(f"{worker.model_label}: {exc.kind}: {redact(str(exc), settings)}")
                fallback_from = worker.label
                continue
            if key is not None and call_cache is not None:
                call_cache.put(key, completion)  # only successes: an error is never cached
            return completion, worker
    finally:
        if budget is not None and ticket is not None:
            budget.finish(ticket)
    raise AllWorkersFailed("; ".join(errors) or "no worker to call")
