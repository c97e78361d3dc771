"""Cost from the price table: arithmetic, unknown models, the user's override file, a priced call."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.errors import ConfigurationError
from orchestrator.records import Completion, Message
from orchestrator.settings import Settings
from providers.base import create_provider
from providers.calling import complete_with_retries
from providers.pricing import DEFAULT_PRICES, load_prices, price_completion, price_table
from tests.wire import FakeOpenAI

OVERRIDE = """
[openai."gpt-test"]
input = 2.0
output = 8.0

[openai."gpt-4o-mini"]
input = 100.0
output = 100.0
"""


def _completion(provider: str, model: str, prompt: int = 1_000_000, output: int = 500_000) -> Completion:
    return Completion(
        text="x", provider=provider, model=model, prompt_tokens=prompt, completion_tokens=output
    )


@pytest.fixture
def prices_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(OVERRIDE)
    return path


def test_cost_is_tokens_times_price_per_million(prices_file: Path) -> None:
    settings = Settings(prices_file=prices_file)
    priced = price_completion(_completion("openai", "gpt-test", prompt=1_500, output=250), settings)
    assert priced.cost_usd == pytest.approx((1_500 * 2.0 + 250 * 8.0) / 1_000_000)


def test_unknown_model_costs_none_not_zero() -> None:
    priced = price_completion(_completion("openai", "gpt-from-the-future"), Settings(prices_file=None))
    assert priced.cost_usd is None


def test_a_provider_wildcard_prices_every_model() -> None:
    priced = price_completion(_completion("ollama", "anything:latest"), Settings(prices_file=None))
    assert priced.cost_usd == 0.0


def test_the_override_file_replaces_and_extends_entries(prices_file: Path) -> None:
    table = price_table(Settings(prices_file=prices_file))
    assert table["openai"]["gpt-4o-mini"] == (100.0, 100.0)  # replaced
    assert table["openai"]["gpt-test"] == (2.0, 8.0)  # added
    assert table["anthropic"] == load_prices()["anthropic"]  # untouched


def test_the_shipped_table_is_valid() -> None:
    table = load_prices(DEFAULT_PRICES)
    assert {"openai", "anthropic", "gemini", "groq", "ollama"} <= set(table)
    assert all(price >= 0 for models in table.values() for pair in models.values() for price in pair)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[openai."m"]\ninput = 1.0\n', "needs input = and output ="),
        ('[openai."m"]\ninput = "cheap"\noutput = 1\n', "needs input = and output ="),
        ('[openai."m"]\ninput = -1\noutput = 1\n', "needs input = and output ="),
        ("[openai\n", "not valid TOML"),
        ('openai = "flat"\n', "must hold tables"),
    ],
)
def test_a_broken_override_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        price_table(Settings(prices_file=path))
    assert str(path) in str(info.value) and problem in str(info.value)


def test_a_missing_override_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read it"):
        price_table(Settings(prices_file=tmp_path / "absent.toml"))


def test_each_call_is_priced_from_the_usage_the_api_reported(prices_file: Path) -> None:
    key = "sk-test-0123456789"
    with FakeOpenAI(api_key=key) as server:
        server.script(server.reply("done", prompt_tokens=1_000, completion_tokens=500))
        settings = Settings(
            api_keys={"openai": SecretStr(key)}, base_urls={"openai": server.base_url}, prices_file=prices_file
        )
        completion = complete_with_retries(
            create_provider("openai", settings),
            [Message(role="user", content="go")],
            "gpt-test",
            settings=settings,
        )
    assert completion.cost_usd == pytest.approx((1_000 * 2.0 + 500 * 8.0) / 1_000_000)
