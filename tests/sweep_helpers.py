"""Coding tasks made on the spot and a fake provider that solves them: for sweeps at scale."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from orchestrator.traces import TraceStore
from tests.wire import FakeServer, Recorded, Reply

_ASKED = re.compile(r"`value_(\d+)\(\)`")


def make_tasks(root: Path, count: int) -> Path:
    """``count`` coding tasks ``value_000`` ...: write ``value_k()`` returning k, one visible test each."""
    for k in range(count):
        folder = root / f"value_{k:03d}"
        (folder / "tests").mkdir(parents=True)
        (folder / "task.toml").write_text(
            f'id = "value_{k:03d}"\nworkflow = "coding"\nentry = "solution.py"\n'
            f'prompt = "Write `value_{k}()` that returns the integer {k}."\n'
        )
        (folder / "solution.py").write_text(f"def value_{k}():\n    raise NotImplementedError\n")
        (folder / "tests" / "test_solution.py").write_text(
            f"from solution import value_{k}\n\n\ndef test_value():\n    assert value_{k}() == {k}\n"
        )
    return root


def solving(server: FakeServer, *, prompt_tokens: int = 100, completion_tokens: int = 50) -> Any:
    """A responder that answers each task's prompt with its correct solution, at fixed token counts."""

    def answer(request: Recorded) -> Reply:
        text = " ".join(m["content"] for m in server.messages(request))
        k = int(_ASKED.search(text).group(1))  # type: ignore[union-attr]
        code = f"```python\ndef value_{k}():\n    return {k}\n```"
        return server.reply(code, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    return answer


def sweep_calls(store: TraceStore, sweep_id: str) -> list[dict[str, Any]]:
    """Every ``calls`` row of the sweep's runs (all of them, not only the runs of record)."""
    con = store.connect()
    try:
        cursor = con.execute(
            "SELECT c.* FROM calls c JOIN runs r USING (run_id) WHERE r.sweep_id = ?", [sweep_id]
        )
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def artifacts(api: str, key: str) -> list[dict[str, Any]]:
    """Every version of an artifact key, newest first, read back from the Prefect server's REST API."""
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC"}
    resp = httpx.post(f"{api}/artifacts/filter", json=body, timeout=30)
    resp.raise_for_status()
    result: list[dict[str, Any]] = resp.json()
    return result
