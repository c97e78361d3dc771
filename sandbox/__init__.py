"""Isolated execution of untrusted code: pick a backend by name, run pytest, read the verdict.

``get_backend`` resolves ``auto``/``local``/``docker`` to a working backend; ``run_pytest``
(in :mod:`sandbox.pytest_runner`) runs a test suite in a fresh session and reads the verdict
from the report pytest writes. See docs/sandbox.md for what each backend isolates.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings, get_settings
from sandbox import builtin as _builtin  # noqa: F401  (fills BACKENDS)
from sandbox.base import BACKENDS, REPORT_DIR, WORKDIR, SandboxBackend, SandboxError, SandboxSession

#: The script that builds the docker backend's image (shipped as package data).
BUILD_SCRIPT = Path(__file__).with_name("build_image.sh")

__all__ = [
    "BACKENDS",
    "BUILD_SCRIPT",
    "REPORT_DIR",
    "WORKDIR",
    "SandboxBackend",
    "SandboxError",
    "SandboxSession",
    "available_backends",
    "get_backend",
]


def get_backend(name: str, settings: Settings) -> SandboxBackend:
    """The backend called ``name``; ``auto`` means docker when its engine and image are there, else local.

    An explicit backend that cannot work here raises ConfigurationError saying what to do.
    """
    if name == "auto":
        try:
            return BACKENDS.create("docker", settings)
        except ConfigurationError:
            return BACKENDS.create("local", settings)
    return BACKENDS.create(name, settings)


def available_backends(settings: Settings | None = None) -> list[str]:
    """The backends that work on this machine now (each is set up once to find out)."""
    settings = settings or get_settings()
    usable = []
    for name in BACKENDS.names():
        try:
            BACKENDS.create(name, settings)
        except ConfigurationError:
            continue
        usable.append(name)
    return usable
