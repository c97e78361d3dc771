"""What a sweep runs: the task folders selected by a folder or glob, and one work item per sample."""

from __future__ import annotations

import glob
from pathlib import Path

from pydantic import BaseModel

from orchestrator.errors import UserInputError
from orchestrator.taskspec import Task, discover_tasks, load_task

_GLOB_CHARS = set("*?[")


class WorkItem(BaseModel):
    """One (task, sample) to run."""

    task_dir: str
    task_id: str
    workflow: str
    sample: int = 0


def _roots(tasks: str) -> list[Path]:
    if _GLOB_CHARS & set(tasks):
        return [Path(p) for p in sorted(glob.glob(tasks, recursive=True)) if Path(p).is_dir()]
    root = Path(tasks)
    if not root.is_dir():
        raise UserInputError(f"{tasks}: not a folder; pass a folder of task folders (or a glob of them)")
    return [root]


def select_tasks(tasks: str, workflows: list[str] | None = None) -> list[Task]:
    """Every valid task under the folder/glob, filtered by workflow; a malformed folder stops the sweep
    before anything runs (one line naming it), as do two folders claiming the same task id."""
    folders: list[Path] = []
    for root in _roots(tasks):
        folders += [f for f in discover_tasks(root) if f not in folders]
    loaded = [load_task(folder, require_tests=False) for folder in folders]
    selected = [t for t in loaded if not workflows or t.workflow in workflows]
    if not selected:
        which = f" with workflow {' or '.join(workflows)}" if workflows else ""
        raise UserInputError(f"{tasks}: no task folders{which} found (a task folder holds a task.toml)")
    by_id: dict[str, Task] = {}
    for task in selected:
        if task.id in by_id:
            raise UserInputError(
                f"task id {task.id!r} is used by both {by_id[task.id].folder} and {task.folder}; "
                "ids must be unique"
            )
        by_id[task.id] = task
    return selected


def sweep_name(tasks: str) -> str:
    """The default sweep name: the swept folder's name (for a glob, its fixed leading folder)."""
    fixed = []
    for part in Path(tasks).parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed).resolve().name if fixed else Path.cwd().name


def work_items(tasks: list[Task], samples: int) -> list[WorkItem]:
    """Samples interleave (every task's sample 0 first), so a stopped sweep has pass@1 on the most tasks."""
    return [
        WorkItem(task_dir=str(t.folder), task_id=t.id, workflow=t.workflow, sample=s)
        for s in range(samples)
        for t in tasks
    ]
