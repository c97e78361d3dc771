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


class CandidateResult(BaseModel):
    """One worker's candidate after its last round (the row the judge ranks)."""

    candidate_id: str
    worker: str
    code: str
    rounds: int
    passed: bool
    tests_passed: int = 0
    tests_failed: int = 0
    tests_errors: int = 0
    suite: str = "visible"
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
