"""``orchestrator sandbox``: build the Docker sandbox image and show which backends work here."""

from __future__ import annotations

import subprocess
from importlib.resources import files
from typing import Annotated

import typer

from orchestrator.cli import app
from orchestrator.errors import ConfigurationError

sandbox_app = typer.Typer(help="The code sandbox (Docker image, backends).", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("build")
def build(force: Annotated[bool, typer.Option(help="Rebuild even when the image exists.")] = False) -> None:
    """Build the sandbox image from Debian packages (debootstrap + docker import, about 2 minutes)."""
    script = files("sandbox").joinpath("build_image.sh")
    argv = ["bash", str(script), *(["--force"] if force else [])]
    if subprocess.run(argv, check=False).returncode != 0:
        raise ConfigurationError("building the sandbox image failed (see the output above)")


@sandbox_app.command("backends")
def backends() -> None:
    """List the sandbox backends usable on this machine."""
    from sandbox import available_backends

    for name in available_backends():
        print(name)
