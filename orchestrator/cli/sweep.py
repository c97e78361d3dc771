"""``orchestrator sweep``: every task of a folder through its workflow, with progress and a summary."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.usage import total_tokens, usd
from orchestrator.cli import app, err_console
from orchestrator.cli.options import (
    CacheOption,
    IgnoreUnpricedOption,
    MaxCostOption,
    MaxRoundsOption,
    MaxTokensOption,
    ModelOption,
    ProviderOption,
    ReplayOption,
    RouterOption,
    SandboxOption,
    TracesOption,
    WorkerOption,
    check_rounds,
    open_writable_store,
)
from orchestrator.cli.run import choose_workers
from orchestrator.errors import OrchestratorError, UserInputError
from orchestrator.records import new_id
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore

if TYPE_CHECKING:
    from domain.sweep_report import SweepReport


class SweepFailed(OrchestratorError):
    """The sweep could not run to its end (not: some tasks failed)."""

    exit_code = 1


def _params_error(exc: ValidationError) -> UserInputError:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return UserInputError(f"--{where.replace('_', '-')}: {err['msg'].removeprefix('Value error, ')}")


def _watch(store: TraceStore, sweep_id: str, total: int, stop: threading.Event) -> None:
    """Advance a progress bar from the ledger (what is durably finished), until ``stop`` is set."""
    from domain.sweep_ledger import finished_count

    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        job = bar.add_task("sweep", total=total)
        while True:
            bar.update(job, completed=finished_count(store, sweep_id))
            if stop.wait(0.5):
                bar.update(job, completed=finished_count(store, sweep_id))
                return


def print_report(report: SweepReport, console: Console) -> None:
    cost = usd(report.cost_usd) + ("" if report.cost_complete else " (some unknown)")
    console.print(
        f"sweep {report.name} ({report.sweep_id}): [bold]{report.passed}/{report.total} passed[/bold] "
        f"({100 * report.pass_rate:.1f}%), {report.failed} failed, {report.errored} errored"
        + (f", {report.skipped} skipped: budget (resume with a larger one)" if report.skipped else "")
        + "; "
        f"{total_tokens(report):,} tokens; cost {cost}; {report.duration_s:.1f}s; "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in report.pass_at_k.items())
    )
    models = Table("model", "pass rate", "passed/judged", "calls", "tokens", "cost")
    for m in report.models:
        models.add_row(
            m.model,
            "-" if m.pass_rate is None else f"{100 * m.pass_rate:.1f}%",
            f"{m.passed}/{m.judged}",
            str(m.calls),
            f"{total_tokens(m):,}",
            usd(m.cost_usd),
        )
    console.print(models)
    failing = [t for t in report.tasks if t.passed < t.samples]
    if failing:
        tasks = Table("not passed", "workflow", "passed", "errored", "rounds", "duration s")
        for t in failing[:25]:
            tasks.add_row(
                t.task_id,
                t.workflow,
                f"{t.passed}/{t.samples}",
                str(t.errored),
                str(t.rounds),
                f"{t.duration_s:.1f}",
            )
        console.print(tasks)
        if len(failing) > 25:
            console.print(
                f"… and {len(failing) - 25} more (see the sweep's table artifact or the sweep_tasks table)"
            )


@app.command("sweep")
def sweep(
    tasks_dir: Annotated[
        str, typer.Argument(metavar="DIR", help="A folder of task folders (or a quoted glob).")
    ],
    concurrency: Annotated[int, typer.Option(metavar="N", help="Runs in flight at once.")] = 2,
    provider: ProviderOption = None,
    model: ModelOption = None,
    replay: ReplayOption = None,
    worker: WorkerOption = None,
    router: RouterOption = None,
    sandbox: SandboxOption = "auto",
    max_rounds: MaxRoundsOption = None,
    samples: Annotated[int, typer.Option(metavar="N", help="Runs per task; more than one gives pass@k.")] = 1,
    workflow: Annotated[
        list[str] | None, typer.Option(help="Only tasks of this workflow (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Sweep name, compared with earlier sweeps of the same name.")
    ] = None,
    sweep_id: Annotated[
        str | None, typer.Option(help="Sweep id; an id with finished runs is resumed.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Resume the latest sweep of this name (skip what finished).")
    ] = False,
    traces: TracesOption = None,
    executor: Annotated[
        str, typer.Option(help="local (this process) | deployment (the pool's workers).")
    ] = "local",
    deployment: Annotated[
        str, typer.Option(help="The run-task deployment, for --executor deployment.")
    ] = "run-task/run-task",
    shard_size: Annotated[
        int | None,
        typer.Option(metavar="N", help="--executor deployment: tasks per flow run (1: each a run of --deployment; "
                     "default: about four shards per run in flight)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    cache: CacheOption = None,
    max_cost: MaxCostOption = None,
    max_tokens: MaxTokensOption = None,
    ignore_unpriced: IgnoreUnpricedOption = False,
    retry_errors: Annotated[
        bool, typer.Option(help="With --resume/--sweep-id: run again only the runs that ended in error.")
    ] = False,
) -> int:
    """Run every task under DIR; exit 0 when the sweep completed (whatever its pass rate), else non-zero."""
    from domain.sweep_ledger import sweeps
    from flows.sweep import SweepParams, hand_over, prepare

    settings = get_settings()
    workers, router = choose_workers(settings, provider, model, replay, worker, router)
    store = open_writable_store(traces)
    try:
        params = SweepParams.model_validate(
            {
                "tasks": tasks_dir,
                "workflows": workflow or [],
                "workers": workers,
                "router": router,
                "sandbox": sandbox,
                "concurrency": concurrency,
                "samples": samples,
                "name": name,
                "max_rounds": check_rounds(settings.max_rounds if max_rounds is None else max_rounds),
                "sweep_id": sweep_id,
                "traces_dir": str(store.root),
                "executor": executor,
                "deployment": deployment,
                "shard_size": shard_size,
                "cache": cache,
                "max_cost": max_cost,
                "max_tokens": max_tokens,
                "ignore_unpriced": ignore_unpriced,
                "retry_errors": retry_errors,
            }
        )
    except ValidationError as exc:
        raise _params_error(exc) from None
    prepared = prepare(params)  # bad folders, workers or sandbox: one line, exit 2, nothing written
    if resume and sweep_id is None:
        earlier = sweeps(store, prepared.name)
        if not earlier:
            raise UserInputError(
                f"--resume: no sweep named {prepared.name!r} in {store.root}; start one without --resume"
            )
        params.sweep_id = earlier[0]["sweep_id"]
    if retry_errors and params.sweep_id is None:
        from flows.sweep import RETRY_NEEDS_SWEEP

        raise UserInputError(RETRY_NEEDS_SWEEP)
    params.sweep_id = params.sweep_id or new_id()
    hand_over(params, prepared)  # the flow run in this process need not read every task folder again

    from flows.sweep import sweep_flow
    from orchestrator.cli.progress import prefect_console_to_file

    prefect_console_to_file(settings.prefect_log_path)
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(store, params.sweep_id, len(prepared.items), stop), daemon=True
    )
    watcher.start()
    try:
        report = sweep_flow(**dict(params))
    except OrchestratorError:
        raise
    except Exception as exc:
        raise SweepFailed(
            f"sweep {params.sweep_id} stopped: {type(exc).__name__}: {exc}; "
            f"run again with --sweep-id {params.sweep_id} to resume"
        ) from None
    finally:
        stop.set()
        watcher.join()
    if as_json:
        print(json.dumps(report.summary()))
    else:
        print_report(report, Console())
    return 0
