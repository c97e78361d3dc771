"""Prefect's console logging sent to a file before a rich progress display takes the terminal.

Prefect prints INFO lines (the temporary server's banners, each flow and task run's states) through a
console handler on the root logger, which writes to the real stderr and tears a live progress bar or
status spinner apart. For ``run`` and ``sweep`` that handler is silenced and every Prefect record goes
to the log file instead (``ORCH_LOG_FILE``, default ``<ORCH_CACHE_DIR>/orchestrator.log``); the records
still reach the Prefect UI through Prefect's API handler, which is untouched. It stays so until the
process exits, so the temporary server's stop line does not follow the summary either.

The Prefect API is reached before the display starts, so a temporary server's start-up (seconds on a
loaded machine) is neither on the bar's clock nor under its spinner: the display times the work.
"""

from __future__ import annotations

import logging
from pathlib import Path

#: above CRITICAL: the console handler lets nothing through
_MUTED = logging.CRITICAL + 10


def prefect_console_to_file(log_file: Path) -> None:
    import prefect.logging.handlers  # configures Prefect's logging, so its console handler exists
    from prefect.client.orchestration import get_client

    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, prefect.logging.handlers.PrefectConsoleHandler):
            handler.setLevel(_MUTED)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    root.addHandler(to_file)
    with get_client(sync_client=True) as client:  # starts the temporary server if no PREFECT_API_URL
        client.api_healthcheck()
