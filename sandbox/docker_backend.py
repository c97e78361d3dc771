"""The docker backend: one container per session, through the docker SDK.

The container has no network, a read-only root file system, memory (no swap), CPU and pids
limits, no capabilities, a root-owned volume at WORKDIR (read-only to the code) and two tmpfs
mounts, REPORT_DIR and /tmp (the only places the code can write). Its first process only sleeps; each
command is an ``exec`` as the unprivileged uid 65534, and whatever it leaves running is killed
when it ends. Files are copied in with ``put_archive``
from a tar built in memory. A command that outlives its timeout kills the whole container, which
ends the session; a closed session always removes its container.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
import time
from collections.abc import Hashable
from typing import Any

import docker
import docker.errors
from docker.types import Mount, Ulimit
from docker.utils.socket import frames_iter

from orchestrator.errors import ConfigurationError
from orchestrator.records import ExecResult, Limits
from sandbox.base import (
    MAX_FILE_BYTES,
    MAX_REPORT_BYTES,
    REPORT_DIR,
    WORKDIR,
    CappedOutput,
    SandboxError,
    checked_relpath,
    died_of_signal,
    sandbox_env,
)
from sandbox.warm import Channel, boot_code, inside_files

#: The uid:gid that runs the code under test ("nobody" in Debian images).
SANDBOX_USER = "65534:65534"
#: Every container this backend makes carries this label, so strays are easy to find and remove.
LABEL = "org.orchestrator.sandbox"
#: How long to wait for the exec stream to end once its container was killed.
_KILL_GRACE_S = 10.0

_BUILD_HINT = "build it with 'bash sandbox/build_image.sh' (or 'orchestrator sandbox build')"


def connect() -> docker.DockerClient:
    """A client for a Docker engine that answers, or a ConfigurationError saying what to do."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigurationError(
            f"no Docker engine answers ({first_line}); start one, or use --sandbox local"
        ) from None
    return client


