"""Facts kept in one place agree with everything derived from them (as httpx tests its exception map)."""

from __future__ import annotations

from typing import get_args

from orchestrator import traces
from orchestrator.records import MAX_ROUNDS, TABLE_ROWS, WORKER_ROLES, RouteControls, WorkerSpec
from orchestrator.settings import (
    DEFAULT_ALLOWED_PROVIDERS,
    KEY_ENV,
    ROUTER_MODES,
    SECRET_ENV_NAMES,
    RouterMode,
    Settings,
)
from providers.base import provider_names
from providers.pricing import load_prices
from tasks.route import DEFAULT_WORKERS, LLM_MODES


def test_registry_allow_list_and_price_table_name_the_same_providers():
    assert sorted(DEFAULT_ALLOWED_PROVIDERS) == provider_names()
    assert set(load_prices()) <= set(provider_names())
    # every provider is priced, if only by "*" (a provider without prices would cost null silently)
    assert set(load_prices()) == set(provider_names())


def test_every_key_is_secret_and_belongs_to_a_provider():
    assert set(KEY_ENV) <= set(provider_names())
    for provider, names in KEY_ENV.items():
        assert f"{provider}_api_key" in Settings.model_fields
        for name in names.replace("(or ", "").replace(")", "").replace(",", "").split():
            assert name in SECRET_ENV_NAMES
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY"} <= set(SECRET_ENV_NAMES)


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
