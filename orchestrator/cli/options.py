"""Options several commands share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, get_args

import typer

from orchestrator.records import MAX_ROUNDS, MIN_ROUNDS, ROUTER_MODES, SandboxName
from orchestrator.settings import Settings, get_settings
from orchestrator.traces import TraceStore
from providers.base import provider_names

TracesOption = Annotated[
    str | None,
    typer.Option("--traces", metavar="DIR|s3://BUCKET/PREFIX", help="Trace store: a folder or s3://bucket/prefix (default ORCH_TRACES_DIR or ./traces)."),
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


def open_writable_store(traces: str | None) -> TraceStore:
    """The trace store a run will write, refused before anything runs when a local one cannot be
    written (a file in the way, a read-only or virtual file system such as /proc). The probe is a
    folder made and removed at once in the store, or in its nearest existing parent: nothing stays."""
    import tempfile

    from orchestrator.errors import UserInputError

    store = open_store(traces)
    if store.remote:
        return store  # an object store answers for its own permissions at the first write
    root = Path(store.root)
    where = next(p for p in (root, *root.parents) if p.exists())
    problem = None
    if not where.is_dir():
        problem = f"{where} is a file"
    else:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".orch-probe-", dir=where))
        except OSError as exc:
            problem = f"{where} is not writable ({exc.strerror})"
    if problem:
        raise UserInputError(f"--traces {root}: {problem}; name a folder you can write (or set ORCH_TRACES_DIR)")
    return store


def _choices(values: tuple[str, ...]) -> str:
    return " | ".join(values)


TaskDirArgument = Annotated[Path, typer.Argument(metavar="DIR", help="A task folder (see runs/README.md).")]
ProviderOption = Annotated[
    str | None,
    typer.Option(metavar="NAME", help=f"Provider of the single solver: {_choices(tuple(provider_names()))}."),
]
ModelOption = Annotated[str | None, typer.Option(metavar="NAME", help="Model name (for replay: the JSONL file).")]
ReplayOption = Annotated[
    Path | None, typer.Option(metavar="FILE", help="Shorthand for --provider replay --model FILE.")
]
WorkerOption = Annotated[
    list[str] | None,
    typer.Option("--worker", metavar="PROVIDER:MODEL[:ROLE]", help="A solver, repeatable; bypasses the router."),
]
RouterOption = Annotated[
    str | None,
    typer.Option(
        metavar="MODE",
        help=f"{_choices(ROUTER_MODES)} (default ORCH_ROUTER_MODE or "
        f"{Settings.model_fields['router_mode'].default}); picks the workers when no worker option is given.",
    ),
]
SandboxOption = Annotated[
    str, typer.Option(metavar="NAME", help=f"Where tests run: {_choices(get_args(SandboxName))}.")
]
MaxRoundsOption = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help=f"Rounds of fix, {MIN_ROUNDS}..{MAX_ROUNDS} "
        f"(default ORCH_MAX_ROUNDS or {Settings.model_fields['max_rounds'].default}).",
    ),
]