class DockerSession:
    def __init__(self, client: docker.DockerClient, image: str, limits: Limits) -> None:
        self.backend = "docker"
        self._client = client
        self._dead = False
        uid, gid = SANDBOX_USER.split(":")
        private = f"mode=700,uid={uid},gid={gid}"
        try:
            self._container: Any = client.containers.create(
                image,
                ["sleep", "infinity"],
                network_mode="none",
                read_only=True,
                # WORKDIR is an anonymous volume, not a tmpfs: the engine refuses put_archive into a
                # read-only container anywhere but a volume. Root-owned, so read-only to uid 65534.
                mounts=[Mount(target=WORKDIR, source=None, type="volume")],
                tmpfs={
                    REPORT_DIR: f"rw,size={MAX_REPORT_BYTES * 2}," + private,
                    "/tmp": f"rw,size={limits.memory_mb}m," + private,
                },
                working_dir=WORKDIR,
                mem_limit=f"{limits.memory_mb}m",
                memswap_limit=f"{limits.memory_mb}m",  # equal to mem_limit: no swap
                nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ulimits=[
                    Ulimit(name="fsize", soft=MAX_FILE_BYTES, hard=MAX_FILE_BYTES),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                hostname="sandbox",
                labels={LABEL: "1"},
                init=True,  # docker-init as pid 1 reaps what the code under test orphans
            )
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not create a sandbox container from {image}: {exc}") from exc
        try:
            self._container.start()
        except docker.errors.DockerException as exc:
            self.close()
            raise SandboxError(f"could not start a sandbox container from {image}: {exc}") from exc

    def write_files(self, files: dict[str, str]) -> None:
        try:
            self._container.put_archive(WORKDIR, _tar(files))
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not copy files into the sandbox container: {exc}") from exc

    def run(self, argv: list[str], limits: Limits) -> ExecResult:
        """Run argv; memory, CPU and pids limits are the container's, set when the session opened."""
        if self._dead:
            raise SandboxError("this sandbox session ended (closed, or killed on a timeout); open a new one")
        api = self._client.api
        started = time.monotonic()
        try:
            exec_id = api.exec_create(
                self._container.id, argv, user=SANDBOX_USER, workdir=WORKDIR, environment=sandbox_env("/tmp")
            )["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not run a command in the sandbox container: {exc}") from exc
        out, err = CappedOutput(limits.output_bytes), CappedOutput(limits.output_bytes)
        reader = threading.Thread(target=_drain, args=(stream, out, err), daemon=True)
        reader.start()
        reader.join(limits.timeout_s)
        timed_out = reader.is_alive()
        if timed_out:
            self._kill()
            reader.join(_KILL_GRACE_S)
        elapsed = time.monotonic() - started
        code = None if timed_out else self._exit_code(exec_id)
        if not timed_out:
            self._reap()
        return ExecResult(
            exit_code=code,
            stdout=out.text(),
            stderr=err.text(),
            duration_s=elapsed,
            timed_out=timed_out,
            killed=timed_out or (code is not None and died_of_signal(code)),
            backend=self.backend,
        )

    def _exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code; the engine may close the stream a moment before it records it."""
        deadline = time.monotonic() + _KILL_GRACE_S
        try:
            while (info := self._client.api.exec_inspect(exec_id))["Running"] and time.monotonic() < deadline:
                time.sleep(0.01)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not read an exit code from the sandbox container: {exc}") from exc
        code = info.get("ExitCode")
        return code if isinstance(code, int) else None

    def read_report(self, name: str) -> bytes | None:
        # The engine cannot copy out of a tmpfs, so the report is read by an exec as the sandbox
        # user. Nothing of the run is left to race it (see _reap); only a regular file counts.
        if self._dead:
            return None
        path = f"{REPORT_DIR}/{checked_relpath(name)}"
        script = 'test -f "$1" && test ! -L "$1" && exec head -c "$2" "$1"'
        try:
            code, (data, _) = self._container.exec_run(
                ["sh", "-c", script, "sh", path, str(MAX_REPORT_BYTES + 1)], user=SANDBOX_USER, demux=True
            )
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not read {name} from the sandbox container: {exc}") from exc
        if code != 0 or data is None or len(data) > MAX_REPORT_BYTES:
            return None
        return bytes(data)

    def close(self) -> None:
        self._dead = True
        with contextlib.suppress(docker.errors.NotFound):
            self._container.remove(force=True, v=True)  # v: its WORKDIR volume goes too

    def _reap(self) -> None:
        """Kill what the command left running (a docker exec does not end its children), as the
        local backend's namespaces do; if even that cannot start (pids used up), kill the container."""
        try:
            code, _ = self._container.exec_run(["sh", "-c", "kill -KILL -1"], user=SANDBOX_USER)
        except docker.errors.DockerException:
            code = None
        if code not in (0, 1):  # 1: nothing was left to kill
            self._kill()

    def _kill(self) -> None:
        self._dead = True
        with contextlib.suppress(docker.errors.DockerException):  # already gone is just as good
            self._container.kill()

    def __enter__(self) -> DockerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tar_entry(name: str, kind: bytes, mode: int, size: int, mtime: float) -> tarfile.TarInfo:
    """A root-owned tar entry: the code under test, running as another uid, cannot change it."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    info.uid = info.gid = 0
    return info


def _drain(stream: Any, out: CappedOutput, err: CappedOutput) -> None:
    try:
        for stdout, stderr in stream:
            if stdout:
                out.add(stdout)
            if stderr:
                err.add(stderr)
    except Exception:  # noqa: BLE001 - the stream breaks when a timeout kills the container under it;
        pass  # whatever the transport raises then, the outcome is already known (timed out)


#: The uid of the trusted runner in a warm container (the candidates get fresh uids far above it).
RUNNER_UID = 65533
#: A warm container's processes besides the suite's own: the runner, the launcher, docker-init.
_WARM_EXTRA_PIDS = 32


class DockerWarm:
    """A warm sandbox (sandbox/warm.py) in one long-lived container: the trusted runner is an exec
    as RUNNER_UID, the candidate launcher an exec as root with only setuid/setgid (the container's
    whole capability set), whose children drop to a fresh uid per suite. Sessions live on a tmpfs
    the runner owns (read-only to everyone else), the runner's scratch on one only it can enter,
    the candidates' on a sticky /tmp. Each side is attached through the engine's exec socket."""

    def __init__(self, client: docker.DockerClient, image: str, limits: Limits) -> None:
        self.label = "docker"
        self.sessions_root = "/s"
        self.candidate_env = sandbox_env("/tmp")
        memory = 2 * limits.memory_mb + 512  # a candidate and a runner child at once, and the zygotes
        runner = f"uid={RUNNER_UID},gid={RUNNER_UID}"
        self._client = client
        try:
            self._container: Any = client.containers.create(
                image,
                ["sleep", "infinity"],
                network_mode="none",
                read_only=True,
                mounts=[Mount(target="/h", source=None, type="volume")],
                tmpfs={
                    "/s": f"rw,size={memory}m,mode=755,{runner}",
                    "/rtmp": f"rw,size={memory}m,mode=700,{runner}",
                    "/tmp": f"rw,size={memory}m,mode=1777",
                },
                working_dir="/",
                mem_limit=f"{memory}m",
                memswap_limit=f"{memory}m",
                nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids + _WARM_EXTRA_PIDS,
                cap_drop=["ALL"],
                cap_add=["SETUID", "SETGID"],
                security_opt=["no-new-privileges"],
                ulimits=[
                    Ulimit(name="fsize", soft=MAX_FILE_BYTES, hard=MAX_FILE_BYTES),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                hostname="sandbox",
                labels={LABEL: "warm"},
                init=True,
            )
            self._container.start()
            self._container.put_archive("/h", _tar(inside_files()))
            self.runner = self._attach(
                "trusted runner", "runner", f"{RUNNER_UID}:{RUNNER_UID}",
                {**sandbox_env("/rtmp"), "ORCH_SESSIONS": self.sessions_root},
            )  # fmt: skip
            self.launcher = self._attach("candidate launcher", "candidate", "0:0",
                                         {**sandbox_env("/tmp"), "ORCH_SCRATCH": "/tmp"})  # fmt: skip
        except docker.errors.DockerException as exc:
            self.close()
            raise SandboxError(f"could not start a warm sandbox container from {image}: {exc}") from exc

    def _attach(self, name: str, module: str, user: str, env: dict[str, str]) -> Channel:
        api = self._client.api
        argv = ["python3", "-I", "-c", boot_code("/h", module)]
        exec_id = api.exec_create(self._container.id, argv, stdin=True, user=user, workdir="/", environment=env)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        channel = Channel(name, raw.sendall)

        def pump() -> None:
            try:
                for stream, data in frames_iter(sock, tty=False):
                    (channel.feed if stream == 1 else channel.feed_stderr)(data)
            except Exception:  # noqa: BLE001 - the socket breaks when the container goes away
                pass
            finally:
                channel.closed()

        threading.Thread(target=pump, daemon=True, name=f"sandbox-{module}").start()
        return channel

    def close(self) -> None:
        with contextlib.suppress(docker.errors.DockerException, AttributeError):
            self._container.remove(force=True, v=True)


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folders: set[str] = set()
        for rel, text in files.items():
            path = checked_relpath(rel)
            for parent in reversed(path.parents[:-1]):
                if str(parent) not in folders:
                    folders.add(str(parent))
                    tar.addfile(_tar_entry(str(parent), tarfile.DIRTYPE, 0o755, 0, now))
            data = text.encode("utf-8")
            tar.addfile(_tar_entry(str(path), tarfile.REGTYPE, 0o644, len(data), now), io.BytesIO(data))
    return buf.getvalue()


class DockerBackend:
    """Opens a fresh container per session from ``image`` (which must have python3 and pytest)."""

    name = "docker"

    def __init__(self, image: str) -> None:
        self.image = image
        self.client = connect()
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise ConfigurationError(
                f"sandbox image {image!r} not found; {_BUILD_HINT}, or set ORCH_SANDBOX_IMAGE "
                "to an image with python3 and pytest"
            ) from None
        except docker.errors.DockerException as exc:
            raise ConfigurationError(f"the Docker engine could not look up image {image!r}: {exc}") from None

    def open(self, limits: Limits) -> DockerSession:
        return DockerSession(self.client, self.image, limits)

    def warm_key(self, limits: Limits) -> Hashable | None:
        """A warm container's cgroup limits are fixed when it starts: one pool per set of them."""
        return ("docker", self.image, limits.memory_mb, limits.cpus, limits.pids)

    def start_warm(self, limits: Limits) -> DockerWarm:
        return DockerWarm(self.client, self.image, limits)
