"""Worker specs: parsing ``PROVIDER:MODEL[:ROLE]``, allow-list checks, and pre-flight before any work."""

from __future__ import annotations

from orchestrator.errors import UserInputError
from orchestrator.records import WorkerSpec
from orchestrator.settings import Settings
from providers.base import create_provider, provider_names
from providers.pricing import price_table

#: ``PROVIDER:MODEL[:ROLE]`` as the CLI and settings give workers (the parsing lives on the record).
parse_worker = WorkerSpec.parse


def rejection_reason(worker: WorkerSpec, settings: Settings) -> str | None:
    """Why a worker's provider is not allowed, or None when it is."""
    if worker.provider not in provider_names():
        return f"unknown provider {worker.provider!r}; choose one of: {', '.join(provider_names())}"
    if worker.provider not in settings.allowed_providers:
        return f"provider {worker.provider!r} is not in the allow-list ({', '.join(settings.allowed_providers)})"
    return None  # a provider's own model rules (Ollama's allow-list) are its check_model, run by preflight


def preflight(workers: list[WorkerSpec], settings: Settings) -> None:
    """Fail before any work starts: unknown or disallowed providers, missing keys, bad replay files."""
    if not workers:
        raise UserInputError("no workers; pass --worker PROVIDER:MODEL or --provider/--model")
    price_table(settings)  # a broken ORCH_PRICES_FILE fails here, not after the first paid call
    for worker in workers:
        reason = rejection_reason(worker, settings)
        if reason:
            raise UserInputError(f"worker {worker.label}: {reason}")
        provider = create_provider(worker.provider, settings)  # raises ConfigurationError on a missing key
        check = getattr(provider, "check_model", None)
        if callable(check):
            check(worker.model)
