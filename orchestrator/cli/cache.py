"""``orchestrator cache``: what the model-call cache holds, and emptying it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli import app
from orchestrator.settings import get_settings

cache_app = typer.Typer(
    help="The on-disk model-call cache (ORCH_CACHE_PATH, default <ORCH_CACHE_DIR>/calls.sqlite).",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("stats")
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Entries, hits, expired entries and size, per provider and model."""
    from providers.cache import open_cache

    settings = get_settings()
    report = open_cache(settings).stats()
    if as_json:
        print(report.model_dump_json())
        return
    console = Console()
    console.print(
        f"{report.path}: {report.entries} entries ({report.expired} expired), {report.hits} hits, "
        f"{report.size_bytes / 1e6:.2f} MB; expiry {settings.cache_expiry}"
    )
    table = Table("provider", "model", "entries", "hits")
    for m in report.models:
        table.add_row(m.provider, m.model, str(m.entries), str(m.hits))
    console.print(table)


@cache_app.command("clear")
def clear(
    expired: Annotated[bool, typer.Option("--expired", help="Only the entries past their expiry.")] = False,
    provider: Annotated[str | None, typer.Option(help="Only this provider's entries.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's entries.")] = None,
) -> None:
    """Delete cache entries (all of them unless narrowed)."""
    from providers.cache import open_cache

    cache = open_cache(get_settings())
    removed = cache.clear(expired_only=expired, provider=provider, model=model)
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.path}")
