"""The verifier role of the question workflows: a model checks a final answer, and each cited chunk.

Verdicts are advisory beside the verdict of record (the reference answer): they are stored in the
``verifications`` table, one row per check, with what the verifier said; an unreadable reply is a
verdict of None, never a guess.
"""

from __future__ import annotations

import re

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from domain.question_prompts import citation_messages, verifier_messages
from domain.rag_index import Hit
from orchestrator.records import VerificationRow, WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from tasks.model_call import AllWorkersFailed, CallContext, call_model

VERIFIER_MAX_TOKENS = 200
_VERDICT = re.compile(r"verdict\s*[:：]\s*\**\s*(in)?correct", re.IGNORECASE)
_LOOSE = re.compile(r"\b(in)?correct\b", re.IGNORECASE)
_CITATION_LINE = re.compile(r"\b(c\d+)\b[^\w\n]{0,8}(yes|no|supported|unsupported|supports)\b", re.IGNORECASE)
_CITED = re.compile(r"\[((?:c\d+)(?:\s*[,;]\s*c\d+)*)\]")




class Verification(BaseModel):
    """What a candidate's checks came to, plus the verifier's token use."""

    verdict: bool | None
    rows: list[VerificationRow]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0


def parse_verdict(reply: str) -> bool | None:
    match = _VERDICT.search(reply)
    if match:
        return match.group(1) is None
    words = {m.group(0).lower() for m in _LOOSE.finditer(reply)}
    if len(words) == 1:  # a reply that says only one of "correct"/"incorrect" is read as that
        return words == {"correct"}
    return None


def parse_citation_verdicts(reply: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for chunk_id, word in _CITATION_LINE.findall(reply):
        out.setdefault(chunk_id.lower(), word.lower() in ("yes", "supported", "supports"))
    return out


def cited_ids(text: str) -> list[str]:
    """Chunk ids cited as ``[c3]`` or ``[c1, c4]``, in order of first citation."""
    seen: list[str] = []
    for group in _CITED.findall(text):
        for chunk_id in re.split(r"\s*[,;]\s*", group):
            if chunk_id.lower() not in seen:
                seen.append(chunk_id.lower())
    return seen


@task(name="verify-answer", cache_policy=NO_CACHE)
def verify_answer(
    spec: Task, verifiers: list[WorkerSpec], reply: str, answer: str | None, run_id: str, candidate_id: str,
    traces_dir: str,
) -> Verification:
    """Ask the verifier whether the final answer is right."""
    store = TraceStore(traces_dir)
    try:
        completion, used = call_model(
            verifiers, verifier_messages(spec, reply, answer),
            CallContext(run_id=run_id, task_id=spec.id, purpose="verify", candidate_id=candidate_id),
            settings=get_settings(), store=store, max_tokens=VERIFIER_MAX_TOKENS, temperature=0.0,
        )
    except AllWorkersFailed as exc:
        row = _row(run_id, spec, candidate_id, "answer", "answer", None, f"verifier failed: {exc}", verifiers)
        store.write("verifications", [row])
        return Verification(verdict=None, rows=[row])
    verdict = parse_verdict(completion.text)
    row = _row(run_id, spec, candidate_id, "answer", "answer", verdict, completion.text, [used])
    store.write("verifications", [row])
    return Verification(verdict=verdict, rows=[row], prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens, cost_usd=completion.cost_usd)


@task(name="verify-citations", cache_policy=NO_CACHE)
def verify_citations(
    spec: Task, verifiers: list[WorkerSpec], reply: str, hits: list[Hit], run_id: str, candidate_id: str,
    traces_dir: str,
) -> Verification:
    """Check each chunk the reply cites: it must be one that was retrieved, and support the answer.

    The verdict is True when the reply cites at least one chunk and none fails; None when the
    verifier's reply could not be read for any of them.
    """
    store = TraceStore(traces_dir)
    by_id = {h.chunk.id: h for h in hits}
    cited = cited_ids(reply)
    rows = [
        _row(run_id, spec, candidate_id, "citation", c, False, "cited a chunk that was not retrieved", [])
        for c in cited if c not in by_id
    ]
    known = [by_id[c] for c in cited if c in by_id]
    result = Verification(verdict=None, rows=rows)
    if known:
        try:
            completion, used = call_model(
                verifiers, citation_messages(spec, reply, known),
                CallContext(run_id=run_id, task_id=spec.id, purpose="verify-citations", candidate_id=candidate_id),
                settings=get_settings(), store=store, max_tokens=VERIFIER_MAX_TOKENS, temperature=0.0,
            )
            said = parse_citation_verdicts(completion.text)
            rows += [
                _row(run_id, spec, candidate_id, "citation", h.chunk.id, said.get(h.chunk.id), completion.text, [used])
                for h in known
            ]
            result.prompt_tokens, result.completion_tokens = completion.prompt_tokens, completion.completion_tokens
            result.cost_usd = completion.cost_usd
        except AllWorkersFailed as exc:
            rows += [
                _row(run_id, spec, candidate_id, "citation", h.chunk.id, None, f"verifier failed: {exc}", verifiers)
                for h in known
            ]
    verdicts = [r.verdict for r in rows]
    if not cited or any(v is False for v in verdicts):
        result.verdict = False
    elif all(v is True for v in verdicts):
        result.verdict = True
    result.rows = rows or [_row(run_id, spec, candidate_id, "citation", "-", False, "cites no chunk", [])]
    store.write("verifications", result.rows)
    return result


def _row(
    run_id: str, spec: Task, candidate_id: str, kind: str, target: str, verdict: bool | None, reason: str,
    verifiers: list[WorkerSpec],
) -> VerificationRow:
    return VerificationRow(
        run_id=run_id, task_id=spec.id, candidate_id=candidate_id, kind=kind, target=target, verdict=verdict,
        reason=reason.strip()[:1000], verifier=verifiers[0].label if verifiers else "",
    )
