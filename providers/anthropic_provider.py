"""The ``anthropic`` provider: the Messages API through the official ``anthropic`` SDK."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import PROVIDERS
from providers.credentials import ProviderEnv, base_url
from providers.sdk_support import Failures, generation_params, require_key

ENV = ProviderEnv(key=("ANTHROPIC_API_KEY",), base_url=("ORCH_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"))


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[Any]]:
    """The Messages API takes the system prompt as a separate field, the turns as user/assistant."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
    return system or None, turns


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings, *, api_key: str) -> None:
        import anthropic  # here, not above: reading this module's ENV costs no SDK import

        self.sdk = anthropic
        self.settings = settings
        endpoint = base_url(self.name, settings)
        self.failures = Failures(self.name, settings, endpoint)
        self.client = anthropic.Anthropic(
            api_key=api_key,
            base_url=endpoint,
            timeout=settings.call_timeout_s,
            max_retries=0,  # providers.calling owns the one retry loop
        )

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        max_tokens, _ = generation_params(self.settings, params)
        system, turns = split_system(messages)
        # Anthropic deprecated sampling parameters (newer models answer 400 to any temperature) and the
        # SDK dropped them from its signature: send one only when the caller asks, in the raw body.
        temperature = params.get("temperature")
        extra_body = {"temperature": float(temperature)} if temperature is not None else None
        started = time.perf_counter()
        with self.failures.translating(lambda exc: self.failures.from_stainless(exc, self.sdk, model=model)):
            response = self.client.messages.create(
                model=model,
                messages=turns,
                max_tokens=max_tokens,
                system=system if system else self.sdk.omit,
                extra_body=extra_body,
            )
        latency = time.perf_counter() - started
        if response.content is None or response.usage is None:
            raise self.failures.bad_response("no content or usage in the message")
        return Completion(
            # Only text blocks are the answer; thinking blocks and the like are not.
            text="".join(block.text for block in response.content if block.type == "text"),
            provider=self.name,
            model=model,
            prompt_tokens=response.usage.input_tokens or 0,
            completion_tokens=response.usage.output_tokens or 0,
            latency_s=latency,
            response_id=response.id,
        )


@PROVIDERS.register("anthropic")
def _factory(settings: Settings) -> AnthropicProvider:
    return AnthropicProvider(settings, api_key=require_key("anthropic", settings))
