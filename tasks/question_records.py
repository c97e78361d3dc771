"""Trace tables of the question workflows and of generated tests (rows are flat scalars).

Kept apart from the Prefect tasks that write them, so that importing them is cheap: the CLI imports
this module to make the tables known to ``orchestrator traces`` as well.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from orchestrator.records import new_id, utcnow
from orchestrator.traces import register_table


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


register_table("answers", AnswerRow)
register_table("verifications", VerificationRow)
register_table("tool_runs", ToolRunRow)
register_table("retrievals", RetrievalRow)
register_table("generated_tests", GeneratedTestRow)
register_table("suspect_tests", SuspectTestRow)
