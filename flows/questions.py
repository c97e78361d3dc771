"""The pipeline the question workflows (reasoning, science, rag_qa) share.

route → (rag_qa: retrieve) → every solver answers, concurrently, ``samples`` times each (science:
running Python in the sandbox on the way) → (``use_debate``: critic reviews, solver revises, up to
``max_rounds``) → parse the final answers → score them against the reference → the verifier checks
each one (rag_qa: each cited chunk) → (samples > 1: majority vote) → judge → persist.

The verdict of record is the reference answer (for rag_qa also the citation check). A task without a
reference has none: its candidates are ranked by the rubric judge, and the run passes when the
verifier accepts the best candidate.
"""

from __future__ import annotations

import json
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from orchestrator.records import (
    CandidateResult,
    Message,
    RouteDecision,
    RunSummary,
    WorkerSpec,
    new_id,
    utcnow,
)
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from sandbox import get_backend
from domain.answers import (
    ParsedAnswer,
    Vote,
    answer_key,
    answer_type_of,
    majority_vote,
    parse_answer,
    score_answer,
)
from tasks.coding import load_task_folder, traces_root
from tasks.debate import Critique, critique, revise_messages
from tasks.judge import judge_task, judge_workers_for
from tasks.model_call import release_run
from tasks.python_tool import code_to_run, run_python
from tasks.question import Reply, ask_solver
from domain.question_prompts import answer_format, question_messages, tool_output_message
from orchestrator.records import AnswerRow
from domain.rag_index import Hit
from tasks.retrieval import retrieve
from tasks.route import route_task
from tasks.run_record import record_run, sum_cost
from tasks.verify import Verification, cited_ids, verify_answer, verify_citations

#: code runs a science candidate may ask for while answering (each round of debate included)
MAX_TOOL_RUNS = 3
#: sampling temperature for self-consistency when the configured one is lower (greedy samples all agree)
SAMPLE_TEMPERATURE = 0.7


class QCandidate(BaseModel):
    """One sample of one solver, as it moves through answering, debate and checks."""

    candidate_id: str = Field(default_factory=new_id)
    worker: WorkerSpec
    fallbacks: list[WorkerSpec]
    sample: int
    history: list[Message]  # the conversation up to (not including) ``reply``
    reply: str = ""
    rounds: int = 1
    tool_runs: int = 0
    approved: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    error: str | None = None
    parsed: ParsedAnswer = ParsedAnswer(answer=None, form="none")
    correct: bool | None = None
    verified: bool | None = None
    votes: int = 0

    def spend(self, prompt_tokens: int, completion_tokens: int, cost_usd: float | None) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd = None if self.cost_usd is None or cost_usd is None else self.cost_usd + cost_usd


class Setup(BaseModel):
    """What every step of one run needs to know."""

    task: Task
    run_id: str
    traces: str
    decision: RouteDecision
    hits: list[Hit] | None
    python_tool: bool
    sandbox: str | None
    temperature: float


def question_flow(name: str, description: str, *, rag: bool = False, python_tool: bool = False) -> Any:
    """A Prefect flow for one question workflow, with the parameters every workflow flow takes."""

    # Prefect types task_runner with an invariant generic that rejects its own ThreadPoolTaskRunner.
    @flow(name=name, description=description, task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)  # type: ignore[arg-type]
    def question_workflow_flow(
        task_dir: str,
        workers: list[WorkerSpec] | None = None,
        router: str | None = None,
        max_rounds: int = 2,
        sandbox: str = "auto",
        traces_dir: str | None = None,
        sweep_id: str | None = None,
        run_id: str | None = None,
    ) -> RunSummary:
        return run_question_workflow(
            task_dir=task_dir, workers=workers, router=router, max_rounds=max_rounds, sandbox=sandbox,
            traces_dir=traces_dir, sweep_id=sweep_id, run_id=run_id, rag=rag, python_tool=python_tool,
        )

    return question_workflow_flow


