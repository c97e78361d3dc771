"""Fan-out end to end: several workers on one task through the real flow, sandbox, judge and traces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from domain.judging import response_text
from flows.run_task import run_task_flow
from orchestrator.records import RouteDecision, WorkerSpec
from orchestrator.traces import TraceStore

from .conftest import write_replay

GOOD = "```python\nimport re\n\ndef is_palindrome(text):\n    s = re.sub(r'[^a-z0-9]', '', text.lower())\n    return s == s[::-1]\n```"
GOOD_TOO = "```python\ndef is_palindrome(text):\n    kept = [c for c in text.lower() if c.isalnum()]\n    return kept == kept[::-1]\n```"
WRONG = "```python\ndef is_palindrome(text):\n    return text == text[::-1]\n```"
ROMAN = (
    "def roman_to_int(numeral):\n    values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
    "{guard}    total = 0\n    for i, ch in enumerate(numeral):\n        if ch not in values:\n"
    "            raise ValueError(ch)\n        v = values[ch]\n"
    "        if i + 1 < len(numeral) and values.get(numeral[i + 1], 0) > v:\n            total -= v\n"
    "        else:\n            total += v\n    return total\n"
)
ROMAN_LENIENT = "```python\n" + ROMAN.replace("{guard}", "") + "```"  # accepts "", which the hidden tests forbid
ROMAN_GOOD = "```python\n" + ROMAN.replace("{guard}", "    if not numeral:\n        raise ValueError('empty')\n") + "```"

pytestmark = pytest.mark.usefixtures("prefect_api")


def replay_worker(path: Path, role: str = "solver") -> WorkerSpec:
    return WorkerSpec(provider="replay", model=str(path), role=role)  # type: ignore[arg-type]


def run(task: Path, workers: list[WorkerSpec], traces: Path, max_rounds: int = 2):
    return run_task_flow(
        task_dir=str(task), workers=workers, max_rounds=max_rounds, sandbox="local", traces_dir=str(traces)
    )


def test_two_solvers_give_two_candidates_ranked_and_one_pair(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    good = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    wrong = write_replay(tmp_path / "wrong.jsonl", "task_001", WRONG)
    summary = run(task, [replay_worker(wrong), replay_worker(good)], traces_dir)

    assert len(summary.candidates) == 2 and summary.passed
    by_worker = {c.worker: c for c in summary.candidates}
    passing, failing = by_worker[f"replay:{good}:solver"], by_worker[f"replay:{wrong}:solver"]
    assert summary.best_candidate == passing.candidate_id
    assert passing.passed and not failing.passed and failing.rounds == 2  # the failing one got a fix round

    store = TraceStore(traces_dir)
    verdicts = sorted(store.rows("verdicts", run_id=summary.run_id), key=lambda v: v["rank"])
    assert [(v["candidate_id"], v["rank"], v["exec_score"]) for v in verdicts] == [
        (passing.candidate_id, 1, 1.0), (failing.candidate_id, 2, 0.25)  # the wrong one passes 2 of 4 tests
    ]
    assert verdicts[0]["model"] == str(good) and verdicts[0]["judge_model"] == "execution"
    (pair,) = store.rows("preference_pairs", run_id=summary.run_id)
    assert pair["chosen_candidate"] == passing.candidate_id and pair["rejected_candidate"] == failing.candidate_id
    assert pair["chosen"] == response_text("coding", passing.output)
    assert pair["rejected"] == response_text("coding", failing.output)
    assert "def is_palindrome" in pair["chosen"] and pair["basis"] == "execution" and pair["margin"] == 0.75
    assert [m["role"] for m in json.loads(pair["prompt_messages"])] == ["system", "user"]
    (route,) = store.rows("routes", run_id=summary.run_id)
    assert route["router"] == "explicit" and route["task_text"].startswith("Write `is_palindrome")
    purposes = sorted(c["purpose"] for c in store.rows("calls", run_id=summary.run_id))
    assert purposes == ["fix", "solve", "solve"]


def test_tied_candidates_go_to_the_rubric_judge(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    first = write_replay(tmp_path / "first.jsonl", "task_001", GOOD)
    second = write_replay(tmp_path / "second.jsonl", "task_001", GOOD_TOO)
    # order 1 shows first as A, second as B; order 2 the reverse: "second" wins both times
    judge = write_replay(tmp_path / "judge.jsonl", "task_001", '{"winner": "B"}', 'I prefer A. {"winner": "A"}')
    summary = run(task, [replay_worker(first), replay_worker(second), replay_worker(judge, "judge")], traces_dir)

    assert len(summary.candidates) == 2 and all(c.passed for c in summary.candidates)
    store = TraceStore(traces_dir)
    verdicts = sorted(store.rows("verdicts", run_id=summary.run_id), key=lambda v: v["rank"])
    assert [v["model"] for v in verdicts] == [str(second), str(first)]
    assert [v["rubric_score"] for v in verdicts] == [1.0, 0.0]
    assert verdicts[0]["judge_model"] == f"replay:{judge}" and verdicts[0]["judge_mode"] == "pairwise"
    (pair,) = store.rows("preference_pairs", run_id=summary.run_id)
    assert pair["basis"] == "rubric" and pair["chosen_model"] == f"replay:{second}"
    calls = store.rows("calls", run_id=summary.run_id)
    assert sorted(c["purpose"] for c in calls) == ["judge", "judge", "solve", "solve"]


def test_debate_revises_a_candidate_when_only_hidden_tests_exist(task_copy, tmp_path, traces_dir):
    task = task_copy("task_003")
    shutil.rmtree(task / "tests")  # hidden tests only: their results never reach a model
    solver = write_replay(tmp_path / "solver.jsonl", "task_003", ROMAN_LENIENT, ROMAN_GOOD)
    critic = write_replay(
        tmp_path / "critic.jsonl", "task_003",
        "An empty numeral returns 0; it must raise ValueError.\nVERDICT: REVISE",
        "Empty input is rejected now.\nVERDICT: APPROVE",
    )
    summary = run(task, [replay_worker(solver), replay_worker(critic, "critic")], traces_dir, max_rounds=4)

    assert summary.passed and summary.rounds == 2  # approved after the revision: no third round
    store = TraceStore(traces_dir)
    calls = sorted(store.rows("calls", run_id=summary.run_id), key=lambda c: c["ts"])
    assert [(c["purpose"], c["role"]) for c in calls] == [
        ("solve", "solver"), ("critique", "critic"), ("fix", "solver"), ("critique", "critic")
    ]
    attempts = sorted(store.rows("attempts", run_id=summary.run_id), key=lambda a: a["round"])
    assert [(a["suite"], a["passed"]) for a in attempts] == [("hidden", False), ("hidden", True)]
    decision = RouteDecision.model_validate_json(store.rows("routes", run_id=summary.run_id)[0]["decision"])
    assert decision.controls.use_debate and decision.controls.max_rounds == 4


def test_debate_with_visible_tests_still_fixes_failures(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    solver = write_replay(tmp_path / "solver.jsonl", "task_001", WRONG, GOOD)
    critic = write_replay(tmp_path / "critic.jsonl", "task_001", "Case and punctuation are not ignored.\nVERDICT: REVISE")
    summary = run(task, [replay_worker(solver), replay_worker(critic, "critic")], traces_dir)
    assert summary.passed and summary.rounds == 2
    calls = sorted(TraceStore(traces_dir).rows("calls", run_id=summary.run_id), key=lambda c: c["ts"])
    assert [c["purpose"] for c in calls] == ["solve", "critique", "fix"]  # a passing round ends the debate


def test_cli_junk_router_reply_still_runs_and_the_trace_shows_what_was_dropped(cli, task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    good = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    junk = (
        "Hmm, let me think. I'd go with:\n```\n{'workflow': 'coding', 'workers': ["
        f"{{'provider': 'replay', 'model': '{good}', 'role': 'solver'}}, "
        "{'provider': 'skynet', 'model': 'hal-9000', 'role': 'solver'}, "
        "{'provider': 'openai', 'model': 'gpt-9', 'role': 'wizard'},], "
        "'controls': {'use_debate': False, 'max_rounds': 99,},}\n```\nGood luck!"
    )
    router = write_replay(tmp_path / "router.jsonl", "task_001", junk)
    proc = cli("run", str(task), "--router", "cost-first", "--sandbox", "local", "--json",
               env={"ORCH_ROUTER_WORKER": f"replay:{router}"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["passed"] and [c["worker"] for c in out["candidates"]] == [f"replay:{good}:solver"]

    store = TraceStore(traces_dir)
    (route,) = store.rows("routes", run_id=out["run_id"])
    assert route["router"] == "cost-first" and route["raw_reply"] == junk and route["parsed_as"] == "repaired"
    assert route["router_model"] == f"replay:{router}"
    dropped = {d["field"]: d["reason"] for d in json.loads(route["dropped"])}
    assert "skynet" in dropped["workers[1]"]
    assert "wizard" in dropped["workers[2]"]
    assert dropped["controls.max_rounds"] == "clamped to 4 (1..4)"
    assert RouteDecision.model_validate_json(route["decision"]).controls.max_rounds == 4
    calls = store.rows("calls", run_id=out["run_id"])
    assert sorted((c["purpose"], c["role"]) for c in calls) == [("route", "router"), ("solve", "solver")]


def test_learned_router_trains_on_run_traces_and_routes_without_a_model_call(cli, task_copy, tmp_path, traces_dir):
    tasks = {"task_001": task_copy("task_001"), "task_003": task_copy("task_003")}
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"task_id": "task_001", "content": GOOD}) + "\n"
                    + json.dumps({"task_id": "task_003", "content": ROMAN_GOOD}) + "\n")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"task_id": "task_001", "content": WRONG}) + "\n"
                     + json.dumps({"task_id": "task_003", "content": ROMAN_LENIENT}) + "\n")
    for folder in tasks.values():
        run(folder, [replay_worker(wrong), replay_worker(good)], traces_dir, max_rounds=1)

    model_file = tmp_path / "router.json"
    trained = cli("router", "train", "--out", str(model_file))
    assert trained.returncode == 0, trained.stderr
    assert "trained on 2 task(s)" in trained.stderr

    proc = cli("run", str(tasks["task_001"]), "--router", "learned", "--sandbox", "local", "--json",
               env={"ORCH_LEARNED_ROUTER_PATH": str(model_file)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [c["worker"] for c in out["candidates"]] == [f"replay:{good}:solver"]
    store = TraceStore(traces_dir)
    (route,) = store.rows("routes", run_id=out["run_id"])
    assert route["router"] == "learned" and route["router_model"] == str(model_file)
    assert json.loads(route["raw_reply"])["predicted_quality"][f"replay:{good}"] > 0.5
    # routing cost no model call: the run's only call is the solver's
    assert [c["purpose"] for c in store.rows("calls", run_id=out["run_id"])] == ["solve"]


def test_cli_refuses_bad_router_choices_before_any_work(cli, task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    unknown = cli("run", str(task), "--router", "vibes", "--sandbox", "local")
    assert unknown.returncode == 2 and "choose one of cost-first, quality-first, learned, hint" in unknown.stderr
    untrained = cli("run", str(task), "--router", "learned", "--sandbox", "local",
                    env={"ORCH_LEARNED_ROUTER_PATH": str(tmp_path / "none.json")})
    assert untrained.returncode == 2 and "orchestrator router train" in untrained.stderr
    both = cli("run", str(task), "--router", "hint", "--worker", "replay:x.jsonl", "--sandbox", "local")
    assert both.returncode == 2 and "--router picks the workers" in both.stderr
    assert not traces_dir.exists()
