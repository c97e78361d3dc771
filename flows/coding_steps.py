"""The coding workflow's steps: each takes the run's :class:`CodingState` and returns it, one stage on.

route → generate tests (a task without any) → rounds of solve → test → review (critique or pytest
feedback, for the candidates that go on) → final verdict (hidden suite, generated-test review) →
judge → persist. Every step is a plain function: its Prefect tasks run through the
:class:`flows.runner.Runner` it is given, so the same steps run in a flow (one task run per call)
or without Prefect at all (tests; a sweep that runs many tasks inside one flow run).
"""

from __future__ import annotations

import time
from datetime import datetime

from pydantic import BaseModel, Field

from domain.critique import revise_messages
from domain.judging import judge_workers_for
from domain.prompts import fix_messages, solve_messages
from flows.runner import Runner
from orchestrator.records import (
    AttemptRow,
    CandidateResult,
    Message,
    RouteDecision,
    RunRequest,
    RunSummary,
    TestCase,
    Usage,
    VerdictRow,
    WorkerSpec,
    new_id,
    utcnow,
)
from orchestrator.settings import get_settings, traces_root
from orchestrator.taskspec import Task
from sandbox import get_backend
from tasks.coding import CodeDraft, run_tests, write_code
from tasks.debate import Critique, critique
from tasks.judge import judge_task
from tasks.load import load_task_folder
from tasks.logs import run_logger
from tasks.route import route_task
from tasks.run_record import build_summary, record_run
from tasks.testgen import TaskWithGeneratedTests, review_generated_tests
from tasks.testgen import generate_tests as generate_tests_task

__all__ = [
    "Candidate",
    "CodingState",
    "final_verdict",
    "generate_tests",
    "judge",
    "persist",
    "review_round",
    "route",
    "solve_round",
    "start",
    "test_round",
]


class Candidate(Usage):
    """A solver's candidate as it moves through the rounds."""

    candidate_id: str = Field(default_factory=new_id)
    worker: WorkerSpec
    fallbacks: list[WorkerSpec]
    messages: list[Message] = Field(default_factory=list)
    code: str = ""
    rounds: int = 0
    last: AttemptRow | None = None
    final: AttemptRow | None = None
    attempts: list[AttemptRow] = Field(default_factory=list)  # every suite run, in order (a transcript's rows)
    cases: dict[str, list[TestCase]] = Field(default_factory=dict)  # attempt id -> every test's outcome
    error: str | None = None

    def add_draft(self, draft: CodeDraft) -> None:
        self.code, self.messages = draft.code, draft.messages
        self.spend(draft.prompt_tokens, draft.completion_tokens, draft.cost_usd)

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
            test_cases=self.cases.get(verdict.attempt_id, []) if verdict else [],
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd,
            error=self.error,
        )


class CodingState(BaseModel):
    """Everything one coding run knows, stage by stage (the steps fill it in)."""

    request: RunRequest
    task: Task
    traces: str
    sandbox: str  # the backend resolved once for the run (auto -> docker or local)
    started_at: datetime = Field(default_factory=utcnow)
    started: float = Field(default_factory=time.perf_counter)
    decision: RouteDecision | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    round: int = 0  # the last round started
    active: list[str] = Field(default_factory=list)  # candidates the next step works on
    results: list[CandidateResult] = Field(default_factory=list)
    verdicts: list[VerdictRow] = Field(default_factory=list)
    summary: RunSummary | None = None

    @property
    def run_id(self) -> str:
        return self.request.run_id

    @property
    def routed(self) -> RouteDecision:
        if self.decision is None:
            raise RuntimeError("the run has not been routed yet (call route first)")
        return self.decision

    @property
    def has_visible(self) -> bool:
        """Visible tests are the verifier of record inside the rounds; hidden results never go back."""
        return self.task.has_tests

    @property
    def critics(self) -> list[WorkerSpec]:
        return self.routed.by_role("critic") if self.routed.controls.use_debate else []

    def working(self) -> list[Candidate]:
        return [c for c in self.candidates if c.candidate_id in self.active]


