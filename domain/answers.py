"""Final answers of the question workflows: parse them out of a reply, score them, vote over them.

Parsing tries, in order: the last ``ANSWER: <x>`` line (what the prompts ask for), the last
``\\boxed{<x>}`` (what maths-tuned models write anyway), then the last non-empty line outside code blocks. Which form
was found is kept, so a trace shows how often a model followed the format.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from orchestrator.taskspec import AnswerType, TaskSpec

AnswerForm = Literal["answer_line", "boxed", "last_line", "none"]

_ANSWER_LINE = re.compile(r"^[\s>*_#-]*(?:final\s+)?answer[*_]*\s*[:：]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_BOXED = re.compile(r"\\boxed\s*\{")
_FENCED_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FRACTION = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_CHOICE = re.compile(r"^\W*(?:option|choice|answer)?\s*\(?([A-Za-z])\)?(?:[\s.:)\]-]|$)", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
#: relative tolerance for numbers when the task states none: equal up to float noise
DEFAULT_NUMBER_TOLERANCE = 1e-6


class ParsedAnswer(BaseModel):
    answer: str | None
    form: AnswerForm


def parse_answer(reply: str) -> ParsedAnswer:
    """The final answer in a model's reply, and the form it was given in."""
    lines = _ANSWER_LINE.findall(reply)
    if lines:
        return ParsedAnswer(answer=_strip_markup(lines[-1]), form="answer_line")
    boxed = _last_boxed(reply)
    if boxed is not None:
        return ParsedAnswer(answer=_strip_markup(boxed), form="boxed")
    prose = _FENCED_BLOCK.sub("", reply)  # code is not an answer
    for line in reversed(prose.strip().splitlines()):
        if line.strip():
            return ParsedAnswer(answer=_strip_markup(line), form="last_line")
    return ParsedAnswer(answer=None, form="none")


def _last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, braces balanced (``\\boxed{\\frac{1}{2}}`` works)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return None


def _strip_markup(text: str) -> str:
    text = text.strip().strip("*_`").strip()
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\frac\{([^}]*)\}\{([^}]*)\}", r"\1/\2", text)
    text = text.replace("\\$", "$").replace("\\%", "%").replace("\\,", "").replace("\\!", "")
    return text.rstrip(".").strip()


# ---------------------------------------------------------------- scoring


def answer_type_of(spec: TaskSpec) -> AnswerType:
    """The task's answer type; when unstated, a reference that reads as a number is compared as one."""
    if spec.answer_type is not None:
        return spec.answer_type
    if spec.choices:
        return "choice"
    if spec.answer is not None and parse_number(spec.answer) is not None:
        return "number"
    return "exact" if spec.answer is not None else "free"


def parse_number(text: str, units: str | None = None) -> float | None:
    """The number stated in ``text`` (``1,234.5``, ``$12``, ``45%``, ``3/4``, ``2.5e-3 m/s``), else None.

    When the text holds several numbers the last one counts ("... so x = 4, i.e. 12" → 12), unless the
    task's units follow a number, which then is the answer.
    """
    cleaned = text.replace("−", "-").replace("$", "").replace("\\", "").strip()
    fraction = _FRACTION.match(cleaned)
    if fraction:
        denominator = float(fraction.group(2))
        return float(fraction.group(1)) / denominator if denominator else None
    spans = [(m.start(), m.group()) for m in _NUMBER.finditer(cleaned) if any(c.isdigit() for c in m.group())]
    if not spans:
        return None
    chosen = spans[-1][1]
    if units:
        for start, number in spans:
            rest = cleaned[start + len(number):].lstrip()
            if rest.lower().startswith(units.lower()):
                chosen = number
                break
    try:
        value = float(chosen.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def choice_letter(text: str, choices: Sequence[str] | None) -> str | None:
    """The option letter an answer names: ``B``, ``(b)``, ``B) 42``, or the text of an option."""
    normalised = normalise_text(text)
    for index, option in enumerate(choices or []):
        if normalised and normalised == normalise_text(option):
            return string.ascii_uppercase[index]
    match = _CHOICE.match(text.strip())
    if not match:
        return None
    letter = match.group(1).upper()
    if choices and string.ascii_uppercase.index(letter) >= len(choices):
        return None
    return letter


def normalise_text(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the usual exact-match normalisation)."""
    text = text.lower()
    text = "".join(" " if c in string.punctuation else c for c in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_key(answer: str, spec: TaskSpec) -> str | None:
    """A canonical form under which equal answers compare equal (for votes and exact matches)."""
    kind = answer_type_of(spec)
    if kind == "number":
        value = parse_number(answer, spec.units)
        return None if value is None else repr(round(value, 9))
    if kind == "choice":
        return choice_letter(answer, spec.choices)
    return normalise_text(answer) or None


def score_answer(answer: str | None, spec: TaskSpec) -> bool | None:
    """Whether ``answer`` matches the task's reference; None when there is nothing to compare with."""
    kind = answer_type_of(spec)
    if spec.answer is None or kind == "free":
        return None
    if answer is None:
        return False
    if kind == "number":
        got, want = parse_number(answer, spec.units), parse_number(spec.answer, spec.units)
        if got is None or want is None:
            return False
        tolerance = DEFAULT_NUMBER_TOLERANCE if spec.tolerance is None else spec.tolerance
        return math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance if want == 0 else 0.0)
    if kind == "choice":
        want_letter = choice_letter(spec.answer, spec.choices)
        return want_letter is not None and choice_letter(answer, spec.choices) == want_letter
    return answer_key(answer, spec) == answer_key(spec.answer, spec)


class Vote(BaseModel):
    """The result of a self-consistency vote: the winning key, how many agreed, and out of how many."""

    key: str | None
    answer: str | None
    count: int
    total: int


def majority_vote(answers: Sequence[str | None], spec: TaskSpec) -> Vote:
    """The most common answer (by canonical key); ties go to the answer seen first."""
    keyed = [(answer_key(a, spec), a) for a in answers if a is not None]
    keyed = [(k, a) for k, a in keyed if k is not None]
    if not keyed:
        return Vote(key=None, answer=None, count=0, total=len(answers))
    counts = Counter(k for k, _ in keyed)
    best = max(counts.values())
    key, answer = next((k, a) for k, a in keyed if counts[k] == best)
    return Vote(key=key, answer=answer, count=best, total=len(answers))


def vote_settled(answers: Sequence[str | None], spec: TaskSpec, remaining: int) -> bool:
    """Whether ``remaining`` more answers can no longer change ``majority_vote``'s winner: the leader
    is ahead of the runner-up by more than ``remaining`` (adaptive self-consistency: stop sampling
    once the vote is decided, so the answer is the one the full vote would give, at fewer calls)."""
    counts = sorted(Counter(k for k in (answer_key(a, spec) for a in answers if a is not None) if k is not None).values())
    if not counts:
        return False
    runner_up = counts[-2] if len(counts) > 1 else 0
    return counts[-1] - runner_up > remaining
