"""The one retry loop (providers.calling) around a real provider: backoff, Retry-After, its cap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.records import Message
from orchestrator.settings import Settings
from providers.base import TransientProviderError, create_provider
from providers.calling import TryOutcome, complete_with_retries
from tests.wire import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
ASK = [Message(role="user", content="Say hi.")]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


def _settings(server: FakeOpenAI, **overrides: Any) -> Settings:
    return Settings(api_keys={"openai": SecretStr(KEY)}, base_urls={"openai": server.base_url}, **overrides)


def test_backoff_grows_exponentially_with_bounded_jitter(server: FakeOpenAI) -> None:
    server.script(server.error(500, "a"), server.error(502, "b"), server.error(503, "c"), "finally")
    settings = _settings(server, call_retries=3, retry_base_delay_s=1.0, retry_max_delay_s=20.0)
    sleeps: list[float] = []

    complete_with_retries(
        create_provider("openai", settings), ASK, "m", settings=settings, sleep=sleeps.append
    )

    # initial * 2**n plus up to `retry_base_delay_s` of jitter
    assert len(sleeps) == 3
    for n, waited in enumerate(sleeps):
        assert 2**n <= waited <= 2**n + 1.0


def test_retry_after_is_capped_by_the_settings(server: FakeOpenAI) -> None:
    server.script(server.error(429, "come back in a minute", retry_after=60), "ok")
    settings = _settings(server, retry_max_delay_s=1.5)
    sleeps: list[float] = []
    tries: list[TryOutcome] = []

    complete_with_retries(
        create_provider("openai", settings),
        ASK,
        "m",
        settings=settings,
        on_try=tries.append,
        sleep=sleeps.append,
    )

    assert sleeps == [1.5]
    assert [t.ok for t in tries] == [False, True]


def test_no_retries_configured_means_one_try(server: FakeOpenAI) -> None:
    server.script(server.error(500, "down"), "never asked")
    settings = _settings(server, call_retries=0)
    tries: list[TryOutcome] = []

    with pytest.raises(TransientProviderError, match="down"):
        complete_with_retries(
            create_provider("openai", settings), ASK, "m", settings=settings, on_try=tries.append
        )

    assert [(t.attempt, t.error_kind) for t in tries] == [(1, "server_error")]
    assert len(server.model_calls) == 1
