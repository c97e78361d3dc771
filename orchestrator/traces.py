"""The trace store: Parquet tables, one immutable file per write, compacted, queryable with DuckDB.

Each ``write`` produces a new Parquet file, written under a temporary name and moved into
place with an atomic rename, so a crash leaves either the whole file or nothing, and
concurrent writers never touch the same file. Small files are merged into large ones (compaction,
orchestrator/trace_files.py) without a reader ever seeing a row twice or missing one, so queries stay
fast as history grows. Every file carries the trace schema version.

The root is a local folder or a URI that ``pyarrow.fs`` opens (``s3://bucket/prefix``,
``gs://bucket/prefix``, ``file:///abs/path``), so workers on several machines can share one store.
On an object store a file is written in place: a PUT (or a completed multipart upload) is atomic,
the object appears whole or not at all. Credentials come from the store's usual environment
(``AWS_ACCESS_KEY_ID``, ...), never from the URI, which travels in flow parameters and logs.
"""

from __future__ import annotations

import logging
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from pydantic import BaseModel

from orchestrator import records
from orchestrator.errors import ConfigurationError
from orchestrator.trace_batch import batch_for
from orchestrator.trace_files import TableFiles, check_older_files, file_metadata, read_files, write_name

_log = logging.getLogger(__name__)

_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}

#: The same types as DuckDB names them.
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
}

