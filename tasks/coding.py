"""Prefect tasks of the coding workflow: write code, test it in the sandbox."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from domain.code_extract import extract_code
from orchestrator.records import AttemptRow, Message, WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from sandbox import get_backend
from sandbox.suites import run_suites
from tasks.question import ask_solver

OUTPUT_EXCERPT_CHARS = 4000


class CodeDraft(BaseModel):
    """One round's code from one candidate, with the conversation that produced it."""

    code: str
    messages: list[Message]
    worker: WorkerSpec
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


def _entry_name(task: Task) -> str | None:
    """The function the starter file leaves to implement (its first def), to pick the right code block."""
    for line in task.entry_source().splitlines():
        if line.startswith("def "):
            return line[4:].split("(")[0].strip()
    return None


@task(name="write-code", cache_policy=NO_CACHE)
def write_code(
    task: Task,
    workers: list[WorkerSpec],
    messages: list[Message],
    run_id: str,
    candidate_id: str,
    purpose: str,
    traces_dir: str,
) -> CodeDraft:
    """Ask the model (falling back along ``workers``) for the entry file: a solver turn, then its code."""
    reply = ask_solver.fn(task, workers, messages, run_id, candidate_id, purpose, traces_dir, get_settings().temperature)
    return CodeDraft(
        code=extract_code(reply.text, _entry_name(task)),
        messages=[*messages, Message(role="assistant", content=reply.text)],
        worker=reply.worker,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        cost_usd=reply.cost_usd,
    )


@task(name="run-tests", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def run_tests(
    task: Task,
    code: str,
    suites: list[str],
    sandbox: str,
    run_id: str,
    candidate_id: str,
    worker: str,
    round_number: int,
    traces_dir: str,
) -> list[AttemptRow]:
    """Run the test suites (``visible``, ``hidden``) against ``code`` in one sandbox session; one
    attempt per suite, in that order, each verdict from pytest's report, taken as the task's
    ``verdict`` mode says.

    Retried once by Prefect: a failure here is the sandbox failing to start, not the tests failing.
    """
    settings = get_settings()
    backend = get_backend(sandbox, settings)
    files = {**task.starter_files(), task.spec.entry: code}
    tests = {name: task.visible_tests() if name == "visible" else task.hidden_tests() for name in suites}
    outcomes = run_suites(backend, files, tests, task.spec.limits, entry=task.spec.entry, mode=task.spec.verdict)
    rows = []
    for suite, (result, report) in outcomes.items():
        output = (result.stdout + ("\n" + result.stderr if result.stderr.strip() else "")).strip()
        rows.append(AttemptRow(
            run_id=run_id,
            candidate_id=candidate_id,
            worker=worker,
            round=round_number,
            code=code,
            sandbox=result.backend or backend.name,
            suite=suite,
            exit_code=result.exit_code,
            report_found=report.report_found,
            passed=report.all_passed,
            tests_passed=report.passed,
            tests_failed=report.failed,
            tests_errors=report.errors,
            duration_s=result.duration_s,
            timed_out=result.timed_out,
            killed=result.killed,
            output_excerpt=output[-OUTPUT_EXCERPT_CHARS:],
        ))
    TraceStore(traces_dir).write("attempts", rows)
    return rows
