"""Facts kept in one place agree with everything derived from them (as httpx tests its exception map)."""

from __future__ import annotations

import importlib
from typing import get_args

import pytest
from pydantic import SecretStr

from domain.routing import DEFAULT_WORKERS, LLM_MODES
from orchestrator import traces
from orchestrator.records import (
    MAX_ROUNDS,
    ROUTER_MODES,
    TABLE_ROWS,
    WORKER_ROLES,
    RouteControls,
    RouterMode,
    WorkerSpec,
)
from orchestrator.settings import DEFAULT_ALLOWED_PROVIDERS, Settings
from providers.base import PROVIDERS, provider_names
from providers.credentials import (
    ProviderEnv,
    api_key,
    base_url,
    key_env_label,
    keyed_providers,
    provider_env,
    redact,
    secret_env_names,
)
from providers.pricing import load_prices


def test_registry_allow_list_and_price_table_name_the_same_providers():
    assert sorted(DEFAULT_ALLOWED_PROVIDERS) == provider_names()
    assert set(load_prices()) <= set(provider_names())
    # every provider is priced, if only by "*" (a provider without prices would cost null silently)
    assert set(load_prices()) == set(provider_names())


def test_every_key_is_secret_and_belongs_to_a_provider():
    assert set(keyed_providers()) <= set(provider_names())
    for provider in keyed_providers():
        for name in key_env_label(provider).replace("(or ", "").replace(")", "").replace(",", "").split():
            assert name in secret_env_names()
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY"} <= set(secret_env_names())
    # the secret list is exactly the providers' declared keys, nothing kept beside them
    assert set(secret_env_names()) == {name for p in provider_names() for name in provider_env(p).key}


def test_each_provider_module_declares_its_variables_and_settings_keep_none():
    for provider in provider_names():
        module = importlib.import_module(PROVIDERS.module_of(provider))
        assert isinstance(module.ENV, ProviderEnv), provider
    # Settings hold no provider's key or endpoint: those are the modules' declarations
    assert not [
        field
        for field in Settings.model_fields
        if field.split("_")[0] in keyed_providers() or field.endswith(("_api_key", "_base_url", "_host"))
    ]


@pytest.mark.parametrize(
    ("provider", "name"),
    [(p, name) for p in provider_names() for name in (*provider_env(p).key, *provider_env(p).base_url)],
)
def test_every_declared_variable_is_read_and_a_key_is_redacted(provider, name, monkeypatch):
    for other in (*provider_env(provider).key, *provider_env(provider).base_url):
        monkeypatch.delenv(other, raising=False)
    value = f"value-of-{name}-0123456789"
    monkeypatch.setenv(name, value)
    settings = Settings()
    if name in provider_env(provider).key:
        assert api_key(provider, settings) == value
        assert redact(f"the key is {value}", settings) == "the key is ***"
    else:
        assert base_url(provider, settings) == value
        assert redact(value, settings) == value  # an endpoint is not a secret


def test_settings_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-environment")
    settings = Settings(api_keys={"openai": SecretStr("given-key")}, base_urls={"openai": "http://given/v1"})
    assert (api_key("openai", settings), base_url("openai", settings)) == ("given-key", "http://given/v1")
    assert redact("given-key from-the-environment", settings) == "*** ***"
    for name in provider_env("ollama").base_url:
        monkeypatch.delenv(name, raising=False)
    assert base_url("ollama", Settings()) == "http://127.0.0.1:11434"  # its declared default


def test_router_modes_roles_and_rounds_derive_from_one_declaration():
    assert get_args(RouterMode) == ROUTER_MODES
    assert set(LLM_MODES) | set(DEFAULT_WORKERS) <= set(ROUTER_MODES)
    assert RouteControls.model_fields["max_rounds"].metadata == Settings.model_fields["max_rounds"].metadata
    assert RouteControls(max_rounds=MAX_ROUNDS).max_rounds == MAX_ROUNDS
    for role in WORKER_ROLES:
        worker = WorkerSpec.parse(f"ollama:llama3.2:latest:{role}")
        assert WorkerSpec.from_label(worker.label) == worker


def test_every_table_is_known_on_import():
    assert traces.TABLES == TABLE_ROWS


def test_the_cli_rounds_check_is_the_rounds_type():
    from orchestrator.cli.options import check_rounds
    from orchestrator.errors import UserInputError
    from orchestrator.records import MIN_ROUNDS

    assert check_rounds(MIN_ROUNDS) == MIN_ROUNDS and check_rounds(MAX_ROUNDS) == MAX_ROUNDS
    for outside in (MIN_ROUNDS - 1, MAX_ROUNDS + 1):
        with pytest.raises(UserInputError, match=f"between {MIN_ROUNDS} and {MAX_ROUNDS}"):
            check_rounds(outside)
