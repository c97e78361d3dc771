"""The local backend: a subprocess in its own temporary directory, no Docker needed.

Each session gets a host directory with three parts, the same layout the docker backend mounts:
``work/`` (the task's files, read-only to the code run), ``report/`` and ``tmp/`` (its only
writable places). Each command runs under rlimits set by ``prlimit`` (not a ``preexec_fn``: the
orchestrator runs tasks in threads, where forking into Python code is unsafe), in its own process
group, with a scrubbed environment, inside the strongest wrapper this machine allows:

- ``bwrap``: new network, pid, ipc and uts namespaces; a root file system of read-only system
  directories plus the three session directories (the working tree bound read-only).
- ``unshare``: new network, pid and mount namespaces; the host's file system stays visible.
- none: rlimits and the process group only (said in ExecResult.backend as plain ``local``).

When the orchestrator runs as root, the command drops to a fresh unprivileged uid per session
(``setpriv``): RLIMIT_NPROC does nothing for root, and a uid of its own means a fork loop in one
session cannot starve a concurrent one. Without root there is no uid to drop to; see docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal

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
    normalize_exit,
    sandbox_env,
)
from sandbox.warm import Channel, boot_code, fresh_uid, inside_files

log = logging.getLogger(__name__)

Mode = Literal["bwrap", "unshare", "none"]

#: Sandbox uids are drawn from here: far above real accounts and the usual subuid ranges.
_UID_BASE = 1 << 24
_UID_SPAN = 1 << 20
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: What bwrap shows of the host: system directories and the few files python needs from /etc.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "alternatives")
_PROBE_TIMEOUT_S = 30.0
_REAP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Dirs:
    """A session's host directories."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


@dataclass(frozen=True)
class _Isolation:
    """How commands are wrapped on this machine; found once per process by ``_detect``."""

    mode: Mode
    drop_uid: bool
    python: str = ""
    #: Directories outside /usr the interpreter needs (a virtualenv, a pyenv prefix), for bwrap.
    python_dirs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "local" if self.mode == "none" else f"local+{self.mode}"

    def command(self, argv: list[str], dirs: _Dirs, uid: int | None) -> list[str]:
        """The full command line: namespace wrapper, then the uid drop, then argv."""
        if argv and argv[0] in ("python3", "python") and self.python:
            argv = [self.python, *argv[1:]]
        if uid is not None:
            argv = [*_as_uid(uid), *argv]
        if self.mode == "bwrap":
            return [*self._bwrap(dirs), "--", *argv]
        if self.mode == "unshare":
            user = [] if self.drop_uid else ["--user", "--map-root-user"]
            # sh stays pid 1 of the new namespace and reports a death by signal N as 128+N: run
            # as pid 1, the command would ignore signals it sends itself, and unshare turns a
            # child killed by a signal (say RLIMIT_CPU) into a plain exit 1.
            return [
                "unshare", *user, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
                "sh", "-c", '"$@"; exit $?', "sh", *argv,
            ]  # fmt: skip
        return argv

    def cwd(self, dirs: _Dirs) -> Path:
        return dirs.work if self.mode != "bwrap" else Path("/")

    def tmp(self, dirs: _Dirs) -> str:
        return "/tmp" if self.mode == "bwrap" else str(dirs.tmp)

    def _bwrap(self, dirs: _Dirs) -> list[str]:
        binds = [(dirs.work, WORKDIR, False), (dirs.report, REPORT_DIR, True), (dirs.tmp, "/tmp", True)]
        return [*self.bwrap_with(binds), "--chdir", WORKDIR]

    def bwrap_with(self, binds: list[tuple[Path, str, bool]]) -> list[str]:
        """bwrap with the system directories and ``binds`` (host path, path inside, writable)."""
        # As root, no user namespace: it would map only uid 0 and the uid drop inside would fail.
        ns = (
            ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
            if self.drop_uid
            else ["--unshare-all"]
        )
        args = ["bwrap", "--die-with-parent", *ns, "--hostname", "sandbox"]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for name in _ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for host, inside, writable in binds:
            args += ["--bind" if writable else "--ro-bind", str(host), inside]
        for path in self.python_dirs:
            args += ["--ro-bind", path, path]
        return args

    def warm_command(self, argv: list[str], binds: list[tuple[Path, str, bool]], uid: int | None) -> list[str]:
        """A warm sandbox's process: as ``uid``, or (None) as root keeping only the right to change
        uid. Without bwrap the paths inside are the host paths (``binds`` only say which they are)."""
        if argv and argv[0] in ("python3", "python") and self.python:
            argv = [self.python, *argv[1:]]
        drop = _as_uid(uid) if uid is not None else [
            "setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all,+setuid,+setgid",
        ]  # fmt: skip
        argv = [*drop, *argv]
        if self.mode == "bwrap":
            return [*self.bwrap_with(binds), "--", *argv]
        if self.mode == "unshare":
            return ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--", *argv]
        return argv


