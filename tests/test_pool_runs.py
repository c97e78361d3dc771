"""The sweep's watch over its runs on the pool (flows/pool_runs.py), against the session's real Prefect
server: a run held by a worker (Pending or Running) that shows no sign of life is marked Crashed; a run
that sends heartbeats is left to finish; a run nobody claimed (Scheduled) is not a lost one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.events.worker import EventsWorker
from prefect.states import Completed, Pending, Running, Scheduled

from flows.pool_runs import HEARTBEAT, watch


@flow(name="pool-runs-probe")
def probe() -> None:
    """Only its runs are used: states are set by the test, as a worker would."""


def _run_in(state: Any) -> Any:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe, state=Scheduled())
        client.set_flow_run_state(run.id, state, force=True)
        return run.id


@pytest.mark.parametrize("held", [Pending, Running], ids=["claimed-never-started", "running"])
def test_a_silent_held_run_is_marked_crashed(prefect_api: str, held: Any) -> None:
    run_id = _run_in(held())
    run = watch(run_id, silent_after_s=2, poll_s=0.2)
    assert run.state is not None and run.state.type == StateType.CRASHED
    assert "its worker's host is gone" in (run.state.message or "")


def test_a_beating_run_is_left_to_finish(prefect_api: str) -> None:
    run_id = _run_in(Running())
    stop = threading.Event()

    def live_run() -> None:  # what a live flow run does: beat, then end
        for _ in range(16):
            emit_event(HEARTBEAT, resource={"prefect.resource.id": f"prefect.flow-run.{run_id}"},
                       occurred=datetime.now(UTC))
            EventsWorker.drain_all(timeout=5)
            if stop.wait(1):
                return
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Completed())

    beater = threading.Thread(target=live_run)
    beater.start()
    try:
        # silent 10 s would be lost; it beats every second and ends after about 16 s
        run = watch(run_id, silent_after_s=10, poll_s=0.5)
    finally:
        stop.set()
        beater.join()
    assert run.state is not None and run.state.type == StateType.COMPLETED


def test_a_scheduled_run_waits_for_a_worker(prefect_api: str) -> None:
    run_id = _run_in(Scheduled())
    ended: list[Any] = []
    watcher = threading.Thread(target=lambda: ended.append(watch(run_id, silent_after_s=1, poll_s=0.2)))
    watcher.start()
    watcher.join(timeout=4)  # well past silent_after_s: it would have marked a held run by now
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state_type == StateType.SCHEDULED
        client.set_flow_run_state(run_id, Completed(), force=True)
    watcher.join(timeout=30)
    assert ended and ended[0].state.type == StateType.COMPLETED
