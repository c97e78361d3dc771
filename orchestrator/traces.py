"""The trace store: Parquet tables, one immutable file per write, queryable with DuckDB.

Each ``write`` produces a new Parquet file, written under a temporary name and moved into
place with an atomic rename, so a crash leaves either the whole file or nothing, and
concurrent writers never touch the same file. A table is the union of its files.

The root is a local folder or a URI that ``pyarrow.fs`` opens (``s3://bucket/prefix``,
``gs://bucket/prefix``, ``file:///abs/path``), so workers on several machines can share one store.
On an object store a file is written in place: a PUT (or a completed multipart upload) is atomic,
the object appears whole or not at all. Credentials come from the store's usual environment
(``AWS_ACCESS_KEY_ID``, ...), never from the URI, which travels in flow parameters and logs.
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
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel

from orchestrator import records
from orchestrator.errors import ConfigurationError

_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}

#: Table name -> row model (all of them defined in :mod:`orchestrator.records`).
TABLES: dict[str, type[BaseModel]] = dict(records.TABLE_ROWS)


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


#: URI query keys that would put a credential into flow parameters, logs and traces.
_SECRET_URI_KEYS = ("access_key", "secret_key", "session_token")


def absolute_root(root: str | os.PathLike[str]) -> str:
    """``root`` as other processes (workers, later runs) can reopen it: a URI as is, a folder made absolute."""
    text = os.fspath(root)
    return text if "://" in text else str(Path(text).resolve())


def _open_root(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in root:
        return pafs.LocalFileSystem(), root
    query = root.partition("?")[2].lower()
    if any(key in query for key in _SECRET_URI_KEYS):
        raise ConfigurationError(
            "the traces URI carries a credential; remove it and set AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY (or the store's own variables) in the environment instead"
        )
    try:
        return pafs.FileSystem.from_uri(root)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ConfigurationError(f"cannot open the traces store {root!r}: {exc}") from None


class TraceStore:
    """Tables of Parquet files under ``root``: a local folder, or a URI such as ``s3://bucket/prefix``.

    ``root`` keeps what was given (a remote store's URI with its options), so ``str(store.root)``
    opens the same store again. Paths returned by :meth:`write` and :meth:`files` are ``Path`` objects
    for a local store and, for a remote one, paths inside :attr:`fs`
    (``pq.read_table(path, filesystem=store.fs)``).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.fs, base = _open_root(os.fspath(root))
        self.remote = not isinstance(self.fs, pafs.LocalFileSystem)
        self.root: Path | str = os.fspath(root) if self.remote else Path(base)
        self._base = base.rstrip("/") if self.remote else base

    def table_dir(self, table: str) -> Path | str:
        return f"{self._base}/{table}" if self.remote else Path(self._base) / table

    def write(self, table: str, rows: Sequence[BaseModel]) -> Path | str | None:
        """Append rows to a table as one new Parquet file; returns its path."""
        if not rows:
            return None
        row_model = TABLES[table]
        schema = arrow_schema(row_model)
        data = [row.model_dump() for row in rows]
        arrow_table = pa.Table.from_pylist(data, schema=schema)
        run_id = str(data[0].get("run_id") or data[0].get("sweep_id") or "rows")
        name = f"{_safe(run_id)}-{uuid.uuid4().hex[:12]}.parquet"
        if self.remote:
            # Written in place: an object store's PUT is atomic, so readers never see half a file.
            remote_path = f"{self.table_dir(table)}/{name}"
            pq.write_table(arrow_table, remote_path, filesystem=self.fs)
            return remote_path
        folder = Path(self.table_dir(table))
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / name
        tmp = final.with_name(final.name + ".tmp")
        pq.write_table(arrow_table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    def files(self, table: str) -> list[Path] | list[str]:
        if self.remote:
            found = self.fs.get_file_info(pafs.FileSelector(str(self.table_dir(table)), allow_not_found=True))
            return sorted(info.path for info in found if info.path.endswith(".parquet"))
        folder = Path(self.table_dir(table))
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def read(self, table: str) -> pa.Table:
        files = self.files(table)
        schema = arrow_schema(TABLES[table])
        if not files:
            return schema.empty_table()
        return pa.concat_tables(
            [pq.read_table(f, filesystem=self.fs) for f in files], promote_options="permissive"
        )

    def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        out = self.read(table).to_pylist()
        return [r for r in out if all(r.get(k) == v for k, v in equals.items())]

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table (empty tables still have their columns)."""
        con = duckdb.connect()
        for name in TABLES:
            files = self.files(name)
            if files and self.remote:
                # DuckDB reads object stores only through an extension it downloads; Arrow scans for it.
                dataset = pads.dataset(files, schema=arrow_schema(TABLES[name]), filesystem=self.fs)
                con.register(f"_{name}_remote", dataset)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_remote")
            elif files:
                pattern = str(Path(self.table_dir(name)) / "*.parquet").replace("'", "''")
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

