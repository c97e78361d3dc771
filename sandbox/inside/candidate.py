"""The candidate's side, inside the sandbox (standard library only): a launcher and the server.

The launcher is started once per warm sandbox, with the rights to change uid and nothing else, and
reads one JSON command a line on stdin (``spawn``, ``reap``), answering one JSON line on stdout. It
never imports code of the candidate's. ``spawn`` forks a child that drops to a fresh uid (no groups,
no capabilities), sets the suite's rlimits, closes every descriptor it inherited (so it cannot write
to the launcher's control channel), connects to the socket the trusted runner listens on, and only
then imports the candidate's module and serves calls on it: ``wire`` frames in, ``wire`` frames out.
``reap`` kills everything that uid left behind and removes its scratch directory.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import importlib
import io
import json
import os
import resource
import shutil
import signal
import socket
import sys
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from . import wire

#: Each candidate uid gets its own scratch directory (HOME, TMPDIR) here; the directory is 1777.
SCRATCH = os.environ.get("ORCH_SCRATCH", "/tmp")
_REAP_TIMEOUT_S = 5.0
#: How long a candidate's process has to end on its own once the runner closed its connection.
_EXIT_GRACE_S = 0.2
_PR_SET_CHILD_SUBREAPER = 36


def set_limits(limits: dict[str, int]) -> None:
    """Apply ``{"as": bytes, "cpu": s, "nproc": n, "fsize": bytes}`` to this process (soft = hard)."""
    for name, key in (("as", resource.RLIMIT_AS), ("cpu", resource.RLIMIT_CPU),
                      ("nproc", resource.RLIMIT_NPROC), ("fsize", resource.RLIMIT_FSIZE)):  # fmt: skip
        if name in limits:
            resource.setrlimit(key, (limits[name], limits[name]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    with contextlib.suppress(OSError, AttributeError):  # orphans of a candidate become ours to reap
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    os.makedirs(SCRATCH, exist_ok=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "spawn":
            reply: dict[str, Any] = {"pid": spawn(command)}
        elif command["op"] == "reap":
            reply = {"left": reap(command["uid"], command.get("pid"))}
        else:
            reply = {"error": f"unknown op {command['op']!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def spawn(command: dict[str, Any]) -> int:
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        uid = int(command["uid"])
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 65536)
        set_limits(command["limits"])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        scratch = os.path.join(SCRATCH, str(uid))
        os.mkdir(scratch, 0o700)
        os.environ.clear()
        os.environ.update(command["env"], HOME=scratch, TMPDIR=scratch)
        os.chdir(command["work"])
        # The candidate sees its working tree first, as `python -m pytest` run there would.
        harness = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path[:] = [command["work"], *(p for p in sys.path if p and not p.startswith(harness))]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(command["socket"])
        Server(sock, command["module"], int(command["output_bytes"])).serve()
        os.chdir("/")
        shutil.rmtree(scratch)  # the usual end: nothing left for the launcher to clean up
        code = 0
    finally:
        os._exit(code)


def reap(uid: int, pid: int | None) -> int:
    """Kill every process of ``uid`` (as that uid: the launcher may signal nothing else) and wait
    until none is left; return how many were still alive at the deadline. The usual case costs no
    fork: the candidate's process ended on its own once the runner hung up, leaving nothing."""
    if pid is not None:
        deadline = time.monotonic() + _EXIT_GRACE_S
        with contextlib.suppress(ChildProcessError):
            while not os.waitpid(pid, os.WNOHANG)[0] and time.monotonic() < deadline:
                time.sleep(0.0005)  # no event to wait on with a deadline but a pidfd, which 3.11 lacks here
        if not _processes_of(uid, None) and not os.path.lexists(os.path.join(SCRATCH, str(uid))):
            return 0
    helper = os.fork()
    if helper == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            deadline = time.monotonic() + _REAP_TIMEOUT_S
            while _processes_of(uid, os.getpid()) and time.monotonic() < deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGKILL)  # as this uid: its own processes, this one excepted
                _collect_zombies()
                time.sleep(0.002)  # the kernel kills asynchronously and offers no event for "all gone"
            shutil.rmtree(os.path.join(SCRATCH, str(uid)), ignore_errors=True)
        finally:
            os._exit(0)
    os.waitpid(helper, 0)
    _collect_zombies()
    return len(_processes_of(uid, None))


def _collect_zombies() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _processes_of(uid: int, but: int | None) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == but:
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as fh:
                status = fh.read()
        except OSError:
            continue
        real_uid = int(status[status.index(b"\nUid:") + 5 :].split(None, 1)[0])
        zombie = status[status.index(b"\nState:") + 7 :].lstrip().startswith(b"Z")
        if real_uid == uid and not zombie:
            found.append(int(name))
    return found


# ---------------------------------------------------------------- the server


