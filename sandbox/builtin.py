"""Registry entries for the sandbox backends that ship with the orchestrator (one each)."""

from __future__ import annotations

from orchestrator.settings import Settings
from sandbox.base import BACKENDS
from sandbox.docker_backend import DockerBackend
from sandbox.local import LocalBackend


@BACKENDS.register("local")
def _local(settings: Settings) -> LocalBackend:
    python = getattr(settings, "sandbox_python", None)
    return LocalBackend(python=str(python) if python else None)


@BACKENDS.register("docker")
def _docker(settings: Settings) -> DockerBackend:
    return DockerBackend(settings.sandbox_image)
