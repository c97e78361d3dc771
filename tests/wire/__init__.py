"""Fake provider servers for offline tests: each speaks one provider's real wire protocol.

The official SDK (or the orchestrator CLI) is pointed at a local server by base URL; nothing is
mocked. One class per protocol:

- ``FakeOpenAI``: ``POST /v1/chat/completions``, Bearer key.
  env(): OPENAI_BASE_URL, OPENAI_API_KEY
- ``FakeGroq``: ``POST /openai/v1/chat/completions``, Bearer key.
  env(): GROQ_BASE_URL, GROQ_API_KEY
- ``FakeAnthropic``: ``POST /v1/messages``, key header and ``anthropic-version``.
  env(): ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY
- ``FakeGemini``: ``POST /{v1,v1beta}/models/{model}:generateContent``, ``x-goog-api-key``.
  env(): ORCH_GEMINI_BASE_URL, GEMINI_API_KEY
- ``FakeOllama``: ``POST /api/chat``, no key.
  env(): OLLAMA_HOST

Start and stop (the ``with`` block releases any request still hanging, then joins the thread)::

    with FakeOpenAI(api_key="sk-test") as server:       # 127.0.0.1, a free port
        server.base_url                                 # give this to the SDK / settings
        env = server.env()                              # or these variables to a subprocess

Deciding the answers. For each model call the server uses, in order:

1. the script: ``server.script(reply, ...)`` queues replies (FIFO); a plain string is a successful
   answer with that text;
2. ``server.responder``: a callable ``(Recorded) -> Reply | str`` for as many calls as come, e.g.
   ``server.responder = lambda req: solution_for(server.messages(req))``;
3. ``server.default_text`` (``"ok"``).

Replies in the provider's own shapes (status codes, error bodies, usage fields)::

    server.reply("text", prompt_tokens=12, completion_tokens=5, response_id="r1")
    server.error(429, "slow down", retry_after=2)   # Retry-After header; Gemini: a RetryInfo detail
    server.error(500, "boom")
    server.malformed()                              # 200 with a truncated JSON body
    server.hang()                                   # no answer until the server stops
    server.reset()                                  # the connection is reset (TCP RST)
    Reply(status=200, body={...})                   # anything else, raw

Without scripting, the server also answers like the real API: a wrong key gets the provider's
authentication error (OpenAI quotes the key it was given; Gemini answers 400 API_KEY_INVALID), a
model outside ``models=`` (if given) gets the provider's unknown-model 404, a malformed request
gets its 400, and an unknown path its 404. None of these consume the script.

What was sent: ``server.requests`` (every request) and ``server.model_calls`` are lists of
``Recorded(method, path, query, headers, body)`` with ``.json``; ``server.messages(request)``
gives the conversation as ``[{"role": "system"|"user"|"assistant", "content": ...}]`` whatever the
provider's layout, and ``server.model_of(request)`` the model asked for.
"""

from tests.wire.fake_anthropic import FakeAnthropic
from tests.wire.fake_gemini import FakeGemini
from tests.wire.fake_groq import FakeGroq
from tests.wire.fake_ollama import FakeOllama
from tests.wire.fake_openai import FakeOpenAI
from tests.wire.server import FakeServer, Recorded, Reply

FAKES: dict[str, type[FakeServer]] = {
    "openai": FakeOpenAI,
    "groq": FakeGroq,
    "anthropic": FakeAnthropic,
    "gemini": FakeGemini,
    "ollama": FakeOllama,
}

__all__ = [
    "FAKES",
    "FakeAnthropic",
    "FakeGemini",
    "FakeGroq",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "Recorded",
    "Reply",
]
