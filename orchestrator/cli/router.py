"""``orchestrator router train|eval``: the learned router, fitted on and measured against the traces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli import app, err_console
from orchestrator.cli.options import TracesOption, open_store
from orchestrator.settings import get_settings

router_app = typer.Typer(help="The learned router (routes with no model call).", no_args_is_help=True)
app.add_typer(router_app, name="router")

NeighboursOption = Annotated[int | None, typer.Option(help="Similar tasks consulted (default ORCH_LEARNED_ROUTER_NEIGHBOURS).")]
MarginOption = Annotated[
    float | None, typer.Option(help="Quality a cheaper model may give up (default ORCH_LEARNED_ROUTER_MARGIN).")
]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


@router_app.command("train")
def train(
    traces: TracesOption = None,
    out: Annotated[Path | None, typer.Option(help="Where to save it (default ORCH_LEARNED_ROUTER_PATH).")] = None,
    neighbours: NeighboursOption = None,
    margin: MarginOption = None,
) -> None:
    """Fit the learned router on every run with verdicts in the traces and save it."""
    from domain.router_learned import router_path, save_router
    from domain.router_learned import train as fit_router

    settings = get_settings()
    router = fit_router(
        open_store(traces),
        neighbours=neighbours or settings.learned_router_neighbours,
        margin=settings.learned_router_margin if margin is None else margin,
    )
    path = save_router(router, out or router_path(settings))
    table = Table("model", "tasks", "mean quality", f"mean cost ({router.file.cost_basis})")
    for name, stats in router.file.models.items():
        table.add_row(name, str(stats.tasks), f"{stats.quality:.3f}", f"{stats.cost:.6g}")
    Console().print(table)
    err_console.print(f"trained on {len(router.file.examples)} task(s); saved to {path}", highlight=False, soft_wrap=True)


@router_app.command("eval")
def evaluate(
    traces: TracesOption = None,
    folds: Annotated[int, typer.Option(min=2, help="Folds of the by-task cross-validation.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 0,
    neighbours: NeighboursOption = None,
    margin: MarginOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Held-out agreement with the judge, and RouteLLM's CPT(50%) and APGR, by k-fold over tasks."""
    from domain.router_learned import evaluate as evaluate_router
    from domain.router_learned import read_traces

    settings = get_settings()
    report = evaluate_router(
        read_traces(open_store(traces)),
        neighbours=neighbours or settings.learned_router_neighbours,
        margin=settings.learned_router_margin if margin is None else margin,
        folds=folds,
        seed=seed,
    )
    if as_json:
        print(report.model_dump_json())
        return
    table = Table("measure", "value")
    table.add_row("tasks / models", f"{report.tasks} / {', '.join(report.models)}")
    table.add_row("agreement with the judge", f"{_pct(report.agreement)} of {report.runs} held-out run(s)")
    table.add_row("weak → strong", f"{report.weak} → {report.strong} ({report.pair_tasks} task(s))")
    table.add_row("quality weak / strong / router", " / ".join(
        "n/a" if q is None else f"{q:.3f}" for q in (report.quality_weak, report.quality_strong, report.quality_router)
    ))
    table.add_row("strong calls at the margin", f"{_pct(report.strong_share)} (PGR {_pct(report.pgr)})")
    table.add_row("CPT(50%)", _pct(report.cpt50))
    table.add_row("APGR", "n/a" if report.apgr is None else f"{report.apgr:.3f} (random routing: 0.500)")
    Console().print(table)
    if report.note:
        err_console.print(f"note: {report.note}", highlight=False, soft_wrap=True)
