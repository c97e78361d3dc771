"""Every ordinary command-line mistake, through the installed ``orchestrator`` command: exit 2, one
line on stderr naming what was wrong, no traceback, nothing written, no flow started.

PREFECT_API_URL points at a closed port: a mistake that slipped past the checks and started a flow
would fail differently (exit 1, a traceback), so these tests cannot pass by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RUNS

EXE = Path(sys.executable).with_name("orchestrator")
REPLAY = RUNS / "replay" / "examples.jsonl"
TASK = RUNS / "task_003"


def orchestrator(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "ORCH_TRACES_DIR": str(tmp_path / "traces"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(EXE), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


def a_file(tmp_path: Path) -> str:
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    return str(path)


# (argv, a word the one line must contain); argv items may be callables of tmp_path.
MISTAKES = {
    "run without a folder": (["run"], "DIR"),
    "misspelt command": (["runn"], "runn"),
    "unknown option": (["run", "--bogus", str(TASK)], "--bogus"),
    "non-integer value": (["sweep", "--concurrency", "x", str(RUNS)], "--concurrency"),
    "max-rounds out of range": (["run", "--max-rounds", "9", "--replay", str(REPLAY), str(TASK)], "--max-rounds"),
    "unknown provider, no model": (["run", "--provider", "nosuch", str(TASK)], "nosuch"),
    "sweep: unknown provider": (["sweep", "--provider", "nosuch", str(RUNS)], "nosuch"),
    "traces is a file": (["run", "--traces", a_file, "--replay", str(REPLAY), str(TASK)], "--traces"),
    "traces under a file": (
        ["sweep", "--traces", lambda t: a_file(t) + "/store", "--replay", str(REPLAY), str(RUNS)],
        "--traces",
    ),
    "traces under /proc": (["run", "--traces", "/proc/orch-traces", "--replay", str(REPLAY), str(TASK)], "/proc"),
    "bare command": ([], "command"),
    "bare command group": (["traces"], "command"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_mistake_is_one_line_and_exit_2(case, tmp_path):
    argv, word = MISTAKES[case]
    args = [a(tmp_path) if callable(a) else a for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = orchestrator(tmp_path, *args)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and word in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no trace store, nothing half-written


def test_unknown_provider_is_named_before_the_missing_model(tmp_path):
    proc = orchestrator(tmp_path, "run", "--provider", "nosuch", str(TASK))
    assert "--model" not in proc.stderr and "choose one of" in proc.stderr and "replay" in proc.stderr


def test_bare_command_prints_the_help(tmp_path):
    proc = orchestrator(tmp_path)
    assert "Usage: orchestrator" in proc.stdout and "sweep" in proc.stdout


def test_help_has_plain_names_and_shows_choices_and_defaults(tmp_path):
    for command in ("run", "sweep"):
        out = orchestrator(tmp_path, command, "--help").stdout
        assert "<bool>" not in out and "<list[str]>" not in out, out
        assert "{DIR}" in out and "{task_dir}" not in out
        assert "anthropic | gemini" in out  # the providers to choose from
        assert "cost-first | quality-first" in out and "auto | local | docker" in out
        assert "ORCH_MAX_ROUNDS or 2" in out
