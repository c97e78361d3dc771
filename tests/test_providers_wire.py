"""Each remote provider, through its official SDK, against a local server speaking its wire protocol.

Every test runs once per provider. Settings come from the environment variables a user would
set (pointing at the fake), so the variable names are under test too.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.errors import ConfigurationError
from orchestrator.records import Message
from orchestrator.settings import Settings
from providers.base import PermanentProviderError, ProviderError, TransientProviderError, create_provider
from providers.calling import TryOutcome, complete_with_retries
from providers.credentials import key_env_label, keyed_providers, secret_env_names
from tests.wire import FAKES, FakeServer, Reply

KEY = "sk-test-SECRET-0123456789abcdef"
WRONG_KEY = "sk-test-WRONG-fedcba9876543210"

ENDPOINT_ENV_NAMES = (
    "OPENAI_BASE_URL",
    "ORCH_OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "ORCH_ANTHROPIC_BASE_URL",
    "ORCH_GEMINI_BASE_URL",
    "GROQ_BASE_URL",
    "ORCH_GROQ_BASE_URL",
    "OLLAMA_HOST",
    "ORCH_OLLAMA_HOST",
)


@dataclass(frozen=True)
class Case:
    provider: str
    model: str  # a model in providers/prices.toml, so calls are priced
    budget: Callable[[dict[str, Any]], Any]  # where the request carries the output-token budget
    honours_retry_after: bool = True
    has_response_ids: bool = True


CASES = [
    # An OpenAI-compatible server (base URL set) is sent max_tokens; see test_providers_specifics.
    Case("openai", "gpt-4o-mini", lambda body: body["max_tokens"]),
    Case("groq", "llama-3.1-8b-instant", lambda body: body["max_completion_tokens"]),
    Case("anthropic", "claude-3-5-haiku-latest", lambda body: body["max_tokens"]),
    Case("gemini", "gemini-2.0-flash", lambda body: body["generationConfig"]["maxOutputTokens"]),
    # The ollama SDK keeps no response headers, so a Retry-After cannot reach us; answers have no id.
    Case(
        "ollama",
        "llama3.2:latest",
        lambda body: body["options"]["num_predict"],
        honours_retry_after=False,
        has_response_ids=False,
    ),
]
KEYED_CASES = [c for c in CASES if c.provider in keyed_providers()]

CONVERSATION = [
    Message(role="system", content="You write Python."),
    Message(role="user", content="Write add(a, b)."),
    Message(role="assistant", content="def add(a, b): return a - b"),
    Message(role="user", content="The test failed; fix it."),
]


def _ids(case: Case) -> str:
    return case.provider


@pytest.fixture(params=CASES, ids=_ids)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def server(case: Case) -> Iterator[FakeServer]:
    with FAKES[case.provider](api_key=KEY) as fake:
        yield fake


@pytest.fixture
def make_settings(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings from the environment a user would export, pointing at the fake server."""
    for name in (*secret_env_names(), *ENDPOINT_ENV_NAMES):
        monkeypatch.delenv(name, raising=False)  # never send a developer's real key anywhere
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)

    def make(**overrides: Any) -> Settings:
        return Settings(**{"call_timeout_s": 5.0, "call_retries": 2, "retry_base_delay_s": 0.0, **overrides})

    return make


def _call(case: Case, settings: Settings, **params: Any) -> tuple[list[TryOutcome], list[float], Any]:
    """complete_with_retries with every try and every wait recorded; returns (tries, sleeps, result|error)."""
    tries: list[TryOutcome] = []
    sleeps: list[float] = []
    provider = create_provider(case.provider, settings)
    try:
        result: Any = complete_with_retries(
            provider,
            CONVERSATION,
            case.model,
            settings=settings,
            on_try=tries.append,
            sleep=sleeps.append,
            **params,
        )
    except ProviderError as exc:
        result = exc
    return tries, sleeps, result


def _outline(tries: list[TryOutcome]) -> list[tuple[int, bool, str | None]]:
    return [(t.attempt, t.ok, t.error_kind) for t in tries]


def test_sends_the_conversation_and_reads_the_answer(case: Case, server: FakeServer, make_settings) -> None:
    provider = create_provider(case.provider, make_settings())
    answer = "def add(a, b):\n    return a + b"
    server.script(server.reply(answer, prompt_tokens=42, completion_tokens=9, response_id="resp-1"))

    completion = provider.complete(CONVERSATION, case.model, max_tokens=77, task_id="t1")

    [call] = server.model_calls
    assert server.model_of(call) == case.model
    assert server.messages(call) == [m.model_dump() for m in CONVERSATION]
    assert case.budget(call.json) == 77
    assert completion.text == answer
    assert (completion.prompt_tokens, completion.completion_tokens) == (42, 9)
    assert (completion.provider, completion.model) == (case.provider, case.model)
    assert completion.response_id == ("resp-1" if case.has_response_ids else None)
    assert completion.latency_s > 0
    assert completion.cost_usd is None  # cost is filled centrally, by providers.calling


def test_rate_limit_is_retried_after_the_servers_delay(case: Case, server: FakeServer, make_settings) -> None:
    server.script(server.error(429, "Rate limit reached, slow down", retry_after=2), "fixed")

    tries, sleeps, completion = _call(case, make_settings())

    assert completion.text == "fixed"
    assert _outline(tries) == [(1, False, "rate_limit"), (2, True, None)]
    assert len(server.model_calls) == 2
    if case.honours_retry_after:
        assert sleeps == [2.0]
    else:
        assert len(sleeps) == 1
    assert tries[1].completion is not None and tries[1].completion.cost_usd is not None


