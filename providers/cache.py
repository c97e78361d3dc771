"""The on-disk model-call cache: one SQLite file in WAL mode, shared by threads and processes.

Key (as Inspect keys its cache: model, base URL, prompt, epoch, config): provider, model, the
endpoint the call goes to, the messages, the generation parameters and the sample index. Values
are the provider's :class:`Completion` as JSON (never pickle: a cache file is data, not code).
Only successful completions are stored; an error is never cached.

Why SQLite: it is in the standard library, its WAL journal lets many readers and one writer work
at once across processes, and ``busy_timeout`` makes concurrent writers queue instead of failing.
Each thread opens its own connection (sqlite3 connections are not shared across threads).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import ConfigurationError
from orchestrator.records import Completion, Message
from orchestrator.settings import Settings, parse_expiry
from providers.credentials import base_url

#: Parameters that shape the answer; anything else the caller passes (task_id) is routing, not generation.
GENERATION_PARAMS = ("max_tokens", "temperature", "seed", "top_p", "stop")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    completion TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
)
"""


def endpoint_of(provider: str, settings: Settings) -> str | None:
    """Where a provider's calls go: its base URL (a local model: its file), else None."""
    if provider == "local":
        return str(settings.model_path) if settings.model_path else None
    return base_url(provider, settings)


def key_params(params: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The parameters that shape the answer, with the settings' defaults filled in."""
    out = {k: params[k] for k in GENERATION_PARAMS if params.get(k) is not None}
    out.setdefault("max_tokens", settings.max_tokens)
    out.setdefault("temperature", settings.temperature)
    return out


def cache_key(
    *,
    provider: str,
    model: str,
    endpoint: str | None,
    messages: Sequence[Message],
    params: Mapping[str, Any],
    sample: int,
) -> str:
    payload = {
        "provider": provider,
        "model": model,
        "endpoint": endpoint,
        "messages": [[m.role, m.content] for m in messages],
        "params": dict(sorted(params.items())),
        "sample": sample,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_wanted(mode: str, explicit: bool | None, temperature: float) -> bool:
    """An explicit choice (``--cache/--no-cache``) wins; else ORCH_CACHE: on, off, or auto (temperature 0)."""
    if explicit is not None:
        return explicit
    if mode == "auto":
        return temperature == 0
    return mode == "on"


class ModelStats(BaseModel):
    provider: str
    model: str
    entries: int
    hits: int


class CacheStats(BaseModel):
    path: str
    entries: int
    expired: int
    hits: int
    size_bytes: int
    models: list[ModelStats]


class CallCache:
    """Completions by key, with an expiry; safe to use from many threads and processes at once."""

    def __init__(self, path: Path, expiry_s: float | None) -> None:
        self.path = path
        self.expiry_s = expiry_s
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn().execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"model-call cache {path}: cannot open it ({exc}); set ORCH_CACHE_PATH or pass --no-cache"
            ) from None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # autocommit (isolation_level=None): each statement is its own transaction.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Completion | None:
        now = time.time()
        conn = self._conn()
        row = conn.execute("SELECT completion, expires FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[1] is not None and row[1] <= now:
            conn.execute("DELETE FROM entries WHERE key = ? AND expires <= ?", (key, now))
            return None
        conn.execute("UPDATE entries SET hits = hits + 1 WHERE key = ?", (key,))
        return Completion.model_validate_json(row[0])

    def put(self, key: str, completion: Completion) -> None:
        now = time.time()
        expires = now + self.expiry_s if self.expiry_s is not None else None
        self._conn().execute(
            "INSERT OR REPLACE INTO entries (key, provider, model, created, expires, completion, hits) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            (key, completion.provider, completion.model, now, expires, completion.model_dump_json()),
        )

    def stats(self) -> CacheStats:
        conn = self._conn()
        now = time.time()
        entries, expired, hits = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE expires IS NOT NULL AND expires <= ?), "
            "coalesce(sum(hits), 0) FROM entries",
            (now,),
        ).fetchone()
        models = [
            ModelStats(provider=p, model=m, entries=n, hits=h)
            for p, m, n, h in conn.execute(
                "SELECT provider, model, count(*), coalesce(sum(hits), 0) FROM entries "
                "GROUP BY provider, model ORDER BY provider, model"
            )
        ]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return CacheStats(
            path=str(self.path), entries=entries, expired=expired, hits=hits, size_bytes=size, models=models
        )

    def clear(self, *, expired_only: bool = False, provider: str | None = None, model: str | None = None) -> int:
        """Delete entries (all, or the expired ones, or one provider's / model's); returns how many."""
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if expired_only:
            where.append("expires IS NOT NULL AND expires <= ?")
            args.append(time.time())
        if provider is not None:
            where.append("provider = ?")
            args.append(provider)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        cursor = self._conn().execute(f"DELETE FROM entries WHERE {' AND '.join(where)}", args)
        return cursor.rowcount


_caches: dict[tuple[Path, float | None], CallCache] = {}
_caches_lock = threading.Lock()


def open_cache(settings: Settings) -> CallCache:
    """The process's cache object for the configured file (one per path and expiry)."""
    key = (settings.call_cache_path.resolve(), parse_expiry(settings.cache_expiry))
    with _caches_lock:
        if key not in _caches:
            _caches[key] = CallCache(*key)
        return _caches[key]
