"""The reasoning workflow end to end: real Prefect, replayed (and one real local) model, Parquet traces."""

from __future__ import annotations

import json

import pytest

from flows.run_task import run_task_flow
from orchestrator.errors import UserInputError
from orchestrator.records import WorkerSpec
from orchestrator.traces import TraceStore

from .conftest import RUNS, write_replay

EXAMPLES = RUNS / "replay" / "examples.jsonl"
WRONG = RUNS / "replay" / "examples_wrong.jsonl"

pytestmark = pytest.mark.usefixtures("prefect_api")


def replay(path, role: str = "solver") -> WorkerSpec:
    return WorkerSpec(provider="replay", model=str(path), role=role)  # type: ignore[arg-type]


def run(task, workers, traces, max_rounds: int = 2):
    return run_task_flow(
        task_dir=str(task), workers=workers, max_rounds=max_rounds, sandbox="local", traces_dir=str(traces)
    )


@pytest.mark.parametrize(("name", "answer", "form"), [
    ("reasoning_001", "7", "answer_line"),
    ("reasoning_002", "A", "answer_line"),
    ("reasoning_003", "Wednesday", "boxed"),
])
def test_shipped_examples_pass_with_their_replayed_answers(name, answer, form, traces_dir):
    summary = run(RUNS / name, [replay(EXAMPLES)], traces_dir)
    assert summary.passed and summary.workflow == "reasoning" and summary.sandbox is None
    (cand,) = summary.candidates
    assert (cand.answer, cand.passed, cand.suite) == (answer, True, "reference")
    store = TraceStore(traces_dir)
    (row,) = store.rows("answers", run_id=summary.run_id)
    assert (row["answer"], row["answer_form"], row["correct"], row["verified"]) == (answer, form, True, True)
    (check,) = store.rows("verifications", run_id=summary.run_id)
    assert check["kind"] == "answer" and check["verifier"] == f"replay:{EXAMPLES}:verifier"
    assert [c["purpose"] for c in sorted(store.rows("calls", run_id=summary.run_id), key=lambda c: c["ts"])] == [
        "solve", "verify"
    ]
    (verdict,) = store.rows("verdicts", run_id=summary.run_id)
    assert verdict["rank"] == 1 and verdict["passed"] is True
    (run_row,) = store.rows("runs", run_id=summary.run_id)
    assert run_row["workflow"] == "reasoning" and run_row["passed"] is True


def test_two_workers_are_ranked_and_make_a_pair(traces_dir):
    summary = run(RUNS / "reasoning_002", [replay(WRONG), replay(EXAMPLES)], traces_dir)
    assert summary.passed
    answers = {c.answer: c for c in summary.candidates}
    assert answers["A"].passed and answers["C"].passed is False
    assert summary.best_candidate == answers["A"].candidate_id
    store = TraceStore(traces_dir)
    ranks = {v["candidate_id"]: v["rank"] for v in store.rows("verdicts", run_id=summary.run_id)}
    assert ranks == {answers["A"].candidate_id: 1, answers["C"].candidate_id: 2}
    (pair,) = store.rows("preference_pairs", run_id=summary.run_id)
    assert pair["chosen"].endswith("ANSWER: A") and pair["rejected"].endswith("ANSWER: C")
    assert pair["workflow"] == "reasoning" and "Options:\nA) Ann" in pair["prompt"]


def test_debate_critic_makes_the_solver_revise(task_copy, tmp_path, traces_dir):
    task = task_copy("reasoning_001")
    solver = write_replay(tmp_path / "solver.jsonl", "reasoning_001", "13 boxes, so 6.\nANSWER: 6",
                          "You are right: 2x = 14, so x = 7.\nANSWER: 7", "VERDICT: CORRECT")
    critic = write_replay(tmp_path / "critic.jsonl", "reasoning_001",
                          "6 boxes of 6 and 7 of 4 hold 64 muffins, not 66.\nVERDICT: REVISE", "VERDICT: APPROVE")
    summary = run(task, [replay(solver), replay(critic, "critic")], traces_dir, max_rounds=3)
    (cand,) = summary.candidates
    assert cand.answer == "7" and cand.passed and cand.rounds == 2 and summary.rounds == 2
    calls = sorted(TraceStore(traces_dir).rows("calls", run_id=summary.run_id), key=lambda c: c["ts"])
    assert [c["purpose"] for c in calls] == ["solve", "critique", "revise", "critique", "verify"]


def test_self_consistency_votes_over_samples(task_copy, tmp_path, traces_dir, monkeypatch):
    monkeypatch.setenv("ORCH_SAMPLES", "3")
    task = task_copy("reasoning_001")
    answers = write_replay(tmp_path / "samples.jsonl", "reasoning_001",
                           "ANSWER: 7", "ANSWER: 6", "so 7.0\nANSWER: 7.0", "VERDICT: CORRECT")
    summary = run(task, [replay(answers)], traces_dir)
    assert len(summary.candidates) == 3 and summary.passed
    assert sorted(c.answer or "" for c in summary.candidates) == ["6", "7", "7.0"]
    best = next(c for c in summary.candidates if c.candidate_id == summary.best_candidate)
    assert best.answer in ("7", "7.0")
    rows = TraceStore(traces_dir).rows("answers", run_id=summary.run_id)
    assert sorted(r["sample"] for r in rows) == [1, 2, 3]
    assert sorted(r["votes"] for r in rows) == [0, 2, 2]