#: Table name -> row model (all of them defined in :mod:`orchestrator.records`).
TABLES: dict[str, type[BaseModel]] = dict(records.TABLE_ROWS)


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

    ``compact_after``: a local table's write files are merged once there are this many (default
    ``ORCH_TRACES_COMPACT_FILES``; 0 turns it off). On an object store compaction is explicit
    (:meth:`compact`), see orchestrator/trace_files.py. ``delete_grace_s``: how long merged files
    stay after the file that replaces them appeared (default ``ORCH_TRACES_DELETE_GRACE_S``).
    ``fsync``: each local file is flushed to disk before its rename (default ``ORCH_TRACES_FSYNC``,
    on): a power loss cannot leave a torn file. A killed process cannot either way.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        compact_after: int | None = None,
        delete_grace_s: float | None = None,
        fsync: bool | None = None,
    ) -> None:
        self.fs, base = _open_root(os.fspath(root))
        self.remote = not isinstance(self.fs, pafs.LocalFileSystem)
        self.root: Path | str = os.fspath(root) if self.remote else Path(base)
        self._base = base.rstrip("/") if self.remote else base
        if compact_after is None or delete_grace_s is None or fsync is None:
            from orchestrator.settings import get_settings

            settings = get_settings()
            if compact_after is None:
                compact_after = 0 if self.remote else settings.traces_compact_files
            if delete_grace_s is None:
                delete_grace_s = settings.traces_delete_grace_s
            if fsync is None:
                fsync = settings.traces_fsync
        self.compact_after = compact_after
        self.delete_grace_s = delete_grace_s
        self.fsync = fsync

    def table_dir(self, table: str) -> Path | str:
        return f"{self._base}/{table}" if self.remote else Path(self._base) / table

    def _files(self, table: str) -> TableFiles:
        return TableFiles(
            self.fs, str(self.table_dir(table)), table, local=not self.remote, grace_s=self.delete_grace_s
        )

    def _path(self, path: str) -> Path | str:
        return path if self.remote else Path(path)

    def write(self, table: str, rows: Sequence[BaseModel]) -> Path | str | None:
        """Append rows to a table as one new Parquet file (atomic: whole or absent); returns its path.

        Inside :func:`orchestrator.trace_batch.batched` for this store the rows wait for the batch's
        flush instead (None is returned). A local table whose write files reach ``compact_after`` is
        compacted here, by the writer that finds the compaction lock free (the others go on).
        """
        if not rows:
            return None
        batch = batch_for(self)
        if batch is not None:
            batch.add(table, rows)
            return None
        return self.write_now(table, rows)

    def write_now(self, table: str, rows: Sequence[BaseModel]) -> Path | str | None:
        """:meth:`write` without a batch: the rows' file now."""
        if not rows:
            return None
        data = [row.model_dump() for row in rows]
        label = str(data[0].get("run_id") or data[0].get("sweep_id") or "rows")
        return self.append(table, pa.Table.from_pylist(data, schema=arrow_schema(TABLES[table])), label)

    def append(self, table: str, data: pa.Table, label: str = "rows") -> Path | str:
        """Append an Arrow table in the table's schema as one new file (what :meth:`write` does for rows)."""
        schema = arrow_schema(TABLES[table])
        files = self._files(table)
        path = files.write(
            data.cast(schema), write_name(_safe(label)), file_metadata(table), fsync=self.fsync
        )
        if self.compact_after > 0:
            try:
                if files.needs_compaction(self.compact_after):
                    files.compact(schema, self.compact_after)
            except Exception as exc:  # the rows are written; a merge that failed is tried again later
                _log.warning(
                    "trace table %s: compaction failed (%s); it is retried on a later write", table, exc
                )
        return self._path(path)

    def compact(self, table: str | None = None, *, everything: bool = True) -> dict[str, int]:
        """Merge each table's files (all of them with ``everything``); returns files merged per table.

        Files of an older trace schema are rewritten in today's. Safe beside writers and readers; on
        an object store, run one compaction at a time.
        """
        names = [table] if table else self.table_names()
        return {
            name: self._files(name).compact(
                arrow_schema(TABLES[name]) if name in TABLES else None,
                self.compact_after or 1,
                everything=everything,
            )
            for name in names
        }

    def files(self, table: str) -> list[Path] | list[str]:
        """The files that hold the table now (compacted files' sources excluded), oldest first."""
        live = _retrying(lambda: self._files(table).live())
        if self.remote:
            return [f.path for f in live]
        return [Path(f.path) for f in live]

    def read(self, table: str, **equals: Any) -> pa.Table:
        import pyarrow.dataset as pads  # imports pandas: not on the path of `orchestrator traces sql`

        schema = arrow_schema(TABLES[table])
        condition = None
        for key, value in equals.items():
            term = pads.field(key).is_null() if value is None else pads.field(key) == value
            condition = term if condition is None else condition & term

        def attempt() -> pa.Table:
            live = self._files(table).live()
            if not live:
                return schema.empty_table()
            check_older_files(self.fs, live, schema, table)
            data = read_files(self.fs, [f.path for f in live], schema, table)
            return data if condition is None else data.filter(condition)

        found = _retrying(attempt)
        batch = batch_for(self)
        pending = batch.pending(table, **equals) if batch is not None else []
        return pa.concat_tables([found, pa.Table.from_pylist(pending, schema=schema)]) if pending else found

    def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        return self.read(table, **equals).to_pylist()

    def connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table (or per one of ``tables``), in today's columns
        (empty tables too)."""
        return _retrying(lambda: self._connect(tables))

    def table_names(self) -> list[str]:
        """The registered tables, then any other table folder found in the store (a module not imported here)."""
        return [*TABLES, *(name for name in self._folders() if name not in TABLES)]

    def _folders(self) -> list[str]:
        if self.remote:
            found = self.fs.get_file_info(pafs.FileSelector(self._base, allow_not_found=True))
            return sorted(
                i.base_name
                for i in found
                if i.type == pafs.FileType.Directory and _TABLE_NAME.match(i.base_name)
            )
        try:
            return sorted(e.name for e in os.scandir(self._base) if e.is_dir() and _TABLE_NAME.match(e.name))
        except FileNotFoundError:
            return []

    def _connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        names = self.table_names()
        if tables is not None:
            wanted = set(tables)
            names = [n for n in names if n in wanted]
        try:
            for name in names:
                self._create_view(con, name)
        except BaseException:
            con.close()
            raise
        return con

    def _create_view(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        live = self._files(name).live()
        paths = [f.path for f in live]
        if name not in TABLES:  # a table whose row model is not imported: the files' own columns
            if paths and not self.remote:
                listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
                con.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}], union_by_name=true)"
                )
            elif paths:
                import pyarrow.dataset as pads

                con.register(name, pads.dataset(paths, format="parquet", filesystem=self.fs))
            return
        schema = arrow_schema(TABLES[name])
        check_older_files(self.fs, live, schema, name)
        # Today's columns in today's types, whatever each file has (an older file's int32 reads as BIGINT).
        columns = ", ".join(f'CAST("{f.name}" AS {_DUCKDB_TYPES[str(f.type)]}) AS "{f.name}"' for f in schema)
        # An empty relation of today's columns, in SQL: registering an Arrow table makes DuckDB import pandas.
        empty = ", ".join(
            f'CAST(NULL AS {_DUCKDB_TYPES[str(field.type)]}) AS "{field.name}"' for field in schema
        )
        con.execute(f"CREATE TEMP VIEW _{name}_empty AS SELECT {empty} WHERE false")
        if not paths:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")
        elif self.remote:
            # DuckDB reads object stores only through an extension it downloads; Arrow scans for it.
            import pyarrow.dataset as pads

            dataset = pads.dataset(paths, schema=schema, format="parquet", filesystem=self.fs)
            con.register(f"_{name}_files", dataset)
            con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM _{name}_files")
        else:
            listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
            # Today's columns, whatever each file has: the empty table brings columns older files lack.
            con.execute(
                f"CREATE VIEW {name} AS SELECT {columns} FROM "
                f"(SELECT * FROM read_parquet([{listed}], union_by_name=true) "
                f"UNION ALL BY NAME SELECT * FROM _{name}_empty)"
            )

    def sql(self, query: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a DuckDB query (with ``?`` parameters) over views of the tables it names; its columns and rows."""
        try:  # views for the tables the query names only: a query of one table lists one folder
            # DuckDB refuses to parse ``?`` here; NULL in its place leaves the table names as they are.
            named: set[str] | None = duckdb.get_table_names(query.replace("?", "NULL") if params else query)
        except duckdb.Error:
            named = None  # let the query itself report what is wrong with it

        def attempt() -> tuple[list[str], list[tuple[Any, ...]]]:
            con = self._connect(named)
            try:
                cursor = con.execute(query, params)
                columns = [d[0] for d in cursor.description or []]
                return columns, cursor.fetchall()
            finally:
                con.close()

        return _retrying(attempt)


_T = typing.TypeVar("_T")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _retrying(read: typing.Callable[[], _T], attempts: int = 5) -> _T:
    """``read()``, listed again when a file it listed was deleted meanwhile (a compaction finished)."""
    for left in range(attempts - 1, -1, -1):
        try:
            return read()
        except FileNotFoundError:
            if not left:
                raise
        except duckdb.IOException as exc:
            if not left or "No files found" not in str(exc) and "No such file" not in str(exc):
                raise
    raise AssertionError("unreachable")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:64]
