"""Budgets in dollars and tokens for a run or a sweep: reserve before a call, charge after it.

A call is refused *before* it starts when what is spent, plus what calls in flight are expected to
spend, plus what this call is expected to spend, would cross a limit; a call that started always
finishes (a run stops between calls, never in the middle of one). The expectation of a call is
the mean of this budget's finished calls; before any has finished, the prompt's own size (a lower
bound, so the first calls are never refused on a guess). A sweep asks the same question for a
whole run before starting it (:meth:`Budget.run_refusal`), counting the expected remainder of the
runs in flight.

Unknown prices: a call whose cost is unknown (a model missing from the price table) makes a dollar
budget meaningless, so a dollar budget refuses every later call unless it was told to ignore
unpriced models (then their cost counts as 0 and is reported as unknown).

Pure bookkeeping, thread-safe, no I/O: the model-call layer and the sweep share one object.
"""

from __future__ import annotations

import threading

from pydantic import BaseModel


class BudgetExhausted(Exception):
    """A budget refused to start a model call; nothing of that call was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Usage(BaseModel):
    tokens: int = 0
    cost_usd: float = 0.0


class Budget:
    def __init__(
        self,
        *,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        ignore_unpriced: bool = False,
        already_spent: Usage | None = None,
    ) -> None:
        self.max_cost_usd = max_cost_usd
        self.max_tokens = max_tokens
        self.ignore_unpriced = ignore_unpriced
        prior = already_spent or Usage()
        self.spent_tokens = prior.tokens
        self.spent_cost = prior.cost_usd
        self.session = Usage()  # spent by this process's calls (what the per-call mean is taken over)
        self.calls = 0
        self.unpriced: set[str] = set()  # provider:model labels that answered without a price
        self.refused: dict[str, str] = {}  # run id -> why a call of it was refused
        self._reserved: dict[int, tuple[str, Usage]] = {}
        self._by_run: dict[str, Usage] = {}
        self._tickets = 0
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self.max_cost_usd is not None or self.max_tokens is not None

    def describe(self) -> str:
        parts = []
        if self.max_cost_usd is not None:
            parts.append(f"${self.spent_cost:.6f} of ${self.max_cost_usd:g}")
        if self.max_tokens is not None:
            parts.append(f"{self.spent_tokens} of {self.max_tokens} tokens")
        if self.unpriced:
            parts.append(f"unpriced: {', '.join(sorted(self.unpriced))}")
        return "; ".join(parts) or "no limit"

    def _crossing(self, extra: Usage, what: str) -> str | None:
        """Why spending ``extra`` on top of what is spent would cross a limit, else None."""
        if self.max_tokens is not None and self.spent_tokens + extra.tokens > self.max_tokens:
            return (
                f"budget of {self.max_tokens} tokens: {self.spent_tokens} spent, "
                f"~{extra.tokens} more expected for {what}"
            )
        if self.max_cost_usd is not None and self.spent_cost + extra.cost_usd > self.max_cost_usd + 1e-12:
            return (
                f"budget of ${self.max_cost_usd:g}: ${self.spent_cost:.6f} spent, "
                f"~${extra.cost_usd:.6f} more expected for {what}"
            )
        return None

    def _unpriced_refusal(self) -> str | None:
        if self.max_cost_usd is not None and self.unpriced and not self.ignore_unpriced:
            return (
                f"budget of ${self.max_cost_usd:g}: {', '.join(sorted(self.unpriced))} has no price, so the "
                "spend is unknown; add it to ORCH_PRICES_FILE or pass --ignore-unpriced"
            )
        return None

    def _in_flight(self) -> Usage:
        return Usage(
            tokens=sum(u.tokens for _, u in self._reserved.values()),
            cost_usd=sum(u.cost_usd for _, u in self._reserved.values()),
        )

    def reserve(self, run_id: str, prompt_estimate: Usage) -> int:
        """Reserve the expected spend of one call, or raise :class:`BudgetExhausted`; returns a ticket."""
        with self._lock:
            if self.calls:
                expected = Usage(tokens=self.session.tokens // self.calls, cost_usd=self.session.cost_usd / self.calls)
            else:
                expected = prompt_estimate
            flying = self._in_flight()
            total = Usage(tokens=flying.tokens + expected.tokens, cost_usd=flying.cost_usd + expected.cost_usd)
            reason = self._unpriced_refusal() or self._crossing(total, "the next call and those in flight")
            if reason is not None:
                self.refused.setdefault(run_id, reason)
                raise BudgetExhausted(reason)
            self._tickets += 1
            self._reserved[self._tickets] = (run_id, expected)
            return self._tickets

    def charge(self, run_id: str, label: str, tokens: int, cost_usd: float | None) -> None:
        """Count one answered try (failed tries carry no tokens)."""
        with self._lock:
            cost = cost_usd or 0.0
            if cost_usd is None:
                self.unpriced.add(label)
            self.spent_tokens += tokens
            self.spent_cost += cost
            self.session = Usage(tokens=self.session.tokens + tokens, cost_usd=self.session.cost_usd + cost)
            run = self._by_run.get(run_id, Usage())
            self._by_run[run_id] = Usage(tokens=run.tokens + tokens, cost_usd=run.cost_usd + cost)

    def finish(self, ticket: int) -> None:
        """The call for ``ticket`` ended (answered or failed): its reservation is released."""
        with self._lock:
            if self._reserved.pop(ticket, None) is not None:
                self.calls += 1

    def run_refusal(self, expected_run: Usage, in_flight_runs: list[str]) -> str | None:
        """Why a sweep should not start another run now (None: start it).

        Counts what is spent, what each run in flight is still expected to spend (the mean run
        less what it spent so far, or its calls' reservations if larger), and one more mean run.
        """
        with self._lock:
            refusal = self._unpriced_refusal()
            if refusal is not None:
                return refusal
            tokens, cost = expected_run.tokens, expected_run.cost_usd
            for run_id in in_flight_runs:
                spent = self._by_run.get(run_id, Usage())
                held = [u for r, u in self._reserved.values() if r == run_id]
                tokens += max(expected_run.tokens - spent.tokens, sum(u.tokens for u in held))
                cost += max(expected_run.cost_usd - spent.cost_usd, sum(u.cost_usd for u in held))
            return self._crossing(Usage(tokens=tokens, cost_usd=cost), "the next run and those in flight")
