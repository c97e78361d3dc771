"""The provider interface, its error kinds, and the provider registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from orchestrator.records import Completion, Message
from orchestrator.registry import Registry
from orchestrator.settings import Settings


@runtime_checkable
class Provider(Protocol):
    """One model API. Implementations raise :class:`ProviderError` subclasses, never SDK errors."""

    name: str

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        """One model call, no retries (the caller owns the single retry loop)."""
        ...


class ProviderError(Exception):
    """A failed model call. ``kind`` is a short stable label stored in the calls table."""

    retryable = False

    def __init__(self, message: str, *, kind: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s


class TransientProviderError(ProviderError):
    """Timeouts, connection errors, 429, 5xx, malformed bodies: worth another try."""

    retryable = True


class PermanentProviderError(ProviderError):
    """401/403, 400, unknown model, a missing key: trying again cannot help."""


#: name -> factory(settings) -> Provider
PROVIDERS: Registry[Provider] = Registry("provider")


def create_provider(name: str, settings: Settings) -> Provider:
    _load_builtin_providers()
    return PROVIDERS.create(name, settings)


def provider_names() -> list[str]:
    _load_builtin_providers()
    return PROVIDERS.names()


def _load_builtin_providers() -> None:
    # Importing the modules runs their registry entries; kept lazy so that an SDK
    # that is not installed only matters to the user who asks for that provider.
    import providers.builtin  # noqa: F401