def run_question_workflow(
    *,
    task_dir: str,
    workers: list[WorkerSpec] | None,
    router: str | None,
    max_rounds: int,
    sandbox: str,
    traces_dir: str | None,
    sweep_id: str | None,
    run_id: str | None,
    rag: bool = False,
    python_tool: bool = False,
) -> RunSummary:
    """The body of the three question flows; called inside a flow, it submits Prefect tasks."""
    started_at, started = utcnow(), time.perf_counter()
    run_id = run_id or new_id()
    traces = traces_root(traces_dir)
    settings = get_settings()
    samples = settings.samples
    task = load_task_folder(task_dir, require_tests=False)
    decision = route_task(task, run_id, traces, router=router, workers=workers, max_rounds=max_rounds)
    use_python = python_tool and decision.tools.python_sandbox
    setup = Setup(
        task=task, run_id=run_id, traces=traces, decision=decision,
        hits=retrieve(task, run_id, traces).hits if rag else None,
        python_tool=use_python,
        sandbox=get_backend(sandbox, settings).name if use_python else None,
        temperature=max(settings.temperature, SAMPLE_TEMPERATURE) if samples > 1 else settings.temperature,
    )
    solvers = decision.by_role("solver") or decision.workers[:1]
    opening = question_messages(task, python_tool=use_python, hits=setup.hits)
    candidates = [
        QCandidate(worker=w, fallbacks=[w, *[o for o in solvers if o != w]], sample=i, history=opening)
        for w in solvers
        for i in range(1, samples + 1)
    ]
    converse(candidates, setup, "solve")
    debate(candidates, setup, opening[-1].content)
    check(candidates, setup)
    vote = majority_vote([c.parsed.answer for c in candidates if not c.error], task.spec) if samples > 1 else None
    if vote is not None:
        for c in candidates:
            key = answer_key(c.parsed.answer, task.spec) if c.parsed.answer else None
            c.votes = vote.count if key is not None and key == vote.key else 0

    results = [candidate_result(c, setup) for c in candidates]
    verdicts = judge_task(
        task, results, run_id, traces, judge_workers=judge_workers_for(decision.workers, settings), prompt=opening
    )
    ranked = [r for v in verdicts for r in results if r.candidate_id == v.candidate_id]
    best = pick_best(ranked, vote, task)
    TraceStore(traces).write("answers", [answer_row(c, setup, r) for c, r in zip(candidates, results, strict=True)])
    summary = summarise(setup, candidates, results, best, vote, started)
    record_run(summary, task, decision.workers, traces, sweep_id, started_at)
    release_run(run_id)
    return summary


# ---------------------------------------------------------------- answering


def converse(candidates: list[QCandidate], setup: Setup, purpose: str) -> None:
    """Ask every candidate's solver (concurrently) until each has a final reply; run the code they ask to run."""
    logger = get_run_logger()
    task, run_id, traces = setup.task, setup.run_id, setup.traces
    active = [c for c in candidates if c.error is None]
    while active:
        replies = {
            c.candidate_id: ask_solver.submit(
                task, c.fallbacks, c.history, run_id, c.candidate_id, purpose, traces, setup.temperature,
                seed=c.sample if setup.temperature > 0 else None,
            )
            for c in active
        }
        runs = {}
        for cand in active:
            reply = replies[cand.candidate_id].result(raise_on_failure=False)
            if not isinstance(reply, Reply):
                cand.error = str(reply)
                logger.warning("candidate %s (%s) failed: %s", cand.candidate_id, cand.worker.label, cand.error)
                continue
            cand.spend(reply.prompt_tokens, reply.completion_tokens, reply.cost_usd)
            cand.reply = reply.text
            code = code_to_run(reply.text) if setup.python_tool and cand.tool_runs < MAX_TOOL_RUNS else None
            if code is not None and setup.sandbox is not None:
                runs[cand.candidate_id] = run_python.submit(
                    code, setup.sandbox, task.spec.limits, run_id, cand.candidate_id, cand.worker.label,
                    cand.tool_runs + 1, traces,
                )
        active = [c for c in active if c.candidate_id in runs]
        for cand in active:
            row = runs[cand.candidate_id].result()
            cand.tool_runs += 1
            feedback = tool_output_message(row.output, row.exit_code, row.timed_out, MAX_TOOL_RUNS - cand.tool_runs)
            cand.history = [*cand.history, Message(role="assistant", content=cand.reply), feedback]


def debate(candidates: list[QCandidate], setup: Setup, question: str) -> None:
    """With ``use_debate``: a critic reviews each answer; unless it approves, the solver revises (round 2..)."""
    controls = setup.decision.controls
    critics = setup.decision.by_role("critic")
    if not (controls.use_debate and critics):
        return
    instruction = "Revise your answer where the review is right. " + answer_format(setup.task)
    for round_number in range(2, controls.max_rounds + 1):
        pending = [c for c in candidates if c.error is None and c.approved is not True]
        reviews = {
            c.candidate_id: critique.submit(
                question, c.reply, critics, setup.run_id, setup.task.id, c.candidate_id, setup.traces
            )
            for c in pending
        }
        revising = []
        for cand in pending:
            review = reviews[cand.candidate_id].result(raise_on_failure=False)
            if not isinstance(review, Critique):
                cand.approved = None
                continue  # no critic could answer: the candidate stands as it is
            cand.spend(review.prompt_tokens, review.completion_tokens, review.cost_usd)
            cand.approved = review.approved
            if not review.approved:
                cand.history = revise_messages(cand.history, cand.reply, review.text, instruction)
                cand.rounds = round_number
                revising.append(cand)
        if not revising:
            break
        converse(revising, setup, "revise")


# ---------------------------------------------------------------- checking


def verifiers_for(decision: RouteDecision) -> list[WorkerSpec]:
    """The decision's verifiers; without one, the first solver checks answers in the verifier role."""
    verifiers = decision.by_role("verifier")
    if verifiers:
        return verifiers
    solvers = decision.by_role("solver") or decision.workers[:1]
    return [solvers[0].model_copy(update={"role": "verifier"})]