def start(request: RunRequest, runner: Runner) -> CodingState:
    """Load the task folder and resolve the sandbox backend, once for the whole run."""
    task = runner.call(load_task_folder, task_dir=request.task_dir, require_tests=False)
    backend = get_backend(request.sandbox, get_settings()).name
    return CodingState(request=request, task=task, traces=traces_root(request.traces_dir), sandbox=backend)


def route(state: CodingState, runner: Runner) -> CodingState:
    """Decide the workers, roles and round budget; open one candidate per solver."""
    req = state.request
    state.decision = runner.call(
        route_task, spec=state.task, run_id=state.run_id, traces_dir=state.traces, router=req.router,
        workers=req.workers, max_rounds=req.max_rounds,
    )
    solvers = state.routed.by_role("solver") or state.routed.workers[:1]
    state.candidates = [
        Candidate(worker=w, fallbacks=[w, *[o for o in solvers if o != w]], messages=solve_messages(state.task))
        for w in solvers
    ]
    state.active = [c.candidate_id for c in state.candidates]
    return state


def generate_tests(state: CodingState, runner: Runner) -> CodingState:
    """A task without tests gets a checked, generated visible suite (the routed tester writes it)."""
    if not state.task.has_tests and not state.task.has_hidden_tests:
        state.task = runner.call(
            generate_tests_task, spec=state.task, workers=state.routed.workers, run_id=state.run_id,
            traces_dir=state.traces, sandbox=state.sandbox,
        )
    return state


def solve_round(state: CodingState, runner: Runner) -> CodingState:
    """Every active candidate's solver writes (round 1) or fixes (later rounds) the entry file."""
    state.round += 1
    purpose = "solve" if state.round == 1 else "fix"
    working = state.working()
    drafts = runner.map(write_code, [
        dict(task=state.task, workers=c.fallbacks, messages=c.messages, run_id=state.run_id,
             candidate_id=c.candidate_id, purpose=purpose, traces_dir=state.traces)
        for c in working
    ])
    state.active = []
    for cand, draft in zip(working, drafts, strict=True):
        if not isinstance(draft, CodeDraft):
            cand.error = str(draft)
            run_logger().warning("candidate %s (%s) failed: %s", cand.candidate_id, cand.worker.label, cand.error)
            continue
        cand.add_draft(draft)
        cand.rounds = state.round
        state.active.append(cand.candidate_id)
    return state


def test_round(state: CodingState, runner: Runner) -> CodingState:
    """Run the visible suite (else the hidden one) on every new draft; keep those that go on."""
    suite = "visible" if state.has_visible else "hidden"
    working = state.working()
    # In the last round the hidden suite runs in the same sandbox session: no candidate goes on, so
    # its result never reaches a prompt, and final_verdict need not start a sandbox again.
    last_round = state.round >= state.routed.controls.max_rounds
    with_hidden = last_round and state.task.has_hidden_tests and state.has_visible
    suites = [suite, "hidden"] if with_hidden else [suite]
    outcomes = _test(state, runner, working, suites)
    state.active = []
    for cand, attempts in zip(working, outcomes, strict=True):
        attempt = attempts[0]
        cand.last = attempt
        if with_hidden:
            cand.final = attempts[1]
        run_logger().info(
            "round %d %s: %d passed, %d failed%s", state.round, cand.worker.label, attempt.tests_passed,
            attempt.tests_failed, " (timed out)" if attempt.timed_out else "",
        )
        # A visible pass ends the candidate's rounds. Without visible tests only a critic can ask for more.
        failing = state.has_visible and not attempt.passed
        if state.round < state.routed.controls.max_rounds and (failing or (state.critics and not state.has_visible)):
            state.active.append(cand.candidate_id)
    return state


def review_round(state: CodingState, runner: Runner) -> CodingState:
    """The critics review what goes on (with pytest's output); each candidate gets its next prompt."""
    working, critics = state.working(), state.critics
    feedback = {c.candidate_id: _feedback(state, c) for c in working}
    reviews = runner.map(critique, [
        dict(question=state.task.prompt, candidate=_fenced(c.code), critics=critics, run_id=state.run_id,
             task_id=state.task.id, candidate_id=c.candidate_id, traces_dir=state.traces,
             feedback=feedback[c.candidate_id])
        for c in working
    ]) if critics else [None] * len(working)
    state.active = []
    for cand, review in zip(working, reviews, strict=True):
        output = feedback[cand.candidate_id]
        history = cand.messages[:-1]  # the draft's messages end with the reply; the fenced code stands in
        if isinstance(review, Critique) and not (review.approved and not state.has_visible):
            instruction = _revise_instruction(state.task, output)
            cand.messages = revise_messages(history, _fenced(cand.code), review.text, instruction)
        elif output is not None:
            cand.messages = fix_messages(state.task, history, cand.code, output)
        else:
            continue  # approved by the critic (or the critic failed) and no visible tests: done
        state.active.append(cand.candidate_id)
    return state


