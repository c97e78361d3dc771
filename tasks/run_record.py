"""The end of every workflow flow: the ``runs`` row and the run's summary artifact in the Prefect UI."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from domain.usage import total_tokens, usd
from orchestrator.records import CandidateResult, RunRow, RunSummary, WorkerSpec, utcnow
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from tasks.bookkeeping import bookkeeping
from tasks.call_scope import scope_for, spent_by_run
from tasks.transcript import run_transcript


def artifact_key(task_id: str) -> str:
    """One key per task, so the UI shows a task's runs over time (keys allow a-z, 0-9 and dashes)."""
    return "run-" + (re.sub(r"[^a-z0-9]+", "-", task_id.lower()).strip("-") or "task")


def budget_stop(summary: RunSummary) -> str | None:
    """Why the run stopped early: what the flow said, else the reason its budget refused a call."""
    if summary.stopped:
        return summary.stopped
    budget = scope_for(summary.run_id).budget
    refused = budget.refused.get(summary.run_id) if budget is not None else None
    return f"stopped by the {refused}" if refused else None


def verdict(summary: RunSummary) -> str:
    return "passed" if summary.passed else ("stopped" if summary.stopped else "error" if summary.error else "failed")


def verdict_line(summary: RunSummary) -> str:
    """The run's outcome in one line (the run's last log line)."""
    return (
        f"{summary.task_id} ({summary.workflow}) {verdict(summary).upper()} after {summary.rounds} round(s); "
        f"tests {summary.tests_passed} passed, {summary.tests_failed} failed; {total_tokens(summary):,} tokens; "
        f"cost {usd(summary.cost_usd)}; run {summary.run_id}"
    )


def summary_markdown(summary: RunSummary) -> str:
    verdict_ = verdict(summary)
    lines = [
        f"### {summary.task_id} ({summary.workflow}): **{verdict_}**",
        "",
        f"run `{summary.run_id}` · {summary.rounds} round(s) · sandbox {summary.sandbox or 'none'} · "
        f"{summary.duration_s:.1f} s · {total_tokens(summary):,} tokens · "
        f"cost {usd(summary.cost_usd)}",
        "",
        "| candidate | worker | passed | rounds | tokens | cost | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in summary.candidates:
        best = " (best)" if c.candidate_id == summary.best_candidate else ""
        error = (c.error or "").replace("|", "\\|").replace("\n", " ")[:120]
        lines.append(
            f"| `{c.candidate_id[:8]}`{best} | {c.worker} | {c.passed} | {c.rounds} | "
            f"{total_tokens(c):,} | {usd(c.cost_usd)} | {error} |"
        )
    if summary.error:
        lines += ["", f"error: {summary.error}"]
    if summary.stopped:
        lines += ["", f"stopped between calls: {summary.stopped}"]
    return "\n".join(lines)


def build_summary(
    run_id: str,
    task: Task,
    results: list[CandidateResult],
    best: CandidateResult | None,
    *,
    started: float,
    sandbox: str | None,
    passed: bool,
    tests_passed: int,
    tests_failed: int,
) -> RunSummary:
    """A run's summary from its candidates; the workflow says what passing and the test counts mean."""
    errors = [r.error for r in results if r.error]
    spent = spent_by_run(run_id)  # every call of the run, not only the candidates'
    return RunSummary(
        run_id=run_id,
        task_id=task.id,
        workflow=task.workflow,
        passed=passed,
        rounds=max((r.rounds for r in results), default=0),
        tests_passed=tests_passed,
        tests_failed=tests_failed,
        prompt_tokens=spent.prompt_tokens,
        completion_tokens=spent.completion_tokens,
        cost_usd=spent.cost_usd,
        duration_s=round(time.perf_counter() - started, 3),
        sandbox=sandbox,
        best_candidate=best.candidate_id if best else None,
        candidates=results,
        # an error of the run only when no candidate got as far as a round
        error="; ".join(errors) if errors and not any(r.rounds for r in results) else None,
    )


def _artifact_url(artifact_id: object) -> str:
    """The artifact's page in the Prefect UI (relative to the UI's root when PREFECT_UI_URL is unset)."""
    from prefect.settings import PREFECT_UI_URL

    return f"{(PREFECT_UI_URL.value() or '').rstrip('/')}/artifacts/artifact/{artifact_id}"


def record_run(
    summary: RunSummary,
    task: Task,
    workers: list[WorkerSpec],
    traces: str,
    sweep_id: str | None,
    started_at: datetime,
) -> None:
    """Write the run's row (last, so a run with a row is a finished run) and publish its summary.

    A run whose budget refused a call is ``stopped`` (a sweep runs it again on resume), whatever
    the flow made of the refusal.
    """
    stopped = budget_stop(summary)
    if stopped and not summary.stopped:
        summary.stopped = stopped
    spent_by_run(summary.run_id, forget=True)  # the run is over: its tally is in the summary
    flow_run_id = flow_run.get_id()
    store = TraceStore(traces)
    store.write(
        "runs",
        [
            RunRow(
                run_id=summary.run_id,
                task_id=summary.task_id,
                workflow=summary.workflow,
                task_dir=str(task.folder),
                status="stopped" if stopped else "error" if summary.error else "completed",
                passed=summary.passed,
                rounds=summary.rounds,
                candidates=len(summary.candidates),
                prompt_tokens=summary.prompt_tokens,
                completion_tokens=summary.completion_tokens,
                cost_usd=summary.cost_usd,
                duration_s=summary.duration_s,
                sandbox=summary.sandbox,
                workers=json.dumps([w.label for w in workers]),
                sweep_id=sweep_id,
                flow_run_id=str(flow_run_id or ""),
                error="; ".join(e for e in (stopped, summary.error) if e) or None,
                started_at=started_at,
                finished_at=utcnow(),
            )
        ],
    )
    if flow_run_id is None or not scope_for(summary.run_id).artifacts:
        return  # steps run without Prefect (tests, plain runners), or a sweep publishes for its runs
    transcript_id = bookkeeping(
        f"the transcript artifact of run {summary.run_id}",
        create_markdown_artifact,
        run_transcript(summary, store),
        key=f"transcript-{artifact_key(summary.task_id)}",
        description=f"Run {summary.run_id} of {summary.task_id}: each candidate's rounds (code, tests, verdict)",
    )
    link = f"\n\n[Transcript: each candidate's rounds]({_artifact_url(transcript_id)})" if transcript_id else ""
    bookkeeping(
        f"the summary artifact of run {summary.run_id}",
        create_markdown_artifact,
        summary_markdown(summary) + link,
        key=artifact_key(summary.task_id),
        description=f"Run {summary.run_id} of {summary.task_id}: verdict, rounds, tokens, cost",
    )
