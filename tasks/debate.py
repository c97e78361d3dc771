"""Debate: a critic reviews a candidate and the solver revises it (``use_debate``, up to ``max_rounds``).

Generic across workflows: the critic sees the question, the candidate (code or an answer) and,
when there is any, feedback the solver is allowed to see (visible test output; never hidden tests).
It ends with ``VERDICT: APPROVE`` or ``VERDICT: REVISE``; the workflow decides what approval means
(coding: a candidate without visible tests stops revising once approved).
"""

from __future__ import annotations

import re

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from orchestrator.records import Message, WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore
from tasks.model_call import CallContext, call_model

CANDIDATE_CHARS = 8000
FEEDBACK_CHARS = 4000
CRITIC_MAX_TOKENS = 500

CRITIC_SYSTEM = (
    "You are a demanding reviewer. Find concrete errors in the candidate answer: wrong results, missed "
    "requirements, unhandled edge cases, crashes. Quote the part that is wrong and say how to fix it. "
    "Do not rewrite the whole answer. End with one line: VERDICT: APPROVE if the answer is correct and "
    "complete, otherwise VERDICT: REVISE."
)
_VERDICT = re.compile(r"VERDICT\W{0,3}(APPROVE|REVISE)", re.I)


class Critique(BaseModel):
    text: str
    approved: bool
    critic: str  # the worker that wrote it (after any fallback)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


def critique_messages(question: str, candidate: str, feedback: str | None = None) -> list[Message]:
    parts = [f"Task:\n{question.strip()}", f"Candidate answer:\n{candidate[:CANDIDATE_CHARS]}"]
    if feedback:
        parts.append(f"Feedback from running it:\n{feedback[-FEEDBACK_CHARS:]}")
    parts.append("Review the candidate.")
    return [Message(role="system", content=CRITIC_SYSTEM), Message(role="user", content="\n\n".join(parts))]


def parse_approval(text: str) -> bool:
    """The last VERDICT line decides; a review without one asks for a revision (the cautious reading)."""
    verdicts = _VERDICT.findall(text)
    return bool(verdicts) and verdicts[-1].upper() == "APPROVE"


def revise_messages(history: list[Message], candidate: str, critique: str, instruction: str) -> list[Message]:
    """The solver's conversation, extended by its candidate and the critic's review, asking for a revision."""
    request = f"A reviewer critiqued your answer:\n\n{critique.strip()}\n\n{instruction.strip()}"
    return [*history, Message(role="assistant", content=candidate), Message(role="user", content=request)]


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
