"""The Gemini API protocol: ``POST /{version}/models/{model}:generateContent`` with ``x-goog-api-key``.

Google reports errors as ``{"error": {"code", "message", "status", "details"}}``; a bad key is a 400
with an ``ErrorInfo`` reason ``API_KEY_INVALID``, and a 429 carries its delay in a ``RetryInfo``
detail (``"retryDelay": "7s"``), not in a Retry-After header.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.wire.server import FakeServer, Recorded, Reply

_ids = itertools.count(1)
_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):generateContent$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ROLES = {"user": "user", "model": "assistant"}


def _parts_text(content: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in content.get("parts", []))


class FakeGemini(FakeServer):
    provider = "gemini"

    @property
    def base_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        return {"ORCH_GEMINI_BASE_URL": self.base_url, "GEMINI_API_KEY": self.api_key}

    def is_model_call(self, request: Recorded) -> bool:
        return request.method == "POST" and _PATH.match(request.path) is not None

    def model_of(self, request: Recorded) -> str:
        match = _PATH.match(request.path)
        return match["model"] if match else ""

    def is_authorized(self, request: Recorded) -> bool:
        return request.headers.get("x-goog-api-key") == self.api_key

    def messages(self, request: Recorded) -> list[dict[str, str]]:
        body = request.json
        system = body.get("systemInstruction")
        head = [{"role": "system", "content": _parts_text(system)}] if system else []
        return head + [{"role": _ROLES[c["role"]], "content": _parts_text(c)} for c in body["contents"]]

    def invalid(self, request: Recorded) -> Reply | None:
        body = request.json
        if not isinstance(body, dict) or not body.get("contents"):
            return self.error(400, "* GenerateContentRequest.contents: contents is not specified")
        return None

    def unauthorized(self, request: Recorded) -> Reply:
        # Google answers a bad key with 400, not 401.
        error_info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return self.error(400, "API key not valid. Please pass a valid API key.", details=[error_info])

    def unknown_model(self, model: str) -> Reply:
        return self.error(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
        )

    def reply(
        self,
        text: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        response_id: str | None = None,
    ) -> Reply:
        def body(request: Recorded) -> dict[str, Any]:
            prompt = self.prompt_words(request) if prompt_tokens is None else prompt_tokens
            completion = len(text.split()) if completion_tokens is None else completion_tokens
            return {
                "candidates": [
                    {
                        "content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": completion,
                    "totalTokenCount": prompt + completion,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
                },
                "modelVersion": self.model_of(request),
                "responseId": response_id or f"fakeResp{next(_ids):06d}",
            }

        return Reply(body=body)

    def error(
        self, status: int, message: str, *, retry_after: float | None = None, details: list[Any] | None = None
    ) -> Reply:
        details = list(details or [])
        if retry_after is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
            )
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
        if details:
            error["details"] = details
        return Reply(status=status, body={"error": error})
