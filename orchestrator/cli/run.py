"""``orchestrator run``: one task folder through its workflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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
    TaskDirArgument,
    TracesOption,
    WorkerOption,
    check_budget,
    check_rounds,
    open_writable_store,
)
from orchestrator.errors import UserInputError
from orchestrator.records import RunRequest, RunSummary, WorkerSpec
from orchestrator.settings import Settings, get_settings
from orchestrator.taskspec import load_task


def build_workers(
    settings: Settings,
    provider: str | None,
    model: str | None,
    replay: Path | None,
    worker: list[str] | None,
) -> list[WorkerSpec]:
    """Workers from the options: ``--worker`` (repeatable) wins; else ``--replay``; else provider/model."""
    from domain.workers import parse_worker
    from providers.base import provider_names

    if provider is not None and provider not in provider_names():
        raise UserInputError(f"--provider: unknown provider {provider!r}; choose one of {', '.join(provider_names())}")
    if worker:
        if provider or model or replay:
            raise UserInputError("--worker cannot be combined with --provider/--model/--replay; use one way")
        return [parse_worker(w) for w in worker]
    if replay is not None:
        if provider not in (None, "replay"):
            raise UserInputError("--replay implies --provider replay; drop --provider")
        return [WorkerSpec(provider="replay", model=str(replay))]
    if provider == "replay" and not model:
        raise UserInputError("--provider replay needs --model FILE (or use --replay FILE)")
    if provider and not model and provider != settings.provider:
        raise UserInputError(f"--provider {provider} needs --model NAME")
    return [WorkerSpec(provider=provider or settings.provider, model=model or settings.model)]


def choose_workers(
    settings: Settings,
    provider: str | None,
    model: str | None,
    replay: Path | None,
    worker: list[str] | None,
    router: str | None,
) -> tuple[list[WorkerSpec], str | None]:
    """Explicit workers (any worker option) and no mode, or no workers and the router mode
    (``--router``, else ORCH_ROUTER_MODE): the same choice for ``run`` and ``sweep``."""
    if not (worker or provider or model or replay):
        return [], router or settings.router_mode
    if router:
        raise UserInputError("--router picks the workers; drop it, or drop --worker/--provider/--model/--replay")
    return build_workers(settings, provider, model, replay, worker), None


def print_summary(summary: RunSummary, console: Console) -> None:
    verdict = "[green]PASSED[/green]" if summary.passed else "[red]FAILED[/red]"
    console.print(
        f"{summary.task_id} ({summary.workflow}): {verdict} after {summary.rounds} round(s); "
        f"tests {summary.tests_passed} passed, {summary.tests_failed} failed; "
        f"{total_tokens(summary):,} tokens; "
        f"cost {usd(summary.cost_usd)}; "
        f"{summary.duration_s:.1f}s; sandbox {summary.sandbox}; run {summary.run_id}"
    )
    table = Table("candidate", "worker", "rounds", "passed", "tests ok/fail", "tokens", "error")
    for cand in summary.candidates:
        table.add_row(
            cand.candidate_id + (" *" if cand.candidate_id == summary.best_candidate else ""),
            cand.worker,
            str(cand.rounds),
            {True: "yes", False: "no", None: "-"}[cand.passed],
            f"{cand.tests_passed}/{cand.tests_failed + cand.tests_errors}",
            f"{total_tokens(cand):,}",
            (cand.error or "")[:80],
        )
    console.print(table)
    if summary.stopped:
        console.print(f"[yellow]stopped between calls:[/yellow] {summary.stopped}")


def summary_json(summary: RunSummary) -> str:
    payload = summary.model_dump(mode="json", exclude={"candidates"})
    payload["candidates"] = [c.model_dump(mode="json", exclude={"output"}) for c in summary.candidates]
    return json.dumps(payload)


@app.command("run")
def run(
    task_dir: TaskDirArgument,
    provider: ProviderOption = None,
    model: ModelOption = None,
    replay: ReplayOption = None,
    worker: WorkerOption = None,
    router: RouterOption = None,
    sandbox: SandboxOption = "auto",
    max_rounds: MaxRoundsOption = None,
    traces: TracesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    cache: CacheOption = None,
    max_cost: MaxCostOption = None,
    max_tokens: MaxTokensOption = None,
    ignore_unpriced: IgnoreUnpricedOption = False,
) -> int:
    """Run one task; exit 0 when it passes, 1 when it completed but failed, 2 on bad input."""
    from domain.routing import check_router
    from domain.workers import preflight
    from sandbox import get_backend

    settings = get_settings()
    rounds = check_rounds(settings.max_rounds if max_rounds is None else max_rounds)
    task = load_task(task_dir, require_tests=False)  # a coding task without tests gets generated ones
    workers, mode = choose_workers(settings, provider, model, replay, worker, router)
    if mode is None:
        preflight(workers, settings)
    else:
        check_router(mode, settings)
    check_budget(max_cost, max_tokens)
    if max_cost is not None and not ignore_unpriced:
        from domain.routing import refuse_unpriced

        refuse_unpriced(workers, mode or "", [task.workflow], settings)
    backend = get_backend(sandbox, settings)
    store = open_writable_store(traces)
    who = ", ".join(w.label for w in workers) if workers else f"the {mode} router"

    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.run_task import run_in_own_flow
    from orchestrator.cli.progress import prefect_console_to_file

    request = RunRequest.model_validate(dict(
        task_dir=str(task.folder), workers=workers, router=mode, max_rounds=rounds, sandbox=backend.name,
        traces_dir=str(store.root), cache=cache, max_cost=max_cost, max_tokens=max_tokens,
        ignore_unpriced=ignore_unpriced,
    ))  # sandbox: the resolved backend's name, one of the names
    prefect_console_to_file(settings.prefect_log_path)
    # No flow-run heartbeats: they let a server mark a worker's vanished run crashed, while this
    # command is the run's process and reports its end itself; their thread's join at the flow's end
    # costs up to a second of a seconds-long command.
    no_heartbeats = temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    with err_console.status(f"running {task.id} with {who} ({backend.name} sandbox)"), no_heartbeats:
        # The workflow's own flow (a flow of retryable task runs), not run-task around it: one flow
        # run's start and end instead of two (docs/traces.md, "Throughput").
        summary = run_in_own_flow(request)
    if as_json:
        print(summary_json(summary))
    else:
        print_summary(summary, Console(emoji=False))
    return 0 if summary.passed else 1
