"""The coding workflow's steps as plain functions: no Prefect server, no flow run, the real sandbox.

Each step takes the run's state and returns it; :class:`flows.runner.PlainRunner` calls the Prefect
tasks' functions directly, which is how a sweep could run many tasks inside one flow run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import task

from flows import coding_steps as steps
from flows.coding_steps import CodingState
from flows.registry import WORKFLOW_RUNS
from flows.runner import PlainRunner
from orchestrator.records import RunRequest, WorkerSpec
from orchestrator.traces import TraceStore
from tasks.model_call import run_resources

from .conftest import RUNS, write_replay

GOOD = "```python\nimport re\n\ndef is_palindrome(text):\n    s = re.sub(r'[^a-z0-9]', '', text.lower())\n    return s == s[::-1]\n```"
WRONG = "```python\ndef is_palindrome(text):\n    return text == text[::-1]\n```"

runner = PlainRunner()


def replay_worker(path: Path, role: str = "solver") -> WorkerSpec:
    return WorkerSpec(provider="replay", model=str(path), role=role)  # type: ignore[arg-type]


def request(task: Path, workers: list[WorkerSpec], traces: Path, max_rounds: int = 2) -> RunRequest:
    return RunRequest(task_dir=str(task), workers=workers, max_rounds=max_rounds, sandbox="local", traces_dir=str(traces))


def routed(req: RunRequest) -> CodingState:
    return steps.route(steps.start(req, runner), runner)


def test_a_whole_run_without_prefect(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    good = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    wrong = write_replay(tmp_path / "wrong.jsonl", "task_001", WRONG)
    summary = WORKFLOW_RUNS["coding"](request(task, [replay_worker(wrong), replay_worker(good)], traces_dir), runner)

    assert summary.passed and len(summary.candidates) == 2
    by_worker = {c.worker: c for c in summary.candidates}
    assert summary.best_candidate == by_worker[f"replay:{good}:solver"].candidate_id
    assert by_worker[f"replay:{wrong}:solver"].rounds == 2  # the failing one got a fix round
    [row] = TraceStore(traces_dir).rows("runs", run_id=summary.run_id)
    assert row["status"] == "completed" and row["flow_run_id"] == ""  # no flow run: no artifact either
    # The run's token total is its calls rows summed: the one definition the sweep report uses too.
    calls = TraceStore(traces_dir).rows("calls", run_id=summary.run_id)
    assert (summary.prompt_tokens, summary.completion_tokens) == (
        sum(c["prompt_tokens"] for c in calls), sum(c["completion_tokens"] for c in calls)
    )


def test_a_runs_spend_counts_every_call_and_an_unknown_price_once_it_answered():
    from orchestrator.records import CallRow
    from tasks.call_scope import count_call, spent_by_run

    def call(**fields):
        return CallRow(run_id="r-spend", provider="openai", model="m", role="judge", purpose="judge", **fields)

    count_call(call(prompt_tokens=10, completion_tokens=5, cost_usd=0.5))
    count_call(call(ok=False, error_kind="rate_limit"))  # a failed try: no tokens, no price, no harm
    assert spent_by_run("r-spend").model_dump() == {"prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.5}
    count_call(call(prompt_tokens=1, completion_tokens=1, cost_usd=None))  # answered, without a price
    assert spent_by_run("r-spend", forget=True).cost_usd is None
    assert spent_by_run("r-spend").prompt_tokens == 0  # forgotten


def test_route_opens_one_active_candidate_per_solver(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    a, b = (write_replay(tmp_path / f"{n}.jsonl", "task_001", GOOD) for n in "ab")
    state = routed(request(task, [replay_worker(a), replay_worker(b), replay_worker(a, "critic")], traces_dir))

    assert [c.worker.role for c in state.candidates] == ["solver", "solver"]
    assert state.active == [c.candidate_id for c in state.candidates]
    # each solver falls back on the other
    assert [len(c.fallbacks) for c in state.candidates] == [2, 2]


def test_a_visible_pass_ends_the_rounds_and_a_failure_gets_pytest_feedback(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    good = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    wrong = write_replay(tmp_path / "wrong.jsonl", "task_001", WRONG)
    state = routed(request(task, [replay_worker(good), replay_worker(wrong)], traces_dir))
    passing, failing = state.candidates

    state = steps.test_round(steps.solve_round(state, runner), runner)
    assert state.round == 1 and passing.last and passing.last.passed
    assert failing.last and not failing.last.passed
    assert state.active == [failing.candidate_id]

    state = steps.review_round(state, runner)
    assert state.active == [failing.candidate_id]
    assert failing.messages[-1].role == "user" and "pytest output" in failing.messages[-1].content


def test_the_last_round_stops_every_candidate(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    wrong = write_replay(tmp_path / "wrong.jsonl", "task_001", WRONG)
    state = routed(request(task, [replay_worker(wrong)], traces_dir, max_rounds=1))

    state = steps.review_round(steps.test_round(steps.solve_round(state, runner), runner), runner)
    assert state.active == [] and state.candidates[0].rounds == 1


def test_a_solver_that_fails_leaves_the_others_working(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    good = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    other = write_replay(tmp_path / "other.jsonl", "another_task", GOOD)  # has no reply for this task
    state = routed(request(task, [replay_worker(good), replay_worker(other)], traces_dir))
    state.candidates[1].fallbacks = state.candidates[1].fallbacks[:1]  # no fallback to the good one

    state = steps.solve_round(state, runner)
    assert state.active == [state.candidates[0].candidate_id]
    assert state.candidates[1].error and state.candidates[1].rounds == 0


def test_verdict_judge_and_persist_from_the_state(task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    good = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    req = request(task, [replay_worker(good)], traces_dir)
    with run_resources(req.run_id):
        state = steps.test_round(steps.solve_round(routed(req), runner), runner)
        state = steps.persist(steps.judge(steps.final_verdict(state, runner), runner))

    assert state.summary is not None and state.summary.passed and state.summary.rounds == 1
    assert [v.candidate_id for v in state.verdicts] == [state.candidates[0].candidate_id]
    assert state.summary.prompt_tokens == state.candidates[0].prompt_tokens


def test_plain_runner_keeps_each_failure_and_honours_task_retries():
    calls: list[int] = []

    @task(retries=1)
    def flaky(n: int) -> int:
        calls.append(n)
        if n == 2 and calls.count(2) == 1:
            raise RuntimeError("sandbox did not start")
        if n == 3:
            raise ValueError("always")
        return n * 10

    results = PlainRunner(max_workers=1).map(flaky, [{"n": 1}, {"n": 2}, {"n": 3}])
    assert results[:2] == [10, 20]  # n=2 succeeded on its retry
    assert isinstance(results[2], ValueError) and calls.count(3) == 2
    with pytest.raises(ValueError):
        PlainRunner().call(flaky, n=3)


def test_a_question_workflow_runs_without_prefect_too(traces_dir):
    examples = RUNS / "replay" / "examples.jsonl"
    summary = WORKFLOW_RUNS["reasoning"](
        RunRequest(task_dir=str(RUNS / "reasoning_001"), workers=[replay_worker(examples)], traces_dir=str(traces_dir)),
        runner,
    )
    assert summary.passed and summary.workflow == "reasoning"
    assert [c.answer for c in summary.candidates] == ["7"]
