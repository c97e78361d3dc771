"""`orchestrator run` against each provider's wire protocol: calls, retries, fallback, secrets."""

from __future__ import annotations

import asyncio
import json

import pytest

from orchestrator.traces import TABLES, TraceStore
from tests.wire import FAKES, FakeAnthropic, FakeOpenAI

GOOD = (
    "```python\nimport re\n\ndef is_palindrome(text):\n"
    "    s = re.sub(r'[^a-z0-9]', '', text.lower())\n    return s == s[::-1]\n```"
)
FAST_RETRIES = {"ORCH_RETRY_BASE_DELAY_S": "0.01", "ORCH_RETRY_MAX_DELAY_S": "0.05", "ORCH_CALL_TIMEOUT_S": "5"}
MODELS = {
    "openai": "gpt-4o-mini",
    "groq": "llama-3.1-8b-instant",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
    "ollama": "llama3.2:latest",
}


@pytest.mark.parametrize("provider", sorted(FAKES))
def test_each_provider_runs_a_task_end_to_end(cli, task_copy, traces_dir, provider):
    task = task_copy("task_001")
    with FAKES[provider](api_key="sk-test-key-0001") as server:
        server.script(server.reply(GOOD, prompt_tokens=120, completion_tokens=40))
        proc = cli("run", str(task), "--provider", provider, "--model", MODELS[provider], "--sandbox", "local",
                   "--json", env={**server.env(), **FAST_RETRIES})
        assert proc.returncode == 0, proc.stderr
        sent = server.messages(server.model_calls[0])
        assert server.model_of(server.model_calls[0]) == MODELS[provider]
    assert sent[0]["role"] == "system" and "is_palindrome" in sent[-1]["content"]
    out = json.loads(proc.stdout)
    (call,) = TraceStore(traces_dir).rows("calls", run_id=out["run_id"])
    assert (call["provider"], call["model"], call["ok"]) == (provider, MODELS[provider], True)
    assert (call["prompt_tokens"], call["completion_tokens"]) == (120, 40)
    assert call["latency_s"] > 0
    assert call["cost_usd"] is not None  # every model above is in providers/prices.toml


def test_unknown_model_costs_null_not_zero(cli, task_copy, traces_dir):
    task = task_copy("task_001")
    with FakeOpenAI(api_key="sk-test-key-0002") as server:
        server.script(server.reply(GOOD, prompt_tokens=10, completion_tokens=5))
        proc = cli("run", str(task), "--provider", "openai", "--model", "my-finetune-7", "--sandbox", "local",
                   "--json", env=server.env())
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["cost_usd"] is None
    (call,) = TraceStore(traces_dir).rows("calls", run_id=out["run_id"])
    assert call["cost_usd"] is None and call["prompt_tokens"] == 10


def test_injected_faults_are_retried_and_every_try_is_recorded(cli, task_copy, traces_dir):
    task = task_copy("task_001")
    with FakeOpenAI(api_key="sk-test-key-0003") as server:
        server.script(server.error(429, "slow down", retry_after=0), server.error(500, "boom"), server.malformed(),
                      server.reply(GOOD))
        proc = cli("run", str(task), "--provider", "openai", "--model", "gpt-4o-mini", "--sandbox", "local",
                   "--json", env={**server.env(), **FAST_RETRIES})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    calls = sorted(TraceStore(traces_dir).rows("calls", run_id=out["run_id"]), key=lambda c: c["attempt"])
    assert [(c["attempt"], c["ok"], c["error_kind"]) for c in calls] == [
        (1, False, "rate_limit"), (2, False, "server_error"), (3, False, "bad_response"), (4, True, None)
    ]