def check(candidates: list[QCandidate], setup: Setup) -> None:
    """Parse and score every final answer, then have the verifier check them (concurrently)."""
    task, verifiers = setup.task, verifiers_for(setup.decision)
    answered = [c for c in candidates if c.error is None]
    for cand in answered:
        cand.parsed = parse_answer(cand.reply)
        cand.correct = score_answer(cand.parsed.answer, task.spec)
    futures = {
        c.candidate_id: (
            verify_citations.submit(task, verifiers, c.reply, setup.hits, setup.run_id, c.candidate_id, setup.traces)
            if setup.hits is not None
            else verify_answer.submit(
                task, verifiers, c.reply, c.parsed.answer, setup.run_id, c.candidate_id, setup.traces
            )
        )
        for c in answered
    }
    for cand in answered:
        outcome = futures[cand.candidate_id].result(raise_on_failure=False)
        if isinstance(outcome, Verification):
            cand.verified = outcome.verdict
            cand.spend(outcome.prompt_tokens, outcome.completion_tokens, outcome.cost_usd)


def verdict_of_record(cand: QCandidate, setup: Setup) -> bool | None:
    """The reference answer decides; rag_qa also needs its citations to hold (an unreadable check does not sink it)."""
    if cand.error is not None:
        return False if setup.task.spec.answer is not None else None
    if cand.correct is None:
        return None
    if setup.hits is not None:
        return cand.correct and cand.verified is not False
    return cand.correct


def candidate_result(cand: QCandidate, setup: Setup) -> CandidateResult:
    return CandidateResult(
        candidate_id=cand.candidate_id,
        worker=cand.worker.label,
        output=cand.reply,
        answer=cand.parsed.answer,
        rounds=cand.rounds if cand.reply else 0,
        passed=verdict_of_record(cand, setup),
        suite="reference" if setup.task.spec.answer is not None else "none",
        prompt_tokens=cand.prompt_tokens,
        completion_tokens=cand.completion_tokens,
        cost_usd=cand.cost_usd,
        error=cand.error,
    )


def pick_best(ranked: list[CandidateResult], vote: Vote | None, task: Task) -> CandidateResult | None:
    """The judge's first; with a vote, the judge's first among the candidates that gave the voted answer."""
    if vote is not None and vote.key is not None:
        agreeing = [r for r in ranked if r.answer is not None and answer_key(r.answer, task.spec) == vote.key]
        if agreeing:
            return agreeing[0]
    return ranked[0] if ranked else None


def run_passed(best: CandidateResult | None, vote: Vote | None, verified: bool | None, task: Task) -> bool:
    """With a reference: the voted (else the best) answer is right. Without: the verifier accepts the best."""
    if best is None:
        return False
    if vote is not None and task.spec.answer is not None:
        return bool(best.passed) and score_answer(vote.answer, task.spec) is True
    if best.passed is not None:
        return best.passed
    return verified is True


# ---------------------------------------------------------------- persisting


def answer_row(cand: QCandidate, setup: Setup, result: CandidateResult) -> AnswerRow:
    return AnswerRow(
        run_id=setup.run_id, candidate_id=cand.candidate_id, task_id=setup.task.id, workflow=setup.task.workflow,
        worker=cand.worker.label, sample=cand.sample, rounds=result.rounds, tool_runs=cand.tool_runs,
        output=cand.reply, answer=cand.parsed.answer, answer_form=cand.parsed.form,
        answer_type=answer_type_of(setup.task.spec), reference=setup.task.spec.answer, correct=cand.correct,
        verified=cand.verified, citations=json.dumps(cited_ids(cand.reply)) if setup.hits is not None else "[]",
        votes=cand.votes, passed=result.passed, error=cand.error,
    )


def summarise(
    setup: Setup, candidates: list[QCandidate], results: list[CandidateResult], best: CandidateResult | None,
    vote: Vote | None, started: float,
) -> RunSummary:
    errors = [r.error for r in results if r.error]
    best_verified = next((c.verified for c in candidates if best and c.candidate_id == best.candidate_id), None)
    return RunSummary(
        run_id=setup.run_id,
        task_id=setup.task.id,
        workflow=setup.task.workflow,
        passed=run_passed(best, vote, best_verified, setup.task),
        rounds=max((r.rounds for r in results), default=0),
        # question workflows have no tests: these count the candidates the reference accepted / refused
        tests_passed=sum(r.passed is True for r in results),
        tests_failed=sum(r.passed is False for r in results),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        cost_usd=sum_cost([r.cost_usd for r in results]),
        duration_s=round(time.perf_counter() - started, 3),
        sandbox=setup.sandbox,
        best_candidate=best.candidate_id if best else None,
        candidates=results,
        error="; ".join(errors) if errors and not any(r.rounds for r in results) else None,
    )
