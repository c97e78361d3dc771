"""Typed records that cross module boundaries and become trace rows.

Every record that is persisted is flat (scalars only) so that it maps one-to-one
onto a Parquet column set; nested data is stored as JSON text.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.errors import UserInputError

Role = Literal["system", "user", "assistant"]
WorkerRole = Literal["solver", "critic", "verifier", "retriever", "tester", "judge", "router"]
WORKER_ROLES: tuple[str, ...] = get_args(WorkerRole)
#: Sandbox backends a run may name (``auto``: docker when it works here, else local).
SandboxName = Literal["auto", "local", "docker"]
#: How the router picks the workers when a run names none (docs/router.md).
RouterMode = Literal["cost-first", "quality-first", "learned", "hint"]
ROUTER_MODES: tuple[str, ...] = get_args(RouterMode)
#: How many solve/fix (or critique/revise) rounds a run may take.
MIN_ROUNDS, MAX_ROUNDS = 1, 4
Rounds = Annotated[int, Field(ge=MIN_ROUNDS, le=MAX_ROUNDS)]


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class Completion(BaseModel):
    """What a provider returns for one successful model call."""

    text: str
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None
    response_id: str | None = None


class WorkerSpec(BaseModel):
    """One model that works on a task, in one role."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    role: WorkerRole = "solver"

    @property
    def label(self) -> str:
        """``provider:model:role``, the form traces and summaries store; :meth:`from_label` reads it back."""
        return f"{self.provider}:{self.model}:{self.role}"

    @property
    def model_label(self) -> str:
        """``provider:model``: the model, whatever role it plays."""
        return f"{self.provider}:{self.model}"

    @classmethod
    def parse(cls, text: str) -> WorkerSpec:
        """``openai:gpt-4o-mini``, ``ollama:llama3.2:latest:critic``, ``replay:answers.jsonl`` (role: solver)."""
        provider, sep, rest = text.partition(":")
        if not sep or not provider or not rest:
            raise UserInputError(f"--worker {text!r}: expected PROVIDER:MODEL[:ROLE], e.g. openai:gpt-4o-mini:solver")
        model, role = rest, "solver"
        head, _, tail = rest.rpartition(":")
        if head and tail in WORKER_ROLES:
            model, role = head, tail
        return cls(provider=provider, model=model, role=role)  # type: ignore[arg-type]

    @classmethod
    def from_label(cls, label: str) -> WorkerSpec:
        """The worker a stored :attr:`label` names (model names may hold colons; the role is the last part)."""
        provider, _, rest = label.partition(":")
        model, sep, role = rest.rpartition(":")
        if not sep or role not in WORKER_ROLES:
            model, role = rest, "solver"
        return cls(provider=provider, model=model, role=role)  # type: ignore[arg-type]


class Usage(BaseModel):
    """Tokens and cost spent so far; the cost is unknown (None) once any part of it is."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0

    def spend(self, prompt_tokens: int, completion_tokens: int, cost_usd: float | None) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd = sum_cost([self.cost_usd, cost_usd])


def sum_cost(values: list[float | None]) -> float | None:
    """Total cost; unknown (None) when any part is unknown, since a partial sum would understate it."""
    return None if any(v is None for v in values) else round(sum(v for v in values if v is not None), 10)


class RunRequest(BaseModel):
    """What one run of one task folder is asked to do: the parameters every workflow flow takes, in
    the order, with the titles and descriptions, of the run-task form in the Prefect UI."""

    task_dir: str = Field(
        title="Task folder",
        description="The task folder, on the worker's machine (e.g. runs/task_001; see runs/README.md).",
    )
    workers: list[WorkerSpec] = Field(
        default_factory=list,
        title="Workers",
        description="The solvers, each {provider, model, role}; empty: the router picks them. For the replay "
        "provider the model is the path of a JSONL file of replies, not a model name.",
    )
    router: RouterMode | None = Field(
        default=None, title="Router", description="How the router picks the workers when none are given "
        "(empty: ORCH_ROUTER_MODE).",
    )
    max_rounds: Rounds = Field(
        default=2, title="Rounds at most", description="Rounds of answer and fix: after the first, each "
        "round fixes what the tests found.",
    )
    sandbox: SandboxName = Field(
        default="auto", title="Sandbox", description="Where the tests run: auto picks docker when it answers, "
        "else local.",
    )
    traces_dir: str | None = Field(
        default=None, title="Trace store", description="A folder or s3://bucket/prefix (empty: ORCH_TRACES_DIR).",
    )
    # What the run's model calls share (tasks/call_scope.py); a sweep attaches its own scope instead.
    cache: bool | None = Field(
        default=None, title="Cache model calls",
        description="Answer repeated model calls from the on-disk cache (empty: ORCH_CACHE).",
    )
    max_cost: float | None = Field(
        default=None, gt=0, title="Budget in USD", description="For the run's model calls (empty: none).",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, title="Budget in tokens", description="For the run's model calls (empty: none).",
    )
    ignore_unpriced: bool = Field(
        default=False, title="Allow unpriced models",
        description="Let a dollar budget run models without a price (their cost counts as 0).",
    )
    # advanced, last in the form: what a sweep sets
    sweep_id: str | None = Field(
        default=None, title="Sweep id (advanced)",
        description="Advanced, set by a sweep: the sweep this run belongs to. Leave empty.",
    )
    run_id: str = Field(
        default_factory=new_id, title="Run id (advanced)",
        description="Advanced, set by a sweep: the run's id (empty: a new one). Leave empty.",
    )


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    memory_mb: int = Field(default=512, ge=32, le=65536)
    cpus: float = Field(default=1.0, gt=0, le=64)
    pids: int = Field(default=64, ge=8, le=4096)
    output_bytes: int = Field(default=64_000, ge=1024)


class ExecResult(BaseModel):
    """The outcome of one command run inside a sandbox."""

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    killed: bool = False
    backend: str = ""


CaseOutcome = Literal["passed", "failed", "error", "skipped"]


class TestCase(BaseModel):
    """One test's outcome, as JUnit reports it: error (collection, setup) over failed over skipped."""

    __test__ = False

    name: str  # the test function, with a parametrize id when there is one: test_x[1-2]
    outcome: CaseOutcome
    message: str = ""  # the failure's one line (one line, at most 500 characters)

    @field_validator("message")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())[:500]

    @property
    def function(self) -> str:
        return self.name.split("[", 1)[0]


