"""Task folders: the format (see runs/README.md) and its validation."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import TaskFormatError
from orchestrator.records import Limits

Workflow = Literal["coding", "reasoning", "science", "rag_qa"]
AnswerType = Literal["exact", "number", "choice", "free"]

#: Folder entries that belong to the task format rather than to the starter files.
RESERVED = {"task.toml", "prompt.md", "tests", "hidden_tests", "docs", "generated_tests"}
_IGNORED = {"__pycache__", ".pytest_cache", ".DS_Store"}


class TaskSpec(BaseModel):
    """The contents of ``task.toml``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str | None = None
    workflow: Workflow | None = None
    entry: str = "solution.py"
    limits: Limits = Field(default_factory=Limits)
    #: coding: how the verdict is taken (docs/sandbox.md). ``isolated``: the candidate's module runs
    #: in a process of its own, out of reach of the tests and the report; ``in_process``: pytest
    #: imports it (for tests that need its objects in the test process), and forgeable from inside.
    verdict: Literal["isolated", "in_process"] = "isolated"
    # question workflows
    answer: str | None = None
    answer_type: AnswerType | None = None
    tolerance: float | None = Field(default=None, ge=0)
    units: str | None = None
    choices: list[str] | None = None
    evidence: list[str] | None = None
    corpus: str | None = None
    tags: list[str] = Field(default_factory=list)


class Task(BaseModel):
    """A validated task folder."""

    model_config = ConfigDict(frozen=True)

    folder: Path
    spec: TaskSpec
    prompt: str

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def workflow(self) -> Workflow:
        return self.spec.workflow or "coding"

    @property
    def tests_dir(self) -> Path:
        return self.folder / "tests"

    @property
    def hidden_tests_dir(self) -> Path:
        return self.folder / "hidden_tests"

    @property
    def has_tests(self) -> bool:
        return _has_test_files(self.tests_dir)

    @property
    def has_hidden_tests(self) -> bool:
        return _has_test_files(self.hidden_tests_dir)

    def starter_files(self) -> dict[str, str]:
        """Relative path -> text of every file copied into the sandbox besides the tests."""
        out: dict[str, str] = {}
        for path in sorted(self.folder.rglob("*")):
            rel = path.relative_to(self.folder)
            if rel.parts[0] in RESERVED or any(p in _IGNORED for p in rel.parts) or not path.is_file():
                continue
            out[rel.as_posix()] = path.read_text(encoding="utf-8", errors="replace")
        return out

    def visible_tests(self) -> dict[str, str]:
        return _read_tree(self.tests_dir)

    def hidden_tests(self) -> dict[str, str]:
        return _read_tree(self.hidden_tests_dir)

    def entry_source(self) -> str:
        path = self.folder / self.spec.entry
        return path.read_text(encoding="utf-8") if path.is_file() else ""


def _has_test_files(folder: Path) -> bool:
    return folder.is_dir() and (any(folder.rglob("test_*.py")) or any(folder.rglob("*_test.py")))


def _read_tree(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part in _IGNORED for part in p.relative_to(folder).parts)
    }


def _describe(error: ValidationError) -> str:
    problems = []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "task.toml"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {where!r}")
        elif err["type"] == "missing":
            problems.append(f"missing key {where!r}")
        else:
            problems.append(f"{where}: {err['msg']}")
    return "task.toml: " + "; ".join(problems)


def load_task(folder: str | Path, *, require_tests: bool = True) -> Task:
    """Load and validate a task folder, or raise :class:`TaskFormatError` with one clear line.

    ``require_tests=False`` admits coding tasks without ``tests/``, for which tests are generated.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TaskFormatError(folder, "not a directory; pass a task folder that holds a task.toml")
    toml_path = folder / "task.toml"
    if not toml_path.is_file():
        raise TaskFormatError(folder, "no task.toml; every task folder needs one (see runs/README.md)")
    try:
        raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaskFormatError(folder, f"task.toml is not valid TOML ({exc}); fix the syntax") from None
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as exc:
        raise TaskFormatError(folder, _describe(exc) + " (see runs/README.md)") from None

    prompt_md = folder / "prompt.md"
    if spec.prompt and prompt_md.is_file():
        raise TaskFormatError(folder, "both task.toml 'prompt' and prompt.md are given; keep one")
    prompt = spec.prompt or (prompt_md.read_text(encoding="utf-8") if prompt_md.is_file() else "")
    if not prompt.strip():
        raise TaskFormatError(folder, "no prompt; set 'prompt' in task.toml or add a prompt.md")

    task = Task(folder=folder.resolve(), spec=spec, prompt=prompt)
    if task.workflow == "coding":
        entry = Path(spec.entry)
        if entry.is_absolute() or ".." in entry.parts or entry.suffix != ".py":
            raise TaskFormatError(folder, f"entry {spec.entry!r} must be a relative .py path inside the folder")
        if not (folder / entry).is_file():
            raise TaskFormatError(
                folder, f"entry file {spec.entry!r} is missing; add it with the function signature to implement"
            )
        if require_tests and not task.has_tests and not task.has_hidden_tests:
            raise TaskFormatError(folder, "no tests; add tests/test_*.py (or hidden_tests/) with pytest tests")
    else:
        if spec.workflow == "rag_qa" and not (folder / "docs").is_dir() and not spec.corpus:
            raise TaskFormatError(folder, "rag_qa task has no docs/ folder and no 'corpus'; add one")
        if spec.answer_type == "choice" and spec.answer is not None and not spec.choices:
            raise TaskFormatError(folder, "answer_type 'choice' needs a 'choices' list")
    return task


def discover_tasks(root: str | Path) -> list[Path]:
    """Task folders under ``root`` (a folder holding task.toml is a task; its children are not searched)."""
    root = Path(root)
    if (root / "task.toml").is_file():
        return [root]
    found: list[Path] = []
    seen: set[Path] = set()  # a set: with a list, 1,000 tasks cost a million Path comparisons
    for toml in sorted(root.rglob("task.toml")):
        folder = toml.parent
        if seen.isdisjoint(folder.parents):
            found.append(folder)
            seen.add(folder)
    return found
