"""Prompt text of the question workflows (reasoning, science, rag_qa) and their verifiers.

Kept in one place so that replayed runs stay comparable. Every solver prompt ends by asking for a
final ``ANSWER: <answer>`` line, in the form the task's answer type needs.
"""

from __future__ import annotations

import string

from domain.answers import answer_type_of
from domain.rag_index import Hit
from orchestrator.records import Message
from orchestrator.taskspec import Task

SOLVER_SYSTEM = (
    "You are a careful problem solver. Reason step by step, briefly, then give your final answer on "
    "the last line, alone, in the form `ANSWER: <answer>`."
)
TOOL_INSTRUCTIONS = (
    "You can run Python to calculate. To do so, reply with only one ```python block that prints what you "
    "need (no network; the standard library is available). You will get its output back, and can then "
    "run more code or answer. Do not write `ANSWER:` in a reply that asks to run code."
)
RAG_INSTRUCTIONS = (
    "Answer from the numbered passages below only. Cite every passage you use by its id in square "
    "brackets, like [c3], right after the statement it supports. If the passages do not contain the "
    "answer, say so and answer `ANSWER: unknown`."
)
VERIFIER_SYSTEM = "You check other people's answers strictly and briefly."
CITATION_SYSTEM = "You check whether quoted passages support an answer, strictly and briefly."


def answer_format(task: Task) -> str:
    kind = answer_type_of(task.spec)
    units = f" in {task.spec.units}" if task.spec.units else ""
    if kind == "number":
        return f"End with `ANSWER: <number>`{units}: just the number, no working."
    if kind == "choice":
        return "End with `ANSWER: <letter>`: the letter of one option."
    return "End with `ANSWER: <answer>`: the answer alone, as short as it can be."


def revise_instruction(task: Task) -> str:
    """What a solver is asked after a critic's review (the flows' debate, the benchmark's critic rounds)."""
    return "Revise your answer where the review is right. " + answer_format(task)


def choices_block(task: Task) -> str:
    return "\n".join(f"{string.ascii_uppercase[i]}) {choice}" for i, choice in enumerate(task.spec.choices or []))


def passages_block(hits: list[Hit]) -> str:
    return "\n\n".join(f"[{h.chunk.id}] ({h.chunk.source})\n{h.chunk.text}" for h in hits)


def question_messages(task: Task, *, python_tool: bool = False, hits: list[Hit] | None = None) -> list[Message]:
    """The solver's opening conversation for one question."""
    system = SOLVER_SYSTEM + (" " + TOOL_INSTRUCTIONS if python_tool else "")
    parts = [task.prompt.strip()]
    if task.spec.choices:
        parts += ["", "Options:", choices_block(task)]
    if hits is not None:
        parts = [RAG_INSTRUCTIONS, "", "Passages:", passages_block(hits), "", "Question:", *parts]
    parts += ["", answer_format(task)]
    return [Message(role="system", content=system), Message(role="user", content="\n".join(parts))]


def tool_output_message(output: str, exit_code: int | None, timed_out: bool, turns_left: int) -> Message:
    status = "timed out" if timed_out else f"exit code {exit_code}"
    more = "You may run more code or answer." if turns_left > 0 else "No more code runs are allowed: answer now."
    return Message(role="user", content=f"Output of your code ({status}):\n```\n{output}\n```\n{more}")


def verifier_messages(task: Task, reply: str, answer: str | None) -> list[Message]:
    question = task.prompt.strip()
    if task.spec.choices:
        question += "\n\nOptions:\n" + choices_block(task)
    text = (
        f"Question:\n{question}\n\nA solver's work:\n{reply.strip()}\n\nTheir final answer: {answer or '(none)'}\n\n"
        "Is the final answer correct? Check the reasoning and the arithmetic. Reply with one line "
        "`VERDICT: CORRECT` or `VERDICT: INCORRECT`, then one short sentence saying why."
    )
    return [Message(role="system", content=VERIFIER_SYSTEM), Message(role="user", content=text)]


def citation_messages(task: Task, answer_text: str, cited: list[Hit]) -> list[Message]:
    text = (
        f"Question:\n{task.prompt.strip()}\n\nAnswer given:\n{answer_text.strip()}\n\n"
        f"Passages it cites:\n{passages_block(cited)}\n\n"
        "For each passage, does it support what the answer uses it for? Reply with one line per passage, "
        "`<id>: YES` or `<id>: NO`, for example `c3: YES`."
    )
    return [Message(role="system", content=CITATION_SYSTEM), Message(role="user", content=text)]
