"""The coding flow: load → write code (per solver, concurrently) → pytest in the sandbox → fix → persist."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from orchestrator.records import (
    AttemptRow,
    CandidateResult,
    Message,
    RunSummary,
    WorkerSpec,
    new_id,
    utcnow,
)
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from sandbox import get_backend
from tasks.coding import CodeDraft, load_task_folder, run_tests, traces_root, write_code
from tasks.debate import Critique, critique, revise_messages
from tasks.judge import judge_task, judge_workers_for
from tasks.model_call import release_run
from domain.prompts import fix_messages, solve_messages
from tasks.route import route_task
from tasks.run_record import record_run, sum_cost
from tasks.testgen import TaskWithGeneratedTests, generate_tests, review_generated_tests


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
            output=self.code,
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


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def _revise_instruction(task: Task, test_output: str | None) -> str:
    tests = f"pytest output:\n```\n{test_output}\n```\n\n" if test_output is not None else ""
    return f"{tests}Fix `{task.spec.entry}`. Reply with the complete corrected file in one ```python block."


# Prefect types task_runner with an invariant generic that rejects its own ThreadPoolTaskRunner.
@flow(name="coding", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)  # type: ignore[arg-type]
def coding_flow(
    task_dir: str,
    workers: list[WorkerSpec] | None = None,
    router: str | None = None,
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
    backend = get_backend(sandbox, get_settings()).name
    task = load_task_folder(task_dir, require_tests=False)
    decision = route_task(task, run_id, traces, router=router, workers=workers, max_rounds=max_rounds)
    workers, max_rounds = decision.workers, decision.controls.max_rounds
    if not task.has_tests and not task.has_hidden_tests:
        # The routed workers (a tester among them, else the solvers) write and check tests first.
        task = generate_tests(task, workers, run_id, traces, backend)
    solvers = decision.by_role("solver") or workers[:1]
    critics = decision.by_role("critic") if decision.controls.use_debate else []
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
        going_on = []
        for cand in tested:
            cand.last = attempts[cand.candidate_id].result()
            logger.info(
                "round %d %s: %d passed, %d failed%s",
                round_number, cand.worker.label, cand.last.tests_passed, cand.last.tests_failed,
                " (timed out)" if cand.last.timed_out else "",
            )
            # Visible tests are the verifier of record: a pass ends the candidate's rounds. Without
            # visible tests only a critic can ask for another round (hidden results never go back).
            failing = has_visible and not cand.last.passed
            if round_number < max_rounds and (failing or (critics and not has_visible)):
                going_on.append(cand)
        reviews = {
            c.candidate_id: critique.submit(
                task.prompt, _fenced(c.code), critics, run_id, task.id, c.candidate_id, traces,
                feedback=c.last.output_excerpt if has_visible and c.last else None,
            )
            for c in going_on
            if critics
        }
        active = []
        for cand in going_on:
            output = cand.last.output_excerpt if has_visible and cand.last else None
            review = reviews[cand.candidate_id].result(raise_on_failure=False) if critics else None
            # The draft's messages end with the model's reply; the fenced code stands in for it.
            history = cand.messages[:-1]
            if isinstance(review, Critique) and not (review.approved and not has_visible):
                cand.messages = revise_messages(history, _fenced(cand.code), review.text, _revise_instruction(task, output))
            elif output is not None:
                cand.messages = fix_messages(task, history, cand.code, output)
            else:
                continue  # approved by the critic (or the critic failed) and no visible tests: done
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
    if isinstance(task, TaskWithGeneratedTests):
        # A generated test that every candidate fails the same way is more likely wrong than they are.
        tests_review = review_generated_tests(task, results, backend, run_id, traces)
        results = [
            r.model_copy(update={"passed": tests_review.passes_trusted[r.candidate_id]})
            if r.candidate_id in tests_review.passes_trusted else r
            for r in results
        ]
    verdicts = judge_task(
        task, results, run_id, traces,
        judge_workers=judge_workers_for(workers, get_settings()), prompt=solve_messages(task),
    )
    best = next((r for r in results if verdicts and r.candidate_id == verdicts[0].candidate_id), None)
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
        cost_usd=sum_cost([r.cost_usd for r in results]),
        duration_s=round(time.perf_counter() - started, 3),
        sandbox=backend,
        best_candidate=best.candidate_id if best else None,
        candidates=results,
        error="; ".join(errors) if errors and not any(r.rounds for r in results) else None,
    )
    record_run(summary, task, workers, traces, sweep_id, started_at)
    release_run(run_id)
    return summary
