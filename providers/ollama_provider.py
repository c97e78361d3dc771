"""The ``ollama`` provider: a local (or remote) Ollama server through the official ``ollama`` SDK.

Only models in ``ORCH_ALLOWED_OLLAMA_MODELS`` may be used; Ollama is free, so cost is 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import ConfigurationError
from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import PROVIDERS, ProviderError
from providers.credentials import ProviderEnv, base_url
from providers.sdk_support import Failures, generation_params

ENV = ProviderEnv(base_url=("OLLAMA_HOST", "ORCH_OLLAMA_HOST"), default_base_url="http://127.0.0.1:11434")


class OllamaProvider:
    name = "ollama"

    def __init__(self, settings: Settings) -> None:
        import ollama  # here, not above: reading this module's ENV costs no SDK import

        self.sdk = ollama
        self.settings = settings
        host = base_url(self.name, settings)
        self.failures = Failures(self.name, settings, host)
        # The SDK has no retry loop of its own; a timeout of None would wait forever.
        self.client = ollama.Client(host=host, timeout=settings.call_timeout_s)

    def check_model(self, model: str) -> None:
        """Refuse a model outside the allow-list (domain.workers.preflight calls this before any work)."""
        allowed = self.settings.allowed_ollama_models
        if model not in allowed:
            raise ConfigurationError(
                f"ollama: model {model!r} is not allowed; choose one of {', '.join(allowed)} "
                "or extend ORCH_ALLOWED_OLLAMA_MODELS"
            )

    def _translate(self, exc: Exception, model: str) -> ProviderError | None:
        if isinstance(exc, self.sdk.ResponseError):
            if exc.status_code == 404:
                return self.failures.permanent(
                    "unknown_model", f"HTTP 404 for model {model!r}: {exc.error}; run `ollama pull {model}`"
                )
            # The SDK keeps no response headers, so a Retry-After from a proxy is lost here.
            return self.failures.from_status(exc.status_code, str(exc.error), model=model)
        if isinstance(exc, self.sdk.RequestError):
            return self.failures.permanent("bad_request", str(exc.error))
        return self.failures.from_transport(exc)

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        self.check_model(model)
        max_tokens, temperature = generation_params(self.settings, params)
        started = time.perf_counter()
        with self.failures.translating(lambda exc: self._translate(exc, model)):
            response = self.client.chat(
                model=model,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                options={"num_predict": max_tokens, "temperature": temperature},
                stream=False,
            )
        latency = time.perf_counter() - started
        return Completion(
            text=response.message.content or "",
            provider=self.name,
            model=model,
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
            latency_s=latency,
            response_id=None,  # Ollama gives an answer no id
        )


@PROVIDERS.register("ollama")
def _factory(settings: Settings) -> OllamaProvider:
    return OllamaProvider(settings)
