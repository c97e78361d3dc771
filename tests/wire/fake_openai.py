"""The OpenAI Chat Completions protocol: ``POST /v1/chat/completions`` with a Bearer key."""

from __future__ import annotations

import itertools
from typing import Any

from tests.wire.server import FakeServer, Recorded, Reply

_ids = itertools.count(1)

# (error type, error code) per status, as api.openai.com sends them.
_ERROR_SHAPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class FakeOpenAI(FakeServer):
    provider = "openai"
    prefix = "/v1"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": self.api_key}

    def is_model_call(self, request: Recorded) -> bool:
        return request.method == "POST" and request.path == f"{self.prefix}/chat/completions"

    def model_of(self, request: Recorded) -> str:
        return str((request.json or {}).get("model", ""))

    def is_authorized(self, request: Recorded) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def messages(self, request: Recorded) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in request.json["messages"]]

    def invalid(self, request: Recorded) -> Reply | None:
        body = request.json
        if not isinstance(body, dict) or not body.get("messages"):
            return self.error(400, "'messages' is a required property")
        return None

    def unauthorized(self, request: Recorded) -> Reply:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        # The real API quotes the key it was given; a client must not copy it into its own errors.
        return self.error(401, f"Incorrect API key provided: {presented}. You can find your API key at ...")

    def unknown_model(self, model: str) -> Reply:
        return self.error(404, f"The model `{model}` does not exist or you do not have access to it.")

    def completion_body(
        self, request: Recorded, text: str, prompt: int, completion: int, response_id: str | None
    ) -> dict[str, Any]:
        return {
            "id": response_id or f"chatcmpl-fake{next(_ids):06d}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": self.model_of(request),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "system_fingerprint": "fp_fake",
        }

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
            return self.completion_body(request, text, prompt, completion, response_id)

        return Reply(body=body, headers={"x-request-id": f"req_fake{next(_ids)}"})

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        etype, code = _ERROR_SHAPES.get(status, ("server_error", None))
        headers = {"x-request-id": f"req_fake{next(_ids)}"}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return Reply(
            status=status,
            body={"error": {"message": message, "type": etype, "param": None, "code": code}},
            headers=headers,
        )
