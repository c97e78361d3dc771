"""Options several commands share."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.records import MAX_ROUNDS, MIN_ROUNDS
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore

TracesOption = Annotated[
    str | None,
    typer.Option("--traces", help="Trace store: a folder or s3://bucket/prefix (default ORCH_TRACES_DIR or ./traces)."),
]

MaxRoundsOption = Annotated[
    int | None, typer.Option(help=f"Rounds of fix ({MIN_ROUNDS}..{MAX_ROUNDS}; default ORCH_MAX_ROUNDS).")
]


def check_rounds(rounds: int) -> int:
    """``--max-rounds`` within the bounds of the Rounds type (orchestrator.records), else one clear line."""
    from orchestrator.errors import UserInputError

    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise UserInputError(f"--max-rounds {rounds}: must be between {MIN_ROUNDS} and {MAX_ROUNDS}")
    return rounds


CacheOption = Annotated[
    bool | None,
    typer.Option(
        "--cache/--no-cache",
        help="Answer repeated model calls from the on-disk cache (default ORCH_CACHE: calls at temperature 0).",
        show_default=False,
    ),
]
MaxCostOption = Annotated[
    float | None, typer.Option("--max-cost", metavar="USD", help="Stop before spending more than this (USD).")
]
MaxTokensOption = Annotated[
    int | None, typer.Option("--max-tokens", metavar="N", help="Stop before spending more than N tokens.")
]
IgnoreUnpricedOption = Annotated[
    bool, typer.Option(help="Let --max-cost run models without a price (their cost counts as 0, reported unknown).")
]


def check_budget(max_cost: float | None, max_tokens: int | None) -> None:
    from orchestrator.errors import UserInputError

    if max_cost is not None and max_cost <= 0:
        raise UserInputError(f"--max-cost {max_cost:g}: must be more than 0 (USD)")
    if max_tokens is not None and max_tokens < 1:
        raise UserInputError(f"--max-tokens {max_tokens}: must be at least 1")


def open_store(traces: str | None) -> TraceStore:
    return TraceStore(traces or get_settings().traces_dir)
