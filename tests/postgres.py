"""A throw-away PostgreSQL cluster (Debian's binaries) under a temporary folder, for the Prefect server.

initdb and the server refuse to run as root, so as root they run as the ``postgres`` user (which owns
the cluster's folder). The cluster listens on loopback and a socket in its folder, with trust authentication
(``scripts/serve.sh server --db postgres`` creates the role and database in it as on a real host);
``stop()`` ends it and removes the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql")


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(PG_BIN.glob(f"*/bin/{name}"))
    if not versions:
        raise RuntimeError(f"{name} not found: install Debian's postgresql (scripts/install.sh does)")
    return str(versions[-1])


class Postgres:
    def __init__(self, port: int) -> None:
        self.port = port
        # Not under pytest's tmp folders: those are private to root, and the server may run as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="orch-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.dir.chmod(0o755)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def socket_dir(self) -> str:
        """Where the cluster's socket is: PGHOST for ``scripts/serve.sh server --db postgres``."""
        return str(self.dir)

    def _run(self, *argv: str) -> None:
        proc = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stdout}{proc.stderr}")

    def start(self) -> Postgres:
        self._run(pg_tool("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(pg_tool("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self.as_user, pg_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True, check=False, timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)
