"""The ``groq`` provider: Groq's OpenAI-style Chat Completions through the official ``groq`` SDK."""

from __future__ import annotations

from typing import Any

from orchestrator.settings import Settings
from providers.base import PROVIDERS
from providers.credentials import ProviderEnv, base_url
from providers.openai_provider import ChatCompletionsProvider
from providers.sdk_support import require_key

ENV = ProviderEnv(key=("GROQ_API_KEY",), base_url=("ORCH_GROQ_BASE_URL", "GROQ_BASE_URL"))


class GroqProvider(ChatCompletionsProvider):
    name = "groq"
    sdk_module = "groq"
    client_class = "Groq"

    def budget(self, max_tokens: int) -> dict[str, Any]:
        return {"max_completion_tokens": max_tokens}  # Groq's name; max_tokens is deprecated there


@PROVIDERS.register("groq")
def _factory(settings: Settings) -> GroqProvider:
    return GroqProvider(settings, api_key=require_key("groq", settings), base_url=base_url("groq", settings))
