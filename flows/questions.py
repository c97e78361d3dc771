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

from pydantic import BaseModel, Field

from domain.answers import (
    ParsedAnswer,
    Vote,
    answer_key,
    answer_type_of,
    majority_vote,
    parse_answer,
    score_answer,
)
from domain.critique import revise_messages
from domain.judging import judge_workers_for
from domain.question_prompts import question_messages, revise_instruction, tool_output_message
from domain.rag_index import Hit
from flows._workflow import workflow_flow
from flows.runner import Runner
from orchestrator.records import (
    AnswerRow,
    CandidateResult,
    Message,
    RouteDecision,
    RunRequest,
    RunSummary,
    Usage,
    WorkerSpec,
    new_id,
    utcnow,
)
from orchestrator.settings import get_settings, traces_root
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from sandbox import get_backend
from tasks.debate import Critique, critique
from tasks.judge import judge_task
from tasks.load import load_task_folder
from tasks.logs import run_logger
from tasks.model_call import run_resources
from tasks.python_tool import code_to_run, run_python
from tasks.question import Reply, ask_solver
from tasks.retrieval import retrieve
from tasks.route import route_task
from tasks.run_record import build_summary, record_run
from tasks.verify import Verification, cited_ids, verify_answer, verify_citations

#: code runs a science candidate may ask for while answering (each round of debate included)
MAX_TOOL_RUNS = 3
#: sampling temperature for self-consistency when the configured one is lower (greedy samples all agree)
SAMPLE_TEMPERATURE = 0.7


class QCandidate(Usage):
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
    error: str | None = None
    parsed: ParsedAnswer = ParsedAnswer(answer=None, form="none")
    correct: bool | None = None
    verified: bool | None = None
    votes: int = 0


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

    def run(request: RunRequest, runner: Runner) -> RunSummary:
        return run_question_workflow(request, runner, rag=rag, python_tool=python_tool)

    return workflow_flow(name, description, run)


def run_question_workflow(
    request: RunRequest, runner: Runner, *, rag: bool = False, python_tool: bool = False
) -> RunSummary:
    """The body of the three question flows (its Prefect tasks run through ``runner``)."""
    with run_resources(request.run_id):
        return _answer(request, runner, rag=rag, python_tool=python_tool)


def _answer(request: RunRequest, runner: Runner, *, rag: bool, python_tool: bool) -> RunSummary:
    started_at, started = utcnow(), time.perf_counter()
    run_id, traces = request.run_id, traces_root(request.traces_dir)
    settings = get_settings()
    samples = settings.samples
    task = runner.call(load_task_folder, task_dir=request.task_dir, require_tests=False)
    decision = runner.call(
        route_task, spec=task, run_id=run_id, traces_dir=traces, router=request.router, workers=request.workers,
        max_rounds=request.max_rounds,
    )
    use_python = python_tool and decision.tools.python_sandbox
    setup = Setup(
        task=task, run_id=run_id, traces=traces, decision=decision,
        hits=runner.call(retrieve, spec=task, run_id=run_id, traces_dir=traces).hits if rag else None,
        python_tool=use_python,
        sandbox=get_backend(request.sandbox, settings).name if use_python else None,
        temperature=max(settings.temperature, SAMPLE_TEMPERATURE) if samples > 1 else settings.temperature,
    )
    solvers = decision.by_role("solver") or decision.workers[:1]
    opening = question_messages(task, python_tool=use_python, hits=setup.hits)
    candidates = [
        QCandidate(worker=w, fallbacks=[w, *[o for o in solvers if o != w]], sample=i, history=opening)
        for w in solvers
        for i in range(1, samples + 1)
    ]
    converse(candidates, setup, runner, "solve")
    debate(candidates, setup, runner, opening[-1].content)
    check(candidates, setup, runner)
    vote = majority_vote([c.parsed.answer for c in candidates if not c.error], task.spec) if samples > 1 else None
    if vote is not None:
        for c in candidates:
            key = answer_key(c.parsed.answer, task.spec) if c.parsed.answer else None
            c.votes = vote.count if key is not None and key == vote.key else 0

    results = [candidate_result(c, setup) for c in candidates]
    verdicts = runner.call(
        judge_task, spec=task, candidates=results, run_id=run_id, traces_dir=traces,
        judge_workers=judge_workers_for(decision.workers, settings), prompt=opening,
    )
    ranked = [r for v in verdicts for r in results if r.candidate_id == v.candidate_id]
    best = pick_best(ranked, vote, task)
    TraceStore(traces).write("answers", [answer_row(c, setup, r) for c, r in zip(candidates, results, strict=True)])
    summary = summarise(setup, candidates, results, best, vote, started)
    record_run(summary, task, decision.workers, traces, request.sweep_id, started_at)
    return summary


# ---------------------------------------------------------------- answering


