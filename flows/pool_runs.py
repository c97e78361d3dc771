"""The deployment executor's flow runs on the work pool: start one, wait for its end, and mark it
Crashed when it falls silent because its worker's host is gone.

A flow run on a live worker changes state or sends a heartbeat event at least every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (``scripts/serve.sh worker`` sets 30). A run that is
Pending (claimed by a worker) or Running and has done neither for ``ORCH_CRASH_AFTER_SECONDS`` is
lost: :func:`watch` sets it Crashed through the API, and the sweep runs its unfinished tasks again.
The sweep does this itself, rather than through a Prefect automation, because Prefect's proactive
triggers missed lost runs in our multi-host test (3 of 5 tries; PrefectHQ/prefect#18838 is open) and
because a run a worker claimed but never started sends no heartbeat for a trigger to miss.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.states import Crashed

from orchestrator.settings import get_settings

HEARTBEAT = "prefect.flow-run.heartbeat"
#: The message of the Crashed state the watchdog sets (the UI shows it on the run).
LOST = "no heartbeat or state change for {seconds:g}s: its worker's host is gone; the sweep runs its tasks again"
#: Seconds between two looks at a run in flight.
POLL_S = 2.0
#: Claimed or started: a worker holds it, so it must show signs of life. Scheduled runs wait for a worker.
HELD = (StateType.PENDING, StateType.RUNNING)


def run_on_pool(deployment: str, parameters: dict[str, Any], key: str, name: str) -> FlowRun:
    """Start (or, for a known idempotency key, find) a run of the deployment and wait for its end."""
    child = cast(FlowRun, run_deployment(
        deployment, parameters=parameters, idempotency_key=key, timeout=0, flow_run_name=name,
    ))  # the sync call returns the run; the union is for async callers
    return watch(child.id, get_settings().crash_after_seconds)


def watch(flow_run_id: UUID, silent_after_s: float, poll_s: float = POLL_S) -> FlowRun:
    """Wait until the flow run is final; set it Crashed first if it is held but silent too long.

    While the API does not answer (a server restart) heartbeats may be lost with it, so silence is
    counted from when the API answered again at the earliest."""
    with get_client(sync_client=True) as client:
        answering_since: datetime | None = None
        while True:
            now = datetime.now(UTC)
            try:
                run = client.read_flow_run(flow_run_id)
            except httpx.HTTPError:
                answering_since = None
                time.sleep(poll_s)
                continue
            answering_since = answering_since or now
            state = run.state
            if state is not None and state.is_final():
                return run
            if state is not None and state.type in HELD:
                since = max(state.timestamp, answering_since)
                if now - since > timedelta(seconds=silent_after_s):
                    beat = last_heartbeat(client, flow_run_id, since)
                    if beat is None or now - beat > timedelta(seconds=silent_after_s):
                        client.set_flow_run_state(flow_run_id, Crashed(message=LOST.format(seconds=silent_after_s)), force=True)
                        continue
            time.sleep(poll_s)


def last_heartbeat(client: SyncPrefectClient, flow_run_id: UUID, since: datetime) -> datetime | None:
    """When the run's latest heartbeat event after ``since`` occurred, or None."""
    page = client.read_events(
        EventFilter(
            occurred=EventOccurredFilter.model_validate({"since": since}),  # Prefect types it as its DateTime
            event=EventNameFilter(name=[HEARTBEAT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        ),
        limit=1,
    )
    return page.events[0].occurred if page.events else None
