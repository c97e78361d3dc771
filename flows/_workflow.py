"""The one definition of a workflow flow's parameters: a run function becomes a Prefect flow.

A workflow is a plain function ``run(request, runner) -> RunSummary`` over its steps;
:func:`workflow_flow` wraps it as the Prefect flow named after the workflow, taking the parameters
of :class:`orchestrator.records.RunRequest` (what ``run-task`` passes on, and a sweep's subflows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runner import PrefectRunner, Runner
from orchestrator.records import RunRequest, RunSummary, SandboxName, WorkerSpec

WorkflowRun = Callable[[RunRequest, Runner], RunSummary]

#: flow name -> its run function, to run a workflow's steps without a flow of its own (PlainRunner).
RUNS: dict[str, WorkflowRun] = {}


def workflow_flow(name: str, description: str, run: WorkflowRun) -> Any:
    """The Prefect flow of one workflow; its body runs ``run`` with each call a task run."""
    RUNS[name] = run

    # Prefect types task_runner with an invariant generic that rejects its own ThreadPoolTaskRunner.
    @flow(name=name, description=description, task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)  # type: ignore[arg-type]
    def workflow(
        task_dir: str,
        workers: list[WorkerSpec] | None = None,
        router: str | None = None,
        max_rounds: int = 2,
        sandbox: SandboxName = "auto",
        traces_dir: str | None = None,
        sweep_id: str | None = None,
        run_id: str | None = None,
    ) -> RunSummary:
        request = RunRequest(
            task_dir=task_dir, workers=workers, router=router, max_rounds=max_rounds, sandbox=sandbox,
            traces_dir=traces_dir, sweep_id=sweep_id, **({"run_id": run_id} if run_id else {}),
        )
        return run(request, PrefectRunner())

    return workflow