FAULTS: dict[str, tuple[Callable[[FakeServer], Reply], str]] = {
    "http_500": (lambda s: s.error(500, "internal error"), "server_error"),
    "http_503": (lambda s: s.error(503, "overloaded"), "server_error"),
    "malformed_json": (lambda s: s.malformed(), "bad_response"),
    "wrong_shape": (lambda s: Reply(body={"unexpected": True}), "bad_response"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_transient_failures_are_retried(case: Case, server: FakeServer, make_settings, fault: str) -> None:
    make_reply, kind = FAULTS[fault]
    server.script(make_reply(server), "recovered")

    tries, sleeps, completion = _call(case, make_settings())

    assert completion.text == "recovered"
    assert _outline(tries) == [(1, False, kind), (2, True, None)]
    assert len(sleeps) == 1


def test_a_hung_server_times_out_and_the_call_is_retried(
    case: Case, server: FakeServer, make_settings
) -> None:
    server.script(server.hang(), "after the hang")

    tries, _, completion = _call(case, make_settings(call_timeout_s=0.3, call_retries=1))

    assert completion.text == "after the hang"
    assert _outline(tries) == [(1, False, "timeout"), (2, True, None)]
    assert "0.3 s" in (tries[0].error or "")


def test_retries_are_bounded_and_the_last_error_is_raised(
    case: Case, server: FakeServer, make_settings
) -> None:
    server.script(*(server.error(500, f"failure {n}") for n in range(3)), "too late")

    tries, sleeps, error = _call(case, make_settings(call_retries=2))

    assert isinstance(error, TransientProviderError) and error.kind == "server_error"
    assert "failure 2" in str(error)
    assert _outline(tries) == [
        (1, False, "server_error"),
        (2, False, "server_error"),
        (3, False, "server_error"),
    ]
    assert len(sleeps) == 2 and len(server.model_calls) == 3


@pytest.mark.parametrize("case", KEYED_CASES, ids=_ids, indirect=True)
def test_a_wrong_key_fails_fast_without_leaking_it(case: Case, server: FakeServer, make_settings) -> None:
    settings = make_settings(api_keys={case.provider: SecretStr(WRONG_KEY)})

    tries, sleeps, error = _call(case, settings)

    assert isinstance(error, PermanentProviderError) and error.kind == "auth"
    assert _outline(tries) == [(1, False, "auth")]
    assert sleeps == [] and len(server.model_calls) == 1
    assert key_env_label(case.provider) in str(error)
    # The OpenAI and Groq fakes quote the key they were given, as the real APIs do.
    for text in (str(error), "".join(traceback.format_exception(error)), tries[0].error or ""):
        assert WRONG_KEY not in text


@pytest.mark.parametrize("case", KEYED_CASES, ids=_ids, indirect=True)
def test_the_key_never_appears_in_an_error(case: Case, server: FakeServer, make_settings) -> None:
    server.script(server.error(500, f"upstream rejected credentials {KEY} for this project"))

    tries, _, error = _call(case, make_settings(call_retries=0))

    assert isinstance(error, TransientProviderError)
    assert "upstream rejected credentials" in str(error)
    for text in (str(error), "".join(traceback.format_exception(error)), tries[0].error or ""):
        assert KEY not in text


def test_an_unknown_model_fails_fast(case: Case, server: FakeServer, make_settings) -> None:
    server.models = {case.model}
    settings = make_settings(allowed_ollama_models=(case.model, "no-such-model"))
    provider = create_provider(case.provider, settings)
    tries: list[TryOutcome] = []

    with pytest.raises(PermanentProviderError) as info:
        complete_with_retries(provider, CONVERSATION, "no-such-model", settings=settings, on_try=tries.append)

    assert info.value.kind == "unknown_model"
    assert "no-such-model" in str(info.value)
    assert _outline(tries) == [(1, False, "unknown_model")]


def test_an_unreachable_server_is_a_connection_error(case: Case, server: FakeServer, make_settings) -> None:
    settings = make_settings(call_retries=0)
    server.stop()  # nothing listens on the configured port any more

    tries, _, error = _call(case, settings)

    assert isinstance(error, TransientProviderError) and error.kind == "connection"
    assert _outline(tries) == [(1, False, "connection")]


@pytest.mark.parametrize("case", KEYED_CASES, ids=_ids, indirect=True)
def test_a_missing_key_is_reported_before_any_call(
    case: Case, server: FakeServer, make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in secret_env_names():
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigurationError) as info:
        create_provider(case.provider, make_settings())

    assert str(info.value).startswith(f"{case.provider}: {key_env_label(case.provider)} is not set;")
    assert server.requests == []


def test_the_fake_answers_from_its_script_then_its_responder(
    case: Case, server: FakeServer, make_settings
) -> None:
    server.responder = lambda request: f"seen {len(server.messages(request))} messages"
    server.script("scripted")
    provider = create_provider(case.provider, make_settings())

    texts = [provider.complete(CONVERSATION, case.model).text for _ in range(2)]

    assert texts == ["scripted", "seen 4 messages"]
