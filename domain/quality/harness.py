"""Cached model calls, test verdicts and program runs, and what a strategy spends on one problem.

Every model call and every sandbox run is cached as a JSONL line keyed by everything that decides it
(model, messages and sampling parameters; files and suite), so strategies share calls and a rerun
only pays for what is new. A strategy still counts every call it uses, cached or not, so its figures
are what it would cost alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.records import Completion, Limits, Message
from orchestrator.settings import get_settings
from providers.local import LocalProvider
from sandbox import get_backend
from sandbox.pytest_runner import run_pytest

STRONG = "qwen2.5-coder-0.5b"
WEAK = "smollm2-135m"
FEEDBACK_LINES = 6


class Cache:
    """Model replies and test verdicts, appended as JSONL lines to ``path``; also read (never written)
    from ``also`` (files, or folders of ``*.jsonl``: other runs' caches; duplicate keys are harmless)."""

    def __init__(self, path: Path, also: Iterable[Path] = ()) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        sources: list[Path] = []
        for extra in also:
            sources.extend(sorted(extra.glob("*.jsonl")) if extra.is_dir() else [extra])
        for source in [*sources, path]:
            if source.is_file():
                self._read(source)
        path.parent.mkdir(parents=True, exist_ok=True)

    def _read(self, source: Path) -> None:
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the last line of a cache another process is still writing
                    continue
                self.entries[row["key"]] = row

    @staticmethod
    def key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        row = {"key": key, **value}
        self.entries[key] = row
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        return row


@dataclass
class Spend:
    """What a strategy used on one problem: every call and test run counts, cached or not."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    test_s: float = 0.0
    tokens_by_model: dict[str, int] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add_call(self, model: str, reply: dict[str, Any]) -> None:
        self.calls += 1
        self.prompt_tokens += reply["prompt_tokens"]
        self.completion_tokens += reply["completion_tokens"]
        self.model_s += reply["latency_s"]
        used = reply["prompt_tokens"] + reply["completion_tokens"]
        self.tokens_by_model[model] = self.tokens_by_model.get(model, 0) + used

    def fields(self) -> dict[str, Any]:
        out = asdict(self)
        out["tokens"] = self.tokens
        out["model_s"] = round(self.model_s, 2)
        out["test_s"] = round(self.test_s, 2)
        return out


@dataclass
class Config:
    """The strategies' settings; ``strong``/``weak`` are local model names (the benchmark's pair)."""

    samples: int = 5
    temperature: float = 0.8
    rounds: int = 3
    fix_temperature: float = 0.5
    merge: bool = True
    strong: str = STRONG
    weak: str = WEAK


class NotCached(Exception):
    """A model call the cache does not hold, in an offline replay."""


class Bench:
    def __init__(self, cache: Cache, max_tokens: int, timeout_s: float) -> None:
        self.cache = cache
        self.max_tokens = max_tokens
        self.settings = get_settings()
        self.provider = LocalProvider(self.settings)
        self.backend = get_backend("local", self.settings)
        self.limits = Limits(timeout_s=timeout_s)
        self.new_calls = 0
        self.offline = False  # True: only what the cache holds (a replay that stops at the first miss)

    def call(
        self,
        spend: Spend,
        model: str,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        seed: int = 0,
        stop: list[str] | None = None,
    ) -> str:
        params = {"max_tokens": self.max_tokens, "temperature": temperature, "seed": seed, "stop": stop}
        key = Cache.key(kind="call", model=model, messages=[m.model_dump() for m in messages], **params)
        reply = self.cache.get(key)
        if reply is None and self.offline:
            raise NotCached(model)
        if reply is None:
            done: Completion = self.provider.complete(messages, model, **params)
            reply = self.cache.put(
                key,
                {
                    "kind": "call",
                    "model": model,
                    "text": done.text,
                    "prompt_tokens": done.prompt_tokens,
                    "completion_tokens": done.completion_tokens,
                    "latency_s": round(done.latency_s, 3),
                },
            )
            self.new_calls += 1
        spend.add_call(model, reply)
        return str(reply["text"])

    def verdict(self, spend: Spend, files: dict[str, str], tests: dict[str, str]) -> dict[str, Any]:
        key = Cache.key(kind="verdict", files=files, tests=tests)
        row = self.cache.get(key)
        if row is None:
            result, report = run_pytest(self.backend, files, tests, self.limits)
            row = self.cache.put(
                key,
                {
                    "kind": "verdict",
                    "passed": report.all_passed,
                    "cases_passed": report.passed,
                    "cases": report.total,
                    "feedback": first_failure(result.stdout + result.stderr),
                    "duration_s": round(result.duration_s, 3),
                },
            )
        spend.test_s += row["duration_s"]
        return row

    def run_program(self, spend: Spend, code: str) -> ProgramRun:
        """A program run in a fresh sandbox session (cached like a verdict)."""
        key = Cache.key(kind="program", code=code)
        row = self.cache.get(key)
        if row is None:
            with self.backend.open(self.limits) as session:
                session.write_files({"program.py": code})
                result = session.run(["python3", "program.py"], self.limits)
            row = self.cache.put(
                key,
                {
                    "kind": "program",
                    "stdout": result.stdout[-2000:],
                    "stderr": result.stderr[-2000:],
                    "exit_code": result.exit_code,
                    "duration_s": round(result.duration_s, 3),
                },
            )
        spend.test_s += row["duration_s"]
        return ProgramRun(stdout=str(row["stdout"]), stderr=str(row.get("stderr", "")), exit_code=int(row["exit_code"]))


@dataclass(frozen=True)
class ProgramRun:
    stdout: str
    stderr: str
    exit_code: int

    def error(self) -> str:
        """What went wrong, for a repair prompt: the traceback's last lines (the exception), else a
        note that the program printed nothing."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if lines:
            return "\n".join(lines[-FEEDBACK_LINES:])
        return f"the program exited with code {self.exit_code} and printed no number"


def assertion_lines(lines: list[str]) -> list[str]:
    """The error and the compared values, without pytest's ``+  where 3.5 = eval(...)`` expansions
    (a dump of the test's namespace that is noise to a model)."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("+")]


def first_failure(output: str) -> str:
    """The first failing test's assertion or error, from pytest's short traceback: what a fix needs.

    ``--tb=short`` prints a ``____ test_name[...] ____`` header per failure (a single ``_`` a side when
    the id is long), source lines, then ``E `` lines with the error; only the ``E`` lines of the first
    failure are kept (and the test id, which names the example). A run with no such section (collection error, timeout) gives its last lines.
    """
    lines = output.splitlines()
    headers = [i for i, line in enumerate(lines) if re.match(r"^_+ .+ _+$", line)]
    if headers:
        start = headers[0]
        end = headers[1] if len(headers) > 1 else len(lines)
        section = lines[start:end]
        errors = assertion_lines([line[1:] for line in section if line.startswith("E ")])
        title = section[0].strip("_ ").strip()
        return "\n".join([title, *errors[:FEEDBACK_LINES]])
    tail = [line for line in lines if line.strip() and not line.startswith("=")]
    return "\n".join(tail[-FEEDBACK_LINES:])
