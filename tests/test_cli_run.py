"""`orchestrator run` end to end: the real console script, Prefect, the sandbox and Parquet traces."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from orchestrator.traces import TraceStore

from .conftest import write_replay

GOOD = "```python\nimport re\n\ndef is_palindrome(text):\n    s = re.sub(r'[^a-z0-9]', '', text.lower())\n    return s == s[::-1]\n```"
WRONG = "```python\ndef is_palindrome(text):\n    return text == text[::-1]\n```"


def test_correct_replay_passes(cli, task_copy, tmp_path, traces_dir, prefect_api):
    task = task_copy("task_001")
    replay = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    proc = cli("run", str(task), "--provider", "replay", "--replay", str(replay), "--sandbox", "local", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["passed"] is True
    assert out["rounds"] == 1
    assert out["tests_passed"] == 4 and out["tests_failed"] == 0
    store = TraceStore(traces_dir)
    assert store.rows("runs", run_id=out["run_id"])[0]["passed"] is True
    calls = store.rows("calls", run_id=out["run_id"])
    assert [(c["provider"], c["purpose"], c["ok"]) for c in calls] == [("replay", "solve", True)]
    attempts = store.rows("attempts", run_id=out["run_id"])
    assert len(attempts) == 1 and attempts[0]["passed"] and attempts[0]["report_found"]
    # The Prefect UI gets the run's summary as a markdown artifact of the flow run.
    flow_run_id = store.rows("runs", run_id=out["run_id"])[0]["flow_run_id"]
    by_key = {a.key: a for a in asyncio.run(_artifacts_of(prefect_api, flow_run_id))}
    assert sorted(by_key) == ["run-task-001", "transcript-run-task-001"]
    artifact, transcript = by_key["run-task-001"], by_key["transcript-run-task-001"]
    assert artifact.type == "markdown" and transcript.type == "markdown"
    assert "### task_001 (coding): **passed**" in artifact.data and out["run_id"] in artifact.data
    assert "| replay:" in artifact.data  # one table row per candidate
    assert f"/artifacts/artifact/{transcript.id})" in artifact.data  # the card links the transcript
    # the transcript: the candidate's round, its code, its test output and verdict
    assert "### Round 1, visible tests: passed (4 passed, 0 failed" in transcript.data
    assert "def is_palindrome(text):" in transcript.data and "4 passed" in transcript.data
    # and the messages of that round: the prompt sent and the reply (the calls row's request and reply)
    assert "### Round 1: messages" in transcript.data and "**user**:" in transcript.data
    assert f"**reply** (replay:{replay}):" in transcript.data
    [call] = calls
    assert json.loads(call["request"])[-1]["role"] == "user" and call["reply"] == GOOD


async def _artifacts_of(api_url: str, flow_run_id: str) -> list:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    # The server's URL, explicitly: this process's Prefect settings may predate the fixture's env.
    async with PrefectClient(api=api_url) as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_wrong_replay_fails_with_every_attempt_recorded(cli, task_copy, tmp_path, traces_dir):
    task = task_copy("task_001")
    replay = write_replay(tmp_path / "wrong.jsonl", "task_001", WRONG)
    proc = cli("run", str(task), "--replay", str(replay), "--sandbox", "local", "--max-rounds", "3", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["passed"] is False and out["rounds"] == 3
    store = TraceStore(traces_dir)
    attempts = sorted(store.rows("attempts", run_id=out["run_id"]), key=lambda r: r["round"])
    assert [a["round"] for a in attempts] == [1, 2, 3]
    assert all(not a["passed"] and a["tests_failed"] > 0 for a in attempts)
    purposes = [c["purpose"] for c in store.rows("calls", run_id=out["run_id"])]
    assert sorted(purposes) == ["fix", "fix", "solve"]
    # the fix prompt carried pytest's output back: the second call saw the failure
    columns, rows = store.sql(f"SELECT count(*) FROM attempts WHERE run_id = '{out['run_id']}'")
    assert rows == [(3,)]


def test_fix_round_uses_the_next_replayed_answer(cli, task_copy, tmp_path):
    task = task_copy("task_001")
    replay = write_replay(tmp_path / "fix.jsonl", "task_001", WRONG, GOOD)
    proc = cli("run", str(task), "--replay", str(replay), "--sandbox", "local", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["passed"] is True and out["rounds"] == 2


def test_hidden_tests_decide_the_verdict(cli, task_copy, tmp_path, traces_dir):
    task = task_copy("task_003")
    # Passes the visible tests, but accepts the empty string, which the hidden tests forbid.
    lenient = (
        "```python\ndef roman_to_int(numeral):\n    values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
        "    total = 0\n    for i, ch in enumerate(numeral):\n        if ch not in values:\n            raise ValueError(ch)\n"
        "        v = values[ch]\n        if i + 1 < len(numeral) and values.get(numeral[i + 1], 0) > v:\n            total -= v\n"
        "        else:\n            total += v\n    return total\n```"
    )
    replay = write_replay(tmp_path / "lenient.jsonl", "task_003", lenient)
    proc = cli("run", str(task), "--replay", str(replay), "--sandbox", "local", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    suites = {a["suite"]: a for a in TraceStore(traces_dir).rows("attempts", run_id=out["run_id"])}
    assert suites["visible"]["passed"] is True
    assert suites["hidden"]["passed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "{tmp}/nope"], "not a directory"),
        (["run", "{task}", "--provider", "nosuch", "--model", "m"], "unknown provider 'nosuch'"),
        (["run", "{task}", "--replay", "{tmp}/missing.jsonl"], "missing.jsonl' does not exist"),
        (["run", "{task}", "--replay", "{tmp}/x.jsonl", "--max-rounds", "9"], "--max-rounds 9"),
        (["run", "{task}", "--worker", "justonename"], "expected PROVIDER:MODEL"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(cli, task_copy, tmp_path, traces_dir, args, message):
    task = task_copy("task_001")
    write_replay(tmp_path / "x.jsonl", "task_001", GOOD)
    argv = [a.format(tmp=tmp_path, task=task) for a in args]
    proc = cli(*argv)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not traces_dir.exists()


def test_malformed_task_folder_exit_2(cli, tmp_path, traces_dir):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "task.toml").write_text('id = "x"\nprompt = "p"\nsurprise = 1\n')
    proc = cli("run", str(folder), "--replay", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 2
    assert f"{folder}: task.toml: unknown key 'surprise'" in proc.stderr
    assert not traces_dir.exists()


def test_ephemeral_mode_without_a_server(task_copy, tmp_path):
    """No PREFECT_API_URL: Prefect starts its own temporary server inside the process."""
    import subprocess
    import sys
    from pathlib import Path

    task = task_copy("task_001")
    replay = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # The probe off: a server someone runs on 127.0.0.1:4200 would be used instead.
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), ORCH_TRACES_DIR=str(tmp_path / "t"),
               ORCH_PREFECT_PROBE_URL="off")  # fmt: skip
    exe = Path(sys.executable).with_name("orchestrator")
    proc = subprocess.run(
        [str(exe), "run", str(task), "--replay", str(replay), "--sandbox", "local", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["passed"] is True


def test_a_running_server_is_used_when_none_is_configured(task_copy, tmp_path, prefect_api):
    """No PREFECT_API_URL, a server answering at ORCH_PREFECT_PROBE_URL: the run reports to it."""
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    task = task_copy("task_001")
    replay = write_replay(tmp_path / "good.jsonl", "task_001", GOOD)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), ORCH_TRACES_DIR=str(tmp_path / "t"),
               ORCH_PREFECT_PROBE_URL=prefect_api)  # fmt: skip
    exe = Path(sys.executable).with_name("orchestrator")
    proc = subprocess.run(
        [str(exe), "run", str(task), "--replay", str(replay), "--sandbox", "local", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [row] = TraceStore(tmp_path / "t").rows("runs", run_id=json.loads(proc.stdout)["run_id"])
    flow_run = httpx.get(f"{prefect_api}/flow_runs/{row['flow_run_id']}", timeout=30)
    assert flow_run.status_code == 200 and flow_run.json()["state_type"] == "COMPLETED"


def test_a_profile_that_names_a_server_is_not_overridden_by_the_probe(tmp_path):
    from orchestrator.cli.prefect_server import configured, use_running_server

    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.example:4200/api"\n'
    )
    env = {"PREFECT_HOME": str(tmp_path), "ORCH_PREFECT_PROBE_URL": "http://127.0.0.1:9/api"}
    assert configured(env) and use_running_server(env) is None and "PREFECT_API_URL" not in env
    (tmp_path / "profiles.toml").write_text('active = "local"\n[profiles.local]\n')
    assert not configured(env) and use_running_server(env) is None  # nothing answers on port 9


def test_main_job_local_default_model_solves_or_honestly_fails(cli, task_copy, traces_dir):
    """The README's main command on the embedded default model (one round, kept short): the model's
    code is run by pytest in the sandbox and every step is traced, whatever the model wrote."""
    task = task_copy("task_001")
    proc = cli("run", str(task), "--max-rounds", "1", "--sandbox", "local", "--json", env={"ORCH_MAX_TOKENS": "256"})
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    (cand,) = out["candidates"]
    assert cand["worker"] == "local:qwen2.5-coder-0.5b:solver" and cand["error"] is None
    store = TraceStore(traces_dir)
    (call,) = store.rows("calls", run_id=out["run_id"])
    assert (call["provider"], call["ok"]) == ("local", True)
    assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0 and call["cost_usd"] == 0
    (attempt,) = store.rows("attempts", run_id=out["run_id"])
    assert attempt["report_found"] and attempt["code"].strip()
    assert attempt["passed"] is out["passed"] and (proc.returncode == 0) is out["passed"]
