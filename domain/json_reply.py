"""Pull one JSON object out of a model's reply, however the model wrapped or mangled it.

Models asked for JSON answer with prose around it, code fences, trailing commas, Python literals
(``True``, ``None``), single quotes, or a reply cut off by the token limit. Each of those is repaired
where it can be; ``how`` says which path succeeded, so the trace shows how trustworthy a parse was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```[ \t]*[A-Za-z]*[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_WORD = re.compile(r"\w+")
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_MAX_STARTS = 20  # braces tried as the start of an object: replies are short, junk should not cost much
_MAX_CUTS = 6  # how far back a cut-off reply is shortened, a comma at a time, before giving up


@dataclass(frozen=True)
class JsonReply:
    value: dict[str, Any] | None
    how: str  # json | fenced | embedded | repaired | failed | empty


def parse_json_object(text: str) -> JsonReply:
    """The first JSON object in ``text`` (bare, fenced, embedded in prose, or repaired)."""
    text = text.strip()
    if not text:
        return JsonReply(None, "empty")
    value = _loads(text)
    if value is not None:
        return JsonReply(value, "json")
    for block in _FENCE.findall(text):
        value = _loads(block)
        if value is not None:
            return JsonReply(value, "fenced")
    start = text.find("{")
    for _ in range(_MAX_STARTS):
        if start < 0:
            break
        span = text[start:]
        value = _loads(span[: _object_end(span)])
        if value is not None:
            return JsonReply(value, "embedded")
        value = _repaired(span)
        if value is not None:
            return JsonReply(value, "repaired")
        start = text.find("{", start + 1)
    return JsonReply(None, "failed")


def _loads(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also a number longer than int() converts
        return None
    return value if isinstance(value, dict) else None


def _object_end(span: str) -> int:
    """Index just past the brace that closes the object opening ``span`` (or len(span) when none does)."""
    depth, quote, escaped = 0, False, False
    for i, c in enumerate(span):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(span)


def _repaired(span: str) -> dict[str, Any] | None:
    """Repair ``span`` (an object's text, possibly cut off); shorten it a comma at a time if that fails."""
    value = _loads(_repair(span))
    cut = len(span)
    for _ in range(_MAX_CUTS):
        if value is not None:
            return value
        cut = span.rfind(",", 0, cut)
        if cut <= 0:
            return None
        value = _loads(_repair(span[:cut]))
    return value


def _repair(span: str) -> str:
    """Trailing commas dropped, Python literals and single quotes made JSON, open strings and brackets closed."""
    out: list[str] = []
    closers: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(span):
        c = span[i]
        if quote:
            if c == "\\" and i + 1 < len(span):
                out.append(span[i : i + 2])
                i += 2
                continue
            if c == quote:
                out.append('"')
                quote = None
            else:
                out.append('\\"' if c == '"' else "\\n" if c == "\n" else c)
        elif c in "\"'":
            quote = c
            out.append('"')
        elif c in "{[":
            closers.append("}" if c == "{" else "]")
            out.append(c)
        elif c in "}]":
            if c in closers:
                _drop_trailing_comma(out)
                while closers and closers[-1] != c:  # close what the model forgot to close first
                    out.append(closers.pop())
                out.append(closers.pop())
                if not closers:
                    break  # the object is complete; what follows is prose
        elif c.isalpha() or c == "_":
            word = _WORD.match(span, i)  # from i, without copying the rest of the reply
            assert word is not None  # every str.isalpha() character (and "_") is a \w character
            out.append(_PY_LITERALS.get(word.group(), word.group()))
            i += len(word.group())
            continue
        else:
            out.append(c)
        i += 1
    if quote:
        out.append('"')
    _drop_trailing_comma(out)
    text = "".join(out).rstrip()
    if text.endswith(":"):
        text += " null"
    return text + "".join(reversed(closers))


def _drop_trailing_comma(out: list[str]) -> None:
    j = len(out) - 1
    while j >= 0 and out[j].isspace():
        j -= 1
    if j >= 0 and out[j] == ",":
        del out[j]
