"""The scale-out topology of docs/deployment.md on one machine (tests/test_multihost.py and
bench/multihost_sweep.py): PostgreSQL as the Prefect server's database, ``scripts/serve.sh server`` on
the server host (the root namespace, at the bridge's address), ``scripts/serve.sh worker NAME`` on each
worker host (a network namespace), and the trace store on an S3-compatible server (moto's) reached at
the server host's address. The API asks for basic auth (``PREFECT_SERVER_API_AUTH_STRING``), as on
machines a user exposes; every client sends ``PREFECT_API_AUTH_STRING``. Everything is torn down on
leaving :func:`start_cluster`, even after a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from tests.conftest import ROOT, free_port, wait_http_ok
from tests.deploy_helpers import PrefectApi, serve, serve_env
from tests.netns import Host, Network
from tests.postgres import Postgres

BUCKET = "orch-multihost"
#: The API's basic auth, user:password (docs/deployment.md, "Across machines").
AUTH_STRING = "admin:multihost"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}


@dataclass
class Cluster:
    net: Network
    api: PrefectApi
    server_env: dict[str, str]
    hosts: dict[str, Host]  # worker name -> its host
    worker_envs: dict[str, dict[str, str]]
    s3: str  # host:port of the S3-compatible server

    def traces_uri(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}?endpoint_override={self.s3}&scheme=http&region=us-east-1"

    def client_env(self) -> dict[str, str]:
        """The environment of a client on the server host (the CLI starting a sweep)."""
        return {
            **os.environ, "PREFECT_API_URL": self.api.url, "PREFECT_API_AUTH_STRING": AUTH_STRING,
            "PREFECT_CLIENT_MAX_RETRIES": "10",
            # the sweep marks its runs Crashed when they are silent this long (flows/pool_runs.py)
            "ORCH_CRASH_AFTER_SECONDS": self.worker_envs[next(iter(self.worker_envs))]["ORCH_CRASH_AFTER_SECONDS"],
            **S3_ENV,
        }

    def start_server(self) -> None:
        """The server host's command of docs/deployment.md (again after a stop: a restart)."""
        serve("server", "--db", "postgres", env=self.server_env)

    def start_worker(self, name: str) -> None:
        proc = subprocess.run(
            self.hosts[name].command("bash", str(ROOT / "scripts" / "serve.sh"), "worker", name),
            env=self.worker_envs[name], capture_output=True, text=True, timeout=300, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"serve.sh worker {name} exited {proc.returncode}: {proc.stdout}{proc.stderr}")


@contextmanager
def start_cluster(
    base: Path, workers: list[str], *, pool: str, limit: int, heartbeat_s: int, crash_after_s: int
) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        raise RuntimeError("the multi-host set-up makes network namespaces: run it as root (CI does)")
    net = Network()
    pg = Postgres(free_port())
    moto: subprocess.Popen[bytes] | None = None
    server_env: dict[str, str] | None = None
    worker_envs: dict[str, dict[str, str]] = {}
    try:
        net.open()
        pg.start()
        s3 = f"{net.address}:{free_port()}"
        moto = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", net.address, "-p", s3.split(":")[1]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_http_ok(f"http://{s3}/moto-api/", 60, moto)
        pafs.S3FileSystem(
            access_key="testing", secret_key="testing", region="us-east-1",
            endpoint_override=s3, scheme="http", allow_bucket_creation=True,
        ).create_dir(BUCKET)

        port = free_port()
        server_env = serve_env(
            base / "server",
            PREFECT_HOME=str(base / "server" / "prefect-home"),
            PGHOST=pg.socket_dir, PGPORT=str(pg.port),
            ORCH_PREFECT_HOST=net.address, ORCH_PREFECT_PORT=str(port),
            ORCH_WORK_POOL=pool, PREFECT_SERVER_API_AUTH_STRING=AUTH_STRING,
        )
        server_env.pop("PREFECT_API_URL", None)  # the script starts and uses its own server
        server_env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        api = PrefectApi(f"http://{net.address}:{port}/api", auth=AUTH_STRING)
        cluster = Cluster(net, api, server_env, {}, worker_envs, s3)
        cluster.start_server()
        api.pause_schedules(api.deployment("sweep/nightly"))

        for name in workers:
            cluster.hosts[name] = net.add_host()
            worker_envs[name] = serve_env(
                base / name,
                PREFECT_HOME=str(base / name / "prefect-home"),
                PREFECT_API_URL=api.url, PREFECT_API_AUTH_STRING=AUTH_STRING, ORCH_WORK_POOL=pool,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(heartbeat_s),
                # a sweep run by the nightly deployment on this host watches its runs with it
                ORCH_CRASH_AFTER_SECONDS=str(crash_after_s),
                ORCH_WORKER_LIMIT=str(limit),
                **S3_ENV,
            )
        for name in cluster.hosts:
            cluster.start_worker(name)
        yield cluster
    finally:
        for env in worker_envs.values():
            serve("stop", env=env, check=False)
        if server_env is not None:
            serve("stop", env=server_env, check=False)
        net.close()
        if moto is not None:
            moto.kill()
            moto.wait(timeout=20)
        pg.stop()
