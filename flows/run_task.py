"""The single-task entry point (the run-task deployment): picks the task's workflow flow and runs it as a subflow."""

from __future__ import annotations

from flows._workflow import workflow_flow
from flows.registry import WORKFLOW_FLOWS
from flows.runner import Runner
from orchestrator.budget import BudgetExhausted
from orchestrator.errors import UserInputError
from orchestrator.records import RunRequest, RunSummary, utcnow
from orchestrator.settings import get_settings
from orchestrator.taskspec import load_task
from tasks.run_record import record_run


def run_any(request: RunRequest, runner: Runner) -> RunSummary:
    """Run one task folder through its workflow (coding, reasoning, science or rag_qa)."""
    task = load_task(request.task_dir, require_tests=False)
    workflow_flow_ = WORKFLOW_FLOWS.get(task.workflow)
    if workflow_flow_ is None:
        raise UserInputError(
            f"{request.task_dir}: workflow {task.workflow!r} has no flow; choose one of {sorted(WORKFLOW_FLOWS)}"
        )
    started_at = utcnow()
    try:
        summary: RunSummary = workflow_flow_(**dict(request))
    except BudgetExhausted as exc:
        # A step that does not handle the refusal ended the flow: the run is stopped, not failed.
        summary = RunSummary(
            run_id=request.run_id, task_id=task.id, workflow=task.workflow, passed=False, rounds=0,
            tests_passed=0, tests_failed=0, prompt_tokens=0, completion_tokens=0, cost_usd=None,
            duration_s=round((utcnow() - started_at).total_seconds(), 3), stopped=f"stopped by the {exc.reason}",
        )
        traces = request.traces_dir or get_settings().traces_dir
        record_run(summary, task, request.workers or [], traces, request.sweep_id, started_at)
    return summary


run_task_flow = workflow_flow("run-task", "Run one task folder through its workflow.", run_any)
