"""The ``groq`` provider: Groq's OpenAI-style Chat Completions through the official ``groq`` SDK."""

from __future__ import annotations

from typing import Any

import groq

from orchestrator.settings import Settings
from providers.base import PROVIDERS
from providers.openai_provider import ChatCompletionsProvider
from providers.sdk_support import require_key


class GroqProvider(ChatCompletionsProvider):
    name = "groq"
    sdk = groq
    client_class = "Groq"

    def budget(self, max_tokens: int) -> dict[str, Any]:
        return {"max_completion_tokens": max_tokens}  # Groq's name; max_tokens is deprecated there


@PROVIDERS.register("groq")
def _factory(settings: Settings) -> GroqProvider:
    return GroqProvider(settings, api_key=require_key("groq", settings), base_url=settings.groq_base_url)
