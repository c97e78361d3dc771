"""The run-shard deployment's flow: several (task, sample)s of a sweep, one after another, in one flow run.

A sweep with ``executor: deployment`` starts these (flows/sweep_shards.py) so that each flow run's
start-up on a worker is paid once per shard. Each task runs as in a local sweep (its steps as plain
calls), and as there the rows of the finished tasks wait in a write batch flushed at the sweep's ticks
(orchestrator/trace_batch.py): one file per table per tick, not six or seven requests per task to an
object store. A shard lost half-way leaves the tasks of its last flush recorded and the sweep reruns
only the rest. Before each task and before its last flush the shard checks that its run was never
marked Crashed: a run the sweep took for lost (its host slow or unreachable for a while,
flows/pool_runs.py) stops there and drops its unflushed rows, since those tasks are being run again.
A shard cut short in the middle of a task (cancelled, a signal) drops them too: no run half-written.
"""

from __future__ import annotations

from uuid import UUID

import httpx
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run as current_flow_run

from flows.sweep import SweepParams, run_item
from flows.sweep_shards import ShardRun
from orchestrator.trace_batch import Ticker, WriteBatch, batched
from orchestrator.traces import TraceStore


def _shard_name() -> str:
    runs = current_flow_run.parameters.get("runs") or []
    return f"shard of {len(runs)} · sweep {str(current_flow_run.parameters.get('sweep_id', ''))[:8]}"


@flow(name="run-shard", flow_run_name=_shard_name)
def run_shard_flow(params: SweepParams, sweep_id: str, traces: str, sandbox: str, runs: list[ShardRun]) -> int:
    """Run a shard of a sweep's tasks; returns how many passed.

    Args:
        params: The sweep's parameters (its workers, router, rounds, cache).
        sweep_id: The sweep the runs belong to.
        traces: The sweep's trace store.
        sandbox: The sandbox backend the sweep resolved.
        runs: The (task, sample)s with the run ids the sweep gave them.
    """
    logger = get_run_logger()
    in_process = params.model_copy(update={"executor": "local"})
    passed = 0
    ticker = Ticker()
    with batched(TraceStore(traces)) as batch:  # what is left is flushed on leaving, unless dropped
        try:
            for n, run in enumerate(runs):
                if given_up(batch, len(runs) - n):
                    break
                if ticker.tick(n):
                    batch.flush()
                row = run_item(run.item, in_process, sweep_id, traces, sandbox, run.run_id)
                passed += bool(row.passed)
                logger.info("%d/%d %s#%d: %s%s", n + 1, len(runs), run.item.task_id, run.item.sample, row.status,
                            "" if row.passed is None else (", passed" if row.passed else ", failed"))
            else:
                given_up(batch, 0)  # the last flush, on leaving the block, is checked like the others
        except BaseException:
            batch.discard()  # a task cut short may have added some of its rows: none is written
            raise
    return passed


def given_up(batch: WriteBatch, left: int) -> bool:
    """Whether this flow run was given up on; if so its unflushed rows are dropped (the sweep reruns
    those tasks, and ``left`` more, elsewhere)."""
    if (marked := marked_as()) is None:
        return False
    dropped = batch.discard()
    get_run_logger().warning(
        "this run was marked %s while it ran: the sweep runs its unrecorded task(s) again (%d row(s) not "
        "written, %d task(s) not started); stopping", marked, dropped, left,
    )
    return True


def marked_as() -> str | None:
    """None while this flow run was never given up on (or the server does not answer: keep on), else
    the name of the state that gave it up: the sweep's Crashed, or a user's Cancelling. The history
    counts, not only the state now: a run marked Crashed while its process was still starting is set
    Running again by the engine when it starts, yet its tasks are already running elsewhere."""
    try:
        with get_client(sync_client=True) as client:
            states = client.read_flow_run_states(UUID(current_flow_run.get_id()))
    except httpx.HTTPError:
        return None
    given_up = [st for st in states if st.is_crashed() or st.is_cancelling() or st.is_cancelled()]
    return given_up[-1].name if given_up else None
