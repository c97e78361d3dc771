"""Warm sandboxes: a trusted runner and a candidate launcher kept running in one sandbox, reused.

A backend that can keep one (``start_warm``) starts both processes (see sandbox/inside/): the runner
as a uid of its own with pytest imported, the launcher with only the right to change uid. The host
talks to each over its stdin/stdout, one JSON object a line (a :class:`Channel`). Warm sandboxes are
pooled per backend configuration (``warm_key``) for the life of the process, so a suite costs a fork
on each side instead of a sandbox start and a pytest import; one that fails or times out is closed,
never reused.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Protocol, runtime_checkable

from orchestrator.records import Limits
from sandbox.base import SandboxError

#: The package the files in sandbox/inside/ become inside a sandbox (a name no task will use).
INSIDE_PACKAGE = "orch_inside"
#: Uids for the runner and the candidates of warm sandboxes: far above real accounts.
UID_BASE = 1 << 24
UID_SPAN = 1 << 20
#: Idle warm sandboxes kept per configuration.
MAX_IDLE = 8
_LINE_LIMIT = 64 * 1024 * 1024


def inside_files() -> dict[str, str]:
    """The sandbox-side modules, as ``orch_inside/<name>.py`` -> source."""
    folder = resources.files("sandbox") / "inside"
    return {
        f"{INSIDE_PACKAGE}/{entry.name}": entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".py")
    }


def boot_code(harness_dir: str, module: str) -> str:
    """``python3 -I -c`` code that starts ``orch_inside.<module>`` from ``harness_dir``."""
    return (
        f"import sys; sys.path.insert(0, {harness_dir!r}); from {INSIDE_PACKAGE}.{module} import main; main()"
    )


def fresh_uid() -> int:
    return UID_BASE + secrets.randbelow(UID_SPAN)


class Channel:
    """JSON lines to a zygote (``write``) and from it (``feed``, called by a reader thread)."""

    def __init__(self, name: str, write: Callable[[bytes], None]) -> None:
        self.name = name
        self._write = write
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._partial = bytearray()
        self.stderr = bytearray()

    def feed(self, data: bytes) -> None:
        self._partial += data
        while (end := self._partial.find(b"\n")) >= 0:
            line = bytes(self._partial[:end])
            del self._partial[: end + 1]
            try:
                self._lines.put(json.loads(line))
            except ValueError:
                self.stderr += b"unreadable line: " + line[:200] + b"\n"
        if len(self._partial) > _LINE_LIMIT:
            self._partial.clear()
            self._lines.put(None)

    def feed_stderr(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-8192:]

    def closed(self) -> None:
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._write(json.dumps(message).encode("utf-8") + b"\n")
        except OSError as exc:
            raise SandboxError(f"the sandbox's {self.name} is gone ({exc})") from None

    def recv(self, timeout: float) -> dict[str, Any]:
        try:
            message = self._lines.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            raise TimeoutError(f"the sandbox's {self.name} did not answer in {timeout:.1f} s") from None
        if message is None:
            self._lines.put(None)  # stays closed for every later reader
            detail = self.stderr.decode("utf-8", errors="replace").strip()[-2000:]
            raise SandboxError(f"the sandbox's {self.name} ended" + (f": {detail}" if detail else ""))
        return message

    def ask(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.send(message)
        return self.recv(timeout)


@runtime_checkable
class WarmSandbox(Protocol):
    """What a backend's warm sandbox offers the suite runner."""

    label: str  # as ExecResult.backend: local+bwrap, docker, ...
    runner: Channel
    launcher: Channel
    #: Where the runner keeps sessions, as the launcher's processes see that directory.
    sessions_root: str
    #: The environment of a candidate's process (its HOME and TMPDIR are set by the launcher).
    candidate_env: dict[str, str]

    def close(self) -> None: ...


@runtime_checkable
class WarmBackend(Protocol):
    def warm_key(self, limits: Limits) -> Hashable | None:
        """What makes two warm sandboxes interchangeable; None when this backend cannot keep one."""
        ...

    def start_warm(self, limits: Limits) -> WarmSandbox: ...


#: bwrap's --die-with-parent (PR_SET_PDEATHSIG) ends a child when the *thread* that started it exits,
#: not the process. A warm sandbox outlives the call that starts it (often a worker thread of a
#: short-lived pool), so every warm sandbox is started from this one thread, which lives as long as
#: the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm-sandbox-spawner")


class _Pool:
    def __init__(self) -> None:
        self._idle: dict[Hashable, list[WarmSandbox]] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self, backend: WarmBackend, key: Hashable, limits: Limits) -> Iterator[WarmSandbox]:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            warm = idle.pop() if idle else None
        if warm is None:
            warm = _SPAWNER.submit(backend.start_warm, limits).result()
        healthy = False
        try:
            yield warm
            healthy = True
        finally:
            with self._lock:
                keep = healthy and len(self._idle.setdefault(key, [])) < MAX_IDLE
                if keep:
                    self._idle[key].append(warm)
            if not keep:
                warm.close()

    def close_all(self) -> None:
        with self._lock:
            everything = [w for idle in self._idle.values() for w in idle]
            self._idle.clear()
        for warm in everything:
            with contextlib.suppress(Exception):
                warm.close()


POOL = _Pool()
atexit.register(POOL.close_all)


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
