"""Cost accounting from a price table kept as data (providers/prices.toml, overridable)."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from orchestrator.records import Completion
from orchestrator.settings import Settings

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")


@lru_cache(maxsize=8)
def load_prices(path: Path = DEFAULT_PRICES) -> dict[str, dict[str, tuple[float, float]]]:
    """provider -> model -> (USD per million input tokens, USD per million output tokens)."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        provider: {model: (float(p["input"]), float(p["output"])) for model, p in models.items()}
        for provider, models in raw.items()
    }


def unit_prices(provider: str, model: str, settings: Settings) -> tuple[float, float] | None:
    table = dict(load_prices())
    if settings.prices_file is not None:
        for prov, models in load_prices(Path(settings.prices_file)).items():
            table[prov] = {**table.get(prov, {}), **models}
    models = table.get(provider, {})
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
