"""The first Prefect task of every workflow: read and check the task folder."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from orchestrator.taskspec import Task, load_task


@task(name="load-task", cache_policy=NO_CACHE)
def load_task_folder(task_dir: str, require_tests: bool = True) -> Task:
    return load_task(task_dir, require_tests=require_tests)
