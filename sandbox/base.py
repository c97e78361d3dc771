"""The sandbox interface and the backend registry.

A backend opens sessions; a session is one fresh, isolated working directory in which
files are written and commands run under limits. Backends know nothing of Prefect,
providers or each other. The helpers below are the parts every backend shares.
"""

from __future__ import annotations

import posixpath
import signal
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from orchestrator.errors import UserInputError
from orchestrator.records import ExecResult, Limits
from orchestrator.registry import Registry

#: Where the task's files live inside every sandbox, whatever the backend. Commands start here.
WORKDIR = "/work"
#: Where the test runner writes its report: outside WORKDIR, readable by the host after the run.
REPORT_DIR = "/report"
#: REPORT_DIR as seen from WORKDIR. Commands should name report paths this way: the local
#: backend's fallback modes cannot mount at "/", but keep the two directories siblings.
REPORT_DIR_FROM_WORKDIR = posixpath.relpath(REPORT_DIR, WORKDIR)
#: The largest file the code under test may write (RLIMIT_FSIZE / ulimit fsize).
MAX_FILE_BYTES = 64 * 1024 * 1024
#: The largest report the host will read back: the report is untrusted input.
MAX_REPORT_BYTES = 8 * 1024 * 1024


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, died): worth a retry, unlike a failing command."""


@runtime_checkable
class SandboxSession(Protocol):
    backend: str

    def write_files(self, files: dict[str, str]) -> None:
        """Copy files (relative path -> text) into the working directory, read-only to the code run."""
        ...

    def run(self, argv: list[str], limits: Limits) -> ExecResult:
        """Run a command in the working directory under the limits; never raises for its failure.

        ``argv[0]`` ``python3`` (or ``python``) is the sandbox's interpreter, which has pytest.
        """
        ...

    def read_report(self, name: str) -> bytes | None:
        """Read a file the command left in REPORT_DIR, or None when there is none (or it is too big)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> SandboxSession: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class SandboxBackend(Protocol):
    name: str

    def open(self, limits: Limits) -> SandboxSession:
        """A fresh session: an empty working directory and an empty report directory."""
        ...


#: name -> factory(settings) -> SandboxBackend
BACKENDS: Registry[SandboxBackend] = Registry("sandbox backend")


def checked_relpath(path: str) -> PurePosixPath:
    """A file path that stays inside the directory it is written to, or a clear error."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or pure == PurePosixPath("."):
        raise UserInputError(
            f"sandbox file path {path!r} must be relative and stay inside the working directory"
        )
    return pure


def normalize_exit(code: int) -> int:
    """Exit codes as a shell reports them: a death by signal N becomes 128+N (Popen says -N)."""
    return 128 - code if code < 0 else code


def died_of_signal(code: int) -> bool:
    """Whether a (normalized) exit code means the process was killed by a signal."""
    return 128 < code <= 128 + signal.NSIG


class CappedOutput:
    """Collects a stream up to a byte cap and keeps counting what it drops."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self._data)
        if room > 0:
            self._data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self._data.decode("utf-8", errors="replace")
        if self.dropped:
            out += f"\n[output truncated: {self.dropped} more bytes not shown]"
        return out


def sandbox_env(tmp: str) -> dict[str, str]:
    """The whole environment of the code under test: nothing from the host's (no keys, no HOME)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": tmp,
        "TMPDIR": tmp,
        # No passwd entry exists for the sandbox uid; these keep getpass/pytest from looking one up.
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        # The working tree is read-only: do not even try to write bytecode there.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
