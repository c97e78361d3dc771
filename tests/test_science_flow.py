"""The science workflow: the python_sandbox tool in the real sandbox, numbers with tolerance and units."""

from __future__ import annotations

import pytest

from flows.run_task import run_task_flow
from orchestrator.records import WorkerSpec
from orchestrator.traces import TraceStore
from tasks.python_tool import clip, code_to_run

from .conftest import RUNS, write_replay

EXAMPLES = RUNS / "replay" / "examples.jsonl"


def replay(path) -> list[WorkerSpec]:
    return [WorkerSpec(provider="replay", model=str(path))]


def run(task, path, traces):
    return run_task_flow(task_dir=str(task), workers=replay(path), sandbox="local", traces_dir=str(traces))


def by_time(rows):
    return sorted(rows, key=lambda r: r["ts"])


def test_code_is_run_only_when_the_reply_does_not_answer_yet():
    assert code_to_run("Let me compute.\n```python\nprint(2 ** 10)\n```") == "print(2 ** 10)\n"
    assert code_to_run("```py\nx = 1\n```\n```python\nprint(x)\n```") == "print(x)\n"
    assert code_to_run("```python\nprint(1)\n```\nANSWER: 1") is None
    assert code_to_run("```bash\nls\n```") is None
    assert code_to_run("No code here.") is None
    assert clip("x" * 10, 20) == "x" * 10
    clipped = clip("a" * 50 + "b" * 50, 20)
    assert clipped.startswith("a" * 10) and clipped.endswith("b" * 10) and "80 characters cut" in clipped


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(("name", "answer", "tool_output"), [
    ("science_001", "19.81 m/s", "19.809"),
    ("science_002", "0.2983", "0.2982924364237143"),
    ("science_003", "B", None),
])
def test_shipped_examples_pass_with_their_replayed_answers(name, answer, tool_output, traces_dir):
    summary = run(RUNS / name, EXAMPLES, traces_dir)
    assert summary.passed and summary.workflow == "science" and summary.sandbox == "local"
    (cand,) = summary.candidates
    assert cand.answer == answer and cand.passed
    store = TraceStore(traces_dir)
    runs = store.rows("tool_runs", run_id=summary.run_id)
    (row,) = store.rows("answers", run_id=summary.run_id)
    purposes = [c["purpose"] for c in by_time(store.rows("calls", run_id=summary.run_id))]
    if tool_output is None:
        assert runs == [] and row["tool_runs"] == 0 and purposes == ["solve", "verify"]
    else:
        (tool,) = runs
        assert tool["exit_code"] == 0 and tool["output"] == tool_output and tool["sandbox"].startswith("local")
        assert row["tool_runs"] == 1 and purposes == ["solve", "solve", "verify"]
        first, second = by_time(c for c in store.rows("calls", run_id=summary.run_id) if c["purpose"] == "solve")
        # the second turn carried the first reply and the code's output back to the solver
        assert second["prompt_tokens"] > first["prompt_tokens"] + (len(tool_output) + 20) // 4
    assert len(store.rows("verdicts", run_id=summary.run_id)) == 1


@pytest.mark.usefixtures("prefect_api")
def test_the_sandbox_has_no_network_and_enforces_the_time_limit(tmp_path, traces_dir):
    task = tmp_path / "sci"
    task.mkdir()
    (task / "task.toml").write_text(
        'id = "sci"\nworkflow = "science"\nprompt = "What is 6 x 7?"\nanswer = "42"\n\n[limits]\ntimeout_s = 2\n'
    )
    network = (
        "```python\nimport socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n    print('online')\n"
        "except OSError as exc:\n    print('offline', type(exc).__name__)\n```"
    )
    forever = "```python\nwhile True:\n    pass\n```"
    replayed = write_replay(tmp_path / "r.jsonl", "sci", network, forever, "6 x 7 = 42.\nANSWER: 42", "VERDICT: CORRECT")
    summary = run(task, replayed, traces_dir)
    assert summary.passed and summary.candidates[0].answer == "42"
    first, second = by_time(TraceStore(traces_dir).rows("tool_runs", run_id=summary.run_id))
    assert first["output"].startswith("offline") and first["exit_code"] == 0
    assert second["timed_out"] and second["duration_s"] < 30


@pytest.mark.usefixtures("prefect_api")
def test_code_runs_are_capped_and_the_solver_must_then_answer(tmp_path, traces_dir):
    task = tmp_path / "sci"
    task.mkdir()
    (task / "task.toml").write_text('id = "sci"\nworkflow = "science"\nprompt = "2 + 2?"\nanswer = "4"\n')
    ask = "```python\nprint(2 + 2)\n```"
    replayed = write_replay(tmp_path / "r.jsonl", "sci", ask, ask, ask, ask, "ANSWER: 4", "VERDICT: CORRECT")
    summary = run(task, replayed, traces_dir)
    store = TraceStore(traces_dir)
    assert len(store.rows("tool_runs", run_id=summary.run_id)) == 3  # MAX_TOOL_RUNS
    (row,) = store.rows("answers", run_id=summary.run_id)
    # the fourth request to run code is the final reply: it holds no answer
    assert row["tool_runs"] == 3 and row["answer_form"] == "none" and row["correct"] is False
    assert not summary.passed
    assert [c["purpose"] for c in by_time(store.rows("calls", run_id=summary.run_id))] == ["solve"] * 4 + ["verify"]


@pytest.mark.usefixtures("prefect_api")
def test_numbers_are_checked_with_the_tasks_tolerance_and_units(tmp_path, traces_dir):
    close = write_replay(tmp_path / "a.jsonl", "science_001", "About 19.7 m/s (not 20).\nANSWER: 19.7 m/s")
    summary = run(RUNS / "science_001", close, traces_dir)
    assert summary.candidates[0].passed is True  # within 1 %
    far = write_replay(tmp_path / "b.jsonl", "science_001", "ANSWER: 18.5 m/s")
    assert run(RUNS / "science_001", far, traces_dir).candidates[0].passed is False
