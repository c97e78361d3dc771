"""``orchestrator traces``: query the Parquet trace tables with DuckDB."""

from __future__ import annotations

import json
from typing import Annotated

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
    import duckdb

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
    for name in store.table_names():
        rows = store.sql(f"SELECT count(*) FROM {name}")[1][0][0] if name in TABLES or store.files(name) else 0
        table.add_row(name, str(len(store.files(name))), str(rows))
    Console().print(table)


@traces_app.command("compact")
def compact(
    traces: TracesOption = None,
    table: Annotated[str | None, typer.Option("--table", help="Only this table.")] = None,
) -> None:
    """Merge each table's files into one (files of an older trace schema are rewritten in today's).

    Safe while sweeps write and read. Local tables are compacted as they grow; run this on an object
    store (one compaction at a time there), or to merge everything now.
    """
    store = open_store(traces)
    if table is not None and table not in store.table_names():
        raise UserInputError(f"no table {table!r}; tables: {', '.join(store.table_names())}")
    merged = store.compact(table)
    for name, count in merged.items():
        if count:
            print(f"{name}: {count} files merged into one")