class TestReport(BaseModel):
    """Test outcomes read from the pytest report the sandbox collected (never from the exit code)."""

    __test__ = False  # not a pytest test class

    report_found: bool
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cases: list[TestCase] = Field(default_factory=list)  # per test, in the order pytest ran them
    #: How the verdict was taken (docs/sandbox.md): ``isolated`` = the tests in a trusted process,
    #: the candidate in another, out of reach of the report; ``in_process`` = pytest imported the
    #: candidate (a task's explicit choice, or a sandbox that cannot isolate), forgeable from inside.
    verdict_mode: Literal["isolated", "in_process"] = "in_process"

    @classmethod
    def of_cases(cls, cases: list[TestCase], **fields: Any) -> TestReport:
        """The report of these cases, counted."""
        count = Counter(case.outcome for case in cases)
        return cls(passed=count["passed"], failed=count["failed"], errors=count["error"],
                   skipped=count["skipped"], cases=cases, **fields)  # fmt: skip

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    @property
    def all_passed(self) -> bool:
        return self.report_found and self.passed > 0 and self.failed == 0 and self.errors == 0


# ---------------------------------------------------------------- trace rows


class RunRow(BaseModel):
    run_id: str
    task_id: str
    workflow: str
    task_dir: str
    status: str  # completed | failed | error | stopped (a budget refused a call; resumable)
    passed: bool | None = None
    rounds: int = 0
    candidates: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    sandbox: str | None = None
    workers: str = ""  # JSON list of worker labels
    sweep_id: str | None = None
    flow_run_id: str | None = None
    error: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)


class CallRow(BaseModel):
    run_id: str
    call_id: str = Field(default_factory=new_id)
    candidate_id: str | None = None
    provider: str
    model: str
    role: str
    purpose: str  # solve | fix | critique | judge | route | ...
    attempt: int = 1
    ok: bool = True
    error_kind: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None
    response_id: str | None = None
    fallback_from: str | None = None
    cached: bool = False  # answered from the model-call cache: original tokens, cost 0, the hit's latency
    ts: datetime = Field(default_factory=utcnow)
    #: What was sent and what came back, for the run's transcript: ``request`` the messages as JSON
    #: ``[{"role", "content"}]``, ``reply`` the completion's text; secrets redacted, each text cut at
    #: CALL_TEXT_CAP characters (tasks/model_call.py). None: a try that sent nothing (a cooldown skip),
    #: no reply (an error), or a row of trace schema 2 and before.
    request: str | None = None
    reply: str | None = None


class AttemptRow(BaseModel):
    run_id: str
    attempt_id: str = Field(default_factory=new_id)
    candidate_id: str
    worker: str
    round: int
    code: str
    sandbox: str
    suite: str  # visible | hidden
    exit_code: int | None
    report_found: bool
    passed: bool
    tests_passed: int
    tests_failed: int
    tests_errors: int
    duration_s: float
    timed_out: bool
    killed: bool
    output_excerpt: str
    ts: datetime = Field(default_factory=utcnow)
    #: TestReport.verdict_mode of this run (None: recorded before verdicts said how they were taken).
    verdict_mode: Literal["isolated", "in_process"] | None = None


