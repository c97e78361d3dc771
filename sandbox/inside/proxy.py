"""The candidate's module as the trusted test process sees it: a proxy, named like the module.

Runs inside the sandbox, in the trusted runner (standard library only). ``install`` puts a
:class:`CandidateModule` in ``sys.modules`` before any test is collected, so ``import solution`` and
``from solution import f`` find it and no import hook ever looks for the candidate's file. Its
attributes stand for the real ones, which live in the candidate's process: functions, classes and
other objects become :class:`Remote` handles, data defined at module level comes over as plain
values, imported standard-library modules and names are the trusted process's own.

Every call sends its arguments as data and gets back data (``wire``) or a handle: a :class:`Remote`
whose comparisons with trusted values never consult the candidate (an object whose ``__eq__`` says
yes to everything comes back as a handle that equals nothing but itself). An exception the candidate
raised is raised again here as the builtin exception type of that name with its arguments (a
``ValueError`` stays a ``ValueError``); any other type, and ``SystemExit``, as :class:`CandidateError`.
"""

from __future__ import annotations

import builtins
import importlib
import socket
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from . import wire


class CandidateError(RuntimeError):
    """The candidate's code raised something that is not a builtin exception, or its process failed."""


class Connection:
    """The trusted end of the socket to the candidate's process; every request has a deadline."""

    def __init__(self, accept: Callable[[], socket.socket], deadline: float) -> None:
        self._accept = accept
        self._sock: socket.socket | None = None
        self.deadline = deadline
        self.broken: str | None = None
        self.hello: dict[str, Any] | None = None

    def request(self, message: dict[str, Any] | None) -> dict[str, Any]:
        if self.broken:
            raise CandidateError(self.broken)
        try:
            if self._sock is None:
                self._sock = self._accept()
            self._sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
            if message is not None:
                wire.send(self._sock, message)
            reply = wire.recv(self._sock)
            if not isinstance(reply, dict):
                raise wire.ProtocolError("a reply is not an object")
        except TimeoutError:
            self.broken = "the candidate's code did not answer within the time limit"
        except EOFError:
            self.broken = "the candidate's process ended (it exited or was killed)"
        except wire.ProtocolError as exc:
            self.broken = f"the candidate's process sent something that is not data ({exc})"
        except wire.Unencodable as exc:
            raise TypeError(f"{exc}: only plain data can be passed to the candidate's code") from None
        except OSError as exc:
            self.broken = f"the connection to the candidate's process failed ({exc})"
        if self.broken:
            raise CandidateError(self.broken)
        for stream, name in ((sys.stdout, "out"), (sys.stderr, "err")):
            text = reply.get(name)
            if isinstance(text, str) and text:
                stream.write(text)  # what the candidate printed, where pytest captures this test's output
        return reply


