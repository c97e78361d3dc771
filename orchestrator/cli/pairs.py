"""``orchestrator pairs export``: the judge's preference pairs as a DPO dataset (TRL's formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import app, err_console
from orchestrator.cli.options import TracesOption, open_store

pairs_app = typer.Typer(help="Preference pairs from the judge's verdicts (DPO training data).", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="The file to write (.jsonl or .parquet).")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl | parquet (default: from OUT's suffix, else jsonl).")
    ] = None,
    conversational: Annotated[
        bool, typer.Option("--conversational", help="Messages lists ({role, content}) instead of plain strings.")
    ] = False,
    min_margin: Annotated[float, typer.Option(help="Only pairs at least this far apart (0..1).")] = 0.0,
    workflow: Annotated[str | None, typer.Option(help="Only pairs of this workflow.")] = None,
    traces: TracesOption = None,
) -> None:
    """Write prompt/chosen/rejected records that TRL's DPOTrainer (and `datasets`) load as they are."""
    from domain.pairs import export_pairs, format_for

    store = open_store(traces)
    kind = format_for(out, fmt)
    count = export_pairs(store, out, fmt=kind, conversational=conversational, min_margin=min_margin, workflow=workflow)
    form = "conversational" if conversational else "standard"
    err_console.print(f"wrote {count} preference pair(s) to {out} ({form}, {kind})", highlight=False, soft_wrap=True)