class CandidateResult(BaseModel):
    """One worker's candidate after its last round: what the judge ranks, in any workflow.

    ``output`` is the code (coding) or the full answer text (question workflows); ``answer`` the
    final answer parsed from it. ``passed`` is the verdict of record from execution or the reference
    answer, or None when the task has no ground truth (then only the rubric judge can rank).
    """

    candidate_id: str
    worker: str
    output: str
    answer: str | None = None
    rounds: int
    passed: bool | None
    tests_passed: int = 0
    tests_failed: int = 0
    tests_errors: int = 0
    suite: str = "none"
    #: every test's outcome in the verdict's run (coding), so a review need not run the suite again
    test_cases: list[TestCase] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None


class RunSummary(BaseModel):
    """What ``orchestrator run`` reports, and what a sweep aggregates."""

    run_id: str
    task_id: str
    workflow: str
    passed: bool
    rounds: int
    tests_passed: int
    tests_failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    duration_s: float
    sandbox: str | None = None
    best_candidate: str | None = None
    candidates: list[CandidateResult] = Field(default_factory=list)
    error: str | None = None
    stopped: str | None = None  # why the run stopped early, between model calls (its budget), else None


# ---------------------------------------------------------------- routing and judging


class RouteTools(BaseModel):
    """Tools a workflow may give its workers."""

    python_sandbox: bool = False
    rag: bool = False


class RouteControls(BaseModel):
    """How hard the workflow tries: critic/revise rounds and the round budget."""

    use_debate: bool = False
    max_rounds: Rounds = 2


class RouteDecision(BaseModel):
    """Which workflow, which workers in which roles, and which tools and controls a task runs with.

    Always valid: domain/routing.py builds it only from allow-listed parts, whatever a router said.
    ``router`` names who decided: explicit | hint | learned | cost-first | quality-first.
    """

    workflow: str
    workers: list[WorkerSpec] = Field(min_length=1)
    tools: RouteTools = Field(default_factory=RouteTools)
    controls: RouteControls = Field(default_factory=RouteControls)
    router: str

    def by_role(self, role: str) -> list[WorkerSpec]:
        return [w for w in self.workers if w.role == role]


class RouteRow(BaseModel):
    """One routing decision: what the router saw and said, what was dropped and why, what was decided."""

    run_id: str
    route_id: str = Field(default_factory=new_id)
    task_id: str
    task_text: str  # the text routed on (also what the learned router trains on)
    hint: str | None = None  # the task folder's own workflow, when it names one
    router: str
    router_model: str | None = None  # the LLM router's worker, or the learned router's file
    raw_reply: str | None = None
    parsed_as: str = "none"  # json | fenced | embedded | repaired | failed | empty | none (no reply)
    dropped: str = "[]"  # JSON list of {"field", "value", "reason"}
    used_defaults: bool = False
    workflow: str
    workers: str  # JSON list of worker labels
    decision: str  # the final RouteDecision as JSON
    ts: datetime = Field(default_factory=utcnow)


class VerdictRow(BaseModel):
    """The judge's ranking of one candidate of one run (rank 1 is best)."""

    run_id: str
    verdict_id: str = Field(default_factory=new_id)
    task_id: str
    workflow: str
    candidate_id: str
    worker: str
    provider: str
    model: str
    passed: bool | None
    tests_passed: int = 0
    tests_failed: int = 0  # failed + errors
    exec_score: float | None = None  # 1 all passed, 0.5 x share passed otherwise; None without a verdict of record
    rubric_score: float | None = None  # 0..1 from the LLM judge, when it was asked
    score: float
    rank: int
    reason: str
    judge_model: str  # "execution", or the rubric judge's worker label
    judge_mode: str  # execution | pairwise | pointwise
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    ts: datetime = Field(default_factory=utcnow)


class PreferencePairRow(BaseModel):
    """A (better, worse) pair of one task's candidates with a clear margin: DPO training data."""

    run_id: str
    pair_id: str = Field(default_factory=new_id)
    task_id: str
    workflow: str
    prompt: str  # the prompt as one text (system, then user)
    prompt_messages: str  # JSON list of {"role", "content"}: the conversation the solvers started from
    chosen: str
    rejected: str
    chosen_candidate: str
    rejected_candidate: str
    chosen_model: str
    rejected_model: str
    chosen_score: float
    rejected_score: float
    margin: float
    basis: str  # execution | rubric
    judge_model: str
    ts: datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------- question workflows and generated tests


