"""Judging, the plain part: scores, the rubric judge's prompts and replies, ranking, preference pairs.

tasks/judge.py asks the rubric judge (a model call) and writes the rows; everything else is here.

Evidence, strongest first:

1. the verdict of record (tests run in the sandbox, or the reference answer): all tests passed
   beats some beats none. ``exec_score`` is 1 for a pass, else 0.5 x the share of tests passed; a
   candidate with no verdict of record (``passed=None``) sits at 0.5, "unknown";
2. an LLM rubric judge (``ORCH_JUDGE_WORKER``, or a worker with role ``judge``) for candidates tied on
   the first, which includes every candidate of a task without tests or reference. In pairwise mode
   each pair is judged in both orders, so a judge that favours the first (or second) answer cancels
   itself out: a split verdict is a tie;
3. fewer dollars, then fewer tokens.

Every candidate gets a ``verdicts`` row (score, rank, reason, judge); every (better, worse) pair
separated by at least ``ORCH_PAIR_MIN_MARGIN`` on the evidence that ranked them becomes a
``preference_pairs`` row, ready for DPO (domain/pairs.py exports them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import combinations

from pydantic import BaseModel

from domain.json_reply import parse_json_object
from domain.workers import parse_worker
from orchestrator.records import CandidateResult, Message, PreferencePairRow, VerdictRow, WorkerSpec
from orchestrator.settings import Settings
from orchestrator.taskspec import Task

UNKNOWN = 0.5  # the execution score of a candidate without a verdict of record
ANSWER_CHARS = 6000  # how much of each candidate the rubric judge reads

RUBRIC = (
    "Judge correctness first (does it do exactly what the task asks, including edge cases?), then "
    "completeness, then clarity. Ignore length, style and the order the answers are shown in."
)
PAIRWISE_SYSTEM = (
    "You are a strict judge comparing two answers to the same task. " + RUBRIC + " "
    'Reply with one JSON object: {"winner": "A" | "B" | "tie", "reason": "one sentence"}.'
)
POINTWISE_SYSTEM = (
    "You are a strict judge grading one answer to a task. " + RUBRIC + " "
    'Reply with one JSON object: {"score": <1 to 10>, "reason": "one sentence"}.'
)


class Rubric(BaseModel):
    """What the rubric judge concluded about one candidate."""

    score: float | None
    note: str
    judge: str


def exec_score(candidate: CandidateResult) -> float | None:
    if candidate.passed is None:
        return None
    if candidate.passed:
        return 1.0
    total = candidate.tests_passed + candidate.tests_failed + candidate.tests_errors
    return 0.5 * candidate.tests_passed / total if total else 0.0


def primary_score(candidate: CandidateResult) -> float:
    score = exec_score(candidate)
    return UNKNOWN if score is None else score


def split_label(label: str) -> tuple[str, str]:
    """(provider, model) of a worker label ``provider:model:role`` (model names may hold colons)."""
    worker = WorkerSpec.from_label(label)
    return worker.provider, worker.model


def judge_workers_for(workers: Sequence[WorkerSpec], settings: Settings) -> list[WorkerSpec]:
    """Workers with role ``judge`` in the decision, else ``ORCH_JUDGE_WORKER``, else none (no LLM judge)."""
    judges = [w for w in workers if w.role == "judge"]
    if judges:
        return judges
    if settings.judge_worker:
        return [parse_worker(settings.judge_worker).model_copy(update={"role": "judge"})]
    return []


def response_text(workflow: str, output: str) -> str:
    """A candidate as the assistant turn it stands for: coding answers were asked for as one fenced block."""
    return f"```python\n{output.rstrip()}\n```" if workflow == "coding" else output


# ---------------------------------------------------------------- the rubric judge


def parse_winner(text: str) -> str | None:
    """``A``, ``B`` or ``tie`` from a judge's reply (JSON, else a ``winner: X`` or ``[[X]]`` mention)."""
    reply = parse_json_object(text).value
    if reply is not None:
        value = str(reply.get("winner", "")).strip().upper()
        if value in ("A", "B"):
            return value
        if value in ("TIE", "C", "NONE", "DRAW", "BOTH"):
            return "tie"
    match = re.search(r"winner\W{0,5}(A|B|tie)\b", text, re.I) or re.search(r"\[\[(A|B|C)\]\]", text)
    if match:
        value = match.group(1).upper()
        return value if value in ("A", "B") else "tie"
    return None


def parse_grade(text: str) -> float | None:
    """A 1..10 grade from a judge's reply, as 0..1."""
    reply = parse_json_object(text).value
    value = reply.get("score") if reply is not None else None
    if value is None:
        match = re.search(r"score\W{0,5}(\d+(?:\.\d+)?)", text, re.I)
        value = match.group(1) if match else None
    try:
        grade = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return (min(max(grade, 1.0), 10.0) - 1.0) / 9.0


def question_text(task: Task) -> str:
    reference = f"\n\nReference answer: {task.spec.answer}" if task.spec.answer else ""
    return task.prompt.strip() + reference


def pairwise_messages(question: str, first: str, second: str) -> list[Message]:
    user = (
        f"Task:\n{question}\n\n[Answer A]\n{first[:ANSWER_CHARS]}\n[End of answer A]\n\n"
        f"[Answer B]\n{second[:ANSWER_CHARS]}\n[End of answer B]\n\nWhich answer is better?"
    )
    return [Message(role="system", content=PAIRWISE_SYSTEM), Message(role="user", content=user)]


