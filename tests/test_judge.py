"""The judge: execution first, then a (replayed) rubric judge for ties, then cost; pairs only for clear wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.judging import judge_workers_for, parse_grade, parse_winner, preference_pairs, rank, split_label
from orchestrator.records import CandidateResult, Message, WorkerSpec, new_id
from orchestrator.settings import Settings
from orchestrator.taskspec import Task, load_task
from orchestrator.traces import TraceStore
from tasks.judge import rubric_scores

from .conftest import RUNS, write_replay


def cand(cid: str, *, passed: bool | None, ok: int = 0, bad: int = 0, output: str | None = None,
         tokens: int = 100, cost: float | None = 0.0, worker: str = "replay:m.jsonl:solver") -> CandidateResult:
    return CandidateResult(
        candidate_id=cid, worker=worker, output=output if output is not None else f"answer {cid}", rounds=1,
        passed=passed, tests_passed=ok, tests_failed=bad, completion_tokens=tokens, cost_usd=cost,
    )


@pytest.fixture
def task() -> Task:
    return load_task(RUNS / "task_001")


def judged(task: Task, candidates: list[CandidateResult], tmp_path: Path, replies: list[str] | None,
           mode: str = "pairwise"):
    store = TraceStore(tmp_path / "traces")
    judges = []
    if replies is not None:
        judges = [WorkerSpec(provider="replay", model=str(write_replay(tmp_path / "judge.jsonl", task.id, *replies)),
                             role="judge")]
    run_id = new_id()
    rubric = rubric_scores(task, candidates, judges, mode, run_id, store, Settings())
    return rank(task, candidates, rubric, run_id, mode), store, run_id


def test_passing_beats_partial_beats_none_then_cost(task, tmp_path):
    candidates = [
        cand("none", passed=False, ok=0, bad=4),
        cand("partial", passed=False, ok=3, bad=1),
        cand("pass-expensive", passed=True, ok=4, tokens=900),
        cand("pass-cheap", passed=True, ok=4, tokens=100),
    ]
    verdicts, store, _ = judged(task, candidates, tmp_path, replies=None)
    assert [v.candidate_id for v in verdicts] == ["pass-cheap", "pass-expensive", "partial", "none"]
    assert [v.rank for v in verdicts] == [1, 2, 3, 4]
    assert [v.exec_score for v in verdicts] == [1.0, 1.0, 0.375, 0.0]
    assert verdicts[2].reason.startswith("3/4 tests passed")
    assert all(v.judge_model == "execution" and v.rubric_score is None for v in verdicts)
    assert store.rows("calls") == []  # no tie needs a judge when none is configured


def test_dollars_before_tokens_when_every_cost_is_known(task, tmp_path):
    candidates = [cand("pricey", passed=True, ok=4, tokens=10, cost=0.02), cand("cheap", passed=True, ok=4, tokens=900, cost=0.001)]
    verdicts, _, _ = judged(task, candidates, tmp_path, replies=None)
    assert verdicts[0].candidate_id == "cheap"


def test_pairwise_judge_asks_both_orders_and_breaks_the_tie(task, tmp_path):
    # Both unverified. Order 1 shows x as A, order 2 shows y as A: x wins both times.
    candidates = [cand("x", passed=None, tokens=500), cand("y", passed=None, tokens=50)]
    replies = ['{"winner": "A", "reason": "x handles punctuation"}', 'After thinking: {"winner": "B"}']
    verdicts, store, run_id = judged(task, candidates, tmp_path, replies)
    assert [v.candidate_id for v in verdicts] == ["x", "y"]
    assert [v.rubric_score for v in verdicts] == [1.0, 0.0]
    assert "won both orders" in verdicts[0].reason and verdicts[0].judge_mode == "pairwise"
    assert verdicts[0].judge_model.startswith("replay:")
    calls = store.rows("calls", run_id=run_id)
    assert [c["purpose"] for c in calls] == ["judge", "judge"]
    pairs = preference_pairs(task, verdicts, candidates, [Message(role="user", content=task.prompt)], 0.2)
    assert [(p.chosen, p.rejected, p.basis, p.margin) for p in pairs] == [
        ("```python\nanswer x\n```", "```python\nanswer y\n```", "rubric", 1.0)
    ]


def test_position_bias_cancels_out_to_a_tie(task, tmp_path):
    """A judge that always prefers the first answer shown: a split verdict, no pair, cost decides."""
    candidates = [cand("x", passed=None, tokens=500), cand("y", passed=None, tokens=50)]
    verdicts, _, _ = judged(task, candidates, tmp_path, ['{"winner": "A"}', '{"winner": "A"}'])
    assert [v.rubric_score for v in verdicts] == [0.5, 0.5]
    assert [v.candidate_id for v in verdicts] == ["y", "x"]  # fewer tokens
    assert "split or tied (A/A)" in verdicts[0].reason
    assert preference_pairs(task, verdicts, candidates, [Message(role="user", content="q")], 0.2) == []


def test_judge_only_for_ties_on_the_verdict_of_record(task, tmp_path):
    candidates = [cand("a", passed=True, ok=4), cand("b", passed=True, ok=4), cand("c", passed=False, bad=4)]
    # b wins in both orders; the failing candidate is never shown to the judge
    verdicts, store, run_id = judged(task, candidates, tmp_path, ['{"winner": "B"}', '{"winner": "A"}'])
    assert [v.candidate_id for v in verdicts] == ["b", "a", "c"]
    assert verdicts[2].rubric_score is None and verdicts[2].judge_model == "execution"
    assert len(store.rows("calls", run_id=run_id)) == 2
    pairs = preference_pairs(task, verdicts, candidates, [Message(role="user", content="q")], 0.2)
    assert {(p.chosen_candidate, p.rejected_candidate, p.basis) for p in pairs} == {
        ("b", "a", "rubric"), ("b", "c", "execution"), ("a", "c", "execution")
    }


def test_pointwise_mode_grades_each_candidate(task, tmp_path):
    candidates = [cand("x", passed=None), cand("y", passed=None)]
    verdicts, _, _ = judged(task, candidates, tmp_path, ['{"score": 4}', "Score: 10 - flawless"], mode="pointwise")
    assert [v.candidate_id for v in verdicts] == ["y", "x"]
    assert verdicts[0].rubric_score == 1.0 and verdicts[1].rubric_score == pytest.approx(1 / 3)
    assert verdicts[0].judge_mode == "pointwise"


def test_unreadable_judge_replies_count_as_ties(task, tmp_path):
    candidates = [cand("x", passed=None), cand("y", passed=None)]
    verdicts, _, _ = judged(task, candidates, tmp_path, ["I cannot decide.", "Both have merit."])
    assert [v.rubric_score for v in verdicts] == [0.5, 0.5]
    assert "unreadable" in verdicts[0].reason


def test_no_pair_without_a_clear_margin_or_with_equal_outputs(task):
    candidates = [cand("p3", passed=False, ok=3, bad=1), cand("p2", passed=False, ok=2, bad=2),
                  cand("same", passed=True, ok=4, output="answer p3")]
    verdicts = rank(task, candidates, {}, "r", "pairwise")
    pairs = preference_pairs(task, verdicts, candidates, [Message(role="user", content="q")], 0.2)
    # p3 vs p2: 0.375 vs 0.25 is no clear margin; "same" vs p3: identical outputs
    assert [(p.chosen_candidate, p.rejected_candidate) for p in pairs] == [("same", "p2")]
    assert pairs[0].margin == 0.75 and pairs[0].chosen_score == 1.0 and pairs[0].rejected_score == 0.25


def test_pair_rows_carry_prompt_and_metadata(task):
    candidates = [cand("good", passed=True, ok=4, worker="openai:gpt-4o-mini:solver"),
                  cand("bad", passed=False, bad=4, worker="ollama:llama3.2:latest:solver")]
    verdicts = rank(task, candidates, {}, "run-1", "pairwise")
    prompt = [Message(role="system", content="Be careful."), Message(role="user", content="Do it.")]
    (pair,) = preference_pairs(task, verdicts, candidates, prompt, 0.2)
    assert pair.prompt == "Be careful.\n\nDo it."
    assert json.loads(pair.prompt_messages) == [{"role": "system", "content": "Be careful."},
                                                {"role": "user", "content": "Do it."}]
    assert (pair.chosen_model, pair.rejected_model) == ("openai:gpt-4o-mini", "ollama:llama3.2:latest")
    assert (pair.task_id, pair.workflow, pair.run_id) == ("task_001", "coding", "run-1")


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ('{"winner": "B", "reason": "..."}', "B"),
        ('```json\n{"winner": "tie"}\n```', "tie"),
        ("Answer A misses edge cases. Winner: A", "A"),
        ("My verdict: [[B]]", "B"),
        ("[[C]]", "tie"),
        ("no idea", None),
    ],
)
def test_parse_winner(reply, winner):
    assert parse_winner(reply) == winner


def test_parse_grade_and_labels():
    assert parse_grade('{"score": 1}') == 0.0
    assert parse_grade("score = 55") == 1.0  # clamped to 10
    assert parse_grade("great answer") is None
    assert split_label("ollama:llama3.2:latest:solver") == ("ollama", "llama3.2:latest")
    assert split_label("replay:/tmp/a.jsonl:judge") == ("replay", "/tmp/a.jsonl")


def test_judge_workers_come_from_the_decision_then_settings():
    judge = WorkerSpec(provider="replay", model="j.jsonl", role="judge")
    solver = WorkerSpec(provider="replay", model="s.jsonl")
    assert judge_workers_for([solver, judge], Settings(judge_worker="openai:gpt-4o")) == [judge]
    assert judge_workers_for([solver], Settings(judge_worker="openai:gpt-4o")) == [
        WorkerSpec(provider="openai", model="gpt-4o", role="judge")
    ]
    assert judge_workers_for([solver], Settings(judge_worker=None)) == []