def _as_uid(uid: int) -> list[str]:
    """Run the rest of the command line as ``uid``, with no capabilities and no way to regain any."""
    return [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
    ]  # fmt: skip


def _limit_args(limits: Limits, nproc: int) -> list[str]:
    return [
        "prlimit",
        f"--as={limits.memory_mb * 1024 * 1024}",
        f"--cpu={math.ceil(limits.timeout_s) + 1}",
        f"--nproc={nproc}",
        f"--fsize={MAX_FILE_BYTES}",
        "--core=0",
        "--",
    ]


def _live_processes_of(uid: int) -> bool:
    """Whether any process (not a zombie) has ``uid`` as its real uid."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as fh:
                status = fh.read()
        except OSError:
            continue  # exited while we looked
        real_uid = int(status[status.index(b"\nUid:") + 5 :].split(None, 1)[0])
        zombie = status[status.index(b"\nState:") + 7 :].lstrip().startswith(b"Z")
        if real_uid == uid and not zombie:
            return True
    return False


def _own_process_count() -> int:
    """Processes of this uid: without a uid drop RLIMIT_NPROC counts them too."""
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


class LocalSession:
    def __init__(self, isolation: _Isolation) -> None:
        self.backend = isolation.label
        self._iso = isolation
        self._uid = _UID_BASE + secrets.randbelow(_UID_SPAN) if isolation.drop_uid else None
        self._dirs = _Dirs(Path(tempfile.mkdtemp(prefix="orch-sandbox-")))
        self._closed = False
        for path in (self._dirs.work, self._dirs.report, self._dirs.tmp):
            path.mkdir()
            path.chmod(0o755)  # explicit: the host's umask must not decide what the sandbox uid reads
        if self._uid is not None:
            for path in (self._dirs.report, self._dirs.tmp):
                os.chown(path, self._uid, self._uid)
                path.chmod(0o700)
            if isolation.mode != "bwrap":  # the sandbox uid walks host paths to reach its directories
                self._dirs.root.chmod(0o711)

    def write_files(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            parent = self._dirs.work
            *folders, name = checked_relpath(rel).parts
            for folder in folders:
                parent = parent / folder
                parent.mkdir(exist_ok=True)
                parent.chmod(0o755)
            (parent / name).write_text(text, encoding="utf-8")
            (parent / name).chmod(0o644)

    def run(self, argv: list[str], limits: Limits) -> ExecResult:
        if self._closed:
            raise SandboxError("this sandbox session is closed; open a new one")
        nproc = limits.pids if self._uid is not None else limits.pids + _own_process_count()
        cmd = [*_limit_args(limits, nproc), *self._iso.command(argv, self._dirs, self._uid)]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=self._iso.cwd(self._dirs),
                env=sandbox_env(self._iso.tmp(self._dirs)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as a whole on timeout
            )
        except OSError as exc:
            raise SandboxError(f"could not start the local sandbox ({cmd[0]}): {exc}") from exc
        out, err = CappedOutput(limits.output_bytes), CappedOutput(limits.output_bytes)
        timed_out = _collect(proc, out, err, started + limits.timeout_s)
        self._reap()
        code = normalize_exit(proc.returncode)
        return ExecResult(
            exit_code=None if timed_out else code,
            stdout=out.text(),
            stderr=err.text(),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            killed=timed_out or died_of_signal(code),
            backend=self.backend,
        )

    def _reap(self) -> None:
        """Make sure nothing the command started outlives the run. A namespace dies with its first
        process, but the kernel kills the rest asynchronously; without namespaces, a uid of the
        session's own lets one kill(-1) catch every leftover. Either way, wait until that uid owns
        no live process. (Without root there is no such uid: see docs/sandbox.md.)"""
        if self._uid is None:
            return
        if self._iso.mode == "none":
            subprocess.run(
                [*_as_uid(self._uid), "sh", "-c", "kill -KILL -1"], capture_output=True, check=False
            )
        deadline = time.monotonic() + _REAP_TIMEOUT_S
        while _live_processes_of(self._uid):
            if time.monotonic() > deadline:
                log.warning(
                    "local sandbox: processes of uid %s still alive %ss after the run",
                    self._uid,
                    _REAP_TIMEOUT_S,
                )
                return
            time.sleep(0.005)  # polling: the kernel offers no event for "this uid has no process left"

    def read_report(self, name: str) -> bytes | None:
        # The report directory is writable by the code under test: refuse a planted symlink (the
        # host may be root and must not read a file of its choosing) and an oversized file.
        try:
            fd = os.open(
                self._dirs.report / checked_relpath(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            )
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
                return None
            return fh.read(MAX_REPORT_BYTES + 1)[:MAX_REPORT_BYTES]

    def close(self) -> None:
        self._closed = True
        shutil.rmtree(self._dirs.root, ignore_errors=True)

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collect(proc: subprocess.Popen[bytes], out: CappedOutput, err: CappedOutput, deadline: float) -> bool:
    """Read both pipes until the command ends or the deadline passes; return whether it timed out."""
    assert proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    timed_out = False
    try:
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            # Without namespaces a detached grandchild may hold the pipes open after the command
            # exits: once it has exited, read only what is already there.
            exited = proc.poll() is not None
            events = sel.select(timeout=0 if exited else min(remaining, 0.1))
            for key, _ in events:
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)
                else:
                    sel.unregister(key.fileobj)
            if exited and not events:
                break
        if not timed_out:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(proc)
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return timed_out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill whatever is left of the command's process group (its namespaces die with it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class LocalWarm:
    """A warm sandbox (sandbox/warm.py) of two processes, each in its own wrapper: the trusted runner
    as a uid of its own (the sessions directory is its, bound writable for it and read-only for the
    launcher), and the candidate launcher as root with only setuid/setgid, whose children drop to a
    fresh uid per suite. Under bwrap the two share no pid namespace: a candidate cannot even see
    the runner; its /tmp is a directory of its own."""

    def __init__(self, iso: _Isolation) -> None:
        self.label = iso.label
        self._root = Path(tempfile.mkdtemp(prefix="orch-warm-"))
        self._procs: list[subprocess.Popen[bytes]] = []
        harness, sessions, runner_tmp, scratch = (self._root / n for n in ("h", "s", "rtmp", "ctmp"))
        runner_uid = fresh_uid()
        self._root.chmod(0o711)
        for rel, text in inside_files().items():
            (harness / rel).parent.mkdir(parents=True, exist_ok=True)
            (harness / rel).write_text(text, encoding="utf-8")
        for folder in (harness, *harness.iterdir()):
            folder.chmod(0o755)
        sessions.mkdir(0o755)
        runner_tmp.mkdir(0o700)
        scratch.mkdir()
        scratch.chmod(0o1777)
        os.chown(sessions, runner_uid, runner_uid)
        os.chown(runner_tmp, runner_uid, runner_uid)
        bwrap = iso.mode == "bwrap"
        inside = {p: (i if bwrap else str(p)) for p, i in ((harness, "/h"), (sessions, "/s"))}
        self.sessions_root = inside[sessions]
        runner_env = {**sandbox_env("/tmp" if bwrap else str(runner_tmp)), "ORCH_SESSIONS": self.sessions_root}
        launcher_env = {**sandbox_env("/tmp"), "ORCH_SCRATCH": "/tmp" if bwrap else str(scratch)}
        self.candidate_env = sandbox_env("/tmp")
        try:
            self.runner = self._start(
                "trusted runner",
                iso.warm_command(["python3", "-I", "-c", boot_code(inside[harness], "runner")],
                                 [(harness, "/h", False), (sessions, "/s", True), (runner_tmp, "/tmp", True)],
                                 runner_uid),
                runner_env,
            )  # fmt: skip
            self.launcher = self._start(
                "candidate launcher",
                iso.warm_command(["python3", "-I", "-c", boot_code(inside[harness], "candidate")],
                                 [(harness, "/h", False), (sessions, "/s", False), (scratch, "/tmp", True)],
                                 None),
                launcher_env,
            )  # fmt: skip
        except BaseException:
            self.close()
            raise

    def _start(self, name: str, cmd: list[str], env: dict[str, str]) -> Channel:
        try:
            proc = subprocess.Popen(
                cmd, cwd="/", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise SandboxError(f"could not start the local sandbox's {name} ({cmd[0]}): {exc}") from exc
        self._procs.append(proc)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin = proc.stdin

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        channel = Channel(name, write)
        _pump(proc.stdout, channel.feed, channel.closed)
        _pump(proc.stderr, channel.feed_stderr, lambda: None)
        return channel

    def close(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
        shutil.rmtree(self._root, ignore_errors=True)


def _pump(stream: IO[bytes], feed: Callable[[bytes], None], done: Callable[[], None]) -> None:
    def loop() -> None:
        try:
            while chunk := os.read(stream.fileno(), 65536):
                feed(chunk)
        except OSError:
            pass
        finally:
            done()

    threading.Thread(target=loop, daemon=True, name="sandbox-pump").start()


class LocalBackend:
    """Runs commands as local subprocesses; see the module docstring for the isolation it gives.

    ``python``: the interpreter to run (default: the system python3 if it has pytest, else this
    one). ``isolation``: insist on one wrapper instead of the strongest that works here.
    """

    name = "local"

    def __init__(self, python: str | None = None, isolation: Mode | None = None) -> None:
        self.isolation = _detect(python, isolation)

    def open(self, limits: Limits) -> LocalSession:
        return LocalSession(self.isolation)

    def warm_key(self, limits: Limits) -> Hashable | None:
        """Warm sandboxes need root (a uid for the runner, a fresh one per candidate); rlimits are
        set per suite, so one warm sandbox serves every ``limits``."""
        return ("local", self.isolation) if self.isolation.drop_uid else None

    def start_warm(self, limits: Limits) -> LocalWarm:
        return LocalWarm(self.isolation)


def _probe(iso: _Isolation, argv: list[str]) -> subprocess.CompletedProcess[bytes] | None:
    """Run a short command the way sessions do, or None when it cannot even start."""
    dirs = _Dirs(Path(tempfile.mkdtemp(prefix="orch-sandbox-probe-")))
    try:
        for path in (dirs.work, dirs.report, dirs.tmp):
            path.mkdir(mode=0o777)
            path.chmod(0o777)  # the probe does not test permissions, only that the wrapper works
        dirs.root.chmod(0o711)
        uid = _UID_BASE if iso.drop_uid else None
        return subprocess.run(
            iso.command(argv, dirs, uid),
            cwd=iso.cwd(dirs),
            env=sandbox_env(iso.tmp(dirs)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(dirs.root, ignore_errors=True)


def _python_dirs(python: str) -> tuple[str, ...]:
    """The directories outside the system ones that an interpreter needs to start (for bwrap)."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"],
            capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, env={"PATH": _SYSTEM_PATH},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ()
    paths = {os.path.realpath(python), *done.stdout.split()}
    dirs = {os.path.dirname(p) if os.path.isfile(p) else p for p in paths}
    bound = [d for d in dirs if not any(d == s or d.startswith(s + "/") for s in _SYSTEM_DIRS)]
    return tuple(sorted(bound))


