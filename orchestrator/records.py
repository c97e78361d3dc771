"""Typed records that cross module boundaries and become trace rows.

Every record that is persisted is flat (scalars only) so that it maps one-to-one
onto a Parquet column set; nested data is stored as JSON text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
WorkerRole = Literal["solver", "critic", "verifier", "retriever", "tester", "judge", "router"]


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
        return f"{self.provider}:{self.model}:{self.role}"


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


class TestReport(BaseModel):
    """Test counts read from the pytest report the sandbox collected (never from the exit code)."""

    __test__ = False  # not a pytest test class

    report_found: bool
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    #: How the verdict was taken (docs/sandbox.md): ``isolated`` = the tests in a trusted process,
    #: the candidate in another, out of reach of the report; ``in_process`` = pytest imported the
    #: candidate (a task's explicit choice, or a sandbox that cannot isolate), forgeable from inside.
    verdict_mode: Literal["isolated", "in_process"] = "in_process"

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
    status: str  # completed | failed | error
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
    ts: datetime = Field(default_factory=utcnow)


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


# ---------------------------------------------------------------- routing and judging


class RouteTools(BaseModel):
    """Tools a workflow may give its workers."""

    python_sandbox: bool = False
    rag: bool = False


class RouteControls(BaseModel):
    """How hard the workflow tries: critic/revise rounds and the round budget."""

    use_debate: bool = False
    max_rounds: int = Field(default=2, ge=1, le=4)


class RouteDecision(BaseModel):
    """Which workflow, which workers in which roles, and which tools and controls a task runs with.

    Always valid: tasks/route.py builds it only from allow-listed parts, whatever a router said.
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
