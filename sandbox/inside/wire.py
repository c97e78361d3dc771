"""What crosses between the trusted test process and the candidate's process: plain data only.

Runs inside the sandbox (standard library only). A frame is a 4-byte big-endian length and that
many bytes of UTF-8 JSON. Values are encoded as a JSON tree in which every JSON object is a tag:

    null, true, false, numbers, strings -> themselves     [..] -> list
    {"t": [..]} tuple    {"d": [[k, v], ..]} dict    {"s": [..]} set    {"f": [..]} frozenset
    {"b": "hex"} bytes   {"c": [re, im]} complex     {"r": id} a handle to an object of the candidate's

``decode`` builds nothing but builtin containers and scalars (and, for ``r``, whatever the caller's
``handle`` function makes), so what the trusted side gets back cannot run code of the candidate's:
no ``__eq__``, ``__hash__`` or ``__bool__`` of its choosing. The candidate's side may send any bytes
at all; ``decode`` refuses what does not fit this grammar with ``ProtocolError``.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from typing import Any

#: The largest frame either side accepts (a value, a reply, a report).
MAX_FRAME = 32 * 1024 * 1024
#: How deep a value may nest.
MAX_DEPTH = 200
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """What came over the wire is not a well-formed frame or value."""


class Unencodable(TypeError):
    """A value that is not plain data (and no handle function was given)."""


def send(sock: socket.socket, message: Any) -> None:
    data = json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise Unencodable(f"message of {len(data)} bytes is over the {MAX_FRAME}-byte limit")
    sock.sendall(_HEADER.pack(len(data)) + data)


def recv(sock: socket.socket) -> Any:
    """One message; EOFError when the peer closed (or died), ProtocolError when it sent garbage."""
    size = _HEADER.unpack(_read_exactly(sock, _HEADER.size))[0]
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    try:
        return json.loads(_read_exactly(sock, size).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProtocolError(f"frame is not JSON: {exc}") from None


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- values


def encode(value: Any, handle: Callable[[Any], int] | None = None, depth: int = 0) -> Any:
    """A value as a JSON tree. Subclasses of the builtin types travel as the builtin type (an
    ``IntEnum`` as an int, a namedtuple as a tuple, a ``Counter`` as a dict); anything else becomes
    a handle when ``handle`` is given, else raises Unencodable."""
    if depth > MAX_DEPTH:
        raise Unencodable("value nests too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    d = depth + 1
    if isinstance(value, list):
        return [encode(v, handle, d) for v in value]
    if isinstance(value, tuple):
        return {"t": [encode(v, handle, d) for v in value]}
    if isinstance(value, dict):
        return {"d": [[encode(k, handle, d), encode(v, handle, d)] for k, v in value.items()]}
    if isinstance(value, frozenset):
        return {"f": [encode(v, handle, d) for v in value]}
    if isinstance(value, set):
        return {"s": [encode(v, handle, d) for v in value]}
    if isinstance(value, bytes | bytearray):
        return {"b": bytes(value).hex()}
    if isinstance(value, complex):
        return {"c": [value.real, value.imag]}
    if handle is not None:
        return {"r": handle(value)}
    raise Unencodable(f"a value of type {type(value).__name__} is not plain data")


def decode(tree: Any, handle: Callable[[int], Any] | None = None, depth: int = 0) -> Any:
    """The value a JSON tree stands for, built from builtin types only."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nests too deeply")
    kind = type(tree)
    if tree is None or kind in (bool, int, float, str):
        return tree
    d = depth + 1
    if kind is list:
        return [decode(v, handle, d) for v in tree]
    if kind is not dict or len(tree) != 1:
        raise ProtocolError(f"not a value: {str(tree)[:80]}")
    ((tag, body),) = tree.items()
    try:
        if tag == "t" and type(body) is list:
            return tuple(decode(v, handle, d) for v in body)
        if tag == "d" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("a dict entry is not a [key, value] pair")
                out[decode(pair[0], handle, d)] = decode(pair[1], handle, d)
            return out
        if tag == "s" and type(body) is list:
            return {decode(v, handle, d) for v in body}
        if tag == "f" and type(body) is list:
            return frozenset(decode(v, handle, d) for v in body)
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if (
            tag == "c"
            and type(body) is list
            and len(body) == 2
            and all(type(x) in (int, float) for x in body)
        ):
            return complex(body[0], body[1])
        if tag == "r" and type(body) is int and handle is not None:
            return handle(body)
    except TypeError as exc:  # an unhashable key or set member (a list)
        raise ProtocolError(f"not a value: {exc}") from None
    except ValueError as exc:  # bad hex
        raise ProtocolError(f"not a value: {exc}") from None
    raise ProtocolError(f"not a value: unknown tag {tag!r}")
