"""Take the code out of a model's reply: a fenced block (with or without a language tag) or the bare reply."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3", ""}


def extract_code(reply: str, entry_hint: str | None = None) -> str:
    """The most plausible Python source in ``reply``.

    Prefers Python-tagged (or untagged) fenced blocks, then the one that defines ``entry_hint``,
    then the longest; an unclosed fence (a reply cut by max_tokens) still counts; a reply with no
    fence is taken as code.
    """
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(reply)]
    candidates = [body for tag, body in blocks if tag in _PYTHON_TAGS] or [body for _, body in blocks]
    if not candidates:
        return reply.strip() + "\n"
    if entry_hint:
        defining = [b for b in candidates if re.search(rf"^\s*(def|class)\s+{re.escape(entry_hint)}\b", b, re.M)]
        candidates = defining or candidates
    return max(candidates, key=len).strip() + "\n"
