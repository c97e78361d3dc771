"""The single-task entry points. The run-task deployment runs the task's workflow steps in its own
flow run, so the run a user triggers carries the verdict card and the verdict's log line (a subflow
would put both one click deeper). ``orchestrator run`` runs the workflow's own flow: one flow run."""

from __future__ import annotations

from collections.abc import Callable

from flows._workflow import workflow_flow
from flows.registry import WORKFLOW_FLOWS, WORKFLOW_RUNS
from flows.runner import Runner
from orchestrator.budget import BudgetExhausted
from orchestrator.errors import UserInputError
from orchestrator.records import RunRequest, RunSummary, utcnow
from orchestrator.settings import get_settings
from orchestrator.taskspec import load_task
from tasks.call_scope import spent_by_run
from tasks.logs import run_logger
from tasks.run_record import record_run, verdict_line


def run_any(request: RunRequest, runner: Runner) -> RunSummary:
    """Run one task folder through its workflow (coding, reasoning, science or rag_qa), its steps
    in the flow run that calls this (run-task's)."""
    return _run(request, lambda workflow: WORKFLOW_RUNS[workflow](request, runner))


def run_in_own_flow(request: RunRequest) -> RunSummary:
    """Run one task folder as its workflow's own flow run (what ``orchestrator run`` starts)."""
    return _run(request, lambda workflow: WORKFLOW_FLOWS[workflow](**dict(request)))


def _run(request: RunRequest, run: Callable[[str], RunSummary]) -> RunSummary:
    task = load_task(request.task_dir, require_tests=False)
    if task.workflow not in WORKFLOW_RUNS:
        raise UserInputError(
            f"{request.task_dir}: workflow {task.workflow!r} has no flow; choose one of {sorted(WORKFLOW_RUNS)}"
        )
    started_at = utcnow()
    try:
        summary: RunSummary = run(task.workflow)
    except BudgetExhausted as exc:
        # A step that does not handle the refusal ended the flow: the run is stopped, not failed.
        spent = spent_by_run(request.run_id)
        summary = RunSummary(
            run_id=request.run_id, task_id=task.id, workflow=task.workflow, passed=False, rounds=0,
            tests_passed=0, tests_failed=0, prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens, cost_usd=spent.cost_usd,
            duration_s=round((utcnow() - started_at).total_seconds(), 3), stopped=f"stopped by the {exc.reason}",
        )
        traces = request.traces_dir or get_settings().traces_dir
        record_run(summary, task, request.workers, traces, request.sweep_id, started_at)
    run_logger().info("verdict: %s", verdict_line(summary))
    return summary


run_task_flow = workflow_flow("run-task", "Run one task folder through its workflow.", run_any, run_name=True)
