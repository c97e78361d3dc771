"""Each provider's key and endpoint variables, as its module declares them, and the secrets they make.

A provider module declares ``ENV = ProviderEnv(...)`` (inspect_ai's ``api_key_vars``): the variables
that hold its key (secrets: redacted everywhere, never in a sandbox) and its base URL. Everything
else here derives from those declarations, so a new provider is its module plus one registry entry
(providers/builtin.py). ``Settings.api_keys`` / ``Settings.base_urls`` (provider -> value) win over
the environment, so a caller can configure a provider without touching ``os.environ``.
"""

from __future__ import annotations

import importlib
import os

from pydantic import BaseModel

from orchestrator.settings import Settings
from providers.base import PROVIDERS, provider_names


class ProviderEnv(BaseModel, frozen=True):
    """The environment variables one provider reads, first name first (the one messages name)."""

    key: tuple[str, ...] = ()  # its API key; every name is a secret
    base_url: tuple[str, ...] = ()  # where its calls go
    default_base_url: str | None = None  # when none of ``base_url`` is set


def provider_env(provider: str) -> ProviderEnv:
    """The declaration in the provider's module (importing it is cheap: SDKs load on the first call)."""
    provider_names()  # the built-in entries are registered
    module = importlib.import_module(PROVIDERS.module_of(provider))
    declared = getattr(module, "ENV", ProviderEnv())
    assert isinstance(declared, ProviderEnv), f"{module.__name__}.ENV must be a ProviderEnv"
    return declared


def _first_set(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name].strip() for name in names if os.environ.get(name, "").strip()), None)


def api_key(provider: str, settings: Settings) -> str | None:
    """The provider's key: ``settings.api_keys[provider]``, else the first of its variables set."""
    given = settings.api_keys.get(provider)
    if given is not None and given.get_secret_value().strip():
        return given.get_secret_value().strip()
    return _first_set(provider_env(provider).key)


def base_url(provider: str, settings: Settings) -> str | None:
    """The provider's endpoint: ``settings.base_urls[provider]``, else its variables, else its default."""
    declared = provider_env(provider)
    return settings.base_urls.get(provider) or _first_set(declared.base_url) or declared.default_base_url


def key_env_label(provider: str) -> str:
    """The variable(s) a user sets for the provider's key, as messages name them."""
    first, *others = provider_env(provider).key or ("the key",)
    return f"{first} (or {', '.join(others)})" if others else first


def keyed_providers() -> list[str]:
    """The providers that need a key."""
    return [name for name in provider_names() if provider_env(name).key]


def secret_env_names() -> tuple[str, ...]:
    """Variables whose values are secrets: never copied into a sandbox, a trace or a log."""
    return tuple(name for provider in provider_names() for name in provider_env(provider).key)


def secret_values(settings: Settings) -> list[str]:
    """The secret strings currently configured (given in the settings or set in the environment)."""
    values = [secret.get_secret_value() for secret in settings.api_keys.values()]
    values += [os.environ.get(name, "") for name in secret_env_names()]
    return [value for value in values if value]


def redact(text: str, settings: Settings) -> str:
    for secret in secret_values(settings):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
