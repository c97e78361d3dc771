"""What the SDK-backed providers share: the key check, call parameters, and one failure table.

Every SDK reports failures in its own classes; this module turns HTTP statuses, transport errors
and unreadable bodies into our :class:`ProviderError` kinds, so that retry decisions and the
``calls`` table mean the same thing for every provider. Messages go through
:func:`providers.credentials.redact`, because some APIs quote the key they were given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import httpx2
import pydantic

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from providers.base import PermanentProviderError, ProviderError, TransientProviderError
from providers.credentials import api_key, key_env_label, redact

# The SDKs sit on two HTTP stacks: httpx (groq, ollama) and its fork httpx2 (openai, anthropic, google-genai).
_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
_TRANSPORT = (httpx.TransportError, httpx2.TransportError, ConnectionError)
_UNREADABLE = (json.JSONDecodeError, pydantic.ValidationError)


def require_key(provider: str, settings: Settings) -> str:
    """The provider's key, or a ConfigurationError naming the variable to set (before any work starts)."""
    value = api_key(provider, settings)
    if not value:
        raise ConfigurationError(
            f"{provider}: {key_env_label(provider)} is not set; export it or choose another provider"
        )
    return value


def generation_params(settings: Settings, params: Mapping[str, Any]) -> tuple[int, float]:
    """(max_tokens, temperature) for one call: the caller's values, else the settings' defaults.

    Other keys in ``params`` (such as ``task_id``, which the replay provider uses) do not concern a
    remote model and are ignored.
    """
    max_tokens = params.get("max_tokens")
    temperature = params.get("temperature")
    return (
        int(max_tokens) if max_tokens is not None else settings.max_tokens,
        float(temperature) if temperature is not None else settings.temperature,
    )


def display_url(url: str) -> str:
    """A URL fit for a message: any user:password part removed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, or ``retry-after`` (seconds or a date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_detail(body: object) -> str:
    """The human part of an error body, whatever the provider's shape.

    OpenAI/Groq ``{"error": {"message"}}`` (the SDK may hand over the inner object), Anthropic
    ``{"type": "error", "error": {"type", "message"}}``, Google ``{"error": {"code", "message",
    "status"}}``, Ollama ``{"error": "..."}``.
    """
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str):
            return message
        inner = body.get("error")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, Mapping):
            return error_detail(inner)
    if isinstance(body, str | bytes):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text.strip()
    return ""


def error_code(body: object) -> str | None:
    if isinstance(body, Mapping):
        code = body.get("code")
        if isinstance(code, str):
            return code
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return error_code(inner)
    return None


class Failures:
    """Builds one provider's errors: consistent kinds, a useful message, no secret in it."""

    def __init__(self, provider: str, settings: Settings, base_url: str | None) -> None:
        self.provider = provider
        self.settings = settings
        self.endpoint = display_url(base_url) if base_url else f"the {provider} API"

    def _message(self, text: str) -> str:
        text = " ".join(text.split())  # one line
        if len(text) > 400:
            text = text[:400] + "..."
        return redact(f"{self.provider}: {text}", self.settings)

    def transient(self, kind: str, text: str, *, retry_after: float | None = None) -> TransientProviderError:
        return TransientProviderError(self._message(text), kind=kind, retry_after_s=retry_after)

    def permanent(self, kind: str, text: str) -> PermanentProviderError:
        return PermanentProviderError(self._message(text), kind=kind)

    def timeout(self) -> TransientProviderError:
        return self.transient(
            "timeout",
            f"no answer from {self.endpoint} within {self.settings.call_timeout_s:g} s (ORCH_CALL_TIMEOUT_S)",
        )

    def connection(self, exc: BaseException) -> TransientProviderError:
        return self.transient("connection", f"cannot reach {self.endpoint}: {type(exc).__name__}: {exc}")

    def bad_response(self, what: str) -> TransientProviderError:
        return self.transient("bad_response", f"unreadable answer from {self.endpoint}: {what}")

    def from_status(
        self,
        status: int,
        detail: str,
        *,
        model: str,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> ProviderError:
        """The one table from an HTTP status to an error kind and whether to try again."""
        head = f"HTTP {status} for model {model!r}: {detail or 'no detail'}"
        if status == 429 and code == "insufficient_quota":
            return self.permanent("quota", f"{head}; the account has no credit left")
        if status == 429:
            return self.transient("rate_limit", head, retry_after=retry_after)
        if status in (401, 403):
            return self.permanent("auth", f"{head}; check {key_env_label(self.provider)}")
        if status == 404:
            return self.permanent("unknown_model", f"{head}; check the model name and {self.endpoint}")
        if status == 408:
            return self.transient("timeout", head, retry_after=retry_after)
        if status == 409:
            return self.transient("conflict", head, retry_after=retry_after)
        if status >= 500:
            return self.transient("server_error", head, retry_after=retry_after)
        return self.permanent("bad_request", head)

    @contextmanager
    def translating(self, translate: Callable[[Exception], ProviderError | None]) -> Iterator[None]:
        """Around an SDK call: what it raises leaves as our error; exceptions nobody knows pass unchanged.

        ``from None``: the SDK exception holds the request, and a traceback printed later should not
        carry anything the message itself does not.
        """
        try:
            yield
        except ProviderError:
            raise
        except Exception as exc:
            error = translate(exc)
            if error is None:
                raise
            raise error from None

    def from_transport(self, exc: BaseException) -> ProviderError | None:
        """Timeouts, refused connections, unreadable bodies, whatever SDK raised them; else None."""
        if isinstance(exc, _TIMEOUTS):
            return self.timeout()
        if isinstance(exc, _TRANSPORT):
            return self.connection(exc)
        if isinstance(exc, _UNREADABLE):
            return self.bad_response(f"{type(exc).__name__}: {exc}")
        return None

    def from_stainless(self, exc: BaseException, sdk: ModuleType, *, model: str) -> ProviderError | None:
        """Errors of the openai, anthropic and groq SDKs, which share one generated exception tree."""
        if isinstance(exc, sdk.APITimeoutError):
            return self.timeout()
        if isinstance(exc, sdk.APIConnectionError):
            return self.connection(exc.__cause__ or exc)
        if isinstance(exc, sdk.APIResponseValidationError):
            return self.bad_response(str(exc))
        if isinstance(exc, sdk.APIStatusError):
            return self.from_status(
                exc.status_code,
                error_detail(exc.body) or exc.message,
                model=model,
                retry_after=retry_after_s(exc.response.headers),
                code=error_code(exc.body),
            )
        return self.from_transport(exc)
