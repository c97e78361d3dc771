"""The judge as Prefect sees it: ask the rubric judge (a model call), rank, write ``verdicts`` and pairs.

The evidence, its order and the ranking rules are plain logic in domain/judging.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

from prefect import task
from prefect.cache_policies import NO_CACHE

from domain.judging import (
    Rubric,
    judge_workers_for,
    pairwise_messages,
    parse_grade,
    parse_winner,
    pointwise_messages,
    preference_pairs,
    primary_score,
    question_text,
    rank,
)
from orchestrator.records import CandidateResult, Message, VerdictRow, WorkerSpec
from orchestrator.settings import Settings, get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from tasks.model_call import AllWorkersFailed, CallContext, call_model

JUDGE_MAX_TOKENS = 300


class _Judge:
    """Calls the rubric judge for one run (sequentially: replayed judges answer in a fixed order)."""

    def __init__(self, task: Task, judges: list[WorkerSpec], run_id: str, store: TraceStore, settings: Settings) -> None:
        self.task, self.judges, self.store, self.settings = task, judges, store, settings
        self.ctx = CallContext(run_id=run_id, task_id=task.id, purpose="judge")
        self.used = f"{judges[0].provider}:{judges[0].model}"

    def ask(self, messages: list[Message]) -> str | None:
        try:
            completion, worker = call_model(
                self.judges, messages, self.ctx, settings=self.settings, store=self.store,
                max_tokens=JUDGE_MAX_TOKENS, temperature=0.0,
            )
        except AllWorkersFailed:
            return None
        self.used = worker.model_label
        return completion.text

    def pairwise(self, group: list[CandidateResult]) -> dict[str, Rubric]:
        question = question_text(self.task)
        points: dict[str, float] = defaultdict(float)
        notes: dict[str, list[str]] = defaultdict(list)
        for a, b in combinations(group, 2):
            verdicts = []
            for first, second in ((a, b), (b, a)):
                reply = self.ask(pairwise_messages(question, first.output, second.output))
                winner = parse_winner(reply) if reply is not None else None
                verdicts.append(winner)
                if winner == "A":
                    points[first.candidate_id] += 1.0
                elif winner == "B":
                    points[second.candidate_id] += 1.0
                else:
                    points[first.candidate_id] += 0.5
                    points[second.candidate_id] += 0.5
            if verdicts == ["A", "B"]:
                a_view = "won both orders"
            elif verdicts == ["B", "A"]:
                a_view = "lost both orders"
            else:
                a_view = "split or tied (" + "/".join(v or "unreadable" for v in verdicts) + ")"
            b_view = {"won both orders": "lost both orders", "lost both orders": "won both orders"}.get(a_view, a_view)
            notes[a.candidate_id].append(f"vs {b.candidate_id}: {a_view}")
            notes[b.candidate_id].append(f"vs {a.candidate_id}: {b_view}")
        comparisons = 2 * (len(group) - 1)
        return {
            c.candidate_id: Rubric(
                score=points[c.candidate_id] / comparisons,
                note="pairwise " + "; ".join(notes[c.candidate_id]),
                judge=self.used,
            )
            for c in group
        }

    def pointwise(self, group: list[CandidateResult]) -> dict[str, Rubric]:
        question = question_text(self.task)
        out = {}
        for c in group:
            reply = self.ask(pointwise_messages(question, c.output))
            grade = parse_grade(reply) if reply is not None else None
            note = "pointwise grade unreadable" if grade is None else f"pointwise grade {1 + 9 * grade:.0f}/10"
            out[c.candidate_id] = Rubric(score=grade, note=note, judge=self.used)
        return out


def rubric_scores(
    task: Task, candidates: Sequence[CandidateResult], judges: list[WorkerSpec], mode: str,
    run_id: str, store: TraceStore, settings: Settings,
) -> dict[str, Rubric]:
    """Rubric scores for candidates tied on the verdict of record (groups of two or more with output)."""
    if not judges:
        return {}
    judge = _Judge(task, judges, run_id, store, settings)
    groups: dict[float, list[CandidateResult]] = defaultdict(list)
    out: dict[str, Rubric] = {}
    for c in candidates:
        if c.output.strip():
            groups[primary_score(c)].append(c)
        elif c.passed is None:
            out[c.candidate_id] = Rubric(score=0.0, note="no output", judge="none")
    for group in groups.values():
        if len(group) > 1:
            out.update(judge.pairwise(group) if mode == "pairwise" else judge.pointwise(group))
    return out


@task(name="judge", cache_policy=NO_CACHE)
def judge_task(
    spec: Task,
    candidates: list[CandidateResult],
    run_id: str,
    traces_dir: str,
    judge_workers: list[WorkerSpec] | None = None,
    prompt: list[Message] | None = None,
) -> list[VerdictRow]:
    """Rank the candidates of one run; write ``verdicts`` and ``preference_pairs``; return verdicts best first.

    ``judge_workers``: the rubric judge (None: ``ORCH_JUDGE_WORKER``; an empty list: no LLM judge).
    ``prompt``: the messages the solvers started from, stored with each pair (default: the task prompt).
    """
    settings = get_settings()
    store = TraceStore(traces_dir)
    judges = judge_workers_for([], settings) if judge_workers is None else judge_workers
    rubric = rubric_scores(spec, candidates, judges, settings.judge_mode, run_id, store, settings)
    verdicts = rank(spec, candidates, rubric, run_id, settings.judge_mode)
    store.write("verdicts", verdicts)
    messages = prompt or [Message(role="user", content=spec.prompt.strip())]
    store.write("preference_pairs", preference_pairs(spec, verdicts, candidates, messages, settings.pair_min_margin))
    return verdicts
