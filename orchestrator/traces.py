"""The trace store: Parquet tables, one immutable file per write, queryable with DuckDB.

Each ``write`` produces a new Parquet file, written under a temporary name and moved into
place with an atomic rename, so a crash leaves either the whole file or nothing, and
concurrent writers never touch the same file. A table is the union of its files.
"""

from __future__ import annotations

import os
import types
import typing
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from orchestrator import records

_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}

#: Table name -> row model. Modules add their own tables with :func:`register_table`.
TABLES: dict[str, type[BaseModel]] = {
    "runs": records.RunRow,
    "calls": records.CallRow,
    "attempts": records.AttemptRow,
}


def register_table(name: str, row_model: type[BaseModel]) -> None:
    TABLES[name] = row_model


def _arrow_type(annotation: Any) -> pa.DataType:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _arrow_type(args[0])
    if origin is typing.Literal:
        return pa.string()
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"trace rows hold scalars only; cannot store {annotation!r}")


def arrow_schema(row_model: type[BaseModel]) -> pa.Schema:
    return pa.schema(
        [pa.field(name, _arrow_type(field.annotation)) for name, field in row_model.model_fields.items()]
    )


class TraceStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def write(self, table: str, rows: Sequence[BaseModel]) -> Path | None:
        """Append rows to a table as one new Parquet file; returns its path."""
        if not rows:
            return None
        row_model = TABLES[table]
        schema = arrow_schema(row_model)
        data = [row.model_dump() for row in rows]
        arrow_table = pa.Table.from_pylist(data, schema=schema)
        folder = self.table_dir(table)
        folder.mkdir(parents=True, exist_ok=True)
        run_id = str(data[0].get("run_id") or data[0].get("sweep_id") or "rows")
        final = folder / f"{_safe(run_id)}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = final.with_name(final.name + ".tmp")
        pq.write_table(arrow_table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    def files(self, table: str) -> list[Path]:
        folder = self.table_dir(table)
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def read(self, table: str) -> pa.Table:
        files = self.files(table)
        schema = arrow_schema(TABLES[table])
        if not files:
            return schema.empty_table()
        return pa.concat_tables(
            [pq.read_table(f) for f in files], promote_options="permissive"
        )

    def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        out = self.read(table).to_pylist()
        return [r for r in out if all(r.get(k) == v for k, v in equals.items())]

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table (empty tables still have their columns)."""
        con = duckdb.connect()
        for name in TABLES:
            files = self.files(name)
            if files:
                pattern = str(self.table_dir(name) / "*.parquet").replace("'", "''")
                con.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{pattern}', union_by_name=true)"
                )
            else:
                empty = arrow_schema(TABLES[name]).empty_table()
                con.register(f"_{name}_empty", empty)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")
        return con

    def sql(self, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        con = self.connect()
        try:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            return columns, cursor.fetchall()
        finally:
            con.close()


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:64]

