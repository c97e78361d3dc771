"""The ``openai`` provider: Chat Completions through the official ``openai`` SDK.

With ``OPENAI_BASE_URL`` (or ``ORCH_OPENAI_BASE_URL``) it talks to any OpenAI-compatible server:
vLLM, llama.cpp's server, llama-cpp-python's server.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any, Literal

from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import PROVIDERS
from providers.credentials import ProviderEnv, base_url
from providers.sdk_support import Failures, generation_params, require_key

ENV = ProviderEnv(key=("OPENAI_API_KEY",), base_url=("ORCH_OPENAI_BASE_URL", "OPENAI_BASE_URL"))

TokenParam = Literal["max_tokens", "max_completion_tokens"]


def chat_messages(messages: Sequence[Message]) -> list[Any]:
    """Our roles are the Chat Completions roles, one to one (``Any``: the openai and groq SDKs each
    declare their own TypedDicts for the same JSON)."""
    return [{"role": m.role, "content": m.content} for m in messages]


def chat_completion(
    response: Any, *, provider: str, model: str, latency_s: float, failures: Failures
) -> Completion:
    """A Chat Completions answer (OpenAI's or Groq's, same shape) as our record.

    ``model`` is the name we asked for, not the dated snapshot the API reports, so that it matches
    the price table. A missing ``usage`` (some compatible servers omit it) counts as 0 tokens.
    """
    if not getattr(response, "choices", None):
        raise failures.bad_response("no choices in the answer")
    message = response.choices[0].message
    if message is None:
        raise failures.bad_response("the first choice has no message")
    usage = response.usage
    return Completion(
        text=message.content or "",
        provider=provider,
        model=model,
        prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        latency_s=latency_s,
        response_id=response.id,
    )


class ChatCompletionsProvider:
    """A provider over an SDK with OpenAI's Chat Completions surface (``openai``, ``groq``).

    Subclasses name the SDK module (its client class and its error classes) and the field that
    carries the output budget. The SDK is imported by the first provider made, not with this module,
    so that reading a provider's ``ENV`` costs no SDK import.
    """

    name: str
    sdk_module: str  # the SDK: its OpenAI/Groq client class and its stainless error classes
    client_class: str

    def __init__(self, settings: Settings, *, api_key: str, base_url: str | None) -> None:
        self.settings = settings
        self.sdk = importlib.import_module(self.sdk_module)
        self.failures = Failures(self.name, settings, base_url)
        self.client = getattr(self.sdk, self.client_class)(
            api_key=api_key,
            base_url=base_url,
            timeout=settings.call_timeout_s,
            max_retries=0,  # providers.calling owns the one retry loop
        )

    def budget(self, max_tokens: int) -> dict[str, Any]:
        return {"max_tokens": max_tokens}

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        max_tokens, temperature = generation_params(self.settings, params)
        started = time.perf_counter()
        with self.failures.translating(lambda exc: self.failures.from_stainless(exc, self.sdk, model=model)):
            response = self.client.chat.completions.create(
                model=model,
                messages=chat_messages(messages),
                temperature=temperature,
                **self.budget(max_tokens),
            )
        return chat_completion(
            response,
            provider=self.name,
            model=model,
            latency_s=time.perf_counter() - started,
            failures=self.failures,
        )


class OpenAIProvider(ChatCompletionsProvider):
    name = "openai"
    sdk_module = "openai"
    client_class = "OpenAI"

    def __init__(self, settings: Settings, *, api_key: str, token_param: TokenParam) -> None:
        # Which field carries the output budget: api.openai.com wants max_completion_tokens (its
        # reasoning models reject max_tokens); compatible servers know only max_tokens.
        self.token_param = token_param
        super().__init__(settings, api_key=api_key, base_url=base_url(self.name, settings))

    def budget(self, max_tokens: int) -> dict[str, Any]:
        return {self.token_param: max_tokens}


@PROVIDERS.register("openai")
def _factory(settings: Settings) -> OpenAIProvider:
    return OpenAIProvider(
        settings,
        api_key=require_key("openai", settings),
        token_param="max_tokens" if base_url("openai", settings) else "max_completion_tokens",
    )
