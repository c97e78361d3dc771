"""Debate: a critic reviews a candidate and the solver revises it (``use_debate``, up to ``max_rounds``).

Generic across workflows: the critic sees the question, the candidate (code or an answer) and,
when there is any, feedback the solver is allowed to see (visible test output; never hidden tests).
It ends with ``VERDICT: APPROVE`` or ``VERDICT: REVISE``; the workflow decides what approval means
(coding: a candidate without visible tests stops revising once approved).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from domain.critique import critique_messages, parse_approval
from orchestrator.records import WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore
from tasks.model_call import CallContext, call_model

CRITIC_MAX_TOKENS = 500


class Critique(BaseModel):
    text: str
    approved: bool
    critic: str  # the worker that wrote it (after any fallback)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


@task(name="critique", cache_policy=NO_CACHE)
def critique(
    question: str,
    candidate: str,
    critics: list[WorkerSpec],
    run_id: str,
    task_id: str,
    candidate_id: str,
    traces_dir: str,
    feedback: str | None = None,
) -> Critique:
    """One critic's review of one candidate (falling back along ``critics``); every try is a ``calls`` row."""
    settings = get_settings()
    completion, used = call_model(
        critics,
        critique_messages(question, candidate, feedback),
        CallContext(run_id=run_id, task_id=task_id, purpose="critique", candidate_id=candidate_id),
        settings=settings,
        store=TraceStore(traces_dir),
        max_tokens=CRITIC_MAX_TOKENS,
        temperature=0.0,
    )
    return Critique(
        text=completion.text,
        approved=parse_approval(completion.text),
        critic=used.label,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cost_usd=completion.cost_usd,
    )
