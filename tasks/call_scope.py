"""What a run's model calls share beyond their arguments: its budget, its cache choice, its sample
(and whether the run publishes its own artifacts); and what they spent (every call of the run: the tester's, the judge's, the router's, each retry).

A flow (or the CLI, or a sweep) attaches a :class:`RunScope` to a run id before the run starts;
:func:`tasks.model_call.call_model` looks it up by the run id its :class:`CallContext` carries, so
no task between the two needs a new parameter. A run without a scope has no budget, lets
ORCH_CACHE decide, and is sample 0.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from orchestrator.budget import Budget
from orchestrator.records import CallRow, Usage


@dataclass(frozen=True)
class RunScope:
    budget: Budget | None = None
    cache: bool | None = None  # --cache/--no-cache; None: ORCH_CACHE decides
    sample: int = 0  # the sweep's sample index: part of the cache key, so samples stay distinct
    # False in a sweep's in-process runs: the sweep's progress and task table show each run in the UI,
    # and two artifacts a run cost more API calls than its own work (docs/traces.md, "Throughput")
    artifacts: bool = True


_scopes: dict[str, RunScope] = {}
_spent: dict[str, Usage] = {}
_lock = threading.Lock()


def count_call(row: CallRow) -> None:
    """Add a ``calls`` row to its run's spend (a failed try's cost, never known, counts 0)."""
    with _lock:
        _spent.setdefault(row.run_id, Usage()).spend(
            row.prompt_tokens, row.completion_tokens, row.cost_usd if row.ok else 0.0
        )


def spent_by_run(run_id: str, *, forget: bool = False) -> Usage:
    """What the run's calls in this process spent so far: the one token and cost total of a run
    (its ``calls`` rows summed). ``forget``: the run is over, drop its tally."""
    with _lock:
        usage = _spent.pop(run_id, None) if forget else _spent.get(run_id)
        return usage.model_copy() if usage is not None else Usage()


def scope_for(run_id: str) -> RunScope:
    with _lock:
        return _scopes.get(run_id) or RunScope()


def has_scope(run_id: str) -> bool:
    with _lock:
        return run_id in _scopes


@contextmanager
def scoped(run_id: str, scope: RunScope) -> Iterator[RunScope]:
    """Attach ``scope`` to ``run_id`` for the duration of the block."""
    with _lock:
        _scopes[run_id] = scope
    try:
        yield scope
    finally:
        with _lock:
            _scopes.pop(run_id, None)
