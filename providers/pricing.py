"""Cost accounting from a price table kept as data (providers/prices.toml, overridable)."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from orchestrator.errors import ConfigurationError
from orchestrator.records import Completion
from orchestrator.settings import Settings

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")

#: provider -> model (or "*") -> (USD per million input tokens, USD per million output tokens)
PriceTable = dict[str, dict[str, tuple[float, float]]]


@lru_cache(maxsize=8)
def load_prices(path: Path = DEFAULT_PRICES) -> PriceTable:
    """Read one price file; a broken file is a ConfigurationError naming it and the bad entry."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"price file {path}: cannot read it ({exc.strerror}); check ORCH_PRICES_FILE"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"price file {path}: not valid TOML ({exc})") from None
    table: PriceTable = {}
    for provider, models in raw.items():
        if not isinstance(models, dict):
            raise ConfigurationError(
                f'price file {path}: [{provider}] must hold tables like [{provider}."model"]'
            )
        for model, entry in models.items():
            try:
                prices = (float(entry["input"]), float(entry["output"]))
            except (KeyError, TypeError, ValueError):
                prices = (-1.0, -1.0)
            if min(prices) < 0:
                raise ConfigurationError(
                    f'price file {path}: [{provider}."{model}"] needs input = and output = '
                    "(non-negative USD per million tokens)"
                )
            table.setdefault(provider, {})[model] = prices
    return table


def price_table(settings: Settings) -> PriceTable:
    """The shipped table with the user's file (``ORCH_PRICES_FILE``) laid over it, entry by entry.

    Call it once at start-up to report a broken price file before any work is done.
    """
    table = {provider: dict(models) for provider, models in load_prices().items()}
    if settings.prices_file is not None:
        for provider, models in load_prices(Path(settings.prices_file)).items():
            table.setdefault(provider, {}).update(models)
    return table


def unit_prices(provider: str, model: str, settings: Settings) -> tuple[float, float] | None:
    models = price_table(settings).get(provider, {})
    return models.get(model) or models.get("*")


def price_completion(completion: Completion, settings: Settings) -> Completion:
    """Fill ``cost_usd``; a model missing from the table costs None (unknown), never 0."""
    if completion.cost_usd is not None:
        return completion
    prices = unit_prices(completion.provider, completion.model, settings)
    if prices is None:
        return completion
    cost = (completion.prompt_tokens * prices[0] + completion.completion_tokens * prices[1]) / 1_000_000
    return completion.model_copy(update={"cost_usd": round(cost, 10)})
