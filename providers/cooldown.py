"""Cooldown of a provider/model that keeps failing, the way LiteLLM's router benches a deployment.

A model that answers 429, or fails more than ``ORCH_COOLDOWN_FAILURES`` times within
``ORCH_COOLDOWN_WINDOW_S`` (a minute by default), is cooled down for ``ORCH_COOLDOWN_S`` or for as
long as the server's Retry-After asked, whichever is longer. While it cools down, callers serve
from its fallbacks (tasks/model_call.py); when every worker of a call is cooling down, the call
waits for the first to come back rather than fail. Shared by every run of the process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from pydantic import BaseModel

from orchestrator.settings import Settings


class Bench(BaseModel):
    """One model's current cooldown."""

    until: float
    reason: str


class Cooldowns:
    def __init__(
        self,
        *,
        allowed_failures: int,
        window_s: float,
        period_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_failures = allowed_failures
        self.window_s = window_s
        self.period_s = period_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._benched: dict[str, Bench] = {}
        self._lock = threading.Lock()

    def record_failure(self, key: str, kind: str, retry_after_s: float | None = None) -> str | None:
        """Count one failed try; returns the reason when this failure starts (or extends) a cooldown."""
        with self._lock:
            now = self._clock()
            times = self._failures.setdefault(key, deque())
            times.append(now)
            while times and now - times[0] > self.window_s:
                times.popleft()
            if kind == "rate_limit":
                asked = f", Retry-After {retry_after_s:g} s" if retry_after_s is not None else ""
                reason = f"429 rate limit{asked}"
            elif len(times) > self.allowed_failures:
                reason = f"{len(times)} failures within {self.window_s:g} s (last: {kind})"
            else:
                return None
            until = now + max(self.period_s, retry_after_s or 0.0)
            current = self._benched.get(key)
            if current is None or until > current.until:
                self._benched[key] = Bench(until=until, reason=reason)
            return reason

    def remaining(self, key: str) -> tuple[float, str | None]:
        """Seconds of cooldown left for ``key`` (0 when it may be called) and why it was benched."""
        with self._lock:
            bench = self._benched.get(key)
            if bench is None:
                return 0.0, None
            left = bench.until - self._clock()
            if left <= 0:
                del self._benched[key]
                return 0.0, None
            return left, bench.reason


_cooldowns: dict[tuple[int, float, float], Cooldowns] = {}
_cooldowns_lock = threading.Lock()


def shared_cooldowns(settings: Settings) -> Cooldowns:
    """The process's cooldowns for these settings (every run with the same settings shares them)."""
    key = (settings.cooldown_failures, settings.cooldown_window_s, settings.cooldown_s)
    with _cooldowns_lock:
        if key not in _cooldowns:
            _cooldowns[key] = Cooldowns(allowed_failures=key[0], window_s=key[1], period_s=key[2])
        return _cooldowns[key]
