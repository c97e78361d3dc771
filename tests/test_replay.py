"""The replay provider: one parse of a replay file shared by every provider, re-read once it changes."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.records import Message
from providers.replay import ReplayProvider, load_replay_file

PROMPT = [Message(role="user", content="What is 1 + 1?")]


def _write(path: Path, answers: list[tuple[str, str]]) -> None:
    path.write_text("".join(json.dumps({"task_id": t, "content": c}) + "\n" for t, c in answers))


def _served(provider: ReplayProvider, path: Path, task_id: str, times: int) -> list[str]:
    return [provider.complete(PROMPT, str(path), task_id=task_id).text for _ in range(times)]


def test_providers_share_one_parse_and_each_serves_the_lines_in_order(tmp_path: Path) -> None:
    replay = tmp_path / "answers.jsonl"
    _write(replay, [("a", "first"), ("b", "only"), ("a", "second")])
    first, second = ReplayProvider(), ReplayProvider()
    assert _served(first, replay, "a", 3) == ["first", "second", "second"]
    # A sweep makes a provider per run: the next one starts the recording afresh, from the same parse
    # (a parse or a copy per provider made a sweep quadratic in its task count).
    assert _served(second, replay, "a", 1) == ["first"]
    assert load_replay_file(replay) is load_replay_file(replay)


def test_an_edited_replay_file_is_read_again(tmp_path: Path) -> None:
    replay = tmp_path / "answers.jsonl"
    _write(replay, [("a", "old")])
    assert _served(ReplayProvider(), replay, "a", 1) == ["old"]
    _write(replay, [("a", "new answer")])
    assert _served(ReplayProvider(), replay, "a", 1) == ["new answer"]
