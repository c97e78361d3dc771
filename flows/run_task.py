"""The single-task entry point: picks the task's workflow flow and runs it as a subflow."""

from __future__ import annotations

from prefect import flow

from flows.registry import WORKFLOW_FLOWS
from orchestrator.errors import UserInputError
from orchestrator.records import RunSummary, WorkerSpec
from orchestrator.taskspec import load_task


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
) -> RunSummary:
    """Run one task folder through its workflow (coding, reasoning, science or rag_qa)."""
    task = load_task(task_dir, require_tests=False)
    workflow_flow = WORKFLOW_FLOWS.get(task.workflow)
    if workflow_flow is None:
        raise UserInputError(f"{task_dir}: workflow {task.workflow!r} has no flow; choose one of {sorted(WORKFLOW_FLOWS)}")
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
    return summary
