"""A sweep's write batch: the rows of many runs written as one file per table, not one file per write.

A run writes six or seven one-row files (``routes``, ``calls``, ``attempts``, ``verdicts``, ``runs``,
the sweep's ``sweep_tasks`` row, ...); in a sweep of short runs those writes cost more than the run's
own work (docs/traces.md, "Throughput"). Inside :func:`batched` every :meth:`TraceStore.write` to that
store adds its rows here instead, and :meth:`WriteBatch.flush` writes each table's rows as one file
(each still atomic: written under a temporary name, renamed).

Crash safety rests on the order of a flush: every other table first, then ``runs``, then
``sweep_tasks``. A run adds its ``runs`` row after all its other rows and the sweep adds the ledger
row after that, so on disk a ledger row means its run's ``runs`` row is there, and a ``runs`` row
means all of the run's rows are. A ``kill -9`` loses only the rows not flushed yet: runs without a
ledger row, which a resume runs again (or adopts, when their ``runs`` row made it,
domain/sweep_ledger.py). When to flush is a :class:`Ticker`'s call, the same for a local sweep's
loop and a shard of a sweep on the work pool (flows/shard.py); a shard given up on drops what it
holds (:meth:`WriteBatch.discard`), since its unfinished tasks are run again elsewhere.

Reads through :meth:`TraceStore.read` see the pending rows too; DuckDB queries see files only (the
sweep's own in-run lookup of a run's row asks :meth:`WriteBatch.pending` first).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from orchestrator.settings import get_settings

if TYPE_CHECKING:
    from orchestrator.traces import TraceStore

#: Written last, in this order: the run's row, then the sweep's ledger row that points at it.
LAST = ("runs", "sweep_tasks")


class WriteBatch:
    """Rows waiting for one file per table; thread-safe (a sweep's runs add from many threads)."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self._rows: dict[str, list[BaseModel]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.flushed_at = time.monotonic()

    def add(self, table: str, rows: Sequence[BaseModel]) -> None:
        with self._lock:
            self._rows.setdefault(table, []).extend(rows)

    def count(self, table: str) -> int:
        with self._lock:
            return len(self._rows.get(table, ()))

    def pending(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        """The table's rows not flushed yet whose fields equal ``equals``."""
        with self._lock:
            rows = list(self._rows.get(table, ()))
        dumped = [row.model_dump() for row in rows]
        return [r for r in dumped if all(r.get(k) == v for k, v in equals.items())]

    def discard(self) -> int:
        """Drop what is pending, unwritten; returns how many rows. For a writer whose runs are being
        run again elsewhere (a shard given up on, or one cut short in the middle of a run): flushing
        would double those runs, or leave a run's rows without its ``runs`` row."""
        with self._lock:
            dropped, self._rows = self._rows, {}
        return sum(len(rows) for rows in dropped.values())

    def flush(self) -> int:
        """Write what is pending, one file per table, ``runs`` and ``sweep_tasks`` last; returns rows written.

        Rows added while a flush writes go to the next one. A failed write keeps its table's rows
        and those of every table after it for the next flush, so the order holds on disk.
        """
        with self._flush_lock:  # one flush at a time: two could otherwise reorder runs and ledger files
            with self._lock:
                taken, self._rows = self._rows, {}
            order = sorted(taken, key=lambda t: (LAST.index(t) + 1) if t in LAST else 0)
            written = 0
            for i, table in enumerate(order):
                try:
                    self.store.write_now(table, taken[table])
                except BaseException:
                    with self._lock:  # put back this table and the later ones, before newer rows
                        for later in order[i:]:
                            self._rows[later] = [*taken[later], *self._rows.get(later, [])]
                    raise
                written += len(taken[table])
            self.flushed_at = time.monotonic()
            return written


class Ticker:
    """When a batch's rows are due on disk: every ``ORCH_SWEEP_TICK_RUNS`` finished runs or
    ``ORCH_SWEEP_TICK_S`` seconds since the last tick, whichever comes first; that is what a kill can
    lose. Per run would cost more than the runs on object storage (a request per file)."""

    def __init__(self, done: int = 0) -> None:
        settings = get_settings()
        self.runs, self.seconds = settings.sweep_tick_runs, settings.sweep_tick_s
        self._last = (done, time.monotonic())

    def tick(self, done: int, force: bool = False) -> bool:
        """Whether it is time, ``done`` runs having finished (always when ``force``); if so, the next
        tick counts from now."""
        runs, at = self._last
        if not (force or done - runs >= self.runs or time.monotonic() - at >= self.seconds):
            return False
        self._last = (done, time.monotonic())
        return True


_current: contextvars.ContextVar[WriteBatch | None] = contextvars.ContextVar("trace_write_batch", default=None)


def batch_for(store: TraceStore) -> WriteBatch | None:
    """The batch of the current context when it collects this store's writes."""
    batch = _current.get()
    return batch if batch is not None and batch.store.root == store.root else None


@contextmanager
def batched(store: TraceStore) -> Iterator[WriteBatch]:
    """Collect the writes to ``store`` made in this context (and in threads started with a copy of it)
    until the block ends; the rest is flushed then, also when the block raises."""
    batch = WriteBatch(store)
    token = _current.set(batch)
    try:
        yield batch
    finally:
        _current.reset(token)
        batch.flush()
