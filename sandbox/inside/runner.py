"""The trusted runner, inside the sandbox (pytest and the standard library only): a zygote.

Started once per warm sandbox as its own uid, it imports pytest and waits for one JSON command a
line on stdin, answering one JSON line on stdout (a channel no process of the candidate's holds):

- ``open``: write a session's files under ``ROOT/<sid>/work`` (the test suites in directories only
  this uid can read; the candidate's own file unreadable to this uid, so nothing trusted can import
  it by mistake);
- ``suite``: listen on a socket for the candidate's process, answer ``listening``, then fork a fresh
  child with the suite's rlimits that accepts that one connection (checked by its peer uid), puts the
  proxy of the candidate's module in ``sys.modules``, runs ``pytest.main`` on the suite with a plugin
  that records each test's outcome, and sends the outcome back once pytest's own session end has
  run; the zygote answers ``result`` with it;
- ``close``: remove the session's files (answered by nothing: the host does not wait).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest  # imported once here: every suite's child starts with it loaded

from . import proxy
from .candidate import set_limits

#: Sessions live here (writable by this uid only; the candidate's uid reads the working trees).
ROOT = os.environ.get("ORCH_SESSIONS", "/s")
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


#: The options every suite runs with that decide which plugins load (the rest are per suite).
_PLUGIN_ARGS = ["-p", "no:cacheprovider"]
#: A Config with pytest's builtin plugins and the installed (entry-point) ones registered, made
#: once here: building it is a third of what ``pytest.main`` costs. Each child completes its own copy.
_PREBUILT: Any = None


def _warm_up() -> None:
    """Import and set up what every pytest run needs, so that the forked children need not."""
    global _PREBUILT
    from _pytest.config import default_plugins, get_config

    for name in default_plugins:
        with contextlib.suppress(ImportError):
            importlib.import_module(f"_pytest.{name}")
    _rehearse()
    if pytest.__version__.startswith("7."):  # the internals below are 7.x's; others: pytest.main
        with contextlib.suppress(Exception):
            config = get_config(list(_PLUGIN_ARGS))
            config.pluginmanager.load_setuptools_entrypoints("pytest11")
            _reuse_argument_parsers()
            parser: Any = config._parser
            parser._getparser()  # built once here, for the options every suite has
            _PREBUILT = config
    gc.freeze()  # what the zygote holds stays shared with its children instead of being copied


def _reuse_argument_parsers() -> None:
    """pytest builds its argparse parser anew for each of the six times it parses a command line;
    reuse it while no option was added since (a conftest that adds options gets a fresh one)."""
    from _pytest.config import argparsing

    parser_class: Any = argparsing.Parser
    build = parser_class._getparser

    def cached(self: Any) -> Any:
        key = tuple(id(option) for group in [*self._groups, self._anonymous] for option in group.options)
        built = self.__dict__.get("_orch_parser")
        if built is None or built[0] != key:
            built = self.__dict__["_orch_parser"] = (key, build(self))
        return built[1]

    parser_class._getparser = cached


def _rehearse() -> None:
    """One pytest run on a throw-away suite, here in the zygote: what pytest imports lazily (pdb,
    ...) and the regular expressions it compiles are then ready in every child. Its test module and
    path entries are removed again; nothing of a task is involved."""
    folder = tempfile.mkdtemp(prefix="rehearsal-")
    test = os.path.join(folder, "test_orch_rehearsal.py")
    with open(test, "w", encoding="utf-8") as fh:
        fh.write("import pytest\n\n@pytest.mark.parametrize('x', [1])\ndef test_it(x):\n    assert x == 1\n")
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    out = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        with contextlib.suppress(BaseException):
            pytest.main([test, *_PLUGIN_ARGS, "-q", "-c", os.devnull, "--rootdir", folder])
    finally:
        sys.stdout.flush()
        os.dup2(out, 1)
        os.close(out)
        os.close(null)
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if "rehearsal" in name:
                del sys.modules[name]
        shutil.rmtree(folder, ignore_errors=True)


def _pytest_main(args: list[str], recorder: Recorder) -> int:
    """``pytest.main(args, plugins=[recorder])``, starting from the prebuilt Config when there is one.

    The same steps as pytest's own ``main`` (7.x), minus building the plugin manager again; plugins
    installed in this python were loaded into it by the zygote (so autoload is off here).
    """
    if _PREBUILT is None:
        return int(pytest.main(args, plugins=[recorder]))
    from _pytest.config import Config, ConftestImportFailure, ExitCode

    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    config = _PREBUILT
    config.invocation_params = Config.InvocationParams(args=args, plugins=None, dir=Path.cwd())
    manager = config.pluginmanager
    manager.register(recorder)
    try:
        config = manager.hook.pytest_cmdline_parse(pluginmanager=manager, args=args)
    except ConftestImportFailure as exc:
        cause = getattr(exc, "excinfo", (None, exc))[1]
        print(f"ImportError while loading conftest '{exc.path}': {cause!r}", file=sys.stderr)
        config._ensure_unconfigure()
        return int(ExitCode.USAGE_ERROR)
    except BaseException:
        config._ensure_unconfigure()
        raise
    try:
        return int(config.hook.pytest_cmdline_main(config=config))
    finally:
        config._ensure_unconfigure()


def main() -> None:
    _warm_up()
    os.umask(0o022)
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "open":
            write_session(command["sid"], command["files"], command["suites"], command["entry"])
            _reply({"ok": True})
        elif op == "suite":
            run_suite(command)
        elif op == "close":  # no answer: the host need not wait for the files to go
            shutil.rmtree(os.path.join(ROOT, command["sid"]), ignore_errors=True)
        else:
            _reply({"error": f"unknown op {op!r}"})


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _write_tree(base: str, files: dict[str, str], dir_mode: int, file_mode: int) -> None:
    for rel, text in files.items():
        path = os.path.join(base, rel)
        parent = os.path.dirname(path)
        for folder in _parents(base, parent):
            if not os.path.isdir(folder):
                os.mkdir(folder)
                os.chmod(folder, dir_mode)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, file_mode)


def _parents(base: str, folder: str) -> list[str]:
    out = []
    while folder != base and folder.startswith(base + "/"):
        out.append(folder)
        folder = os.path.dirname(folder)
    return out[::-1]


def write_session(sid: str, files: dict[str, str], suites: dict[str, dict[str, str]], entry: str) -> None:
    work = os.path.join(ROOT, sid, "work")
    os.makedirs(work, mode=0o755)
    os.chmod(os.path.dirname(work), 0o755)
    os.chmod(work, 0o755)
    _write_tree(work, {k: v for k, v in files.items() if k != entry}, 0o755, 0o644)
    # Owner bits apply to the owner alone: this uid cannot read the candidate's file, others can.
    _write_tree(work, {entry: files[entry]}, 0o755, 0o044)
    for folder, tests in suites.items():
        base = os.path.join(work, folder)
        os.mkdir(base, 0o700)
        os.chmod(base, 0o700)  # the candidate's uid cannot even list the tests
        _write_tree(base, tests, 0o700, 0o600)


def run_suite(command: dict[str, Any]) -> None:
    sid, index = command["sid"], command["index"]
    address = os.path.join(ROOT, sid, f"candidate-{index}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    os.chmod(address, 0o666)  # the candidate's uid connects; the directory is not writable to it
    listener.listen(4)
    _reply({"listening": address})
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        status = 1
        try:
            _suite_child(command, listener, write_end)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    listener.close()
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, 9)  # whatever the tests started
    os.unlink(address)
    try:
        result = json.loads(data) if data else None
    except ValueError:
        result = None
    _reply({"result": result, "status": os.waitstatus_to_exitcode(wait_status)})


class Recorder:
    """One outcome per test as JUnit counts it: error (collection, setup or teardown) over failure
    (the call) over skipped over passed, with the message JUnit would give it (the crash line);
    and whether pytest's own session end ran."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, str]] = {}  # nodeid -> {"name", "outcome", "message"}
        self.finished = False
        self.exitstatus: int | None = None

    def _set(self, nodeid: str, name: str, outcome: str, report: Any) -> None:
        if _RANK[outcome] >= _RANK[self.cases.get(nodeid, {}).get("outcome", "passed")]:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr or "")
            self.cases[nodeid] = {"name": name, "outcome": outcome, "message": message}

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = report.nodeid.rsplit("::", 1)[-1]  # as JUnit names a case: test_x[1-2]
        if report.when == "call":
            outcome = "passed" if report.passed else "failed" if report.failed else "skipped"
            self._set(report.nodeid, name, outcome, report)
        elif report.failed:
            self._set(report.nodeid, name, "error", report)
        elif report.skipped:
            self._set(report.nodeid, name, "skipped", report)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self._set(f"collect::{report.nodeid}", report.nodeid, "error", report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: Any, exitstatus: Any) -> None:
        self.finished = True
        self.exitstatus = int(exitstatus)