def test_self_consistency_can_outvote_the_right_answer(task_copy, tmp_path, traces_dir, monkeypatch):
    monkeypatch.setenv("ORCH_SAMPLES", "3")
    task = task_copy("reasoning_001")
    answers = write_replay(tmp_path / "samples.jsonl", "reasoning_001",
                           "ANSWER: 6", "ANSWER: 7", "ANSWER: 6", "VERDICT: CORRECT")
    summary = run(task, [replay(answers)], traces_dir)
    assert not summary.passed  # the vote says 6, though one sample had 7
    assert sum(c.passed is True for c in summary.candidates) == 1
    best = next(c for c in summary.candidates if c.candidate_id == summary.best_candidate)
    assert best.answer == "6"


def test_a_bad_sample_count_is_refused_with_one_line(monkeypatch, traces_dir):
    monkeypatch.setenv("ORCH_SAMPLES", "99")
    with pytest.raises(UserInputError, match="ORCH_SAMPLES=.99.: .*16"):
        run(RUNS / "reasoning_001", [replay(EXAMPLES)], traces_dir)


def test_without_a_reference_the_verifier_decides_the_run(tmp_path, traces_dir):
    task = tmp_path / "free"
    task.mkdir()
    (task / "task.toml").write_text('id = "free"\nworkflow = "reasoning"\nprompt = "Why is the sky blue?"\n')
    good = write_replay(tmp_path / "a.jsonl", "free", "Rayleigh scattering.\nANSWER: Rayleigh scattering",
                        "VERDICT: CORRECT - that is the reason.")
    summary = run(task, [replay(good)], traces_dir)
    (cand,) = summary.candidates
    assert cand.passed is None and cand.suite == "none" and summary.passed
    doubtful = write_replay(tmp_path / "b.jsonl", "free", "ANSWER: the sea", "VERDICT: INCORRECT")
    summary = run(task, [replay(doubtful)], traces_dir)
    assert summary.candidates[0].passed is None and not summary.passed
    (row,) = TraceStore(traces_dir).rows("answers", run_id=summary.run_id)
    assert row["answer_type"] == "free" and row["verified"] is False and row["correct"] is None


def test_a_failing_solver_is_recorded_not_fatal(task_copy, tmp_path, traces_dir):
    task = task_copy("reasoning_001")
    other = write_replay(tmp_path / "other.jsonl", "another_task", "ANSWER: 1")
    good = write_replay(tmp_path / "good.jsonl", "reasoning_001", "ANSWER: 7")
    # each solver falls back to the other: the broken file's candidate is answered by the good one
    summary = run(task, [replay(other), replay(good)], traces_dir)
    assert len(summary.candidates) == 2 and all(c.error is None for c in summary.candidates)
    assert summary.passed
    lonely = run(task, [replay(other)], traces_dir)
    (cand,) = lonely.candidates
    assert cand.error and "no line for task" in cand.error and cand.passed is False and not lonely.passed
    assert lonely.error is not None


def test_cli_exit_codes(cli, tmp_path):
    wrong = cli("run", str(RUNS / "reasoning_003"), "--replay", str(WRONG), "--json")
    assert wrong.returncode == 1, wrong.stderr
    assert json.loads(wrong.stdout)["candidates"][0]["answer"] == "Thursday"
    right = cli("run", str(RUNS / "reasoning_003"), "--replay", str(EXAMPLES), "--json")
    assert right.returncode == 0, right.stderr


def test_local_default_model_answers_a_question(cli, traces_dir):
    """One short real run with the default local model: the pipeline completes and every step is traced."""
    proc = cli("run", str(RUNS / "reasoning_001"), "--provider", "local", "--json", env={"ORCH_MAX_TOKENS": "96"})
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    (cand,) = out["candidates"]
    assert cand["worker"] == "local:qwen2.5-coder-0.5b:solver" and cand["error"] is None
    assert cand["completion_tokens"] > 0 and out["passed"] is (cand["passed"] is True)
    store = TraceStore(traces_dir)
    (row,) = store.rows("answers", run_id=out["run_id"])
    assert row["output"].strip() and row["answer_form"] in ("answer_line", "boxed", "last_line")
    calls = sorted(store.rows("calls", run_id=out["run_id"]), key=lambda c: c["ts"])
    assert [c["purpose"] for c in calls] == ["solve", "verify"]
    # the local provider's calls keep what was sent and the reply, for the run's transcript
    assert all(json.loads(c["request"])[-1]["role"] == "user" for c in calls)
    assert calls[0]["reply"] == row["output"]
    assert len(store.rows("verdicts", run_id=out["run_id"])) == 1
