"""The one retry loop around a provider call: every try is reported to the caller."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import Provider, ProviderError, TransientProviderError
from providers.limits import CallLimits
from providers.pricing import price_completion


class TryOutcome(BaseModel):
    """One try of one model call, successful or not."""

    attempt: int
    ok: bool
    latency_s: float
    error_kind: str | None = None
    error: str | None = None
    retry_after_s: float | None = None
    completion: Completion | None = None


def _wait(settings: Settings) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(
        initial=settings.retry_base_delay_s,
        max=settings.retry_max_delay_s,
        jitter=settings.retry_base_delay_s,
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            return min(float(retry_after), settings.retry_max_delay_s)
        return backoff(state)

    return wait


def complete_with_retries(
    provider: Provider,
    messages: Sequence[Message],
    model: str,
    *,
    settings: Settings,
    on_try: Callable[[TryOutcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limits: CallLimits | None = None,
    give_up: Callable[[ProviderError], bool] | None = None,
    **params: Any,
) -> Completion:
    """Call the provider, retrying transient errors with backoff; raise the last error when exhausted.

    Waits are exponential with jitter, or what the server asked for (Retry-After), capped at
    ``settings.retry_max_delay_s``. ``sleep`` performs the waits (tests pass a recorder).
    ``limits``: each try holds a slot of the provider's and model's bounds (a 429 tells them to
    back off); the waits between tries hold none. ``give_up(error)``: True stops retrying early
    (the caller has a better place to send the call, such as a fallback while this model cools down).
    """
    attempt = 0

    def one_try() -> Completion:
        nonlocal attempt
        attempt += 1
        started = time.perf_counter()
        try:
            if limits is None:
                completion = provider.complete(messages, model, **params)
            else:
                with limits.slot(provider.name, model) as slot:
                    try:
                        completion = provider.complete(messages, model, **params)
                    except ProviderError as exc:
                        if exc.kind == "rate_limit":
                            slot.saw_rate_limit(exc.retry_after_s)
                        raise
        except ProviderError as exc:
            if on_try:
                on_try(
                    TryOutcome(
                        attempt=attempt,
                        ok=False,
                        latency_s=time.perf_counter() - started,
                        error_kind=exc.kind,
                        error=str(exc)[:500],
                        retry_after_s=exc.retry_after_s,
                    )
                )
            raise
        completion = price_completion(completion, settings)
        if on_try:
            on_try(
                TryOutcome(attempt=attempt, ok=True, latency_s=completion.latency_s, completion=completion)
            )
        return completion

    retrying = Retrying(
        stop=stop_after_attempt(settings.call_retries + 1),
        wait=_wait(settings),
        retry=retry_if_exception(
            lambda e: isinstance(e, TransientProviderError) and not (give_up is not None and give_up(e))
        ),
        sleep=sleep,
        reraise=True,
    )
    return retrying(one_try)
