"""Options several commands share."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore

TracesOption = Annotated[
    str | None,
    typer.Option("--traces", help="Trace store: a folder or s3://bucket/prefix (default ORCH_TRACES_DIR or ./traces)."),
]


def open_store(traces: str | None) -> TraceStore:
    return TraceStore(traces or get_settings().traces_dir)
