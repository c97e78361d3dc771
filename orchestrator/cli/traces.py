"""``orchestrator traces``: query the Parquet trace tables with DuckDB."""

from __future__ import annotations

import json
from typing import Annotated

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli import app
from orchestrator.cli.options import TracesOption, open_store
from orchestrator.errors import UserInputError
from orchestrator.traces import TABLES

traces_app = typer.Typer(help="Query the trace tables (Parquet) with DuckDB.", no_args_is_help=True)
app.add_typer(traces_app, name="traces")



@traces_app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="A DuckDB query; tables: " + ", ".join(TABLES))],
    traces: TracesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a row.")] = False,
) -> None:
    """Run SQL over the trace tables (each table is a view)."""
    store = open_store(traces)
    try:
        columns, rows = store.sql(query)
    except duckdb.Error as exc:
        raise UserInputError(f"query failed: {str(exc).splitlines()[0]}") from None
    if as_json:
        for row in rows:
            print(json.dumps(dict(zip(columns, row, strict=True)), default=str))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


@traces_app.command("tables")
def tables(traces: TracesOption = None) -> None:
    """List the tables with their row and file counts."""
    store = open_store(traces)
    table = Table("table", "files", "rows")
    for name in TABLES:
        table.add_row(name, str(len(store.files(name))), str(store.read(name).num_rows))
    Console().print(table)
