"""The Ollama protocol: ``POST /api/chat`` (non-streaming), no key; errors are ``{"error": "..."}``."""

from __future__ import annotations

from typing import Any

from tests.wire.server import FakeServer, Recorded, Reply


class FakeOllama(FakeServer):
    provider = "ollama"

    @property
    def base_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        return {"OLLAMA_HOST": self.base_url}

    def is_model_call(self, request: Recorded) -> bool:
        return request.method == "POST" and request.path == "/api/chat"

    def model_of(self, request: Recorded) -> str:
        return str((request.json or {}).get("model", ""))

    def is_authorized(self, request: Recorded) -> bool:
        return True  # a local Ollama server takes no key

    def messages(self, request: Recorded) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in request.json["messages"]]

    def invalid(self, request: Recorded) -> Reply | None:
        body = request.json
        if not isinstance(body, dict) or not body.get("model"):
            return self.error(400, "model is required")
        return None

    def unknown_model(self, model: str) -> Reply:
        return self.error(404, f'model "{model}" not found, try pulling it first')

    def reply(
        self,
        text: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        response_id: str | None = None,
    ) -> Reply:
        # Ollama answers carry no id; ``response_id`` is accepted for a uniform signature and ignored.
        def body(request: Recorded) -> dict[str, Any]:
            return {
                "model": self.model_of(request),
                "created_at": "2025-01-01T00:00:00.000000Z",
                "message": {"role": "assistant", "content": text},
                "done_reason": "stop",
                "done": True,
                "total_duration": 5_000_000,
                "load_duration": 1_000_000,
                "prompt_eval_count": self.prompt_words(request) if prompt_tokens is None else prompt_tokens,
                "prompt_eval_duration": 1_000_000,
                "eval_count": len(text.split()) if completion_tokens is None else completion_tokens,
                "eval_duration": 3_000_000,
            }

        return Reply(body=body)

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return Reply(status=status, body={"error": message}, headers=headers)
