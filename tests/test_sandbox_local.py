"""The local backend, for real: the shared contract under each wrapper this machine offers."""

from __future__ import annotations

import os
import shutil

import pytest

from orchestrator.errors import ConfigurationError, UserInputError
from orchestrator.records import Limits
from orchestrator.settings import Settings
from sandbox import available_backends, get_backend
from sandbox.base import MAX_FILE_BYTES
from sandbox.local import LocalBackend
from tests.sandbox_contract import LIMITS, SandboxContract, run_code


@pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bwrap is not installed (apt-get install bubblewrap)"
)
class TestLocalBwrap(SandboxContract):
    @pytest.fixture
    def backend(self) -> LocalBackend:
        return LocalBackend(isolation="bwrap")

    def test_reports_its_wrapper(self, backend: LocalBackend) -> None:
        assert run_code(backend, "pass").backend == "local+bwrap"


class TestLocalUnshare(SandboxContract):
    """The fallback when bwrap is missing: namespaces from util-linux's unshare."""

    @pytest.fixture
    def backend(self) -> LocalBackend:
        return LocalBackend(isolation="unshare")


class TestLocalNoNamespaces(SandboxContract):
    """The last resort (no bwrap, no unshare): everything but the network cut still holds as root."""

    network_isolated = False

    @pytest.fixture
    def backend(self) -> LocalBackend:
        return LocalBackend(isolation="none")

    def test_reports_plain_local(self, backend: LocalBackend) -> None:
        assert run_code(backend, "pass").backend == "local"


def test_code_runs_as_an_unprivileged_uid_when_the_host_is_root() -> None:
    result = run_code(LocalBackend(), "import os\nprint(os.getuid(), os.getgid(), os.getgroups())")
    uid, gid, groups = result.stdout.split(" ", 2)
    if os.geteuid() == 0:
        assert int(uid) != 0 and int(gid) != 0 and groups.strip() == "[]"
    else:
        assert int(uid) == os.getuid()


def test_sessions_get_distinct_uids_so_one_fork_loop_cannot_starve_another() -> None:
    backend = LocalBackend()
    uids = {run_code(backend, "import os\nprint(os.getuid())").stdout for _ in range(3)}
    assert len(uids) == (3 if os.geteuid() == 0 else 1)


def test_session_files_are_removed_on_close() -> None:
    with LocalBackend().open(LIMITS) as session:
        session.write_files({"pkg/mod.py": "X = 1\n"})
        result = session.run(
            ["python3", "-c", "import pkg.mod, os; print(pkg.mod.X, os.listdir('.'))"], LIMITS
        )
        root = session._dirs.root
        assert root.is_dir()
    assert result.stdout.strip() == "1 ['pkg']"
    assert not root.exists()


def test_report_is_read_back_and_a_planted_symlink_is_refused() -> None:
    with LocalBackend().open(LIMITS) as session:
        code = (
            "import os\n"
            "open('../report/out.txt', 'w').write('hello')\n"
            "os.symlink('/etc/hostname', '../report/link.txt')\n"
        )
        session.write_files({"main.py": code})
        assert session.run(["python3", "main.py"], LIMITS).exit_code == 0
        assert session.read_report("out.txt") == b"hello"
        assert session.read_report("link.txt") is None
        assert session.read_report("missing.txt") is None


def test_a_path_outside_the_workdir_is_refused() -> None:
    with LocalBackend().open(LIMITS) as session:
        for bad in ("../escape.py", "/etc/passwd", "", "a/../../b.py"):
            with pytest.raises(UserInputError, match="must be relative"):
                session.write_files({bad: "x"})


def test_detection_picks_the_strongest_wrapper() -> None:
    expected = "local+bwrap" if shutil.which("bwrap") else "local+unshare"
    assert run_code(LocalBackend(), "pass").backend == expected


def test_rlimits_are_in_force() -> None:
    limits = Limits(timeout_s=7.5, memory_mb=300, pids=40)
    code = (
        "import resource as r\n"
        "for name in ['RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_CORE']:\n"
        "    print(name, *r.getrlimit(getattr(r, name)))\n"
    )
    found = {
        line.split()[0]: tuple(map(int, line.split()[1:]))
        for line in run_code(LocalBackend(), code, limits).stdout.splitlines()
    }
    assert found["RLIMIT_AS"] == (300 * 1024 * 1024,) * 2
    assert found["RLIMIT_CPU"] == (9, 9)
    assert found["RLIMIT_FSIZE"] == (MAX_FILE_BYTES,) * 2
    assert found["RLIMIT_CORE"] == (0, 0)
    if os.geteuid() == 0:
        assert found["RLIMIT_NPROC"] == (40, 40)


def test_an_interpreter_without_pytest_is_a_clear_configuration_error(tmp_path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    tmp_path.chmod(0o755)
    with pytest.raises(ConfigurationError, match="python3-pytest"):
        LocalBackend(python=str(fake))


def test_get_backend_resolves_names() -> None:
    settings = Settings()
    assert get_backend("local", settings).name == "local"
    assert get_backend("auto", settings).name in available_backends()
    assert "local" in available_backends(settings)
    with pytest.raises(UserInputError, match="unknown sandbox backend 'podman'"):
        get_backend("podman", settings)


def test_a_warm_sandbox_outlives_the_thread_that_started_it() -> None:
    """bwrap --die-with-parent follows the starting thread: a pooled warm sandbox started from a
    worker thread that has since ended must still answer (the coding flow's thread pools do this)."""
    import threading

    from sandbox.pytest_runner import run_pytest
    from sandbox.warm import POOL

    backend = LocalBackend()
    files = {"solution.py": "def f(x):\n    return x + 1\n"}
    tests = {"test_f.py": "from solution import f\n\n\ndef test_f():\n    assert f(1) == 2\n"}
    POOL.close_all()  # the first run below must start a warm sandbox of its own
    reports = []
    worker = threading.Thread(target=lambda: reports.append(run_pytest(backend, files, tests, LIMITS)[1]))
    worker.start()
    worker.join()
    _, again = run_pytest(backend, files, tests, LIMITS)  # leases the sandbox that thread started
    assert [r.passed for r in reports] == [1] and again.passed == 1 and again.verdict_mode == "isolated"
