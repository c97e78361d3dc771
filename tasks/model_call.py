"""Model calls from tasks: retries through providers.calling, every try a `calls` row, fallback by role."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from orchestrator.records import CallRow, Completion, Message, WorkerSpec
from orchestrator.settings import Settings, redact
from orchestrator.traces import TraceStore
from providers.base import Provider, ProviderError, create_provider
from providers.calling import TryOutcome, complete_with_retries


class CallContext(BaseModel):
    """Where a call belongs: stored with every try."""

    run_id: str
    task_id: str
    purpose: str
    candidate_id: str | None = None


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

    Returns the completion and the worker that produced it. Raises :class:`AllWorkersFailed`.
    """
    errors: list[str] = []
    fallback_from: str | None = None
    for worker in workers:
        provider = provider_for(ctx.run_id, worker, settings)

        def record(outcome: TryOutcome, worker: WorkerSpec = worker, origin: str | None = fallback_from) -> None:
            completion = outcome.completion
            store.write(
                "calls",
                [
                    CallRow(
                        run_id=ctx.run_id,
                        candidate_id=ctx.candidate_id,
                        provider=worker.provider,
                        model=worker.model,
                        role=worker.role,
                        purpose=ctx.purpose,
                        attempt=outcome.attempt,
                        ok=outcome.ok,
                        error_kind=outcome.error_kind,
                        error=redact(outcome.error, settings) if outcome.error else None,
                        prompt_tokens=completion.prompt_tokens if completion else 0,
                        completion_tokens=completion.completion_tokens if completion else 0,
                        latency_s=outcome.latency_s,
                        cost_usd=completion.cost_usd if completion else None,
                        response_id=completion.response_id if completion else None,
                        fallback_from=origin,
                    )
                ],
            )

        try:
            completion = complete_with_retries(
                provider,
                messages,
                worker.model,
                settings=settings,
                on_try=record,
                task_id=ctx.task_id,
                **params,
            )
            return completion, worker
        except ProviderError as exc:
            errors.append(f"{worker.model_label}: {exc.kind}: {redact(str(exc), settings)}")
            fallback_from = worker.label
    raise AllWorkersFailed("; ".join(errors) or "no worker to call")
