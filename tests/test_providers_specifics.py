"""What differs between providers: request fields, key variables, error signals peculiar to one API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import SecretStr

from orchestrator.errors import ConfigurationError
from orchestrator.records import Message
from orchestrator.settings import Settings
from providers.base import PermanentProviderError, TransientProviderError, create_provider
from providers.credentials import secret_env_names
from providers.openai_provider import OpenAIProvider
from providers.sdk_support import display_url, retry_after_s
from tests.wire import FakeAnthropic, FakeGemini, FakeOllama, FakeOpenAI, Reply

KEY = "sk-test-0123456789abcdef"
ASK = [Message(role="user", content="Say hi.")]


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in secret_env_names():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


# ---------------------------------------------------------------- openai


def test_openai_proper_gets_max_completion_tokens(openai_server: FakeOpenAI) -> None:
    # api.openai.com's reasoning models refuse max_tokens; the default endpoint gets the new field.
    settings = Settings(api_keys={"openai": SecretStr(KEY)}, base_urls={"openai": openai_server.base_url})
    provider = OpenAIProvider(settings, api_key=KEY, token_param="max_completion_tokens")

    provider.complete(ASK, "o4-mini", max_tokens=50)

    body = openai_server.model_calls[0].json
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


def test_openai_field_follows_the_endpoint() -> None:
    default = create_provider("openai", Settings(api_keys={"openai": SecretStr(KEY)}))
    compatible = create_provider(
        "openai", Settings(api_keys={"openai": SecretStr(KEY)}, base_urls={"openai": "http://127.0.0.1:9/v1"})
    )
    assert isinstance(default, OpenAIProvider) and isinstance(compatible, OpenAIProvider)
    assert (default.token_param, compatible.token_param) == ("max_completion_tokens", "max_tokens")


def test_openai_exhausted_quota_is_permanent(openai_server: FakeOpenAI) -> None:
    # A 429 that means "no credit left", not "slow down": trying again cannot help.
    openai_server.script(
        Reply(
            status=429,
            body={
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        )
    )
    settings = Settings(api_keys={"openai": SecretStr(KEY)}, base_urls={"openai": openai_server.base_url})

    with pytest.raises(PermanentProviderError) as info:
        create_provider("openai", settings).complete(ASK, "gpt-4o-mini")

    assert info.value.kind == "quota"


def test_openai_base_url_credentials_stay_out_of_messages() -> None:
    assert display_url("http://user:pa55@llm.internal:8000/v1") == "http://llm.internal:8000/v1"
    assert display_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


# ---------------------------------------------------------------- anthropic


def test_anthropic_sends_temperature_only_when_asked() -> None:
    # Anthropic deprecated sampling parameters: newer models answer 400 to any temperature.
    with FakeAnthropic(api_key=KEY) as server:
        settings = Settings(
            api_keys={"anthropic": SecretStr(KEY)}, base_urls={"anthropic": server.base_url}, temperature=0.0
        )
        provider = create_provider("anthropic", settings)
        provider.complete(ASK, "claude-3-5-haiku-latest")
        provider.complete(ASK, "claude-3-5-haiku-latest", temperature=0.2)

    first, second = (call.json for call in server.model_calls)
    assert "temperature" not in first and "system" not in first
    assert second["temperature"] == 0.2


# ---------------------------------------------------------------- gemini


def test_gemini_accepts_google_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeGemini(api_key=KEY) as server:
        monkeypatch.setenv("GOOGLE_API_KEY", KEY)
        monkeypatch.setenv("ORCH_GEMINI_BASE_URL", server.base_url)
        completion = create_provider("gemini", Settings()).complete(ASK, "gemini-2.0-flash")

    assert completion.text == "ok"
    assert server.model_calls[0].headers["x-goog-api-key"] == KEY


def test_gemini_reads_the_delay_from_retry_info() -> None:
    # Gemini's 429 carries no Retry-After header: the delay is a RetryInfo detail in the body.
    with FakeGemini(api_key=KEY) as server:
        server.script(server.error(429, "Resource has been exhausted (e.g. check quota).", retry_after=7.5))
        provider = create_provider(
            "gemini", Settings(api_keys={"gemini": SecretStr(KEY)}, base_urls={"gemini": server.base_url})
        )
        with pytest.raises(TransientProviderError) as info:
            provider.complete(ASK, "gemini-2.0-flash")

    assert (info.value.kind, info.value.retry_after_s) == ("rate_limit", 7.5)


def test_gemini_blocked_prompt_is_permanent() -> None:
    with FakeGemini(api_key=KEY) as server:
        server.script(
            Reply(
                body={
                    "promptFeedback": {"blockReason": "SAFETY"},
                    "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
                }
            )
        )
        provider = create_provider(
            "gemini", Settings(api_keys={"gemini": SecretStr(KEY)}, base_urls={"gemini": server.base_url})
        )
        with pytest.raises(PermanentProviderError) as info:
            provider.complete(ASK, "gemini-2.0-flash")

    assert info.value.kind == "blocked"


def test_gemini_counts_thinking_tokens_as_output() -> None:
    with FakeGemini(api_key=KEY) as server:
        server.script(
            Reply(
                body={
                    "candidates": [
                        {
                            "content": {
                                "role": "model",
                                "parts": [{"text": "thinking it over", "thought": True}, {"text": "42"}],
                            },
                            "finishReason": "STOP",
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": 10,
                        "candidatesTokenCount": 2,
                        "thoughtsTokenCount": 30,
                    },
                    "responseId": "r-think",
                }
            )
        )
        provider = create_provider(
            "gemini", Settings(api_keys={"gemini": SecretStr(KEY)}, base_urls={"gemini": server.base_url})
        )
        completion = provider.complete(ASK, "gemini-2.5-flash")

    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("42", 10, 32)


# ---------------------------------------------------------------- ollama


def test_ollama_refuses_a_model_outside_the_allow_list() -> None:
    with FakeOllama() as server:
        provider = create_provider("ollama", Settings(base_urls={"ollama": server.base_url}))
        with pytest.raises(ConfigurationError) as info:
            provider.complete(ASK, "mistral:latest")

    assert "ORCH_ALLOWED_OLLAMA_MODELS" in str(info.value) and "llama3.2:latest" in str(info.value)
    assert server.requests == []


def test_ollama_allow_list_is_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ALLOWED_OLLAMA_MODELS", '["mistral:latest"]')
    with FakeOllama() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.base_url)
        completion = create_provider("ollama", Settings()).complete(ASK, "mistral:latest")

    assert completion.text == "ok" and server.model_of(server.model_calls[0]) == "mistral:latest"


def test_ollama_missing_model_says_how_to_get_it() -> None:
    with FakeOllama(models={"llama3:latest"}) as server:
        provider = create_provider("ollama", Settings(base_urls={"ollama": server.base_url}))
        with pytest.raises(PermanentProviderError) as info:
            provider.complete(ASK, "qwen2.5:7b")

    assert info.value.kind == "unknown_model"
    assert "ollama pull qwen2.5:7b" in str(info.value)


# ---------------------------------------------------------------- Retry-After forms


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "3"}) == 1.5
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    delay = retry_after_s({"retry-after": in_a_minute})
    assert delay is not None and 50 < delay <= 60