def test_exhausted_worker_falls_back_to_the_next(cli, task_copy, traces_dir):
    task = task_copy("task_001")
    with FakeOpenAI(api_key="sk-test-key-0004") as openai, FakeAnthropic(api_key="sk-ant-test-0004") as anthropic:
        openai.responder = lambda req: openai.error(503, "overloaded")
        anthropic.responder = lambda req: GOOD
        env = {**openai.env(), **anthropic.env(), **FAST_RETRIES, "ORCH_CALL_RETRIES": "1"}
        proc = cli("run", str(task), "--worker", "openai:gpt-4o-mini", "--worker", "anthropic:claude-3-5-haiku-latest",
                   "--sandbox", "local", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    calls = TraceStore(traces_dir).rows("calls", run_id=out["run_id"], purpose="solve")
    failed = [c for c in calls if c["provider"] == "openai"]
    assert len(failed) == 2 and not any(c["ok"] for c in failed)  # one try + one retry
    fallback = [c for c in calls if c["fallback_from"] == "openai:gpt-4o-mini:solver"]
    assert len(fallback) == 1 and fallback[0]["ok"] and fallback[0]["provider"] == "anthropic"
    assert all(c["passed"] for c in out["candidates"])


def test_permanent_error_fails_fast(cli, task_copy, traces_dir):
    task = task_copy("task_001")
    with FakeOpenAI(api_key="sk-right-key-0005") as server:
        env = {**server.env(), "OPENAI_API_KEY": "sk-wrong-key-0005", **FAST_RETRIES}
        proc = cli("run", str(task), "--provider", "openai", "--model", "gpt-4o-mini", "--sandbox", "local",
                   "--json", env=env)
    assert proc.returncode == 1, proc.stderr
    calls = TraceStore(traces_dir).rows("calls")
    assert [(c["attempt"], c["error_kind"]) for c in calls] == [(1, "auth")]


def test_missing_key_is_a_clear_error_before_any_work(cli, task_copy, traces_dir):
    task = task_copy("task_001")
    proc = cli("run", str(task), "--provider", "openai", "--model", "gpt-4o-mini", env={"OPENAI_API_KEY": ""})
    assert proc.returncode == 2
    assert "OPENAI_API_KEY is not set" in proc.stderr
    assert not traces_dir.exists()


SECRET = "sk-proj-SECRETVALUE-7f3a9c"
LEAKY = (
    "```python\nimport os\n\n\n"
    "def is_palindrome(text):\n    print('ENV DUMP', dict(os.environ))\n    return False\n```"
)


def _strings(value: object) -> list[str]:
    return [value] if isinstance(value, str) else []


def test_api_key_reaches_no_trace_log_artifact_or_sandbox(cli, task_copy, traces_dir, prefect_api):
    task = task_copy("task_001")
    with FakeOpenAI(api_key=SECRET) as server:
        # First a wrong key (the fake quotes it back in its 401, as OpenAI does), then the right one
        # with code that dumps its environment into pytest's output, which lands in `attempts`.
        env = {**server.env(), **FAST_RETRIES, "OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET + "-ant"}
        server.responder = lambda req: LEAKY
        leaky = cli("run", str(task), "--provider", "openai", "--model", "gpt-4o-mini", "--sandbox", "local",
                    "--max-rounds", "2", "--json", env=env)
        wrong = cli("run", str(task), "--provider", "openai", "--model", "gpt-4o-mini", "--sandbox", "local",
                    env={**env, "OPENAI_API_KEY": SECRET + "-wrong"})
    assert leaky.returncode == 1, leaky.stderr
    assert wrong.returncode == 1, wrong.stderr
    store = TraceStore(traces_dir)
    excerpts = " ".join(r["output_excerpt"] for r in store.rows("attempts"))
    assert "ENV DUMP" in excerpts  # the dump ran in the sandbox and its output was kept...
    texts = [leaky.stdout, leaky.stderr, wrong.stdout, wrong.stderr]
    for table in TABLES:
        for row in store.read(table).to_pylist():
            texts += [v for v in row.values() if isinstance(v, str)]
    for path in traces_dir.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))

    async def logs_and_artifacts() -> list[str]:
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(api=prefect_api) as client:
            logs = await client.read_logs(limit=200)
            artifacts = await client.read_artifacts(limit=200)
        return [log.message for log in logs] + [json.dumps(a.data, default=str) for a in artifacts]

    texts += asyncio.run(logs_and_artifacts())
    assert not [t for t in texts if SECRET in t]  # ...but no key, in any form, anywhere