class _Capture:
    """sys.stdout and sys.stderr while the candidate's code runs; what it printed goes back with the reply."""

    def __init__(self, cap: int) -> None:
        self.cap = cap

    def __enter__(self) -> _Capture:
        self.out, self.err = io.StringIO(), io.StringIO()
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.out, self.err
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout, sys.stderr = self._saved

    def fields(self) -> dict[str, str]:
        return {"out": self.out.getvalue()[: self.cap], "err": self.err.getvalue()[: self.cap]}


def _exception(exc: BaseException) -> dict[str, Any]:
    name = type(exc).__name__
    try:
        args = wire.encode(exc.args)
    except Exception:  # noqa: BLE001 - arguments that are not data travel as the message only
        args = None
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001
        message = f"<{name} whose str() failed>"
    return {
        "type": name,
        "builtin": getattr(builtins, name, None) is type(exc),
        "message": message[:4000],
        "args": args,
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


class Server:
    def __init__(self, sock: socket.socket, module: str, output_bytes: int) -> None:
        self.sock = sock
        self.module_name = module
        self.cap = output_bytes
        self.handles: dict[int, Any] = {}
        self.ids: dict[int, int] = {}  # id(obj) -> handle, so one object keeps one handle

    def handle(self, obj: Any) -> int:
        key = id(obj)
        if key not in self.ids:
            self.ids[key] = len(self.handles) + 1
            self.handles[self.ids[key]] = obj
        return self.ids[key]

    def encode(self, value: Any) -> Any:
        return wire.encode(value, self.handle)

    def decode(self, tree: Any) -> Any:
        return wire.decode(tree, self.handles.__getitem__)

    def serve(self) -> None:
        with _Capture(self.cap) as cap:
            try:
                module = importlib.import_module(self.module_name)
                hello: dict[str, Any] = {"names": self.describe(module)}
            except BaseException as exc:  # noqa: BLE001 - a failed import is the candidate's outcome
                hello = {"import_error": _exception(exc)}
        wire.send(self.sock, {**hello, **cap.fields()})
        if "import_error" in hello:
            return
        self.module = module
        while True:
            try:
                request = wire.recv(self.sock)
            except EOFError:
                return
            wire.send(self.sock, self.answer(request))

    def describe(self, module: types.ModuleType) -> dict[str, Any]:
        names = getattr(module, "__all__", None)
        public = [n for n in vars(module) if not n.startswith("_")] if names is None else list(names)
        described = {}
        for name, value in vars(module).items():
            if name.startswith("__") and name != "__doc__":
                continue
            described[name] = self.describe_value(value)
        return {"public": public, "attrs": described, "doc": module.__doc__}

    def describe_value(self, value: Any) -> dict[str, Any]:
        if isinstance(value, types.ModuleType):
            return {"kind": "module", "name": value.__name__}
        owner = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None)
        if (
            isinstance(owner, str)
            and owner != self.module_name
            and isinstance(qualname, str)
            and (isinstance(value, type) or not callable(value) or owner in ("typing", "collections.abc"))
        ):
            return {"kind": "ref", "module": owner, "qualname": qualname}
        with contextlib.suppress(wire.Unencodable):
            return {"kind": "value", "value": wire.encode(value)}
        return {"kind": "handle", "value": self.encode(value), "callable": callable(value),
                "doc": getattr(value, "__doc__", None) if callable(value) else None}  # fmt: skip

    def answer(self, request: Any) -> dict[str, Any]:
        with _Capture(self.cap) as cap:
            try:
                reply = self.perform(request)
            except BaseException as exc:  # noqa: BLE001 - SystemExit included: it is the candidate's outcome
                reply = {"raised": _exception(exc)}
        return {**reply, **cap.fields()}

    def perform(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        target = self.decode(request["target"])
        if op == "getattr":
            return {"value": self.encode(getattr(target, request["name"]))}
        if op == "call":
            args = [self.decode(a) for a in request["args"]]
            kwargs = {k: self.decode(v) for k, v in request["kwargs"]}
            result = target(*args, **kwargs)
            # Arguments changed in place travel back, so tests that check a mutation still see it.
            after = [[i, self.encode(a)] for i, a in enumerate(args) if type(a) in (list, dict, set)]
            return {"value": self.encode(result), "after": after}
        if op in _UNARY:
            return {"value": self.encode(_UNARY[op](target))}
        if op in _BINARY:
            return {"value": self.encode(_BINARY[op](target, self.decode(request["other"])))}
        raise ValueError(f"unknown op {op!r}")


_UNARY: dict[str, Callable[[Any], Any]] = {
    "len": len,
    "iter": iter,
    "next": next,
    "repr": repr,
    "str": str,
    "bool": bool,
    "hash": hash,
}
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "getitem": lambda obj, key: obj[key],
    "contains": lambda obj, item: item in obj,
    "eq": lambda a, b: a == b,
}


if __name__ == "__main__":
    main()
