"""The sandbox interface and the backend registry.

A backend opens sessions; a session is one fresh, isolated working directory in which
files are written and commands run under limits. Backends know nothing of Prefect,
providers or each other.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from orchestrator.records import ExecResult, Limits
from orchestrator.registry import Registry
from orchestrator.settings import Settings

#: Where the task's files live inside every sandbox, whatever the backend.
WORKDIR = "/work"
#: Where the test runner writes its report: outside WORKDIR, readable by the host after the run.
REPORT_DIR = "/report"


@runtime_checkable
class SandboxSession(Protocol):
    backend: str

    def write_files(self, files: dict[str, str]) -> None:
        """Copy files (relative path -> text) into the working directory."""
        ...

    def run(self, argv: list[str], limits: Limits) -> ExecResult:
        """Run a command in the working directory under the limits; never raises for its failure."""
        ...

    def read_report(self, name: str) -> bytes | None:
        """Read a file the command left in REPORT_DIR, or None when there is none."""
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