def pointwise_messages(question: str, answer: str) -> list[Message]:
    user = f"Task:\n{question}\n\n[Answer]\n{answer[:ANSWER_CHARS]}\n[End of answer]\n\nGrade the answer."
    return [Message(role="system", content=POINTWISE_SYSTEM), Message(role="user", content=user)]


# ---------------------------------------------------------------- ranking and pairs


def _exec_reason(c: CandidateResult) -> str:
    total = c.tests_passed + c.tests_failed + c.tests_errors
    if c.error and not c.output.strip():
        return f"no output ({c.error[:120]})"
    if c.passed is None:
        return "no verdict of record"
    if c.passed:
        return f"passed ({c.tests_passed} tests, {c.suite} suite)" if total else "passed"
    return f"{c.tests_passed}/{total} tests passed ({c.suite} suite)" if total else "failed"


def rank(
    task: Task, candidates: Sequence[CandidateResult], rubric: dict[str, Rubric], run_id: str, mode: str
) -> list[VerdictRow]:
    """Verdict rows, best first: verdict of record, then rubric, then dollars, then tokens."""
    costs_known = all(c.cost_usd is not None for c in candidates)

    def key(item: tuple[int, CandidateResult]) -> tuple[float, float, float, int, int]:
        index, c = item
        r = rubric.get(c.candidate_id)
        rubric_value = r.score if r is not None and r.score is not None else UNKNOWN
        dollars = (c.cost_usd or 0.0) if costs_known else 0.0
        return (-primary_score(c), -rubric_value, dollars, c.prompt_tokens + c.completion_tokens, index)

    rows = []
    for position, (_, c) in enumerate(sorted(enumerate(candidates), key=key), start=1):
        execution = exec_score(c)
        r = rubric.get(c.candidate_id)
        rubric_value = r.score if r is not None else None
        tokens = c.prompt_tokens + c.completion_tokens
        cost = f"${c.cost_usd:.6f}, " if c.cost_usd else ""
        parts = [_exec_reason(c)]
        if r is not None:
            parts.append(f"rubric {r.score:.2f}: {r.note}" if r.score is not None else r.note)
        parts.append(f"{cost}{tokens} tokens")
        provider, model = split_label(c.worker)
        rows.append(
            VerdictRow(
                run_id=run_id,
                task_id=task.id,
                workflow=task.workflow,
                candidate_id=c.candidate_id,
                worker=c.worker,
                provider=provider,
                model=model,
                passed=c.passed,
                tests_passed=c.tests_passed,
                tests_failed=c.tests_failed + c.tests_errors,
                exec_score=execution,
                rubric_score=rubric_value,
                score=execution if execution is not None else (rubric_value if rubric_value is not None else UNKNOWN),
                rank=position,
                reason="; ".join(parts),
                judge_model=r.judge if r is not None else "execution",
                judge_mode=mode if r is not None else "execution",
                prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens,
                cost_usd=c.cost_usd,
            )
        )
    return rows


class _Gap(BaseModel):
    basis: str  # execution | rubric
    better: float
    worse: float

    @property
    def margin(self) -> float:
        return self.better - self.worse


def _gap(better: VerdictRow, worse: VerdictRow) -> _Gap | None:
    """The two candidates' scores on the evidence that ranked them apart (None: no common measure)."""
    if better.exec_score is not None and worse.exec_score is not None and better.exec_score != worse.exec_score:
        return _Gap(basis="execution", better=better.exec_score, worse=worse.exec_score)
    if better.exec_score != worse.exec_score:
        return None  # one verified, one not
    if better.rubric_score is not None and worse.rubric_score is not None:
        return _Gap(basis="rubric", better=better.rubric_score, worse=worse.rubric_score)
    return None


def preference_pairs(
    task: Task,
    verdicts: Sequence[VerdictRow],
    candidates: Sequence[CandidateResult],
    prompt: Sequence[Message],
    min_margin: float,
) -> list[PreferencePairRow]:
    """Every (better, worse) pair of candidates with a clear margin and two different, non-empty outputs."""
    outputs = {c.candidate_id: c.output for c in candidates}
    prompt_text = "\n\n".join(m.content.strip() for m in prompt)
    prompt_json = json.dumps([{"role": m.role, "content": m.content} for m in prompt])
    pairs = []
    for better, worse in combinations(sorted(verdicts, key=lambda v: v.rank), 2):
        chosen, rejected = outputs[better.candidate_id], outputs[worse.candidate_id]
        gap = _gap(better, worse)
        if gap is None or gap.margin < min_margin or not chosen.strip() or not rejected.strip() or chosen == rejected:
            continue
        pairs.append(
            PreferencePairRow(
                run_id=better.run_id,
                task_id=task.id,
                workflow=task.workflow,
                prompt=prompt_text,
                prompt_messages=prompt_json,
                chosen=response_text(task.workflow, chosen),
                rejected=response_text(task.workflow, rejected),
                chosen_candidate=better.candidate_id,
                rejected_candidate=worse.candidate_id,
                chosen_model=f"{better.provider}:{better.model}",
                rejected_model=f"{worse.provider}:{worse.model}",
                chosen_score=gap.better,
                rejected_score=gap.worse,
                margin=round(gap.margin, 6),
                basis=gap.basis,
                judge_model="execution" if gap.basis == "execution" else better.judge_model,
            )
        )
    return pairs
