"""The replay provider: answers from a JSONL file of recorded outputs.

One object a line: ``{"task_id": "...", "content": "..."}``. Lines for one task are served
in order (first attempt, first fix, ...); the last one repeats when they run out. The model
name is the file's path.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import UserInputError
from orchestrator.records import Completion, Message, new_id
from orchestrator.settings import Settings
from providers.base import PROVIDERS, PermanentProviderError
from providers.credentials import ProviderEnv

ENV = ProviderEnv()  # no key, no endpoint: the model name is a file of recorded answers


#: Parsed replay files by (path, mtime, size), shared read-only by every provider: a sweep makes a
#: provider per run, so a parse (or even a copy of the parse) per provider is quadratic in the task count
#: (14,042 MMLU runs over a 14,042-line file). An edited file has another key and is read again.
_parsed: dict[tuple[Path, int, int], Mapping[str, tuple[str, ...]]] = {}
_parsed_lock = threading.Lock()


def load_replay_file(path: Path) -> Mapping[str, tuple[str, ...]]:
    """The file's answers by task id, in file order; one parse per version of the file, shared (do not mutate)."""
    try:
        info = path.stat()
    except OSError:
        return _parse_replay_file(path)  # it says why the file cannot be read
    key = (path, info.st_mtime_ns, info.st_size)
    with _parsed_lock:
        cached = _parsed.get(key)
    if cached is None:
        cached = _parse_replay_file(path)
        with _parsed_lock:
            for stale in [k for k in _parsed if k[0] == path]:  # an older version of the file
                del _parsed[stale]
            _parsed[key] = cached
    return cached


def _parse_replay_file(path: Path) -> Mapping[str, tuple[str, ...]]:
    if not path.is_file():
        raise UserInputError(f"replay file {str(path)!r} does not exist; pass a JSONL file of recorded answers")
    answers: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            task_id, content = obj["task_id"], obj["content"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserInputError(
                f"{path}:{number}: expected a JSON object with 'task_id' and 'content'"
            ) from None
        if not isinstance(task_id, str) or not isinstance(content, str):
            raise UserInputError(f"{path}:{number}: 'task_id' and 'content' must be strings")
        answers[task_id].append(content)
    return {task: tuple(lines) for task, lines in answers.items()}


class ReplayProvider:
    name = "replay"
    cacheable = False  # answers are a recording served in order; caching them would change that order

    def __init__(self) -> None:
        self._files: dict[Path, Mapping[str, tuple[str, ...]]] = {}
        self._served: dict[tuple[Path, str], int] = defaultdict(int)
        self._lock = threading.Lock()

    def _answers(self, model: str) -> Mapping[str, tuple[str, ...]]:
        path = Path(model).resolve()
        if path not in self._files:
            self._files[path] = load_replay_file(path)
        return self._files[path]

    def check_model(self, model: str) -> None:
        """Pre-flight: the replay file exists and parses (raises UserInputError otherwise)."""
        self._answers(model)

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        started = time.perf_counter()
        task_id = params.get("task_id")
        with self._lock:
            answers = self._answers(model)
            if not isinstance(task_id, str) or task_id not in answers:
                raise PermanentProviderError(
                    f"replay file {model} has no line for task {task_id!r}; add one", kind="missing_replay"
                )
            key = (Path(model).resolve(), task_id)
            lines = answers[task_id]
            index = min(self._served[key], len(lines) - 1)
            self._served[key] += 1
        text = lines[index]
        prompt_chars = sum(len(m.content) for m in messages)
        return Completion(
            text=text,
            provider=self.name,
            model=model,
            # Rough token counts (4 chars a token) keep cost and size comparisons meaningful.
            prompt_tokens=prompt_chars // 4,
            completion_tokens=len(text) // 4,
            latency_s=time.perf_counter() - started,
            response_id=f"replay-{new_id()}",
        )


@PROVIDERS.register("replay")
def _factory(settings: Settings) -> ReplayProvider:
    return ReplayProvider()
