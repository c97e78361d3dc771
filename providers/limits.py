"""Bounds on calls per provider and per model, shared by every run of the process, adaptive on 429.

Each bound holds calls in flight below a limit and, optionally, requests below N a minute (a
sliding window). The in-flight limit adapts as Inspect's adaptive connections do, in a simpler
AIMD form: a 429 halves it (at most once per back-off episode, so a burst of 429s is one cut), and
every ``limit`` clean successes after that add one again, up to the configured ceiling.

A call takes its model's bound first, then its provider's: waiting on a model's bound never holds
one of the provider's slots, so two models of one provider cannot starve each other.

Scope: one process. Several workers on several machines each bound their own calls; see
docs/caching_budgets.md for why Prefect's global concurrency limits are not used for this.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from orchestrator.settings import CallLimit, Settings

WINDOW_S = 60.0


class AdaptiveBound:
    """Calls in flight below an adaptive limit, and requests below ``rpm`` in any 60 s."""

    def __init__(
        self, name: str, ceiling: int | None, rpm: int | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.ceiling = ceiling
        self.limit = ceiling
        self.rpm = rpm
        self.in_flight = 0
        self.peak = 0
        self.cuts = 0
        self._clock = clock
        self._starts: deque[float] = deque()
        self._clean = 0
        self._calm_after = 0.0
        self._cond = threading.Condition()

    def _rpm_wait(self, now: float) -> float:
        while self._starts and now - self._starts[0] >= WINDOW_S:
            self._starts.popleft()
        if self.rpm is None or len(self._starts) < self.rpm:
            return 0.0
        return WINDOW_S - (now - self._starts[0])

    def wait_s(self) -> float:
        """Seconds until the requests-a-minute bound lets another call start (0: now)."""
        with self._cond:
            return max(0.0, self._rpm_wait(self._clock()))

    def acquire(self) -> None:
        with self._cond:
            while True:
                now = self._clock()
                full = self.limit is not None and self.in_flight >= self.limit
                wait = self._rpm_wait(now)
                if not full and wait <= 0:
                    break
                # Woken by a release; an rpm wait ends on its own when the window slides.
                self._cond.wait(timeout=wait if wait > 0 and not full else None)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.rpm is not None:
                self._starts.append(now)

    def release(self, *, rate_limited: bool = False, retry_after_s: float | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            now = self._clock()
            if rate_limited and self.limit is not None:
                if now >= self._calm_after:
                    self.limit = max(1, self.limit // 2)
                    self.cuts += 1
                    self._calm_after = now + max(1.0, retry_after_s or 0.0)
                self._clean = 0
            elif (
                self.limit is not None
                and self.ceiling is not None
                and self.limit < self.ceiling
                and now >= self._calm_after
            ):
                self._clean += 1
                if self._clean >= self.limit:
                    self.limit += 1
                    self._clean = 0
            self._cond.notify_all()


class CallLimits:
    """The process's bounds, made on first use from the settings: per provider, per provider:model."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._bounds: dict[str, AdaptiveBound] = {}
        self._lock = threading.Lock()

    def _spec(self, key: str, in_flight: int | None, rpm: int | None) -> CallLimit:
        override = self._settings.limits.get(key)
        return CallLimit(
            in_flight=override.in_flight if override and override.in_flight else in_flight,
            rpm=override.rpm if override and override.rpm else rpm,
        )

    def bound(self, key: str, *, model_level: bool) -> AdaptiveBound | None:
        with self._lock:
            if key not in self._bounds:
                s = self._settings
                spec = (
                    self._spec(key, s.model_in_flight, s.model_rpm)
                    if model_level
                    else self._spec(key, s.provider_in_flight, s.provider_rpm)
                )
                if spec.in_flight is None and spec.rpm is None:
                    return None
                self._bounds[key] = AdaptiveBound(key, spec.in_flight, spec.rpm)
            return self._bounds[key]

    def bounds_for(self, provider: str, model: str) -> list[AdaptiveBound]:
        found = [self.bound(f"{provider}:{model}", model_level=True), self.bound(provider, model_level=False)]
        return [b for b in found if b is not None]

    @contextmanager
    def slot(self, provider: str, model: str) -> Iterator[Slot]:
        """Hold one place in the model's and the provider's bounds for one try."""
        slot = Slot()

        def release(bound: AdaptiveBound) -> None:
            bound.release(rate_limited=slot.rate_limited, retry_after_s=slot.retry_after_s)

        with ExitStack() as stack:
            for bound in self.bounds_for(provider, model):
                bound.acquire()
                stack.callback(release, bound)
            yield slot


class Slot:
    """What a try reports back to its bounds when it ends."""

    rate_limited = False
    retry_after_s: float | None = None

    def saw_rate_limit(self, retry_after_s: float | None) -> None:
        self.rate_limited = True
        self.retry_after_s = retry_after_s


_limits: dict[str, CallLimits] = {}
_limits_lock = threading.Lock()


def shared_limits(settings: Settings) -> CallLimits:
    """The process's bounds for these limit settings: every run with the same settings shares them."""
    key = settings.model_dump_json(
        include={"provider_in_flight", "provider_rpm", "model_in_flight", "model_rpm", "limits"}
    )
    with _limits_lock:
        if key not in _limits:
            _limits[key] = CallLimits(settings)
        return _limits[key]
