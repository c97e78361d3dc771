"""The one definition of a workflow flow's parameters: a run function becomes a Prefect flow.

A workflow is a plain function ``run(request, runner) -> RunSummary`` over its steps;
:func:`workflow_flow` wraps it as the Prefect flow named after the workflow, taking the parameters
of :class:`orchestrator.records.RunRequest`, one for each field (what ``run-task`` passes on, and a
sweep's runs).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from domain.routing import refuse_unpriced
from flows.parameters import model_parameters
from flows.runner import PrefectRunner, Runner
from orchestrator.budget import Budget
from orchestrator.records import RunRequest, RunSummary
from orchestrator.settings import get_settings
from orchestrator.taskspec import load_task
from tasks.call_scope import RunScope, has_scope, scoped

WorkflowRun = Callable[[RunRequest, Runner], RunSummary]

#: flow name -> its run function, to run a workflow's steps without a flow of its own (PlainRunner).
RUNS: dict[str, WorkflowRun] = {}


def workflow_flow(name: str, description: str, run: WorkflowRun, *, run_name: bool = False) -> Any:
    """The Prefect flow of one workflow; its body runs ``run`` with each call a task run.
    ``run_name``: its runs are named after the task folder (and sweep) instead of Prefect's random
    names, for a flow that is started on its own (a deployment's runs)."""
    RUNS[name] = run

    # Prefect types task_runner with an invariant generic that rejects its own ThreadPoolTaskRunner.
    # The parameters are RunRequest's fields, each its own (flows/parameters.py).
    @flow(
        name=name,
        description=description,
        task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
        log_prints=False,
        flow_run_name=_task_run_name if run_name else None,
    )
    @model_parameters(RunRequest)
    def workflow(request: RunRequest) -> RunSummary:
        """Run one task folder."""
        scope = run_scope(request)
        # A sweep (or an outer run-task flow) attached the run's scope already: it stays the one.
        with nullcontext() if scope is None or has_scope(request.run_id) else scoped(request.run_id, scope):
            return run(request, PrefectRunner())

    return workflow


def _task_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    name = Path(str(params.get("task_dir") or "task")).name
    return name + (f" · sweep {str(params['sweep_id'])[:8]}" if params.get("sweep_id") else "")


def run_scope(request: RunRequest) -> RunScope | None:
    """The budget and cache choice the request asks for (None: it asks for neither)."""
    budget = Budget(max_cost_usd=request.max_cost, max_tokens=request.max_tokens, ignore_unpriced=request.ignore_unpriced)
    if not budget.limited and request.cache is None:
        return None
    if request.max_cost is not None and not request.ignore_unpriced:
        settings = get_settings()
        workflow = load_task(request.task_dir, require_tests=False).workflow
        refuse_unpriced(request.workers, request.router or settings.router_mode, [workflow], settings)
    return RunScope(budget=budget if budget.limited else None, cache=request.cache)
