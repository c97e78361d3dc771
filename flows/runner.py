"""How a workflow's steps run their Prefect tasks: as task runs of the current flow, or as plain calls.

Steps (flows/coding_steps.py, flows/questions.py) never call ``task.submit`` or ``task(...)``
themselves; they hand the task and its arguments to a :class:`Runner`:

- :class:`PrefectRunner` inside a flow run: each call is a task run (retries, UI entry), fanned out
  on the flow's task runner. ``orchestrator run`` and the per-workflow flows use it.
- :class:`PlainRunner` anywhere: the task's function in a thread pool, with the task's own retry
  count. Tests use it without a Prefect server; a sweep can use it to run many tasks' steps inside
  one flow run without a subflow and task runs per task.

Either way :meth:`Runner.map` returns, per call, the result or the exception it raised, so a step
decides what one failed candidate means.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from prefect import Task

__all__ = ["PlainRunner", "PrefectRunner", "Runner"]

Call = dict[str, Any]


class Runner(Protocol):
    def call(self, task: Task[..., Any], /, **kwargs: Any) -> Any:
        """Run one task and return its result (its exception propagates)."""
        ...

    def map(self, task: Task[..., Any], calls: Sequence[Call], /) -> list[Any]:
        """Run the task once per keyword set, concurrently; each result or the exception it raised."""
        ...


class PrefectRunner:
    """Task runs of the current flow run, submitted to its task runner."""

    def call(self, task: Task[..., Any], /, **kwargs: Any) -> Any:
        return task(**kwargs)

    def map(self, task: Task[..., Any], calls: Sequence[Call], /) -> list[Any]:
        futures = [task.submit(**kwargs) for kwargs in calls]
        # A failed task run's result is its exception, as with PlainRunner.
        return [f.result(raise_on_failure=False) for f in futures]


class PlainRunner:
    """The tasks' functions, called directly (``max_workers`` at once); no Prefect run context needed."""

    def __init__(self, max_workers: int = 4) -> None:
        self.max_workers = max_workers

    def call(self, task: Task[..., Any], /, **kwargs: Any) -> Any:
        # The task's retries, at once (its retry delay is for a shared engine's back-off).
        attempts = 1 + (task.retries or 0)
        for attempt in range(1, attempts + 1):
            try:
                return task.fn(**kwargs)
            except Exception:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def map(self, task: Task[..., Any], calls: Sequence[Call], /) -> list[Any]:
        if not calls:
            return []
        # Each call in a copy of the caller's context, as a task runner does: what the caller's context
        # carries (the sweep's trace write batch, Prefect's run context) holds in the call too.
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(calls))) as pool:
            contexts = [contextvars.copy_context() for _ in calls]
            return list(pool.map(lambda ctx, kwargs: ctx.run(_outcome, self.call, task, kwargs), contexts, calls))


def _outcome(call: Callable[..., Any], task: Task[..., Any], kwargs: Call) -> Any:
    try:
        return call(task, **kwargs)
    except Exception as exc:  # handed to the step, as a failed task run's result is
        return exc
