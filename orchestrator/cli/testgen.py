"""``orchestrator tests promote``: make a run's generated tests part of the task folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli import app
from orchestrator.cli.options import TracesOption, open_store
from orchestrator.errors import UserInputError
from orchestrator.taskspec import load_task

tests_app = typer.Typer(help="Tests generated for coding tasks that had none.", no_args_is_help=True)
app.add_typer(tests_app, name="tests")


@tests_app.command("promote")
def promote(
    run_id: Annotated[str, typer.Argument(help="The run whose generated tests to keep.")],
    task_dir: Annotated[Path, typer.Argument(help="The task folder the run was for.")],
    traces: TracesOption = None,
    keep_suspect: Annotated[bool, typer.Option(help="Keep tests the run flagged as suspect.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite a test file of the same name.")] = False,
) -> None:
    """Copy the tests a run generated (and accepted) into TASK_DIR/tests/, leaving out suspect ones."""
    from tasks.testgen import remove_tests

    task = load_task(task_dir, require_tests=False)
    store = open_store(traces)
    accepted = [r for r in store.rows("generated_tests", run_id=run_id) if r["accepted"]]
    if not accepted:
        raise UserInputError(f"run {run_id}: no accepted generated tests in {store.root}; check the run id and --traces")
    row = max(accepted, key=lambda r: r["attempt"])
    if row["task_id"] != task.id:
        raise UserInputError(f"run {run_id} generated tests for task {row['task_id']!r}, not {task.id!r}; pass its folder")
    code = row["accepted_code"]
    suspect = sorted({r["test"].split("[", 1)[0] for r in store.rows("suspect_tests", run_id=run_id)})
    if suspect and not keep_suspect:
        code = remove_tests(code, set(suspect))
    target = task.tests_dir / row["file"]
    if target.exists() and not force:
        raise UserInputError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(code, encoding="utf-8")
    left_out = f"; left out suspect: {', '.join(suspect)}" if suspect and not keep_suspect else ""
    Console().print(f"wrote {target}{left_out}", highlight=False)