def _accepter(listener: socket.socket, uid: int, deadline: float) -> socket.socket:
    """The one connection of the candidate's process: any other peer is refused."""
    while True:
        listener.settimeout(max(deadline - time.monotonic(), 0.001))
        conn, _ = listener.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] == uid:
            listener.close()
            return conn
        conn.close()


def _suite_child(command: dict[str, Any], listener: socket.socket, result_fd: int) -> None:
    started = time.monotonic()
    os.setsid()
    set_limits(command["limits"])
    work = os.path.join(ROOT, command["sid"], "work")
    capture = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"suite-{os.getpid()}.out")
    out_fd = os.open(capture, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.chdir(work)
    sys.path.insert(0, work)  # as `python -m pytest` run in the working tree would
    deadline = started + float(command["timeout_s"])
    conn = proxy.Connection(lambda: _accepter(listener, int(command["uid"]), deadline), deadline)
    import_error = proxy.install(command["module"], conn)
    if import_error is not None:
        print(f"importing {command['module']} failed in the candidate's process:", import_error)
        for note in getattr(import_error, "__notes__", []):
            print(note)
    recorder = Recorder()
    args = [
        command["dir"], *_PLUGIN_ARGS, "-q", "--tb=short", "--no-header",
        "-c", command["ini"] or os.devnull, "--rootdir", ".", "--confcutdir", ".",
    ]  # fmt: skip
    exit_status = _pytest_main(args, recorder)
    sys.stdout.flush()
    sys.stderr.flush()
    cap = int(command["output_bytes"])
    size = os.lseek(out_fd, 0, os.SEEK_END)
    os.lseek(out_fd, 0, os.SEEK_SET)
    output = os.read(out_fd, cap).decode("utf-8", errors="replace")
    if size > cap:
        output += f"\n[output truncated: {size - cap} more bytes not shown]"
    os.unlink(capture)
    result = {
        "finished": recorder.finished,
        "exit_status": exit_status,
        "cases": list(recorder.cases.values()),
        "output": output,
        "import_error": None if import_error is None else f"{type(import_error).__name__}: {import_error}",
        "duration_s": time.monotonic() - started,
    }
    data = json.dumps(result).encode("utf-8")
    while data:
        data = data[os.write(result_fd, data) :]
    os.close(result_fd)


if __name__ == "__main__":
    main()