class AnswerRow(BaseModel):
    """One candidate of a question workflow: its final answer, how it was found, and how it scored."""

    run_id: str
    candidate_id: str
    task_id: str
    workflow: str
    worker: str
    sample: int
    rounds: int
    tool_runs: int
    output: str
    answer: str | None
    answer_form: str  # answer_line | boxed | last_line | none
    answer_type: str
    reference: str | None
    correct: bool | None  # against the reference; None without one
    verified: bool | None  # the verifier's verdict (answer, or citations for rag_qa)
    citations: str = "[]"  # JSON list of cited chunk ids (rag_qa)
    votes: int = 0  # candidates whose answer agrees with the vote's (self-consistency; 0 without a vote)
    passed: bool | None
    error: str | None = None
    ts: datetime = Field(default_factory=utcnow)


class VerificationRow(BaseModel):
    """One check by the verifier: of a final answer, or of one cited chunk."""

    run_id: str
    task_id: str
    candidate_id: str
    kind: str  # answer | citation
    target: str  # "answer", or the cited chunk id
    verdict: bool | None
    reason: str
    verifier: str
    ts: datetime = Field(default_factory=utcnow)


class ToolRunRow(BaseModel):
    """One run of a science solver's Python in the sandbox."""

    run_id: str
    tool_run_id: str = Field(default_factory=new_id)
    candidate_id: str
    worker: str
    step: int
    code: str
    sandbox: str
    exit_code: int | None
    timed_out: bool
    killed: bool
    duration_s: float
    output: str
    ts: datetime = Field(default_factory=utcnow)


class RetrievalRow(BaseModel):
    """One retrieved chunk of a rag_qa run, with what retrieved it."""

    run_id: str
    task_id: str
    query: str
    retriever: str  # the embedding model, or bm25
    fallback_reason: str | None = None  # why bm25 is in use when embedding was wanted
    index_key: str
    index_reused: bool
    k: int
    rank: int
    chunk_id: str
    source: str
    score: float
    in_evidence: bool | None  # None when the task names no evidence
    recall_at_k: float | None  # of the whole retrieval, repeated on each of its rows
    ts: datetime = Field(default_factory=utcnow)


class GeneratedTestRow(BaseModel):
    """One suite a tester wrote for a coding task without tests, and whether it was accepted."""

    run_id: str
    task_id: str
    attempt: int
    tester: str
    file: str
    code: str  # as written by the tester, before vacuous tests were dropped
    accepted_code: str | None = None  # what the run used (None when rejected)
    folder: str | None = None
    tests: int = 0
    stub_passed: int = 0
    stub_failed: int = 0
    stub_errors: int = 0
    dropped: str = "[]"  # JSON list of tests dropped because they pass on the starter
    accepted: bool
    problem: str | None = None
    ts: datetime = Field(default_factory=utcnow)


class SuspectTestRow(BaseModel):
    """A generated test every candidate failed the same way: flagged, not trusted (AlphaCodium)."""

    run_id: str
    task_id: str
    file: str
    test: str
    candidates: int
    failure: str
    ts: datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------- sweeps


class SweepTaskRow(BaseModel):
    """One finished (task, sample) of a sweep: the run of record and what the summary needs from it."""

    sweep_id: str
    task_id: str
    sample: int = 0
    run_id: str
    workflow: str
    task_dir: str
    status: str  # completed | error | stopped (a budget refused a call) | skipped (a budget kept it from starting)
    passed: bool | None = None
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    candidates: str = "[]"  # JSON list of {"model": "provider:model", "role": ..., "passed": bool | null}
    adopted: bool = False  # written on resume from an orphan runs row, not right after the run
    error: str | None = None
    finished_at: datetime = Field(default_factory=utcnow)


class SweepRow(BaseModel):
    """A sweep's start (``event="started"``) or end (``event="finished"``, with its totals)."""

    sweep_id: str
    name: str
    event: str  # started | finished
    tasks: str  # the folder or glob swept
    params: str = "{}"  # JSON of the sweep's parameters (for the record)
    total: int = 0
    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0  # not started, or stopped between calls, because of the budget
    pass_rate: float | None = None
    cost_usd: float | None = None
    duration_s: float = 0.0
    models: str = "[]"  # JSON list of per-model stats, so a history chart reads one table
    ts: datetime = Field(default_factory=utcnow)


#: Every trace table and its row model: the one list, complete once this module is imported.
TABLE_ROWS: dict[str, type[BaseModel]] = {
    "runs": RunRow,
    "calls": CallRow,
    "attempts": AttemptRow,
    "routes": RouteRow,
    "verdicts": VerdictRow,
    "preference_pairs": PreferencePairRow,
    "answers": AnswerRow,
    "verifications": VerificationRow,
    "tool_runs": ToolRunRow,
    "retrievals": RetrievalRow,
    "generated_tests": GeneratedTestRow,
    "suspect_tests": SuspectTestRow,
    "sweep_tasks": SweepTaskRow,
    "sweeps": SweepRow,
}
