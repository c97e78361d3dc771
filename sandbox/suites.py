"""Run test suites against a candidate with a verdict the candidate cannot write, patch or fool.

``run_suites`` runs every suite of a task (visible, hidden, ...) in one warm sandbox (sandbox/warm.py):
the tests run in the trusted runner, the candidate's module in a process of its own under a fresh
uid, reached through a proxy module of the same name, with only plain data crossing between them;
the outcome comes back over the runner's own channel, and only once pytest's session end has run.
See docs/sandbox.md ("The verdict") for what this closes, and for the ``in_process`` mode, which
imports the candidate into the pytest process as before and is recorded as such.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Any, Literal

from orchestrator.errors import UserInputError
from orchestrator.records import ExecResult, Limits, TestCase, TestReport
from sandbox.base import MAX_FILE_BYTES, SandboxBackend, SandboxError, checked_relpath
from sandbox.pytest_runner import TASK_INI, run_in_process
from sandbox.warm import POOL, WarmBackend, WarmSandbox, fresh_uid

log = logging.getLogger(__name__)

VerdictMode = Literal["isolated", "in_process"]
#: Where each suite's tests go, relative to WORKDIR (the task folder's own names).
SUITE_DIRS = {"visible": "tests", "hidden": "hidden_tests"}
#: How long the host waits past a suite's own timeout before it kills the warm sandbox.
_GRACE_S = 5.0
#: The trusted runner's child may use this much memory beyond the candidate's limit (pytest itself).
_RUNNER_EXTRA_MB = 512
#: Short requests to the zygotes (write files, fork, reap).
_CONTROL_TIMEOUT_S = 30.0


def suite_dir(name: str) -> str:
    return SUITE_DIRS.get(name) or f"{checked_relpath(name).as_posix()}_tests"


def guess_entry(files: dict[str, str]) -> str | None:
    """The candidate's file when the caller did not name it: solution.py, or the only top-level .py."""
    if "solution.py" in files:
        return "solution.py"
    top = [p for p in files if "/" not in p and p.endswith(".py") and p != "conftest.py"]
    return top[0] if len(top) == 1 else None


def module_name(entry: str) -> str:
    path = checked_relpath(entry)
    if path.suffix != ".py":
        raise UserInputError(f"entry {entry!r} must be a .py file")
    return ".".join(path.with_suffix("").parts)


def run_suites(
    backend: SandboxBackend,
    files: dict[str, str],
    suites: dict[str, dict[str, str]],
    limits: Limits,
    *,
    entry: str | None = None,
    mode: VerdictMode = "isolated",
) -> dict[str, tuple[ExecResult, TestReport]]:
    """Run each suite (name -> test path -> text) against ``files``, whose ``entry`` is the
    candidate's module; one (ExecResult, TestReport) per suite, in the order given.

    ``mode="isolated"`` (the default) needs a backend that keeps warm sandboxes and a known entry;
    without them, or with ``mode="in_process"``, each suite runs the old way (pytest imports the
    candidate) and its TestReport says ``verdict_mode="in_process"``.
    """
    entry = entry or guess_entry(files)
    layout_check(files, suites)
    warm_backend = backend if isinstance(backend, WarmBackend) else None
    key = warm_backend.warm_key(limits) if warm_backend is not None else None
    if mode == "in_process" or entry is None or warm_backend is None or key is None:
        if mode == "isolated":
            log.warning("sandbox %s: no isolated verdict possible here (entry %r); running in-process",
                        backend.name, entry)  # fmt: skip
        return {name: run_in_process(backend, files, tests, limits) for name, tests in suites.items()}
    if entry not in files:
        raise UserInputError(f"the candidate's file {entry!r} is not among the files to test")
    out: dict[str, tuple[ExecResult, TestReport]] = {}
    pending = list(suites)
    while pending:  # a suite that times out ends its warm sandbox; the rest go on in a fresh one
        try:
            with POOL.lease(warm_backend, key, limits) as warm:
                _run_in(warm, files, {n: suites[n] for n in pending}, limits, entry, out)
        except _SuiteTimedOut:
            pass  # recorded in ``out``; the lease closed that warm sandbox
        pending = [n for n in suites if n not in out]
    return out


