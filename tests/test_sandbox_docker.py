"""The docker backend, for real: the shared contract in a container from the sandbox image.

These tests need a Docker engine and the image built by sandbox/build_image.sh; CI builds it first.
Without them they fail with a message saying so; set ORCH_SKIP_DOCKER_TESTS=1 to skip them instead.
"""

from __future__ import annotations

import os

import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from sandbox import available_backends, get_backend
from sandbox.base import SandboxError
from sandbox.docker_backend import LABEL, DockerBackend
from tests.sandbox_contract import LIMITS, SHORT, SandboxContract, run_code

pytestmark = pytest.mark.docker


@pytest.fixture
def backend() -> DockerBackend:
    if os.environ.get("ORCH_SKIP_DOCKER_TESTS") == "1":
        pytest.skip("ORCH_SKIP_DOCKER_TESTS=1")
    try:
        return DockerBackend(Settings().sandbox_image)
    except ConfigurationError as exc:
        pytest.fail(f"the docker backend cannot run here: {exc} (or set ORCH_SKIP_DOCKER_TESTS=1)")


def sandbox_containers(backend: DockerBackend) -> list[str]:
    return [c.id for c in backend.client.containers.list(all=True, filters={"label": LABEL})]


class TestDocker(SandboxContract):
    pass


def test_containers_are_removed_after_a_run_and_after_a_timeout(backend: DockerBackend) -> None:
    before = sandbox_containers(backend)
    assert run_code(backend, "print('ok')").exit_code == 0
    assert run_code(backend, "while True:\n    pass\n", SHORT).timed_out
    assert sandbox_containers(backend) == before


def test_a_timed_out_session_is_over(backend: DockerBackend) -> None:
    with backend.open(SHORT) as session:
        session.write_files({"main.py": "import time\ntime.sleep(600)\n"})
        assert session.run(["python3", "main.py"], SHORT).timed_out
        assert session.read_report("junit.xml") is None
        with pytest.raises(SandboxError, match="open a new one"):
            session.run(["python3", "main.py"], SHORT)


def test_container_has_no_network_and_a_read_only_root(backend: DockerBackend) -> None:
    with backend.open(LIMITS) as session:
        attrs = backend.client.containers.get(session._container.id).attrs["HostConfig"]
    assert attrs["NetworkMode"] == "none"
    assert attrs["ReadonlyRootfs"] is True
    assert attrs["Memory"] == LIMITS.memory_mb * 1024 * 1024
    assert attrs["PidsLimit"] == LIMITS.pids
    assert attrs["CapDrop"] == ["ALL"]


def test_code_runs_as_nobody(backend: DockerBackend) -> None:
    assert run_code(backend, "import os\nprint(os.getuid(), os.getgid())").stdout.split() == [
        "65534",
        "65534",
    ]


def test_report_is_read_back_and_a_planted_symlink_is_refused(backend: DockerBackend) -> None:
    with backend.open(LIMITS) as session:
        code = "import os\nopen('../report/out.txt', 'w').write('hello')\nos.symlink('/etc/hostname', '../report/link.txt')\n"
        session.write_files({"main.py": code})
        assert session.run(["python3", "main.py"], LIMITS).exit_code == 0
        assert session.read_report("out.txt") == b"hello"
        assert session.read_report("link.txt") is None
        assert session.read_report("missing.txt") is None


def test_a_missing_image_is_a_clear_configuration_error(backend: DockerBackend) -> None:
    with pytest.raises(ConfigurationError, match=r"not found; build it with 'bash sandbox/build_image.sh'"):
        DockerBackend("orchestrator-sandbox:no-such-tag")
    settings = Settings(sandbox_image="orchestrator-sandbox:no-such-tag")
    assert get_backend("auto", settings).name == "local"  # auto falls back instead of failing


def test_docker_is_listed_as_available(backend: DockerBackend) -> None:
    assert available_backends(Settings()) == ["docker", "local"]


def test_no_engine_is_a_clear_configuration_error(monkeypatch) -> None:
    # the environment (not our code) points the SDK at a socket where no engine listens
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ConfigurationError, match="no Docker engine answers"):
        get_backend("docker", Settings())
    assert get_backend("auto", Settings()).name == "local"
    assert available_backends(Settings()) == ["local"]
