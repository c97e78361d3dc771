"""Groq's protocol: OpenAI Chat Completions under ``/openai/v1``, with Groq's extra usage fields."""

from __future__ import annotations

from typing import Any

from tests.wire.fake_openai import FakeOpenAI
from tests.wire.server import Recorded


class FakeGroq(FakeOpenAI):
    provider = "groq"
    prefix = "/openai/v1"

    @property
    def base_url(self) -> str:
        # The groq SDK adds /openai/v1 itself.
        return self.url

    def env(self) -> dict[str, str]:
        return {"GROQ_BASE_URL": self.base_url, "GROQ_API_KEY": self.api_key}

    def completion_body(
        self, request: Recorded, text: str, prompt: int, completion: int, response_id: str | None
    ) -> dict[str, Any]:
        body = super().completion_body(request, text, prompt, completion, response_id)
        body["usage"].update(queue_time=0.01, prompt_time=0.002, completion_time=0.02, total_time=0.022)
        body["x_groq"] = {"id": f"req_{body['id']}"}
        return body
