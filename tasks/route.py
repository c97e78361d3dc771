"""The router as Prefect sees it: decide (asking the LLM router when the mode wants one), record the ``routes`` row.

Who decides, in order: workers given explicitly (``--worker``) bypass routing; otherwise the mode
(``--router`` or ``ORCH_ROUTER_MODE``) picks ``hint`` or ``learned`` (no model call) or an LLM router
(``cost-first`` / ``quality-first``). The rules, the defaults and the validation of a router's reply
are plain logic in domain/routing.py.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from domain.routing import (
    REPLY_SCHEMA,
    Dropped,
    Routed,
    decide_from_reply,
    explicit_decision,
    hint_decision,
    learned_route,
    route_row,
    router_messages,
    router_workers,
)
from domain.workers import preflight
from orchestrator.errors import UserInputError
from orchestrator.records import ROUTER_MODES, RouteDecision, WorkerSpec
from orchestrator.settings import Settings, get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from tasks.model_call import AllWorkersFailed, CallContext, call_model

ROUTER_MAX_TOKENS = 400


def llm_route(task: Task, mode: str, run_id: str, store: TraceStore, settings: Settings, max_rounds: int) -> Routed:
    workers = router_workers(settings)
    label = ", ".join(w.model_label for w in workers)
    try:
        completion, used = call_model(
            workers,
            router_messages(task, mode, settings),
            CallContext(run_id=run_id, task_id=task.id, purpose="route"),
            settings=settings,
            store=store,
            max_tokens=ROUTER_MAX_TOKENS,
            temperature=0.0,
            response_format={"type": "json_object", "schema": REPLY_SCHEMA},
        )
    except AllWorkersFailed as exc:
        decision, dropped, _, _ = decide_from_reply(None, task, mode, settings, max_rounds)
        failure = Dropped(field="reply", reason=f"router call failed: {exc}")
        return Routed(decision=decision, dropped=[failure], used_defaults=True, router_model=label)
    decision, dropped, used_defaults, how = decide_from_reply(completion.text, task, mode, settings, max_rounds)
    return Routed(
        decision=decision,
        dropped=dropped,
        used_defaults=used_defaults,
        raw_reply=completion.text,
        parsed_as=how,
        router_model=used.model_label,
    )


def route(
    task: Task,
    run_id: str,
    store: TraceStore,
    settings: Settings,
    *,
    router: str | None = None,
    workers: list[WorkerSpec] | None = None,
    max_rounds: int = 2,
) -> Routed:
    """Decide, without writing anything (see :func:`route_task` for the traced Prefect task)."""
    if workers:
        preflight(workers, settings)
        return Routed(decision=explicit_decision(task, workers, max_rounds))
    mode = router or settings.router_mode
    if mode not in ROUTER_MODES:
        raise UserInputError(f"router {mode!r}: choose one of {', '.join(ROUTER_MODES)}")
    if mode == "hint":
        return Routed(decision=hint_decision(task, settings, max_rounds))
    if mode == "learned":
        return learned_route(task, settings, max_rounds)
    return llm_route(task, mode, run_id, store, settings, max_rounds)


@task(name="route", cache_policy=NO_CACHE)
def route_task(
    spec: Task,
    run_id: str,
    traces_dir: str,
    router: str | None = None,
    workers: list[WorkerSpec] | None = None,
    max_rounds: int = 2,
) -> RouteDecision:
    """The first step of every workflow flow: decide, and record the decision in the ``routes`` table."""
    settings = get_settings()
    store = TraceStore(traces_dir)
    routed = route(spec, run_id, store, settings, router=router, workers=workers, max_rounds=max_rounds)
    store.write("routes", [route_row(spec, run_id, routed)])
    return routed.decision
