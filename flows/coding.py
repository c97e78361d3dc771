"""The coding flow: load → write code (per solver, concurrently) → pytest in the sandbox → fix → persist."""

from __future__ import annotations

import json
import time

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from orchestrator.records import AttemptRow, CandidateResult, Message, RunRow, RunSummary, WorkerSpec, new_id, utcnow
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore
from sandbox import get_backend
from tasks.coding import CodeDraft, load_task_folder, run_tests, traces_root, write_code
from tasks.model_call import release_run
from tasks.prompts import fix_messages, solve_messages


class Candidate(BaseModel):
    """A solver's candidate as it moves through the rounds."""

    candidate_id: str = Field(default_factory=new_id)
    worker: WorkerSpec
    fallbacks: list[WorkerSpec]
    messages: list[Message] = Field(default_factory=list)
    code: str = ""
    rounds: int = 0
    last: AttemptRow | None = None
    final: AttemptRow | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    error: str | None = None

    def add_draft(self, draft: CodeDraft) -> None:
        self.code, self.messages = draft.code, draft.messages
        self.prompt_tokens += draft.prompt_tokens
        self.completion_tokens += draft.completion_tokens
        self.cost_usd = None if self.cost_usd is None or draft.cost_usd is None else self.cost_usd + draft.cost_usd

    def result(self) -> CandidateResult:
        verdict = self.final or self.last
        return CandidateResult(
            candidate_id=self.candidate_id,
            worker=self.worker.label,
            code=self.code,
            rounds=self.rounds,
            passed=bool(verdict and verdict.passed),
            tests_passed=verdict.tests_passed if verdict else 0,
            tests_failed=verdict.tests_failed if verdict else 0,
            tests_errors=verdict.tests_errors if verdict else 0,
            suite=verdict.suite if verdict else "none",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd,
            error=self.error,
        )


def default_workers() -> list[WorkerSpec]:
    settings = get_settings()
    return [WorkerSpec(provider=settings.provider, model=settings.model, role="solver")]


def _sum_cost(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else round(sum(v for v in values if v is not None), 10)


@flow(name="coding", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)
def coding_flow(
    task_dir: str,
    workers: list[WorkerSpec] | None = None,
    max_rounds: int = 2,
    sandbox: str = "auto",
    traces_dir: str | None = None,
    sweep_id: str | None = None,
    run_id: str | None = None,
) -> RunSummary:
    """Solve one coding task with every solver worker, fixing failures for up to ``max_rounds`` rounds."""
    logger = get_run_logger()
    started_at, started = utcnow(), time.perf_counter()
    run_id = run_id or new_id()
    traces = traces_root(traces_dir)
    max_rounds = min(max(max_rounds, 1), 4)
    backend = get_backend(sandbox, get_settings()).name
    task = load_task_folder(task_dir)
    workers = workers or default_workers()
    solvers = [w for w in workers if w.role == "solver"] or workers[:1]
    candidates = [
        Candidate(worker=w, fallbacks=[w, *[o for o in solvers if o != w]], messages=solve_messages(task))
        for w in solvers
    ]
    has_visible = task.has_tests

    active = list(candidates)
    for round_number in range(1, max_rounds + 1):
        purpose = "solve" if round_number == 1 else "fix"
        drafts = {
            c.candidate_id: write_code.submit(
                task, c.fallbacks, c.messages, run_id, c.candidate_id, purpose, traces
            )
            for c in active
        }
        tested = []
        for cand in active:
            draft = drafts[cand.candidate_id].result(raise_on_failure=False)
            if not isinstance(draft, CodeDraft):
                cand.error = str(draft)
                logger.warning("candidate %s (%s) failed: %s", cand.candidate_id, cand.worker.label, cand.error)
                continue
            cand.add_draft(draft)
            cand.rounds = round_number
            tested.append(cand)
        suite = "visible" if has_visible else "hidden"
        attempts = {
            c.candidate_id: run_tests.submit(
                task, c.code, suite, backend, run_id, c.candidate_id, c.worker.label, round_number, traces
            )
            for c in tested
        }
        active = []
        for cand in tested:
            cand.last = attempts[cand.candidate_id].result()
            logger.info(
                "round %d %s: %d passed, %d failed%s",
                round_number, cand.worker.label, cand.last.tests_passed, cand.last.tests_failed,
                " (timed out)" if cand.last.timed_out else "",
            )
            # Only visible-test output may go back to a model; hidden results never do.
            if has_visible and not cand.last.passed and round_number < max_rounds:
                cand.messages = fix_messages(task, cand.messages, cand.code, cand.last.output_excerpt)
                active.append(cand)
        if not active:
            break

    if task.has_hidden_tests and has_visible:
        finals = {
            c.candidate_id: run_tests.submit(
                task, c.code, "hidden", backend, run_id, c.candidate_id, c.worker.label, c.rounds, traces
            )
            for c in candidates
            if c.last is not None
        }
        for cand in candidates:
            if cand.candidate_id in finals:
                cand.final = finals[cand.candidate_id].result()

    results = [c.result() for c in candidates]
    ranked = sorted(
        results,
        key=lambda r: (not r.passed, -r.tests_passed, r.tests_failed + r.tests_errors, r.completion_tokens),
    )
    best = ranked[0] if ranked else None
    errors = [r.error for r in results if r.error]
    summary = RunSummary(
        run_id=run_id,
        task_id=task.id,
        workflow=task.workflow,
        passed=bool(best and best.passed),
        rounds=max((r.rounds for r in results), default=0),
        tests_passed=best.tests_passed if best else 0,
        tests_failed=(best.tests_failed + best.tests_errors) if best else 0,
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        cost_usd=_sum_cost([r.cost_usd for r in results]),
        duration_s=round(time.perf_counter() - started, 3),
        sandbox=backend,
        best_candidate=best.candidate_id if best else None,
        candidates=results,
        error="; ".join(errors) if errors and not any(r.rounds for r in results) else None,
    )
    TraceStore(traces).write(
        "runs",
        [
            RunRow(
                run_id=run_id,
                task_id=task.id,
                workflow=task.workflow,
                task_dir=str(task.folder),
                status="error" if summary.error else "completed",
                passed=summary.passed,
                rounds=summary.rounds,
                candidates=len(results),
                prompt_tokens=summary.prompt_tokens,
                completion_tokens=summary.completion_tokens,
                cost_usd=summary.cost_usd,
                duration_s=summary.duration_s,
                sandbox=backend,
                workers=json.dumps([w.label for w in workers]),
                sweep_id=sweep_id,
                flow_run_id=str(flow_run.get_id() or ""),
                error=summary.error,
                started_at=started_at,
                finished_at=utcnow(),
            )
        ],
    )
    release_run(run_id)
    return summary
