"""Writes to the Prefect API that only record what happened (artifacts, progress): retried, never fatal.

The verdict of record is in the trace store; the Prefect UI shows it. When Prefect's server answers
503/429/5xx, times out or restarts, the write is retried with jittered exponential back-off for up
to :data:`RETRY_FOR_S` (on top of the Prefect client's own retries of 429/502/503); if it still
fails, it is logged and dropped, so a task that would pass still passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

__all__ = ["RETRY_FOR_S", "bookkeeping", "transient"]

log = logging.getLogger("orchestrator.bookkeeping")

#: How long one bookkeeping write keeps trying (a restarted server is back well within this).
RETRY_FOR_S = 60.0

P = ParamSpec("P")
T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """An API failure that may pass: a 408/429/5xx answer, a refused or dropped connection, a timeout."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code in (408, 429) or code >= 500
    return isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError)


def bookkeeping(what: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """``call(*args, **kwargs)``, retried while it fails transiently; None (logged) when it never succeeds.

    A non-transient failure (a 4xx: our request is wrong) is logged at once, not retried.
    """
    try:
        for attempt in Retrying(
            retry=retry_if_exception(transient),
            stop=stop_after_delay(RETRY_FOR_S),
            wait=wait_exponential_jitter(initial=0.2, max=5.0),
            reraise=True,
        ):
            with attempt:
                return call(*args, **kwargs)
    except Exception as exc:  # bookkeeping: the run's own record is in the trace store
        log.warning("%s was not recorded in Prefect: %s: %s", what, type(exc).__name__, exc)
    return None
