"""The critic's review and the revision request, as text: what the debate step (tasks/debate.py) and
the quality benchmark's critic rounds (domain/quality/gsm8k.py) send, in one place.

The review ends with ``VERDICT: APPROVE`` or ``VERDICT: REVISE``; the caller decides what approval means.
"""

from __future__ import annotations

import re

from orchestrator.records import Message

CANDIDATE_CHARS = 8000
FEEDBACK_CHARS = 4000

CRITIC_SYSTEM = (
    "You are a demanding reviewer. Find concrete errors in the candidate answer: wrong results, missed "
    "requirements, unhandled edge cases, crashes. Quote the part that is wrong and say how to fix it. "
    "Do not rewrite the whole answer. End with one line: VERDICT: APPROVE if the answer is correct and "
    "complete, otherwise VERDICT: REVISE."
)
_VERDICT = re.compile(r"VERDICT\W{0,3}(APPROVE|REVISE)", re.I)


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
