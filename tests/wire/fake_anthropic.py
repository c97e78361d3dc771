"""The Anthropic Messages protocol: ``POST /v1/messages`` with a key header and ``anthropic-version``."""

from __future__ import annotations

import itertools
from typing import Any

from tests.wire.server import FakeServer, Recorded, Reply

_ids = itertools.count(1)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _text(content: Any) -> str:
    """Message content is a string or a list of blocks; only text blocks matter here."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


class FakeAnthropic(FakeServer):
    provider = "anthropic"

    @property
    def base_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    def is_model_call(self, request: Recorded) -> bool:
        return request.method == "POST" and request.path == "/v1/messages"

    def model_of(self, request: Recorded) -> str:
        return str((request.json or {}).get("model", ""))

    def is_authorized(self, request: Recorded) -> bool:
        # Older SDKs send x-api-key; current ones send the key as a Bearer token. The API takes both.
        presented = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        return presented == self.api_key

    def messages(self, request: Recorded) -> list[dict[str, str]]:
        body = request.json
        system = body.get("system")
        head = [{"role": "system", "content": _text(system)}] if system else []
        return head + [{"role": m["role"], "content": _text(m["content"])} for m in body["messages"]]

    def invalid(self, request: Recorded) -> Reply | None:
        if "anthropic-version" not in request.headers:
            return self.error(400, "anthropic-version: header is required")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("max_tokens"), int):
            return self.error(400, "max_tokens: Field required")
        if not body.get("messages"):
            return self.error(400, "messages: Field required")
        return None

    def unknown_model(self, model: str) -> Reply:
        return self.error(404, f"model: {model}")

    def reply(
        self,
        text: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        response_id: str | None = None,
    ) -> Reply:
        def body(request: Recorded) -> dict[str, Any]:
            return {
                "id": response_id or f"msg_fake{next(_ids):06d}",
                "type": "message",
                "role": "assistant",
                "model": self.model_of(request),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": self.prompt_words(request) if prompt_tokens is None else prompt_tokens,
                    "output_tokens": len(text.split()) if completion_tokens is None else completion_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            }

        return Reply(body=body, headers={"request-id": f"req_fake{next(_ids)}"})

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        request_id = f"req_fake{next(_ids)}"
        headers = {"request-id": request_id}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        etype = _ERROR_TYPES.get(status, "api_error")
        return Reply(
            status=status,
            body={"type": "error", "error": {"type": etype, "message": message}, "request_id": request_id},
            headers=headers,
        )
