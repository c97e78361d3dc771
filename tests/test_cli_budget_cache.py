"""The CLI's budget and cache options and the ``cache`` command, against a wire-protocol server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.traces import TraceStore
from tests.wire import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
WRONG = "```python\ndef is_palindrome(text):\n    return text == text[::-1]\n```"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        fake.responder = lambda req: fake.reply(WRONG, prompt_tokens=100, completion_tokens=50)
        yield fake


@pytest.fixture
def env(server, tmp_path) -> dict[str, str]:
    return {**server.env(), "ORCH_CACHE_PATH": str(tmp_path / "calls.sqlite")}


def test_a_run_stops_between_calls_at_its_token_budget_and_says_so(cli, task_copy, server, env, traces_dir) -> None:
    task = task_copy("task_001")
    proc = cli(
        "run", str(task), "--worker", "openai:gpt-4o-mini", "--sandbox", "local", "--max-rounds", "3",
        "--max-tokens", "200", "--json", env=env,
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    # round 1 spent 150 tokens; the fix round's call (~150 more) would cross 200, so it never started
    assert len(server.model_calls) == 1
    assert summary["rounds"] == 1 and summary["stopped"].startswith(
        "stopped by the budget of 200 tokens: 150 spent, ~150 more expected"
    )
    [run] = TraceStore(traces_dir).rows("runs", run_id=summary["run_id"])
    assert run["status"] == "stopped" and "budget of 200 tokens" in run["error"]

    table = cli(
        "run", str(task), "--worker", "openai:gpt-4o-mini", "--sandbox", "local", "--max-rounds", "3",
        "--max-tokens", "200", "--no-cache", env=env,
    )
    assert table.returncode == 1 and "stopped between calls: stopped by the budget of 200 tokens" in table.stdout


def test_a_dollar_budget_with_an_unpriced_model_refuses_to_start(cli, tmp_path, task_copy, env, traces_dir) -> None:
    task = task_copy("task_001")
    for command in (["run", str(task)], ["sweep", str(task.parent)]):
        proc = cli(*command, "--worker", "openai:no-such-price", "--max-cost", "0.5", env=env)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            "error: --max-cost: openai:no-such-price has no price, so a dollar budget cannot be kept; add it "
            "to ORCH_PRICES_FILE, pass --ignore-unpriced, or budget in --max-tokens"
        ]
        assert not traces_dir.exists()
    bad = cli("run", str(task), "--worker", "openai:gpt-4o-mini", "--max-cost", "0", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --max-cost 0: must be more than 0 (USD)"
    retry = cli("sweep", str(task.parent), "--worker", "openai:gpt-4o-mini", "--retry-errors", env=env)
    assert retry.returncode == 2 and "--retry-errors reruns the errored runs of a sweep" in retry.stderr


def test_cache_stats_and_clear(cli, task_copy, server, env) -> None:
    task = task_copy("task_001")
    for _ in range(2):
        run = cli("run", str(task), "--worker", "openai:gpt-4o-mini", "--sandbox", "local", "--max-rounds", "1",
                  env=env)
        assert run.returncode == 1, run.stderr
    assert len(server.model_calls) == 1  # the second run was answered from the cache

    stats = json.loads(cli("cache", "stats", "--json", env=env).stdout)
    assert (stats["entries"], stats["hits"]) == (1, 1)
    assert stats["models"] == [{"provider": "openai", "model": "gpt-4o-mini", "entries": 1, "hits": 1}]
    cleared = cli("cache", "clear", "--provider", "openai", env=env)
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed 1 entry from ")
    assert json.loads(cli("cache", "stats", "--json", env=env).stdout)["entries"] == 0


def test_the_run_task_flow_takes_the_budget_from_its_parameters(
    prefect_api, task_copy, server, env, traces_dir, monkeypatch
) -> None:
    """What the run-task deployment's form passes: the flow itself attaches the budget to the run."""
    from orchestrator.errors import UserInputError
    from orchestrator.records import WorkerSpec
    from orchestrator.settings import get_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    from flows.run_task import run_task_flow

    task = task_copy("task_001")
    worker = WorkerSpec.parse("openai:gpt-4o-mini")
    summary = run_task_flow(
        task_dir=str(task), workers=[worker], max_rounds=3, sandbox="local", traces_dir=str(traces_dir),
        max_tokens=200, cache=False,
    )
    assert len(server.model_calls) == 1 and summary.rounds == 1
    assert summary.stopped and summary.stopped.startswith("stopped by the budget of 200 tokens")
    with pytest.raises(UserInputError, match="openai:no-such-price has no price"):
        run_task_flow(
            task_dir=str(task), workers=[WorkerSpec.parse("openai:no-such-price")], sandbox="local",
            traces_dir=str(traces_dir), max_cost=0.5,
        )
    assert len(server.model_calls) == 1  # the refused run sent nothing
