"""The deployment executor in shards: a flow run of run-shard per few tasks, so that a flow run's start-up
on a worker (a process, Prefect's imports, the pull step: about 10 s) is paid once per shard, not per task.

The sweep assigns every (task, sample) of a shard its run id; the shard's flow run (flows/shard.py)
runs them one after another and writes their rows and ledger rows batched, at the sweep's ticks. When
the shard's run ends, what it left unrecorded (it was lost with its host, flows/pool_runs.py) is run
again in a new shard under fresh run ids, once; what is still missing after that gets an ``error`` row. A resumed
sweep whose shard has the same tasks finds the earlier attempt's run by its idempotency key and waits
for it instead of starting the tasks twice.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from pydantic import BaseModel

from domain.sweep_ledger import ensure_run_row, ledger, ledger_row, run_row
from domain.sweep_plan import WorkItem
from flows.pool_runs import run_on_pool
from orchestrator.records import SweepTaskRow, new_id
from orchestrator.traces import TraceStore

#: The deployment of flows/shard.py (prefect.yaml).
SHARD_DEPLOYMENT = "run-shard/run-shard"
#: Shards per run slot (``concurrency``) when the size is left to the sweep: enough that the last
#: shards to finish are short and a lost shard costs little, few enough that start-up is rare.
SHARDS_PER_SLOT = 4
#: A lost shard's unfinished tasks run once more in a new shard; after that they are errors.
ATTEMPTS = 2


class ShardRun(BaseModel):
    """One (task, sample) of a shard and the run id the sweep gave it."""

    item: WorkItem
    run_id: str


def shard_size(requested: int | None, todo: int, concurrency: int) -> int:
    """Tasks per flow run: the requested size, else about SHARDS_PER_SLOT shards per run slot."""
    if requested is not None:
        return requested
    return max(1, math.ceil(todo / (concurrency * SHARDS_PER_SLOT)))


def split(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _label(items: list[WorkItem]) -> str:
    first, last = items[0], items[-1]
    return f"{first.task_id}#{first.sample}" + (f" .. {last.task_id}#{last.sample} ({len(items)})" if len(items) > 1 else "")


def _key(sweep_id: str, items: list[WorkItem], attempt: int) -> str:
    tasks = "\n".join(f"{i.task_id}#{i.sample}" for i in items)
    return f"{sweep_id}/shard/{hashlib.sha256(tasks.encode()).hexdigest()[:16]}/{attempt}"


def run_shard(
    items: list[WorkItem], shard_parameters: dict[str, Any], store: TraceStore, sweep_id: str
) -> list[SweepTaskRow]:
    """Run the items as shards on the pool until each has a ledger row; returns those rows.

    ``shard_parameters``: the run-shard flow's parameters but ``runs`` (the sweep's params, ids, sandbox)."""
    runs = [ShardRun(item=item, run_id=new_id()) for item in items]
    rows: list[SweepTaskRow] = []
    ended = "never started"
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:  # the lost attempt may have left calls or attempts under the old ids
            runs = [ShardRun(item=run.item, run_id=new_id()) for run in runs]
        shard = [r.item for r in runs]
        parameters = {**shard_parameters, "runs": [r.model_dump(mode="json") for r in runs]}
        child = run_on_pool(SHARD_DEPLOYMENT, parameters, _key(sweep_id, shard, attempt), _label(shard))
        # An earlier attempt of a resumed sweep may own the key: its run carries the run ids it used.
        runs = [ShardRun.model_validate(r) for r in (child.parameters or {}).get("runs", parameters["runs"])]
        done, runs = settle(store, sweep_id, runs)
        rows += done
        ended = f"{child.state.name}: {child.state.message}" if child.state else "without a state"
        if not runs or (child.state is not None and child.state.is_completed()):
            break
    for run in runs:  # still unfinished: the shard completed without them, or was lost twice
        record = ensure_run_row(
            store, run_id=run.run_id, sweep_id=sweep_id, task_id=run.item.task_id, workflow=run.item.workflow,
            task_dir=run.item.task_dir, error=f"its shard's flow run ended {ended}",
        )
        row = ledger_row(record, run.item.sample)
        store.write("sweep_tasks", [row])
        rows.append(row)
    return rows


def settle(store: TraceStore, sweep_id: str, runs: list[ShardRun]) -> tuple[list[SweepTaskRow], list[ShardRun]]:
    """The ledger rows of the runs that finished, and the runs that did not.

    A run that wrote its ``runs`` row but not its ledger row (its host died in between) is recorded now."""
    recorded = {r["run_id"]: r for r in ledger(store, sweep_id)}
    done: list[SweepTaskRow] = []
    unfinished: list[ShardRun] = []
    for run in runs:
        if run.run_id in recorded:
            done.append(SweepTaskRow.model_validate(recorded[run.run_id]))
        elif (record := run_row(store, run.run_id)) is not None:
            row = ledger_row(record, run.item.sample, adopted=True)
            store.write("sweep_tasks", [row])
            done.append(row)
        else:
            unfinished.append(run)
    return done, unfinished
