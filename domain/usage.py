"""What a run or sweep used, as people read it: one token total and one way to write money."""

from __future__ import annotations

import math
from typing import Protocol


class HasTokens(Protocol):
    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


def total_tokens(usage: HasTokens) -> int:
    """The token total shown anywhere: prompt plus completion tokens of every call counted in ``usage``."""
    return usage.prompt_tokens + usage.completion_tokens


def usd(value: float | None, *, signed: bool = False) -> str:
    """Money for people: ``$0``, ``$0.0042`` (two significant digits below a dollar), ``$12.35``;
    ``unknown`` when a price was missing. ``signed`` writes a change (``+$0.0042``, ``-$1.50``)."""
    if value is None:
        return "unknown"
    sign = ("+" if value > 0 else "-" if value < 0 else "") if signed else ("-" if value < 0 else "")
    amount = abs(value)
    if amount == 0:
        return f"{sign}$0"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = 1 - math.floor(math.log10(amount))
    return f"{sign}${amount:.{decimals}f}".rstrip("0").rstrip(".")
