"""Prefect tasks and records of the question workflows: one solver call, and the ``answers`` table."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from orchestrator.records import Message, WorkerSpec, utcnow
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore, register_table
from tasks.model_call import CallContext, call_model


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
    votes: int = 0  # candidates whose answer agrees with this one (self-consistency)
    passed: bool | None
    error: str | None = None
    ts: datetime = Field(default_factory=utcnow)


register_table("answers", AnswerRow)


class Reply(BaseModel):
    text: str
    worker: WorkerSpec
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


@task(name="ask-solver", cache_policy=NO_CACHE)
def ask_solver(
    task_: Task,
    workers: list[WorkerSpec],
    messages: list[Message],
    run_id: str,
    candidate_id: str,
    purpose: str,
    traces_dir: str,
    temperature: float,
    seed: int | None = None,
) -> Reply:
    """One solver turn (falling back along ``workers``); the reply is parsed by the flow."""
    settings = get_settings()
    params = {"seed": seed} if seed is not None else {}
    completion, used = call_model(
        workers,
        messages,
        CallContext(run_id=run_id, task_id=task_.id, purpose=purpose, candidate_id=candidate_id),
        settings=settings,
        store=TraceStore(traces_dir),
        max_tokens=settings.max_tokens,
        temperature=temperature,
        **params,
    )
    return Reply(
        text=completion.text, worker=used, prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens, cost_usd=completion.cost_usd,
    )
