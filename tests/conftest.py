"""Shared fixtures: one real Prefect server for the session, task folders, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"

# Prefect reads its settings at import: give the whole test session its own home, before any import.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="orch-prefect-home-"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The session's Prefect server shares two cores with everything else: a busy moment answers 503,
# which the client retries; give it more tries than the default 5 before a task run errors.
os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "10")
# The model-call cache of the session lives beside it, never in the user's ~/.cache.
os.environ.setdefault("ORCH_CACHE_PATH", str(_SESSION_HOME / "calls.sqlite"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ok(url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200 (a readiness check, not a sleep for synchronisation)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process serving {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {deadline_s}s")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real ``prefect server`` on loopback for the session; in-process flows and CLI runs report to it."""
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="orch-prefect-server-"))
    url = f"http://127.0.0.1:{port}/api"
    # PREFECT_UI_API_URL: the address the UI in a browser calls back (its default guesses the wrong port).
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": url,
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http_ok(f"{url}/health", 120, proc)
        from prefect.context import refresh_global_settings_context

        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        # Prefect read its settings when the test modules imported it: without a refresh, in-process
        # flows would ignore this server and start an ephemeral one per process.
        refresh_global_settings_context()
        yield url
        # Deliver what in-process flows still queue for the server while it is up: drained at exit,
        # after the server is gone, Prefect's log and event workers retried and the process hung.
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=30)
        EventsWorker.drain_all(timeout=30)
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        refresh_global_settings_context()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    """Settings are read once per process; tests that set ORCH_* variables need them read again."""
    from orchestrator.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture
def traces_dir(tmp_path: Path) -> Path:
    return tmp_path / "traces"


@pytest.fixture
def task_copy(tmp_path: Path):
    """Copy a shipped example task into the test's temp folder (tests never write into runs/)."""

    def copy(name: str) -> Path:
        dest = tmp_path / "tasks" / name
        shutil.copytree(RUNS / name, dest)
        return dest

    return copy


def write_replay(path: Path, task_id: str, *contents: str) -> Path:
    path.write_text("".join(json.dumps({"task_id": task_id, "content": c}) + "\n" for c in contents))
    return path


@pytest.fixture
def cli(prefect_api: str, traces_dir: Path):
    """Run the real ``orchestrator`` console script; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            "PREFECT_API_URL": prefect_api,
            "ORCH_TRACES_DIR": str(traces_dir),
            **(env or {}),
        }
        exe = Path(sys.executable).with_name("orchestrator")
        return subprocess.run(
            [str(exe), *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run
