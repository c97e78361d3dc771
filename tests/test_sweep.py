"""`orchestrator sweep` end to end: the console script, the Prefect server, the sandbox and the ledger."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from domain.sweep_plan import select_tasks
from domain.sweep_report import pass_at_k
from flows.sweep import SweepParams, hand_over, prepare, sweep_flow
from orchestrator.importers import write_tasks
from orchestrator.importers.humaneval import HumanEval, canonical_replay_lines
from orchestrator.traces import TraceStore
from tests.sweep_helpers import artifacts

from .conftest import RUNS

PALINDROME_OK = (
    "```python\nimport re\n\ndef is_palindrome(text):\n"
    "    s = re.sub(r'[^a-z0-9]', '', text.lower())\n    return s == s[::-1]\n```"
)
PALINDROME_BAD = "```python\ndef is_palindrome(text):\n    return text == text[::-1]\n```"
MERGE_OK = (
    "```python\ndef merge_intervals(intervals):\n    out = []\n    for s, e in sorted(intervals):\n"
    "        if out and s <= out[-1][1]:\n            out[-1] = (out[-1][0], max(out[-1][1], e))\n"
    "        else:\n            out.append((s, e))\n    return out\n```"
)
MERGE_BAD = "```python\ndef merge_intervals(intervals):\n    return list(intervals)\n```"


def tasks_dir(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / "tasks"
    for name in names:
        shutil.copytree(RUNS / name, root / name)
    return root


def replay_file(path: Path, answers: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"task_id": t, "content": c}) + "\n" for t, c in answers.items()))
    return path


def test_sweep_counts_passed_failed_and_errored_and_exits_0(cli, tmp_path, traces_dir):
    root = tasks_dir(tmp_path, "task_001", "task_002", "task_003")
    # task_003 has no line in the replay file: its run errors, and the sweep still completes
    replay = replay_file(tmp_path / "r.jsonl", {"task_001": PALINDROME_OK, "task_002": MERGE_BAD})
    proc = cli(
        "sweep", str(root), "--replay", str(replay), "--sandbox", "local", "--max-rounds", "1", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["total"], out["passed"], out["failed"], out["errored"]) == (3, 1, 1, 1)
    assert out["pass_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert out["cost"] == 0.0 and out["duration_s"] > 0 and out["name"] == "tasks"
    [model] = out["models"]
    assert model["model"] == f"replay:{replay}" and (model["passed"], model["judged"]) == (1, 3)

    store = TraceStore(traces_dir)
    ledger = store.rows("sweep_tasks", sweep_id=out["sweep_id"])
    assert sorted((r["task_id"], r["status"], r["passed"]) for r in ledger) == [
        ("task_001", "completed", True),
        ("task_002", "completed", False),
        ("task_003", "error", False),
    ]
    runs = store.rows("runs", sweep_id=out["sweep_id"])
    assert sorted(r["run_id"] for r in runs) == sorted(r["run_id"] for r in ledger)
    assert [
        r["event"] for r in sorted(store.rows("sweeps", sweep_id=out["sweep_id"]), key=lambda r: r["ts"])
    ] == [
        "started",
        "finished",
    ]


def test_second_sweep_is_compared_with_the_first_in_artifacts_and_chart(
    cli, prefect_api, tmp_path, traces_dir
):
    root = tasks_dir(tmp_path, "task_001", "task_002")
    name = "compare-me"
    first = replay_file(tmp_path / "first.jsonl", {"task_001": PALINDROME_OK, "task_002": MERGE_BAD})
    second = replay_file(tmp_path / "second.jsonl", {"task_001": PALINDROME_BAD, "task_002": MERGE_OK})
    for replay in (first, second):
        proc = cli(
            "sweep",
            str(root),
            "--replay",
            str(replay),
            "--name",
            name,
            "--sandbox",
            "local",
            "--max-rounds",
            "1",
        )
        assert proc.returncode == 0, proc.stderr
        assert "1/2 passed" in proc.stdout

    report = artifacts(prefect_api, "sweep-compare-me-report")[0]["data"]
    assert "**Newly failing (1):** `task_001`" in report
    assert "**Newly passing (1):** `task_002`" in report
    assert "| pass rate | 50.0% | 50.0% | +0.0 pt |" in report
    charts = sorted((traces_dir / "charts").glob("compare-me-*.png"))
    assert len(charts) == 2 and charts[-1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in report and any(c.name in report for c in charts)

    tasks_table = json.loads(artifacts(prefect_api, "sweep-compare-me-tasks")[0]["data"])
    assert {(row["task"], row["passed"]) for row in tasks_table} == {("task_001", "no"), ("task_002", "yes")}
    models_table = json.loads(artifacts(prefect_api, "sweep-compare-me-models")[0]["data"])
    assert [row["pass_rate"] for row in models_table] == ["50.0%"]
    progress = artifacts(prefect_api, "sweep-compare-me-progress")[0]
    assert progress["type"] == "progress" and progress["data"] == 100.0


def test_the_flow_runs_what_the_cli_prepared_and_reads_no_task_folder_again(prefect_api, tmp_path, traces_dir):
    root = tasks_dir(tmp_path, "task_001", "task_002")
    replay = replay_file(tmp_path / "r.jsonl", {"task_001": PALINDROME_OK, "task_002": MERGE_OK})
    params = SweepParams.model_validate({
        "tasks": str(root), "workers": [f"replay:{replay}"], "sandbox": "local", "max_rounds": 1,
        "traces_dir": str(traces_dir), "sweep_id": "handed-over",
    })  # fmt: skip
    prepared = prepare(params)
    hand_over(params, prepared)
    # A folder that appears after the CLI prepared (and counted) the sweep is not part of it.
    shutil.copytree(RUNS / "task_003", root / "task_003")
    report = sweep_flow(**dict(params))
    assert (report.sweep_id, report.total, report.passed) == ("handed-over", 2, 2)
    # Without a hand-over the flow prepares for itself and finds the new folder.
    assert len(prepare(params).items) == 3


def test_samples_give_pass_at_k(cli, tmp_path, traces_dir):
    root = tasks_dir(tmp_path, "task_001", "task_002")
    replay = replay_file(tmp_path / "r.jsonl", {"task_001": PALINDROME_OK, "task_002": MERGE_BAD})
    proc = cli(
        "sweep",
        str(root),
        "--replay",
        str(replay),
        "--samples",
        "3",
        "--concurrency",
        "3",
        "--sandbox",
        "local",
        "--max-rounds",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["total"], out["passed"], out["tasks"], out["samples"]) == (6, 3, 2, 3)
    assert out["pass_at_k"] == {"pass@1": 0.5, "pass@2": 0.5, "pass@3": 0.5}
    ledger = TraceStore(traces_dir).rows("sweep_tasks", sweep_id=out["sweep_id"])
    assert sorted((r["task_id"], r["sample"]) for r in ledger) == [
        (t, s) for t in ("task_001", "task_002") for s in range(3)
    ]


def test_pass_at_k_is_the_unbiased_estimator():
    """Checked against its definition: the chance that a random k-subset of n samples holds a correct one."""
    for n in range(1, 7):
        for c in range(n + 1):
            samples = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(samples, k))
                expected = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(expected)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["{tmp}/nowhere"], "not a folder"),
        ("malformed", ["{tmp}/tasks"], "task.toml is not valid TOML"),
        ("duplicate", ["{tmp}/tasks"], "is used by both"),
        ("ok", ["{tmp}/tasks", "--concurrency", "0"], "--concurrency"),
        ("ok", ["{tmp}/tasks", "--resume"], "--resume: no sweep named 'tasks'"),
        ("ok", ["{tmp}/tasks", "--sweep-id", "--json"], "--sweep-id: '--json' is not a sweep id"),
        ("ok", ["{tmp}/tasks", "--worker", "nosuch:model"], "worker nosuch:model:solver"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    cli, tmp_path, traces_dir, setup, args, message
):
    if setup:
        tasks_dir(tmp_path, "task_001")
    if setup == "malformed":
        (tmp_path / "tasks" / "task_001" / "task.toml").write_text("id = [")
    if setup == "duplicate":
        shutil.copytree(RUNS / "task_001", tmp_path / "tasks" / "copy_of_001")
    replay = replay_file(tmp_path / "r.jsonl", {"task_001": PALINDROME_OK})
    worker_args = [] if "--worker" in args else ["--replay", str(replay)]
    proc = cli("sweep", *[a.format(tmp=tmp_path) for a in args], *worker_args, "--sandbox", "local")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not traces_dir.exists()


def test_humaneval_canonical_solutions_pass_through_the_sweep(cli, tmp_path, traces_dir):
    """A subset of 10 (the full 164 is bench/humaneval_sweep.py), chosen for their traps: checks that use
    the prompt's helpers (38, 50) or import modules (32, 53), docstring examples that contradict the
    benchmark (47, 116, 148) or that are not doctests (130, 135), and a plain one (0)."""
    ids = [0, 32, 38, 47, 50, 53, 116, 130, 135, 148]
    he = HumanEval()
    chosen = [p for p in he.problems() if int(p["task_id"].split("/")[1]) in ids]
    root = tmp_path / "humaneval"
    write_tasks((t for t in he.tasks() if int(t.id.split("/")[1]) in ids), root)
    replay = tmp_path / "canonical.jsonl"
    replay.write_text(canonical_replay_lines(chosen))
    proc = cli(
        "sweep", str(root), "--replay", str(replay), "--sandbox", "local", "--concurrency", "2", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["total"], out["passed"], out["errored"]) == (10, 10, 0)
    store = TraceStore(traces_dir)
    run_ids = {r["run_id"]: r["task_id"] for r in store.rows("runs", sweep_id=out["sweep_id"])}
    attempts = [a for a in store.read("attempts").to_pylist() if a["run_id"] in run_ids]
    hidden = {run_ids[a["run_id"]] for a in attempts if a["suite"] == "hidden" and a["passed"]}
    assert hidden == {f"HumanEval/{i}" for i in ids}
    # a docstring example the benchmark itself gets wrong fails visibly; the hidden check still decides
    visible_failed = {run_ids[a["run_id"]] for a in attempts if a["suite"] == "visible" and not a["passed"]}
    assert visible_failed == {"HumanEval/47", "HumanEval/116", "HumanEval/148"}


def test_sweep_params_accept_worker_strings_and_form_a_ui_schema():
    from prefect.utilities.callables import parameter_schema

    params = SweepParams(workers=["replay:answers.jsonl", "ollama:llama3.2:latest:critic"])
    assert [(w.provider, w.model, w.role) for w in params.workers] == [
        ("replay", "answers.jsonl", "solver"),
        ("ollama", "llama3.2:latest", "critic"),
    ]
    with pytest.raises(ValueError, match="sweep_id"):
        SweepParams(sweep_id="../escape")
    # each field its own parameter (a deployment's Parameters tab lists each), with its title
    schema = parameter_schema(sweep_flow).model_dump()
    assert schema["required"] == []
    fields = schema["properties"]
    assert fields["max_rounds"]["title"] == "Rounds at most" and fields["concurrency"]["maximum"] == 32
    assert {
        "tasks",
        "workflows",
        "workers",
        "router",
        "sandbox",
        "concurrency",
        "max_rounds",
        "samples",
        "name",
        "sweep_id",
        "executor",
        "deployment",
    } <= set(fields)


def test_workflow_filter_selects_by_workflow(tmp_path):
    root = tasks_dir(tmp_path, "task_001", "task_002")
    question = root / "q1"
    question.mkdir()
    (question / "task.toml").write_text(
        'id = "q1"\nworkflow = "reasoning"\nprompt = "2+2?"\nanswer = "4"\nanswer_type = "number"\n'
    )
    assert [t.id for t in select_tasks(str(root))] == ["q1", "task_001", "task_002"]
    assert [t.id for t in select_tasks(str(root), ["reasoning"])] == ["q1"]
    assert [t.id for t in select_tasks(f"{root}/task_00*")] == ["task_001", "task_002"]


def test_sweep_picks_workers_like_run(cli, tmp_path, traces_dir):
    """No worker option: the router of ORCH_ROUTER_MODE routes (checked before any work), as for `run`."""
    root = tasks_dir(tmp_path, "task_001")
    missing = tmp_path / "no-router.json"
    routed = cli("sweep", str(root), "--sandbox", "local",
                 env={"ORCH_ROUTER_MODE": "learned", "ORCH_LEARNED_ROUTER_PATH": str(missing)})
    assert routed.returncode == 2, routed.stderr
    assert f"no learned router at {missing}" in routed.stderr.replace("\n", "")
    both = cli("sweep", str(root), "--router", "hint", "--replay", str(tmp_path / "r.jsonl"), "--sandbox", "local")
    assert both.returncode == 2 and "--router picks the workers" in both.stderr
    assert not traces_dir.exists()