class Remote:
    """An object of the candidate's, by handle. Comparison with anything but another Remote of the
    same process is identity; the operations that do go to the candidate return plain data."""

    __slots__ = ("_conn", "_id", "_doc", "__weakref__")

    def __init__(self, conn: Connection, handle: int, doc: Any = None) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_id", handle)
        object.__setattr__(self, "_doc", doc if isinstance(doc, str) else None)

    def _ask(self, op: str, **fields: Any) -> Any:
        conn = self._conn
        reply = conn.request({"op": op, "target": {"r": self._id}, **fields})
        if "raised" in reply:
            raise _exception(reply["raised"])
        return _decode(conn, reply.get("value"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        payload = {"args": [_encode(a) for a in args], "kwargs": [[k, _encode(v)] for k, v in kwargs.items()]}
        conn = self._conn
        reply = conn.request({"op": "call", "target": {"r": self._id}, **payload})
        if "raised" in reply:
            raise _exception(reply["raised"])
        after = reply.get("after", [])
        if not isinstance(after, list):
            raise CandidateError("the candidate's process sent a malformed reply")
        for entry in after:
            if (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], int)
                and 0 <= entry[0] < len(args)
            ):
                _apply_mutation(args[entry[0]], _decode(conn, entry[1]))
        return _decode(conn, reply.get("value"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            if name == "__doc__":
                return self._doc
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __len__(self) -> int:
        return _plain(self._ask("len"), int)

    def __iter__(self) -> Any:
        return self._ask("iter")

    def __next__(self) -> Any:
        return self._ask("next")

    def __getitem__(self, key: Any) -> Any:
        return self._ask("getitem", other=_encode(key))

    def __contains__(self, item: Any) -> bool:
        return _plain(self._ask("contains", other=_encode(item)), bool)

    def __str__(self) -> str:
        return _plain(self._ask("str"), str)

    def __repr__(self) -> str:
        try:
            return _plain(self._ask("repr"), str)
        except Exception:  # noqa: BLE001 - repr is used by pytest to explain a failure: never fail it
            return f"<candidate object #{self._id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Remote) and other._conn is self._conn:
            return other._id == self._id or _plain(self._ask("eq", other={"r": other._id}), bool)
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((id(self._conn), self._id))

    def __bool__(self) -> bool:
        return _plain(self._ask("bool"), bool)


def _plain(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise CandidateError(
            f"the candidate's object answered a {type(value).__name__}, not a {kind.__name__}"
        )
    return value


def _encode(value: Any) -> Any:
    def handle_of(obj: Any) -> int:
        if isinstance(obj, Remote):
            return obj._id
        raise wire.Unencodable(
            f"a value of type {type(obj).__name__} cannot be passed to the candidate's process"
        )

    return wire.encode(value, handle_of)


def _decode(conn: Connection, tree: Any) -> Any:
    try:
        return wire.decode(tree, lambda handle: Remote(conn, handle))
    except wire.ProtocolError as exc:
        conn.broken = f"the candidate's process sent something that is not data ({exc})"
        raise CandidateError(conn.broken) from None


def _apply_mutation(target: Any, state: Any) -> None:
    """Make a list, dict or set the test passed look as the candidate left its copy."""
    if type(target) is list and type(state) is list:
        target[:] = state
    elif type(target) in (dict, set) and type(state) is type(target):
        target.clear()
        target.update(state)


def _exception(info: Any) -> BaseException:
    if not isinstance(info, dict):
        return CandidateError("the candidate's code raised an exception that could not be described")
    name, message = str(info.get("type", "?")), str(info.get("message", ""))
    cls = getattr(builtins, name, None)
    error: BaseException
    if info.get("builtin") is True and isinstance(cls, type) and issubclass(cls, Exception):
        try:
            args = wire.decode(info.get("args")) if info.get("args") is not None else (message,)
            error = cls(*args) if isinstance(args, tuple) else cls(message)
        except Exception:  # noqa: BLE001 - arguments that do not fit the type: the message alone
            error = cls(message)
    else:
        error = CandidateError(f"{name}: {message}")
    tb = info.get("traceback")
    if isinstance(tb, str) and tb:
        error.add_note("in the candidate's process:\n" + tb.rstrip())
    return error


# ---------------------------------------------------------------- the module


class CandidateModule(types.ModuleType):
    """Stands for the candidate's module; built before the tests are collected."""

    __all__: list[str]


def build_module(name: str, conn: Connection) -> CandidateModule:
    module = CandidateModule(name)
    hello = conn.request(None)
    if "import_error" in hello:
        raise _exception(hello["import_error"])
    names = hello.get("names")
    if not isinstance(names, dict) or not isinstance(names.get("attrs"), dict):
        raise CandidateError("the candidate's process did not describe its module")
    for attr, info in names["attrs"].items():
        if isinstance(attr, str) and isinstance(info, dict):
            try:
                module.__dict__[attr] = _attribute(conn, info)
            except (ImportError, AttributeError, CandidateError):
                continue  # a name the trusted side cannot stand for is left out, as if never defined
    public = names.get("public")
    if isinstance(public, list):
        module.__all__ = [n for n in public if isinstance(n, str) and n in module.__dict__]
    doc = names.get("doc")
    module.__doc__ = doc if isinstance(doc, str) else None
    return module


def _attribute(conn: Connection, info: dict[str, Any]) -> Any:
    kind = info.get("kind")
    if kind == "module" and isinstance(info.get("name"), str) and _trusted_module(info["name"]):
        return importlib.import_module(info["name"])
    if kind == "ref" and isinstance(info.get("module"), str) and _trusted_module(info["module"]):
        value: Any = importlib.import_module(info["module"])
        for part in str(info.get("qualname", "")).split("."):
            value = getattr(value, part)
        return value
    if kind == "value":
        return _decode(conn, info.get("value"))
    if kind == "handle":
        value = _decode(conn, info.get("value"))
        if isinstance(value, Remote):
            object.__setattr__(value, "_doc", info.get("doc") if isinstance(info.get("doc"), str) else None)
        return value
    raise CandidateError(f"cannot stand for {info!r}")


def _trusted_module(name: str) -> bool:
    """Modules the trusted side may import on the candidate's word: the standard library's, or ones
    already imported here (pytest, the task's own files). Never the candidate's own."""
    return name in sys.modules or name.split(".")[0] in sys.stdlib_module_names


def install(module_name: str, conn: Connection) -> BaseException | None:
    """Put the proxy in ``sys.modules`` before any test or conftest is imported, so that no import
    hook (pytest's assertion rewriter included) ever looks for the candidate's file; return the
    exception the candidate's import raised, if it did (the module then cannot be imported)."""
    try:
        sys.modules[module_name] = build_module(module_name, conn)
    except Exception as exc:  # noqa: BLE001 - reported as the suite's import error
        sys.modules[module_name] = None  # type: ignore[assignment]  # `import` raises ModuleNotFoundError
        return exc
    return None
