"""The one definition of a workflow flow's parameters: a run function becomes a Prefect flow.

A workflow is a plain function ``run(request, runner) -> RunSummary`` over its steps;
:func:`workflow_flow` wraps it as the Prefect flow named after the workflow, taking the parameters
of :class:`orchestrator.records.RunRequest` (what ``run-task`` passes on, and a sweep's subflows).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from domain.routing import refuse_unpriced
from flows.runner import PrefectRunner, Runner
from orchestrator.budget import Budget
from orchestrator.records import RunRequest, RunSummary, SandboxName, WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.taskspec import load_task
from tasks.call_scope import RunScope, has_scope, scoped

WorkflowRun = Callable[[RunRequest, Runner], RunSummary]

#: flow name -> its run function, to run a workflow's steps without a flow of its own (PlainRunner).
RUNS: dict[str, WorkflowRun] = {}


def workflow_flow(name: str, description: str, run: WorkflowRun) -> Any:
    """The Prefect flow of one workflow; its body runs ``run`` with each call a task run."""
    RUNS[name] = run

    # Prefect types task_runner with an invariant generic that rejects its own ThreadPoolTaskRunner.
    @flow(name=name, description=description, task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)  # type: ignore[arg-type]
    def workflow(
        task_dir: str,
        workers: list[WorkerSpec] | None = None,
        router: str | None = None,
        max_rounds: int = 2,
        sandbox: SandboxName = "auto",
        traces_dir: str | None = None,
        sweep_id: str | None = None,
        run_id: str | None = None,
        cache: bool | None = None,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        ignore_unpriced: bool = False,
    ) -> RunSummary:
        request = RunRequest(
            task_dir=task_dir, workers=workers, router=router, max_rounds=max_rounds, sandbox=sandbox,
            traces_dir=traces_dir, sweep_id=sweep_id, **({"run_id": run_id} if run_id else {}),
            cache=cache, max_cost=max_cost, max_tokens=max_tokens, ignore_unpriced=ignore_unpriced,
        )
        scope = run_scope(request)
        # A sweep (or an outer run-task flow) attached the run's scope already: it stays the one.
        with nullcontext() if scope is None or has_scope(request.run_id) else scoped(request.run_id, scope):
            return run(request, PrefectRunner())

    return workflow


def run_scope(request: RunRequest) -> RunScope | None:
    """The budget and cache choice the request asks for (None: it asks for neither)."""
    budget = Budget(max_cost_usd=request.max_cost, max_tokens=request.max_tokens, ignore_unpriced=request.ignore_unpriced)
    if not budget.limited and request.cache is None:
        return None
    if request.max_cost is not None and not request.ignore_unpriced:
        settings = get_settings()
        workflow = load_task(request.task_dir, require_tests=False).workflow
        refuse_unpriced(request.workers or [], request.router or settings.router_mode, [workflow], settings)
    return RunScope(budget=budget if budget.limited else None, cache=request.cache)