def final_verdict(state: CodingState, runner: Runner) -> CodingState:
    """The hidden suite for every tested candidate (when visible tests drove the rounds); then, for
    generated tests, a test every candidate fails the same way is more likely wrong than they are."""
    tested = [c for c in state.candidates if c.last is not None]
    if state.task.has_hidden_tests and state.has_visible:
        # Those whose rounds ended before the last round (a visible pass) have no hidden verdict yet.
        pending = [c for c in tested if c.final is None]
        for cand, (attempt,) in zip(pending, _test(state, runner, pending, ["hidden"]), strict=True):
            cand.final = attempt
    state.results = [c.result() for c in state.candidates]
    if isinstance(state.task, TaskWithGeneratedTests):
        review = runner.call(
            review_generated_tests, spec=state.task, candidates=state.results, run_id=state.run_id,
            traces_dir=state.traces,
        )
        state.results = [
            r.model_copy(update={"passed": review.passes_trusted[r.candidate_id]})
            if r.candidate_id in review.passes_trusted else r
            for r in state.results
        ]
    return state


def judge(state: CodingState, runner: Runner) -> CodingState:
    """Rank the candidates (execution first, then the rubric judge when one is configured)."""
    state.verdicts = runner.call(
        judge_task, spec=state.task, candidates=state.results, run_id=state.run_id, traces_dir=state.traces,
        judge_workers=judge_workers_for(state.routed.workers, get_settings()), prompt=solve_messages(state.task),
    )
    return state


def persist(state: CodingState) -> CodingState:
    """The run's summary; its ``runs`` row (written last: a run with a row is a finished run)."""
    best = next((r for r in state.results if state.verdicts and r.candidate_id == state.verdicts[0].candidate_id), None)
    state.summary = build_summary(
        state.run_id, state.task, state.results, best, started=state.started, sandbox=state.sandbox,
        passed=bool(best and best.passed),
        tests_passed=best.tests_passed if best else 0,
        tests_failed=(best.tests_failed + best.tests_errors) if best else 0,
    )
    record_run(state.summary, state.task, state.routed.workers, state.traces, state.request.sweep_id, state.started_at)
    return state


# ---------------------------------------------------------------- helpers


def _test(state: CodingState, runner: Runner, cands: list[Candidate], suites: list[str]) -> list[list[AttemptRow]]:
    """The suites on each candidate's latest code, in one sandbox session per candidate; one attempt
    per suite. A sandbox that fails to start (after its retry) fails the run."""
    if not cands:
        return []
    outcomes = runner.map(run_tests, [
        dict(task=state.task, code=c.code, suites=suites, sandbox=state.sandbox, run_id=state.run_id,
             candidate_id=c.candidate_id, worker=c.worker.label, round_number=c.rounds, traces_dir=state.traces)
        for c in cands
    ])
    attempts_by_candidate = []
    for cand, runs in zip(cands, outcomes, strict=True):
        if isinstance(runs, BaseException):
            raise runs
        cand.attempts.extend(run.attempt for run in runs)
        cand.cases.update({run.attempt.attempt_id: run.cases for run in runs})
        attempts_by_candidate.append([run.attempt for run in runs])
    return attempts_by_candidate


def _feedback(state: CodingState, cand: Candidate) -> str | None:
    """What the solver and critic are shown of the last test run: visible output only."""
    return cand.last.output_excerpt if state.has_visible and cand.last else None


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def _revise_instruction(task: Task, test_output: str | None) -> str:
    tests = f"pytest output:\n```\n{test_output}\n```\n\n" if test_output is not None else ""
    return f"{tests}Fix `{task.spec.entry}`. Reply with the complete corrected file in one ```python block."
