"""What every sandbox backend must prove, written once and run against each backend for real.

A test class for a backend inherits ``SandboxContract`` and provides a ``backend`` fixture. Each
containment test ends by checking that the backend still runs a command afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from pathlib import Path

from orchestrator.records import ExecResult, Limits, TestReport
from sandbox.base import SandboxBackend
from sandbox.pytest_runner import run_in_process, run_pytest

LIMITS = Limits(timeout_s=20, memory_mb=256, cpus=1, pids=32, output_bytes=16_000)
SHORT = LIMITS.model_copy(update={"timeout_s": 2.0})

TESTS = {
    "test_add.py": (
        "import pytest\n"
        "from solution import add\n\n"
        "def test_small():\n    assert add(1, 2) == 3\n\n"
        "@pytest.mark.parametrize('a,b,total', [(0, 0, 0), (-1, 1, 0), (10, 5, 15)])\n"
        "def test_table(a, b, total):\n    assert add(a, b) == total\n"
    )
}
CORRECT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"  # right only for (0, 0): 1 passes, 3 fail


def run_code(backend: SandboxBackend, code: str, limits: Limits = LIMITS) -> ExecResult:
    with backend.open(limits) as session:
        session.write_files({"main.py": code})
        return session.run(["python3", "main.py"], limits)


def pids_with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class SandboxContract:
    #: False only for the local backend's no-namespace fallback, which cannot cut the network.
    network_isolated = True

    def assert_still_works(self, backend: SandboxBackend) -> None:
        result = run_code(backend, "print('still alive')")
        assert result.exit_code == 0, result
        assert result.stdout.strip() == "still alive"

    # ------------------------------------------------------------------ running commands

    def test_runs_a_command_in_the_workdir(self, backend: SandboxBackend) -> None:
        result = run_code(
            backend, "import os, sys\nprint(os.getcwd())\nprint('to stderr', file=sys.stderr)\nsys.exit(3)"
        )
        assert result.exit_code == 3
        assert result.stdout.strip().endswith("work")
        assert result.stderr.strip() == "to stderr"
        assert not result.timed_out and not result.killed
        assert result.backend.startswith(backend.name)

    def test_output_is_capped(self, backend: SandboxBackend) -> None:
        result = run_code(backend, "print('x' * 100_000)")
        assert result.exit_code == 0
        assert result.stdout.startswith("x" * LIMITS.output_bytes)
        assert "output truncated" in result.stdout
        assert len(result.stdout) < LIMITS.output_bytes + 200

    # ------------------------------------------------------------------ containment

    def test_infinite_loop_times_out(self, backend: SandboxBackend) -> None:
        result = run_code(backend, "while True:\n    pass\n", SHORT)
        assert result.timed_out and result.killed
        assert result.exit_code is None
        self.assert_still_works(backend)

    def test_sleeping_command_times_out_on_the_wall_clock(self, backend: SandboxBackend) -> None:
        result = run_code(backend, "import time\ntime.sleep(600)\n", SHORT)
        assert result.timed_out
        self.assert_still_works(backend)

    def test_memory_hog_is_stopped(self, backend: SandboxBackend) -> None:
        hog = f"block = b'x' * ({LIMITS.memory_mb * 4} * 1024 * 1024)\nprint('allocated', len(block))\n"
        result = run_code(backend, hog)
        assert "allocated" not in result.stdout
        assert result.exit_code != 0
        assert result.killed or "MemoryError" in result.stderr, result
        self.assert_still_works(backend)

    def test_process_count_is_capped(self, backend: SandboxBackend) -> None:
        spawner = (
            "import os, time\n"
            "count = 0\n"
            f"for _ in range({LIMITS.pids * 4}):\n"
            "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        os.close(1)\n        os.close(2)\n        time.sleep(60)\n        os._exit(0)\n"
            "    count += 1\n"
            "print('forked', count)\n"
        )
        result = run_code(backend, spawner)
        assert result.exit_code == 0, result
        forked = int(result.stdout.split()[-1])
        assert 0 < forked < LIMITS.pids
        self.assert_still_works(backend)

    def test_fork_bomb_is_contained(self, backend: SandboxBackend) -> None:
        bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        result = run_code(backend, bomb, SHORT)
        assert result.timed_out or result.killed
        self.assert_still_works(backend)

    def test_detached_processes_do_not_outlive_the_run(self, backend: SandboxBackend) -> None:
        marker = f"orch-marker-{uuid.uuid4().hex}"
        code = (
            "import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', '{marker}'],\n"
            "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print('spawned')\n"
        )
        result = run_code(backend, code)
        survivors = pids_with_marker(marker)
        for pid in survivors:  # never leave one behind, even when the assertion below fails
            os.kill(pid, signal.SIGKILL)
        assert result.stdout.strip() == "spawned"
        assert survivors == []

    def test_network_is_cut_even_to_the_hosts_loopback(self, backend: SandboxBackend) -> None:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            server.setblocking(False)
            port = server.getsockname()[1]
            code = (
                "import socket\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
                "    print('connected')\n"
                "except OSError as exc:\n"
                "    print('blocked', exc)\n"
            )
            result = run_code(backend, code)
            if self.network_isolated:
                assert result.stdout.startswith("blocked"), result
                try:
                    server.accept()[0].close()
                    arrived = True
                except BlockingIOError:
                    arrived = False
                assert not arrived
            else:
                assert result.stdout.startswith("connected"), result
        self.assert_still_works(backend)

    def test_host_environment_is_not_visible(self, backend: SandboxBackend, monkeypatch) -> None:
        secret = f"sk-test-{uuid.uuid4().hex}"
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        monkeypatch.setenv("ORCH_TEST_HOST_ONLY", secret)
        result = run_code(backend, "import os\nfor k, v in sorted(os.environ.items()):\n    print(k, v)\n")
        assert result.exit_code == 0
        assert secret not in result.stdout
        assert "OPENAI_API_KEY" not in result.stdout and "ORCH_TEST_HOST_ONLY" not in result.stdout
        home = dict(line.split(" ", 1) for line in result.stdout.splitlines())["HOME"]
        assert home != os.environ.get("HOME")

    def test_only_the_scratch_dirs_are_writable(self, backend: SandboxBackend) -> None:
        code = (
            "import os, tempfile\n"
            "for path in ['main.py', 'new.py', '/usr/new', '/etc/new', os.path.expanduser('~/ok'),\n"
            "             os.path.join(tempfile.gettempdir(), 'ok')]:\n"
            "    try:\n        open(path, 'a').close()\n        print('wrote', path)\n"
            "    except OSError:\n        print('refused', path)\n"
        )
        lines = run_code(backend, code).stdout.splitlines()
        assert [line.split()[0] for line in lines] == ["refused"] * 4 + ["wrote"] * 2, lines

    # ------------------------------------------------------------------ the verdict

    def verdict(self, backend: SandboxBackend, solution: str) -> tuple[ExecResult, TestReport]:
        return run_pytest(backend, {"solution.py": solution}, TESTS, LIMITS)

    def test_correct_solution_passes_with_counts(self, backend: SandboxBackend) -> None:
        result, report = self.verdict(backend, CORRECT)
        assert report.all_passed, result
        assert (report.passed, report.failed, report.errors) == (4, 0, 0)
        assert result.exit_code == 0

    def test_wrong_solution_fails_with_counts(self, backend: SandboxBackend) -> None:
        result, report = self.verdict(backend, WRONG)
        assert report.report_found and not report.all_passed
        assert (report.passed, report.failed, report.errors) == (1, 3, 0)
        assert "assert" in result.stdout

    def test_exit_zero_at_import_does_not_pass(self, backend: SandboxBackend) -> None:
        result, report = self.verdict(backend, "import os\nos._exit(0)\n")
        assert not report.all_passed and report.errors >= 1  # the tests could not import the module
        _, report = run_in_process(backend, {"solution.py": "import os\nos._exit(0)\n"}, TESTS, LIMITS)
        assert not report.report_found and not report.all_passed  # in-process: exit 0, no report
        self.assert_still_works(backend)

    def test_rewriting_a_test_file_does_not_pass(self, backend: SandboxBackend) -> None:
        attack = (
            "for path in ['tests/test_add.py', '/work/tests/test_add.py']:\n"
            "    try:\n"
            "        open(path, 'w').write('def test_fake():\\n    pass\\n')\n"
            "    except OSError:\n"
            "        pass\n" + WRONG
        )
        _, report = self.verdict(backend, attack)
        assert not report.all_passed
        assert report.failed == 3

    def test_dropping_a_conftest_does_not_pass(self, backend: SandboxBackend) -> None:
        conftest = (
            "import pytest\n"
            "@pytest.hookimpl(hookwrapper=True)\n"
            "def pytest_runtest_makereport(item, call):\n"
            "    outcome = yield\n"
            "    outcome.get_result().outcome = 'passed'\n"
        )
        attack = (
            "import os, tempfile\n"
            f"for folder in ['.', 'tests', '..', tempfile.gettempdir(), os.path.expanduser('~')]:\n"
            "    try:\n"
            f"        open(os.path.join(folder, 'conftest.py'), 'w').write({conftest!r})\n"
            "    except OSError:\n"
            "        pass\n" + WRONG
        )
        _, report = self.verdict(backend, attack)
        assert not report.all_passed
        assert report.failed == 3

    # ------------------------------------------------------- the candidate's own process (isolated verdict)

    def assert_verdicts_still_work(self, backend: SandboxBackend) -> None:
        _, report = self.verdict(backend, CORRECT)
        assert report.all_passed and report.verdict_mode == "isolated", report

    def test_candidate_infinite_loop_at_import_fails_in_time(self, backend: SandboxBackend) -> None:
        result, report = run_pytest(backend, {"solution.py": "while True:\n    pass\n"}, TESTS, SHORT)
        assert not report.all_passed
        assert result.timed_out or "time limit" in result.stdout, result
        self.assert_verdicts_still_work(backend)

    def test_candidate_memory_bomb_fails(self, backend: SandboxBackend) -> None:
        bomb = f"block = b'x' * ({LIMITS.memory_mb * 4} * 1024 * 1024)\n" + CORRECT
        _, report = self.verdict(backend, bomb)
        assert not report.all_passed
        self.assert_verdicts_still_work(backend)

    def test_candidate_fork_bomb_is_contained(self, backend: SandboxBackend) -> None:
        bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        _, report = run_pytest(backend, {"solution.py": bomb}, TESTS, SHORT)
        assert not report.all_passed
        self.assert_verdicts_still_work(backend)

    def test_candidate_daemon_does_not_outlive_the_verdict(self, backend: SandboxBackend) -> None:
        marker = f"orch-marker-{uuid.uuid4().hex}"
        daemon = (
            "import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', '{marker}'],\n"
            "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        )
        _, report = self.verdict(backend, daemon + CORRECT)
        survivors = pids_with_marker(marker)
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        assert report.all_passed
        assert survivors == []

    def test_candidate_network_is_cut(self, backend: SandboxBackend) -> None:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            server.setblocking(False)
            code = (
                "import socket\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=3).close()\n"
                "    REACHED = True\n"
                "except OSError:\n"
                "    REACHED = False\n"
                "def add(a, b):\n    return 'reached the host' if REACHED else a + b\n"
            )
            _, report = self.verdict(backend, code)
            if self.network_isolated:
                assert report.all_passed, report
                try:
                    server.accept()[0].close()
                    arrived = True
                except BlockingIOError:
                    arrived = False
                assert not arrived

    def test_candidate_sees_no_host_environment(self, backend: SandboxBackend, monkeypatch) -> None:
        secret = f"sk-test-{uuid.uuid4().hex}"
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        code = "import os\ndef env():\n    return dict(os.environ)\n"
        tests = {"test_env.py": "from solution import env\n\ndef test_env():\n    print(env())\n    assert False\n"}
        result, report = run_pytest(backend, {"solution.py": code}, tests, LIMITS)
        assert report.failed == 1
        assert "'PATH'" in result.stdout  # the environment did come back ...
        assert secret not in result.stdout and "OPENAI_API_KEY" not in result.stdout  # ... without the host's

    def test_candidate_output_flood_is_capped(self, backend: SandboxBackend) -> None:
        flood = "def add(a, b):\n    print('x' * 1_000_000)\n    return a - b\n"
        result, report = self.verdict(backend, flood)
        assert (report.passed, report.failed) == (1, 3)
        assert len(result.stdout) < LIMITS.output_bytes + 200
        assert "output truncated" in result.stdout

    def test_candidate_writes_only_its_scratch_dir(self, backend: SandboxBackend) -> None:
        code = (
            "import os, tempfile\n"
            "def wrote():\n"
            "    done = []\n"
            "    for path in ['solution.py', 'new.py', 'tests/new.py', '../new', '/usr/new', '/etc/new',\n"
            "                 os.path.join(tempfile.gettempdir(), 'ok')]:\n"
            "        try:\n            open(path, 'a').close()\n            done.append(path)\n"
            "        except OSError:\n            pass\n"
            "    return done\n"
        )
        tests = {"test_w.py": "import tempfile\nfrom solution import wrote\n\ndef test_w():\n    assert [p.rsplit('/', 1)[-1] for p in wrote()] == ['ok']\n"}
        result, report = run_pytest(backend, {"solution.py": code}, tests, LIMITS)
        assert report.all_passed, result.stdout
