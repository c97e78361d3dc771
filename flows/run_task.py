"""The single-task entry point (the run-task deployment): picks the task's workflow flow and runs it as a subflow."""

from __future__ import annotations

from flows._workflow import workflow_flow
from flows.registry import WORKFLOW_FLOWS
from flows.runner import Runner
from orchestrator.errors import UserInputError
from orchestrator.records import RunRequest, RunSummary
from orchestrator.taskspec import load_task


def run_any(request: RunRequest, runner: Runner) -> RunSummary:
    """Run one task folder through its workflow (coding, reasoning, science or rag_qa)."""
    task = load_task(request.task_dir, require_tests=False)
    workflow_flow_ = WORKFLOW_FLOWS.get(task.workflow)
    if workflow_flow_ is None:
        raise UserInputError(
            f"{request.task_dir}: workflow {task.workflow!r} has no flow; choose one of {sorted(WORKFLOW_FLOWS)}"
        )
    summary: RunSummary = workflow_flow_(**dict(request))
    return summary


run_task_flow = workflow_flow("run-task", "Run one task folder through its workflow.", run_any)
