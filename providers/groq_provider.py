"""The ``groq`` provider: Groq's OpenAI-style Chat Completions through the official ``groq`` SDK."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import groq

from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import PROVIDERS
from providers.openai_provider import chat_completion, chat_messages
from providers.sdk_support import Failures, generation_params, require_key


class GroqProvider:
    name = "groq"

    def __init__(self, settings: Settings, *, api_key: str) -> None:
        self.settings = settings
        self.failures = Failures(self.name, settings, settings.groq_base_url)
        self.client = groq.Groq(
            api_key=api_key,
            base_url=settings.groq_base_url,
            timeout=settings.call_timeout_s,
            max_retries=0,  # providers.calling owns the one retry loop
        )

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        max_tokens, temperature = generation_params(self.settings, params)
        started = time.perf_counter()
        with self.failures.translating(lambda exc: self.failures.from_stainless(exc, groq, model=model)):
            response = self.client.chat.completions.create(
                model=model,
                messages=chat_messages(messages),
                temperature=temperature,
                max_completion_tokens=max_tokens,  # Groq's name; max_tokens is deprecated there
            )
        return chat_completion(
            response,
            provider=self.name,
            model=model,
            latency_s=time.perf_counter() - started,
            failures=self.failures,
        )


@PROVIDERS.register("groq")
def _factory(settings: Settings) -> GroqProvider:
    return GroqProvider(settings, api_key=require_key("groq", settings))
