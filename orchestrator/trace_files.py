"""The files of one trace table: how they are named, which of them hold the table, and compaction.

A table is a folder of immutable Parquet files of two kinds:

- a *write* file per :meth:`TraceStore.write` (level 0), written under a temporary name and renamed
  into place (one atomic step), or, on an object store, PUT whole;
- a *compacted* file (level 1 and up), the rows of several files merged into one. Its Parquet
  metadata lists the names of the files it replaces (``orchestrator.sources``).

The files that hold the table (the *live* files) are those of a listing that no compacted file of the
same listing names as a source. Compaction writes the merged file first, atomically; from that moment
every reader excludes its sources, and before it none knows of it: a reader never sees a row twice or
misses one. The replaced files are deleted only a grace period (``ORCH_TRACES_DELETE_GRACE_S``, 60 s)
after the merged file appeared, so
a reader whose directory listing was taken while it appeared still finds the sources it listed
(a listing is not a snapshot); a reader slower than that gets a missing file and lists again.

A compaction holds an exclusive ``flock`` on the table's lock file (released by the kernel when its
process dies, ``kill -9`` included); writers never wait for it. Object stores have no such lock:
there compaction is explicit (``orchestrator traces compact``) and must have one runner at a time.

Every file name and every file's metadata carry the trace schema version (``SCHEMA_VERSION``); files
from before versions existed are version 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.errors import ConfigurationError

#: The trace format's version. Older files read with today's columns (a column they lack is null).
#: 2: file names and metadata carry the version. 3: ``calls`` holds each try's request and reply
#: (null in older files: their transcripts say the messages were not recorded).
SCHEMA_VERSION = 3
#: Parquet metadata keys.
VERSION_KEY = b"orchestrator.schema_version"
SOURCES_KEY = b"orchestrator.sources"
TABLE_KEY = b"orchestrator.table"

#: Compacted files of one level merged into one of the next once there are this many.
FANOUT = 8
#: Levels stop here: a file of the top level is never rewritten (bounds a merge's cost).
MAX_LEVEL = 5
#: Rows per Parquet row group in compacted files.
ROW_GROUP_ROWS = 128 * 1024

_NAME = re.compile(r"^v(?P<version>\d+)-(?:L(?P<level>\d+)-)?")
_LOCK_NAME = ".compact.lock"


@dataclass(frozen=True)
class TraceFile:
    path: str
    name: str
    version: int
    level: int  # 0: one write's rows; 1 and up: compacted
    mtime: float


def parse_name(path: str, mtime: float = 0.0) -> TraceFile:
    name = path.rsplit("/", 1)[-1]
    match = _NAME.match(name)
    if match is None:  # written before file names carried a version
        return TraceFile(path, name, 1, 0, mtime)
    return TraceFile(path, name, int(match["version"]), int(match["level"] or 0), mtime)


def write_name(label: str) -> str:
    return f"v{SCHEMA_VERSION}-{time.time_ns():x}-{label}-{uuid.uuid4().hex[:12]}.parquet"


def compacted_name(level: int) -> str:
    return f"v{SCHEMA_VERSION}-L{level}-{time.time_ns():x}-{uuid.uuid4().hex[:12]}.parquet"


def file_metadata(table: str, sources: Sequence[str] = ()) -> dict[bytes, bytes]:
    meta = {VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()}
    if sources:
        meta[SOURCES_KEY] = json.dumps(list(sources)).encode()
    return meta


# Compacted files never change once written, so what their footers say is read once per process.
# Keyed by the filesystem's kind and the path (names are unique: a timestamp and a uuid), not by the
# filesystem object: every TraceStore opens its own, so an id() key grew by every compacted file
# for every store a sweep opened (~1 MB a task over a 1,000-task sweep).
_sources_cache: dict[tuple[str, str], frozenset[str]] = {}
_sources_lock = threading.Lock()


def _sources(fs: pafs.FileSystem, file: TraceFile) -> frozenset[str]:
    key = (fs.type_name, file.path)
    with _sources_lock:
        cached = _sources_cache.get(key)
    if cached is not None:
        return cached
    meta = pq.read_metadata(file.path, filesystem=fs).metadata or {}
    found = frozenset(json.loads(meta.get(SOURCES_KEY, b"[]")))
    with _sources_lock:
        _sources_cache[key] = found
    return found


class TableFiles:
    """The files of one table under ``folder`` on ``fs``; ``local`` when renames and flock are available."""

    def __init__(
        self, fs: pafs.FileSystem, folder: str, table: str, *, local: bool, grace_s: float = 60.0
    ) -> None:
        self.fs, self.folder, self.table, self.local = fs, folder, table, local
        self.grace_s = grace_s  # how long a replaced file outlives the compacted file that replaces it

    # ------------------------------------------------------------ listing

    def listing(self) -> list[TraceFile]:
        if self.local:
            try:
                entries = list(os.scandir(self.folder))
            except FileNotFoundError:
                return []
            files = []
            for entry in entries:
                if entry.name.endswith(".parquet"):
                    try:
                        files.append(parse_name(entry.path, entry.stat().st_mtime))
                    except FileNotFoundError:  # deleted since the scan (a compaction's clean-up)
                        continue
            return files
        found = self.fs.get_file_info(pafs.FileSelector(self.folder, allow_not_found=True))
        return [
            parse_name(info.path, info.mtime.timestamp() if info.mtime else 0.0)
            for info in found
            if info.path.endswith(".parquet") and info.type == pafs.FileType.File
        ]

    def split(self, listing: list[TraceFile]) -> tuple[list[TraceFile], list[TraceFile]]:
        """(live, replaced): the files that hold the table, and those a compacted file replaces."""
        replaced: set[str] = set()
        for file in listing:
            if file.level > 0:
                replaced |= _sources(self.fs, file)
        live = sorted((f for f in listing if f.name not in replaced), key=lambda f: f.name)
        return live, [f for f in listing if f.name in replaced]

    def live(self) -> list[TraceFile]:
        live, _ = self.split(self.listing())
        newer = [f for f in live if f.version > SCHEMA_VERSION]
        if newer:
            raise ConfigurationError(
                f"trace table {self.table!r}: {newer[0].path} has trace schema version {newer[0].version}, "
                f"newer than this orchestrator reads ({SCHEMA_VERSION}); upgrade orchestrator to read it"
            )
        return live

    # ------------------------------------------------------------ writing

    def write(self, table: pa.Table, name: str, metadata: dict[bytes, bytes], *, fsync: bool = True) -> str:
        """Write ``table`` as the file ``name``: whole or not at all."""
        table = table.replace_schema_metadata(metadata)
        final = f"{self.folder}/{name}"
        if not self.local:
            # An object store's PUT (or completed multipart upload) is atomic: the object appears whole.
            pq.write_table(table, final, filesystem=self.fs, row_group_size=ROW_GROUP_ROWS)
            return final
        os.makedirs(self.folder, exist_ok=True)
        tmp = final + ".tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    # ------------------------------------------------------------ compaction

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """True when this caller holds the table's compaction lock (never waits for it)."""
        if not self.local:
            yield True  # explicit compaction only, one runner at a time (see the module's docstring)
            return
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(os.path.join(self.folder, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def needs_compaction(self, threshold: int) -> bool:
        if threshold <= 0:
            return False
        live, _ = self.split(self.listing())
        return sum(1 for f in live if f.level == 0) >= threshold

    def compact(self, schema: pa.Schema | None, threshold: int, *, everything: bool = False) -> int:
        """Merge small files into larger ones; returns how many files were merged (0: lock busy or nothing).

        ``threshold``: level-0 files merged once there are this many; ``everything``: merge all live
        files below the top level into one, whatever their number (and rewrite older schema versions).
        ``schema`` None (a table whose row model is not imported): the files' own columns, unified.
        """
        with self._exclusive() as held:
            if not held:
                return 0
            self._delete_replaced()
            merged = 0
            live = self.live()
            level0 = [f for f in live if f.level == 0]
            if everything:
                inputs = [f for f in live if f.level < MAX_LEVEL or f.version < SCHEMA_VERSION]
                if len(inputs) > 1 or any(f.version < SCHEMA_VERSION for f in inputs):
                    top = max((f.level for f in inputs), default=0)
                    self._merge(inputs, schema, min(max(top, 1), MAX_LEVEL))
                    merged += len(inputs)
                return merged
            if threshold > 0 and len(level0) >= threshold:
                self._merge(level0, schema, 1)
                merged += len(level0)
            for level in range(1, MAX_LEVEL):
                same = [f for f in self.live() if f.level == level]
                if len(same) >= FANOUT:
                    self._merge(same, schema, level + 1)
                    merged += len(same)
            return merged

    def _merge(self, inputs: list[TraceFile], schema: pa.Schema | None, level: int) -> str:
        if schema is None:
            schema = pa.unify_schemas(
                [pq.read_schema(f.path, filesystem=self.fs).remove_metadata() for f in inputs],
                promote_options="permissive",
            )
        data = read_files(self.fs, [f.path for f in inputs], schema, self.table)
        return self.write(data, compacted_name(level), file_metadata(self.table, [f.name for f in inputs]))

    def _delete_replaced(self) -> None:
        """Delete what compacted files older than the grace period replace, and stale temporary files."""
        listing = self.listing()
        by_name = {f.name: f for f in listing}
        now = time.time()
        gone: set[str] = set()

        def remove(file: TraceFile) -> None:
            # A compacted file's own sources go first: were it deleted before them, they would count again.
            if file.level > 0:
                for name in _sources(self.fs, file):
                    if name in by_name and name not in gone:
                        remove(by_name[name])
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(file.path)
            gone.add(file.name)

        for file in sorted(listing, key=lambda f: f.name):
            if file.level > 0 and now - file.mtime > self.grace_s and file.name not in gone:
                for name in _sources(self.fs, file):
                    if name in by_name and name not in gone:
                        remove(by_name[name])
        if self.local:
            for entry in os.scandir(self.folder):
                # A writer's temporary file lives milliseconds; one this old was left by a crash.
                with contextlib.suppress(FileNotFoundError):
                    if entry.name.endswith(".tmp") and now - entry.stat().st_mtime > max(
                        10 * self.grace_s, 600
                    ):
                        os.unlink(entry.path)


def _fits(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether a column of type ``old`` reads as ``new`` without loss of meaning."""
    if old == new or pa.types.is_null(old):
        return True
    if pa.types.is_integer(old):
        return pa.types.is_integer(new) or pa.types.is_floating(new)
    if pa.types.is_floating(old):
        return pa.types.is_floating(new)
    if pa.types.is_string(old) or pa.types.is_large_string(old):
        return pa.types.is_string(new) or pa.types.is_large_string(new)
    if pa.types.is_timestamp(old):
        return pa.types.is_timestamp(new)
    return False


def check_older_files(fs: pafs.FileSystem, files: Sequence[TraceFile], schema: pa.Schema, table: str) -> None:
    """Refuse, with the fix, a file of an older schema version whose column no longer reads as today's.

    Only older files are opened (today's writer writes today's schema): their footers, not their rows.
    """
    for file in files:
        if file.version >= SCHEMA_VERSION:
            continue
        found = pq.read_schema(file.path, filesystem=fs)
        for field in found:
            index = schema.get_field_index(field.name)
            if index >= 0 and not _fits(field.type, schema.field(index).type):
                raise ConfigurationError(
                    f"trace table {table!r}: {file.path} (trace schema version {file.version}) has column "
                    f"{field.name!r} as {field.type}, today's is {schema.field(index).type}: move the file out "
                    "of the table's folder or convert that column, then run `orchestrator traces compact`"
                )


def read_files(fs: pafs.FileSystem, paths: Sequence[str], schema: pa.Schema, table: str) -> pa.Table:
    """The rows of ``paths`` in today's ``schema``: columns older files lack are null."""
    import pyarrow.dataset as pads  # imports pandas: kept off the path of `orchestrator traces sql`

    try:
        return pads.dataset(list(paths), schema=schema, format="parquet", filesystem=fs).to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        if "No such file" in str(exc) or "not found" in str(exc).lower():
            raise FileNotFoundError(str(exc)) from None
        raise ConfigurationError(
            f"trace table {table!r}: a file does not match today's columns ({str(exc).splitlines()[0]}); "
            f"it predates trace schema version {SCHEMA_VERSION}: move it out of {Path(paths[0]).parent} "
            "or convert that column"
        ) from None
