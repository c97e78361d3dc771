"""The logger of whatever runs now: the Prefect flow or task run's, else a plain module logger."""

from __future__ import annotations

import logging

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside Prefect (lines show in the UI); outside any run (plain runners, tests), ours."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("orchestrator")