@lru_cache(maxsize=8)
def _detect(python: str | None, wanted: Mode | None) -> _Isolation:
    """Pick the strongest wrapper that works here (or the wanted one), then a python that runs pytest in it."""
    drop_uid = os.geteuid() == 0
    if drop_uid and not shutil.which("setpriv"):
        raise ConfigurationError(
            "the local sandbox needs setpriv (util-linux) to drop root; install util-linux"
        )
    if not shutil.which("prlimit"):
        raise ConfigurationError("the local sandbox needs prlimit (util-linux); install util-linux")
    mode = _working_mode(drop_uid, wanted)
    if not drop_uid and mode != "bwrap":
        log.warning(
            "local sandbox: without root or bwrap the code under test can write its working tree "
            "(and so tamper with its tests); install bubblewrap"
        )
    candidates = [python] if python else [shutil.which("python3", path=_SYSTEM_PATH), sys.executable]
    tried = []
    for cand in dict.fromkeys(c for c in candidates if c):
        path = os.path.abspath(shutil.which(cand) or cand)
        iso = _Isolation(mode, drop_uid, path, _python_dirs(path) if mode == "bwrap" else ())
        done = _probe(iso, ["python3", "-c", "import pytest"])
        if done is not None and done.returncode == 0:
            return iso
        tried.append(path)
    who = "an unprivileged uid" if drop_uid else "this user"
    raise ConfigurationError(
        f"no python that can import pytest as {who} in the local sandbox (tried {', '.join(tried)}); "
        "install it (Debian: apt-get install -y python3-pytest) or set ORCH_SANDBOX_PYTHON"
    )


def _working_mode(drop_uid: bool, wanted: Mode | None) -> Mode:
    modes: list[Mode] = [wanted] if wanted else ["bwrap", "unshare"]
    for mode in modes:
        if mode == "none":
            return mode
        done = _probe(_Isolation(mode, drop_uid), ["true"]) if shutil.which(mode) else None
        if done is not None and done.returncode == 0:
            return mode
    if wanted:
        raise ConfigurationError(
            f"the local sandbox cannot use {wanted} on this machine (is it installed and allowed?)"
        )
    log.warning(
        "local sandbox: neither bwrap nor unshare works here; the code under test keeps network access"
    )
    return "none"
