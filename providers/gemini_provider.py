"""The ``gemini`` provider: the Gemini API through Google's maintained ``google-genai`` SDK.

(``google-generativeai`` is deprecated in favour of ``google-genai``; see docs/providers.md.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import PROVIDERS, ProviderError
from providers.credentials import ProviderEnv, base_url, key_env_label
from providers.sdk_support import (
    Failures,
    error_detail,
    generation_params,
    require_key,
    retry_after_s,
)

if TYPE_CHECKING:
    from google.genai import types

ENV = ProviderEnv(key=("GEMINI_API_KEY", "GOOGLE_API_KEY"), base_url=("ORCH_GEMINI_BASE_URL",))

_ROLES = {"user": "user", "assistant": "model"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def to_contents(messages: Sequence[Message]) -> tuple[str | None, list[types.Content]]:
    """System messages become the system instruction; the turns become user/model contents."""
    from google.genai import types  # the SDK loads on first use: reading ENV costs no import

    system = "\n\n".join(m.content for m in messages if m.role == "system")
    contents = [
        types.Content(role=_ROLES[m.role], parts=[types.Part(text=m.content)])
        for m in messages
        if m.role != "system"
    ]
    return system or None, contents


def _details(body: object) -> list[dict[str, Any]]:
    """The ``details`` list of a Google error body (``{"error": {"code", "message", "details"}}``)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def retry_delay_s(body: object) -> float | None:
    """Google puts a 429's delay in a ``google.rpc.RetryInfo`` detail (``"retryDelay": "7.5s"``)."""
    for item in _details(body):
        if str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _reasons(body: object) -> set[str]:
    return {str(item["reason"]) for item in _details(body) if item.get("reason")}


class GeminiProvider:
    name = "gemini"

    def __init__(self, settings: Settings, *, api_key: str) -> None:
        from google import genai
        from google.genai import errors, types

        self.errors, self.types = errors, types
        self.settings = settings
        endpoint = base_url(self.name, settings)
        self.failures = Failures(self.name, settings, endpoint)
        self.client = genai.Client(
            api_key=api_key,
            vertexai=False,  # the Gemini Developer API, whatever GOOGLE_GENAI_USE_VERTEXAI says
            http_options=types.HttpOptions(
                base_url=endpoint,
                timeout=int(settings.call_timeout_s * 1000),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),  # providers.calling owns the retry loop
            ),
        )

    def _translate(self, exc: Exception, model: str) -> ProviderError | None:
        if isinstance(exc, self.errors.APIError):
            headers = getattr(exc.response, "headers", None)
            if exc.code == 400 and "API_KEY_INVALID" in _reasons(exc.details):
                # Google answers a bad key with 400 INVALID_ARGUMENT, not 401.
                return self.failures.permanent(
                    "auth", f"HTTP 400 API_KEY_INVALID: {exc.message}; check {key_env_label(self.name)}"
                )
            return self.failures.from_status(
                exc.code,
                exc.message or error_detail(exc.details),
                model=model,
                retry_after=retry_delay_s(exc.details) or retry_after_s(headers),
            )
        return self.failures.from_transport(exc)

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        max_tokens, temperature = generation_params(self.settings, params)
        system, contents = to_contents(messages)
        config = self.types.GenerateContentConfig(
            system_instruction=system, max_output_tokens=max_tokens, temperature=temperature
        )
        started = time.perf_counter()
        with self.failures.translating(lambda exc: self._translate(exc, model)):
            response = self.client.models.generate_content(
                model=model,
                contents=contents,
                config=config,
            )
        latency = time.perf_counter() - started
        if not response.candidates:
            feedback = response.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                raise self.failures.permanent("blocked", f"the prompt was blocked: {feedback.block_reason}")
            raise self.failures.bad_response("no candidates in the answer")
        content = response.candidates[0].content
        parts = (content.parts if content else None) or []
        usage = response.usage_metadata
        return Completion(
            # Thought summaries are not the answer.
            text="".join(part.text for part in parts if part.text and not part.thought),
            provider=self.name,
            model=model,
            prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
            # Thinking tokens are billed as output tokens.
            completion_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0))
            if usage
            else 0,
            latency_s=latency,
            response_id=response.response_id,
        )


@PROVIDERS.register("gemini")
def _factory(settings: Settings) -> GeminiProvider:
    return GeminiProvider(settings, api_key=require_key("gemini", settings))
