"""The learned router: trained from trace tables, routes with no model call, measured as RouteLLM does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.router_learned import (
    calls_to_recover,
    evaluate,
    load_router,
    pgr_curve,
    read_traces,
    save_router,
    train,
)
from orchestrator.errors import ConfigurationError, UserInputError
from orchestrator.records import CallRow, RouteRow, VerdictRow, WorkerSpec, new_id
from orchestrator.settings import Settings
from orchestrator.taskspec import load_task
from orchestrator.traces import TraceStore
from tasks.route import route

from .conftest import write_replay

EASY = [
    "Return the sum of a list of integers called {w}.",
    "Add up all numbers in the list {w} and return the total sum.",
    "Given a list of integers {w}, return their sum.",
    "Compute the total of the integers in list {w}; an empty list sums to zero.",
]
HARD = [
    "Parse the regular expression {w} and build a nondeterministic finite automaton for it.",
    "Write a regular expression parser for {w} that compiles to an NFA automaton with epsilon moves.",
    "Implement Thompson's construction: turn the regular expression {w} into an NFA automaton.",
    "Build a recursive descent parser for regular expression syntax {w}, producing an automaton.",
]
WEAK, STRONG = ("replay", "weak.jsonl"), ("replay", "strong.jsonl")


def record_run(store: TraceStore, task_id: str, text: str, results: dict[tuple[str, str], tuple[float, float]]) -> None:
    """One run as the flows write it: a routes row, a solver call (latency) and a verdict per candidate."""
    run_id = new_id()
    store.write("routes", [RouteRow(run_id=run_id, task_id=task_id, task_text=text, router="explicit",
                                    workflow="coding", workers="[]", decision="{}")])
    ranked = sorted(results.items(), key=lambda kv: (-kv[1][0], kv[1][1]))  # the judge: quality, then cost
    for position, ((provider, model), (quality, latency)) in enumerate(ranked, start=1):
        cid = new_id()
        store.write("calls", [CallRow(run_id=run_id, candidate_id=cid, provider=provider, model=model, role="solver",
                                      purpose="solve", latency_s=latency)])
        store.write("verdicts", [VerdictRow(run_id=run_id, task_id=task_id, workflow="coding", candidate_id=cid,
                                            worker=f"{provider}:{model}:solver", provider=provider, model=model,
                                            passed=quality == 1.0, exec_score=quality, score=quality, rank=position,
                                            reason="", judge_model="execution", judge_mode="execution", cost_usd=0.0)])


@pytest.fixture
def traces(tmp_path: Path) -> TraceStore:
    """Easy tasks both models solve; hard ones only the strong (5x slower) model solves."""
    store = TraceStore(tmp_path / "traces")
    words = ["alpha", "beta", "gamma"]
    for i, (template, word) in enumerate((t, w) for t in EASY for w in words):
        record_run(store, f"easy-{i}", template.format(w=word), {WEAK: (1.0, 1.0), STRONG: (1.0, 5.0)})
    for i, (template, word) in enumerate((t, w) for t in HARD for w in words):
        record_run(store, f"hard-{i}", template.format(w=word), {WEAK: (0.0, 1.0), STRONG: (1.0, 5.0)})
    return store


def test_reads_training_data_from_the_traces(traces):
    data = read_traces(traces)
    assert data.cost_basis == "latency_s"  # every call was free in dollars
    assert len(data.examples) == 24 and len(data.preferences) == 24
    easy = next(e for e in data.examples if e.task_id == "easy-0")
    assert easy.quality == {"replay:strong.jsonl": 1.0, "replay:weak.jsonl": 1.0}
    assert easy.cost == {"replay:strong.jsonl": 5.0, "replay:weak.jsonl": 1.0}


def test_routes_cheap_tasks_to_the_weak_model_and_hard_ones_to_the_strong(traces):
    router = train(traces, neighbours=3, margin=0.1)
    assert router.choose("Return the sum of the integers in list delta.").worker == WorkerSpec(
        provider="replay", model="weak.jsonl"
    )
    hard = router.choose("Parse this regular expression into an NFA automaton.")
    assert hard.worker.model == "strong.jsonl"
    assert hard.predicted["replay:strong.jsonl"] > hard.predicted["replay:weak.jsonl"] + 0.5
    # a task unlike any seen: each model's mean (strong 1.0, weak 0.5), so the strong one
    assert router.choose("Write a haiku about autumn.").worker.model == "strong.jsonl"


def test_unusable_models_are_skipped_with_their_reason(traces):
    router = train(traces, neighbours=3, margin=0.1)
    choice = router.choose("Parse a regular expression into an automaton.",
                           usable=lambda w: "no key" if w.model == "strong.jsonl" else None)
    assert choice.worker.model == "weak.jsonl" and choice.skipped == {"replay:strong.jsonl": "no key"}
    with pytest.raises(ConfigurationError, match="cannot be used here"):
        router.choose("anything", usable=lambda w: "not allowed")


def test_held_out_metrics(traces):
    report = evaluate(read_traces(traces), neighbours=3, margin=0.1, folds=4, seed=1)
    assert (report.weak, report.strong) == ("replay:weak.jsonl", "replay:strong.jsonl")
    # an easy task whose neighbours are unsure may go to the strong model: safe, but not what the judge chose
    assert report.runs == 24 and report.agreement is not None and report.agreement >= 0.9
    assert (report.quality_weak, report.quality_strong) == (0.5, 1.0)
    # Every hard task ranks above every easy one: half the gap is recovered after a quarter of the
    # calls, all of it after half; the area under that curve is 0.75 (random routing: 0.5).
    assert report.cpt50 == pytest.approx(0.25)
    assert report.apgr == pytest.approx(0.75)
    assert report.pgr == 1.0 and 0.5 <= (report.strong_share or 0) <= 0.6


def test_pgr_curve_moves_tied_scores_together():
    # two tasks tie on score: a threshold cannot split them, so they move as one step
    shares, pgrs = pgr_curve([0.9, 0.2, 0.2, 0.0], q_weak=[0, 0, 0, 1], q_strong=[1, 1, 0, 1])
    assert shares == [0.0, 0.25, 0.75, 1.0]
    assert pgrs == [0.0, 0.5, 1.0, 1.0]
    assert calls_to_recover(shares, pgrs, 0.5) == 0.25
    assert calls_to_recover(shares, pgrs, 0.75) == pytest.approx(0.5)


def test_too_little_data(tmp_path):
    with pytest.raises(UserInputError, match="no training data"):
        train(TraceStore(tmp_path / "empty"), neighbours=3, margin=0.1)
    store = TraceStore(tmp_path / "one")
    record_run(store, "t", "text", {WEAK: (1.0, 1.0)})
    assert evaluate(read_traces(store), neighbours=3, margin=0.1).note


def test_saved_router_loads_and_routes_without_a_model_call(traces, tmp_path):
    path = save_router(train(traces, neighbours=3, margin=0.1), tmp_path / "router.json")
    assert json.loads(path.read_text())["cost_basis"] == "latency_s"
    weak = write_replay(tmp_path / "weak.jsonl", "x", "unused")
    strong = write_replay(tmp_path / "strong.jsonl", "x", "unused")
    folder = tmp_path / "task"
    (folder / "tests").mkdir(parents=True)
    (folder / "task.toml").write_text('id = "x"\nworkflow = "coding"\nprompt = "Sum the integers in a list."\n')
    (folder / "solution.py").write_text("def total(xs):\n    ...\n")
    (folder / "tests" / "test_total.py").write_text("def test_x():\n    pass\n")
    settings = Settings(learned_router_path=path, allowed_providers=("replay",))
    store = TraceStore(tmp_path / "run-traces")
    # replay model names are file paths, resolved from the working directory
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        routed = route(load_task(folder), new_id(), store, settings, router="learned")
    assert routed.decision.router == "learned"
    assert routed.decision.workers == [WorkerSpec(provider="replay", model="weak.jsonl")]
    assert json.loads(routed.raw_reply or "{}")["predicted_quality"]["replay:weak.jsonl"] > 0.9
    assert store.rows("calls") == []
    assert weak.exists() and strong.exists()


def test_missing_router_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigurationError, match="orchestrator router train"):
        load_router(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1}')
    with pytest.raises(ConfigurationError, match="not a learned router file"):
        load_router(bad)


def test_cli_train_and_eval(cli, traces, tmp_path):
    out = tmp_path / "r.json"
    trained = cli("router", "train", "--traces", str(traces.root), "--out", str(out), "--neighbours", "3")
    assert trained.returncode == 0, trained.stderr
    assert "trained on 24 task(s)" in trained.stderr and out.is_file()
    assert "replay:strong.jsonl" in trained.stdout
    evaluated = cli("router", "eval", "--traces", str(traces.root), "--neighbours", "3", "--folds", "4", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["agreement"] >= 0.9 and report["apgr"] == pytest.approx(0.75)
    table = cli("router", "eval", "--traces", str(traces.root))
    assert "CPT(50%)" in table.stdout and "APGR" in table.stdout