def layout_check(files: dict[str, str], suites: dict[str, dict[str, str]]) -> None:
    for rel in files:
        checked_relpath(rel)
    for name, tests in suites.items():
        folder = suite_dir(name)
        for rel in tests:
            path = f"{folder}/{checked_relpath(rel)}"
            if path in files:
                raise UserInputError(f"{path} is both a task file and a test file; rename one of them")
        if any(p == folder or p.startswith(folder + "/") for p in files):
            raise UserInputError(f"task files may not live in {folder}/: the {name} tests go there")


def _child_limits(limits: Limits, extra_mb: int = 0, extra_pids: int = 0) -> dict[str, int]:
    return {
        "as": (limits.memory_mb + extra_mb) * 1024 * 1024,
        "cpu": math.ceil(limits.timeout_s) + 1,
        "nproc": limits.pids + extra_pids,
        "fsize": MAX_FILE_BYTES,
    }


class _SuiteTimedOut(Exception):
    pass


def _run_in(
    warm: WarmSandbox,
    files: dict[str, str],
    suites: dict[str, dict[str, str]],
    limits: Limits,
    entry: str,
    out: dict[str, tuple[ExecResult, TestReport]],
) -> None:
    sid = secrets.token_hex(8)
    module = module_name(entry)
    warm.runner.ask(
        {"op": "open", "sid": sid, "files": files, "entry": entry,
         "suites": {suite_dir(n): t for n, t in suites.items()}},
        _CONTROL_TIMEOUT_S,
    )  # fmt: skip
    for index, (name, _) in enumerate(suites.items()):
        started = time.monotonic()
        uid = fresh_uid()
        listening = warm.runner.ask(
            {"op": "suite", "sid": sid, "index": index, "dir": suite_dir(name), "uid": uid,
             "module": module, "limits": _child_limits(limits, _RUNNER_EXTRA_MB, 8),
             "timeout_s": limits.timeout_s, "output_bytes": limits.output_bytes,
             "ini": TASK_INI if TASK_INI in files else None},
            _CONTROL_TIMEOUT_S,
        )  # fmt: skip
        spawned = warm.launcher.ask(
            {"op": "spawn", "uid": uid, "work": f"{warm.sessions_root}/{sid}/work",
             "socket": f"{warm.sessions_root}/{sid}/{listening['listening'].rsplit('/', 1)[-1]}",
             "module": module, "limits": _child_limits(limits), "env": warm.candidate_env,
             "output_bytes": limits.output_bytes},
            _CONTROL_TIMEOUT_S,
        )  # fmt: skip
        try:
            reply = warm.runner.recv(limits.timeout_s + _GRACE_S)
        except TimeoutError:
            out[name] = _timed_out(warm.label, time.monotonic() - started)
            raise _SuiteTimedOut(name) from None
        finally:
            left = warm.launcher.ask(
                {"op": "reap", "uid": uid, "pid": spawned.get("pid")}, _CONTROL_TIMEOUT_S
            ).get("left")
        if left:
            raise SandboxError(f"{left} processes of the candidate's uid survived the reaping")
        out[name] = _outcome(warm.label, reply, time.monotonic() - started)
    warm.runner.send({"op": "close", "sid": sid})


def _timed_out(label: str, elapsed: float) -> tuple[ExecResult, TestReport]:
    result = ExecResult(exit_code=None, duration_s=elapsed, timed_out=True, killed=True, backend=label)
    return result, TestReport(report_found=False, verdict_mode="isolated")


def _outcome(label: str, reply: dict[str, Any], elapsed: float) -> tuple[ExecResult, TestReport]:
    result = reply.get("result")
    status = reply.get("status")
    if not isinstance(result, dict):
        failed = ExecResult(exit_code=status if isinstance(status, int) else None, duration_s=elapsed,
                            killed=isinstance(status, int) and status < 0, backend=label,
                            stderr="the trusted test runner ended without a report")  # fmt: skip
        return failed, TestReport(report_found=False, verdict_mode="isolated")
    execution = ExecResult(
        exit_code=result["exit_status"],
        stdout=result["output"],
        stderr=result["import_error"] or "",
        duration_s=elapsed,
        backend=label,
    )
    report = TestReport.of_cases(
        [TestCase.model_validate(case) for case in result["cases"]],
        report_found=bool(result["finished"]),
        verdict_mode="isolated",
    )
    return execution, report
