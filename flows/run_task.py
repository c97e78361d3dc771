"""The single-task entry point: picks the task's workflow flow and runs it as a subflow."""

from __future__ import annotations

from prefect import flow

from flows.registry import WORKFLOW_FLOWS
from orchestrator.budget import Budget, BudgetExhausted
from orchestrator.errors import UserInputError
from orchestrator.records import RunSummary, WorkerSpec, new_id, utcnow
from orchestrator.taskspec import load_task
from tasks.call_scope import RunScope, scoped
from tasks.coding import traces_root
from tasks.run_record import record_run


@flow(name="run-task")
def run_task_flow(
    task_dir: str,
    workers: list[WorkerSpec] | None = None,
    router: str | None = None,
    max_rounds: int = 2,
    sandbox: str = "auto",
    traces_dir: str | None = None,
    sweep_id: str | None = None,
    run_id: str | None = None,
    cache: bool | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    ignore_unpriced: bool = False,
) -> RunSummary:
    """Run one task folder through its workflow (coding, reasoning, science or rag_qa).

    ``cache``: answer repeated model calls from the on-disk cache (None: ORCH_CACHE decides).
    ``max_cost`` (USD) / ``max_tokens``: the run stops between model calls before it would cross
    them, and its summary says so (``stopped``).
    """
    task = load_task(task_dir, require_tests=False)
    workflow_flow = WORKFLOW_FLOWS.get(task.workflow)
    if workflow_flow is None:
        raise UserInputError(f"{task_dir}: workflow {task.workflow!r} has no flow; choose one of {sorted(WORKFLOW_FLOWS)}")
    run_id = run_id or new_id()
    budget = Budget(max_cost_usd=max_cost, max_tokens=max_tokens, ignore_unpriced=ignore_unpriced)
    started_at = utcnow()
    with scoped(run_id, RunScope(budget=budget if budget.limited else None, cache=cache)):
        try:
            summary: RunSummary = workflow_flow(
                task_dir=task_dir,
                workers=workers,
                router=router,
                max_rounds=max_rounds,
                sandbox=sandbox,
                traces_dir=traces_dir,
                sweep_id=sweep_id,
                run_id=run_id,
            )
        except BudgetExhausted as exc:
            # A step that does not handle the refusal ended the flow: the run is stopped, not failed.
            summary = RunSummary(
                run_id=run_id, task_id=task.id, workflow=task.workflow, passed=False, rounds=0,
                tests_passed=0, tests_failed=0, prompt_tokens=0, completion_tokens=0, cost_usd=None,
                duration_s=round((utcnow() - started_at).total_seconds(), 3),
                stopped=f"stopped by the {exc.reason}",
            )
            record_run(summary, task, workers or [], traces_root(traces_dir), sweep_id, started_at)
    return summary