def converse(candidates: list[QCandidate], setup: Setup, runner: Runner, purpose: str) -> None:
    """Ask every candidate's solver (concurrently) until each has a final reply; run the code they ask to run."""
    logger = run_logger()
    task, run_id, traces = setup.task, setup.run_id, setup.traces
    active = [c for c in candidates if c.error is None]
    while active:
        replies = runner.map(ask_solver, [
            dict(spec=task, workers=c.fallbacks, messages=c.history, run_id=run_id, candidate_id=c.candidate_id,
                 purpose=purpose, traces_dir=traces, temperature=setup.temperature,
                 seed=c.sample if setup.temperature > 0 else None)
            for c in active
        ])
        to_run: dict[str, dict[str, Any]] = {}
        for cand, reply in zip(active, replies, strict=True):
            if not isinstance(reply, Reply):
                cand.error = str(reply)
                logger.warning("candidate %s (%s) failed: %s", cand.candidate_id, cand.worker.label, cand.error)
                continue
            cand.spend(reply.prompt_tokens, reply.completion_tokens, reply.cost_usd)
            cand.reply = reply.text
            code = code_to_run(reply.text) if setup.python_tool and cand.tool_runs < MAX_TOOL_RUNS else None
            if code is not None and setup.sandbox is not None:
                to_run[cand.candidate_id] = dict(
                    code=code, sandbox=setup.sandbox, limits=task.spec.limits, run_id=run_id,
                    candidate_id=cand.candidate_id, worker=cand.worker.label, step=cand.tool_runs + 1,
                    traces_dir=traces,
                )
        active = [c for c in active if c.candidate_id in to_run]
        rows = runner.map(run_python, [to_run[c.candidate_id] for c in active])
        for cand, row in zip(active, rows, strict=True):
            if isinstance(row, BaseException):
                raise row  # the sandbox failed to start, after its retry
            cand.tool_runs += 1
            feedback = tool_output_message(row.output, row.exit_code, row.timed_out, MAX_TOOL_RUNS - cand.tool_runs)
            cand.history = [*cand.history, Message(role="assistant", content=cand.reply), feedback]


def debate(candidates: list[QCandidate], setup: Setup, runner: Runner, question: str) -> None:
    """With ``use_debate``: a critic reviews each answer; unless it approves, the solver revises (round 2..)."""
    controls = setup.decision.controls
    critics = setup.decision.by_role("critic")
    if not (controls.use_debate and critics):
        return
    instruction = revise_instruction(setup.task)
    for round_number in range(2, controls.max_rounds + 1):
        pending = [c for c in candidates if c.error is None and c.approved is not True]
        reviews = runner.map(critique, [
            dict(question=question, candidate=c.reply, critics=critics, run_id=setup.run_id, task_id=setup.task.id,
                 candidate_id=c.candidate_id, traces_dir=setup.traces)
            for c in pending
        ])
        revising = []
        for cand, review in zip(pending, reviews, strict=True):
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
        converse(revising, setup, runner, "revise")


# ---------------------------------------------------------------- checking


def verifiers_for(decision: RouteDecision) -> list[WorkerSpec]:
    """The decision's verifiers; without one, the first solver checks answers in the verifier role."""
    verifiers = decision.by_role("verifier")
    if verifiers:
        return verifiers
    solvers = decision.by_role("solver") or decision.workers[:1]
    return [solvers[0].model_copy(update={"role": "verifier"})]


def check(candidates: list[QCandidate], setup: Setup, runner: Runner) -> None:
    """Parse and score every final answer, then have the verifier check them (concurrently)."""
    task, verifiers = setup.task, verifiers_for(setup.decision)
    answered = [c for c in candidates if c.error is None]
    for cand in answered:
        cand.parsed = parse_answer(cand.reply)
        cand.correct = score_answer(cand.parsed.answer, task.spec)
    common = dict(spec=task, verifiers=verifiers, run_id=setup.run_id, traces_dir=setup.traces)
    outcomes = (
        runner.map(verify_citations, [
            dict(common, reply=c.reply, hits=setup.hits, candidate_id=c.candidate_id) for c in answered
        ])
        if setup.hits is not None
        else runner.map(verify_answer, [
            dict(common, reply=c.reply, answer=c.parsed.answer, candidate_id=c.candidate_id) for c in answered
        ])
    )
    for cand, outcome in zip(answered, outcomes, strict=True):
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
    best_verified = next((c.verified for c in candidates if best and c.candidate_id == best.candidate_id), None)
    return build_summary(
        setup.run_id, setup.task, results, best, started=started, sandbox=setup.sandbox,
        passed=run_passed(best, vote, best_verified, setup.task),
        # question workflows have no tests: these count the candidates the reference accepted / refused
        tests_passed=sum(r.passed is True for r in results),
        tests_failed=sum(r.passed is False for r in results),
    )
