"""The sweep flow: every task of a folder through its workflow, with bounded concurrency and resume.

Concurrency: the flow keeps at most ``concurrency`` (task, sample) runs in flight in a thread pool
(a sliding window). With ``executor="local"`` each runs its workflow's steps as plain calls
(:class:`flows.runner.PlainRunner`) inside the sweep's own flow run: no subflow and no task runs per
task, whose Prefect bookkeeping cost more than the work (docs/traces.md, "Throughput"); the UI still
shows every task's result in the sweep's progress and table artifacts, and a single ``orchestrator
run`` stays a flow of retryable tasks. With ``executor="deployment"`` each triggers a deployment and waits
for it, so that several workers on one pool share a sweep: run-task per task, or run-shard per shard
of tasks (flows/sweep_shards.py), watched for a lost host (flows/pool_runs.py). Threads suit the work: it waits on model
calls and sandboxed pytest processes.

Budgets (``max_cost``/``max_tokens``): before starting a run the flow asks the sweep's
:class:`orchestrator.budget.Budget` whether one more mean run, on top of what is spent and what the
runs in flight are still expected to spend, fits; when it does not, nothing new starts, the runs in
flight finish, and what was not started is written as ``skipped`` (resume with a larger budget to
run it). In-process runs share the budget call by call (a call that would cross it is refused and
its run is ``stopped``, also rerun on resume).
"""

from __future__ import annotations

import contextvars
import json
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run
from pydantic import BaseModel, Field, field_validator

from domain.routing import check_router, refuse_unpriced
from domain.sweep_ledger import (
    DONE,
    candidates_from_summary,
    ensure_run_row,
    ledger,
    ledger_row,
    orphan_runs,
    run_row,
    spent_by_sweep,
    sweeps,
)
from domain.sweep_plan import WorkItem, select_tasks, sweep_name, work_items
from domain.sweep_report import SweepReport, build_report, compare
from domain.workers import parse_worker, preflight
from flows._sweep_artifacts import ProgressArtifact, artifact_key, publish
from flows.parameters import model_parameters, model_values
from flows.pool_runs import run_on_pool
from flows.registry import WORKFLOW_RUNS
from flows.runner import PlainRunner
from flows.sweep_shards import run_shard, shard_size, split
from orchestrator.budget import Budget, Usage
from orchestrator.errors import UserInputError
from orchestrator.records import (
    Rounds,
    RouterMode,
    RunRequest,
    SandboxName,
    SweepRow,
    SweepTaskRow,
    WorkerSpec,
    new_id,
    utcnow,
)
from orchestrator.settings import get_settings
from orchestrator.taskspec import Workflow
from orchestrator.trace_batch import Ticker, WriteBatch, batched
from orchestrator.traces import TraceStore, absolute_root
from sandbox import get_backend
from tasks.call_scope import RunScope, scoped

RETRY_NEEDS_SWEEP = "--retry-errors reruns the errored runs of a sweep: give --sweep-id or --resume"

#: The most runs in flight at once (``SweepParams.concurrency``).
MAX_CONCURRENCY = 32


def _as_in_a_run(name: str) -> Any:
    """A field the sweep passes on to each run: RunRequest's, with its title and description."""
    return RunRequest.model_fields[name]


_SWEEP_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")


class SweepParams(BaseModel):
    """A sweep's parameters: the sweep flow's, one for each field (flows/parameters.py), so the Prefect
    UI's form and a deployment's Parameters tab list each with its title."""

    tasks: str = Field(default="runs", title="Tasks", description="A folder of task folders, or a glob of folders.")
    workflows: list[Workflow] = Field(
        default_factory=list, title="Workflows", description="Only tasks of these workflows (empty: all)."
    )
    workers: list[WorkerSpec] = Field(
        default_factory=list,
        title="Workers",
        description="Workers as objects {provider, model, role} (the CLI's --worker takes "
        '"PROVIDER:MODEL[:ROLE]"); empty: the router picks them. For the replay provider the model is '
        "the path of a JSONL file of replies.",
    )
    router: RouterMode | None = _as_in_a_run("router")
    sandbox: SandboxName = _as_in_a_run("sandbox")
    concurrency: int = Field(
        default=2, ge=1, le=MAX_CONCURRENCY, title="Concurrency", description="Runs in flight at once."
    )
    max_rounds: Rounds = _as_in_a_run("max_rounds")
    samples: int = Field(
        default=1, ge=1, le=100, title="Samples per task", description="Runs per task (pass@k needs more than one)."
    )
    name: str | None = Field(
        default=None, title="Sweep name",
        description="Compared night to night (default: the folder's name).",
    )
    sweep_id: str | None = Field(
        default=None,
        pattern=_SWEEP_ID.pattern,  # in the flow's parameter schema: the UI's form checks it before a run
        title="Resume sweep id",
        description="Resume this sweep: finished runs are skipped (empty: a new sweep).",
    )
    traces_dir: str | None = _as_in_a_run("traces_dir")
    executor: Literal["local", "deployment"] = Field(
        default="local",
        title="Executor",
        description="local: runs in this process; deployment: each run on the pool's workers.",
    )
    deployment: str = Field(
        default="run-task/run-task",
        pattern=r"^[^/]+/[^/]+$",
        title="Run-task deployment",
        description="FLOW/DEPLOYMENT that runs one task (with executor deployment).",
    )
    shard_size: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="executor deployment: tasks per flow run of run-shard/run-shard (1: each task a run of "
        "`deployment`; empty: about four shards per run in flight, or 1 under a budget).",
    )
    history: int = Field(
        default=10, ge=2, le=100, title="History", description="Sweeps of this name shown in the history chart."
    )
    cache: bool | None = Field(
        default=None,
        title="Cache model calls",
        description="Answer repeated model calls from the on-disk cache (empty: ORCH_CACHE, i.e. at temperature 0).",
    )
    max_cost: float | None = Field(
        default=None, gt=0, title="Budget in USD",
        description="For the whole sweep (resumed sweeps count what was spent).",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, title="Budget in tokens", description="For the whole sweep."
    )
    ignore_unpriced: bool = _as_in_a_run("ignore_unpriced")
    retry_errors: bool = Field(
        default=False,
        title="Retry errored runs",
        description="With a sweep id: run again the runs that ended in error (not those whose tests failed).",
    )

    @field_validator("sweep_id", mode="before")
    @classmethod
    def _check_sweep_id(cls, value: Any) -> Any:
        # Before the pattern, so that a mistake ("--sweep-id --json" takes "--json" as the id) is told in
        # words rather than as the regex.
        if isinstance(value, str) and not _SWEEP_ID.match(value):
            raise ValueError(
                f"{value!r} is not a sweep id (up to 64 letters, digits, _ or -, not starting with -); "
                "give the id printed by the sweep, or leave the option out for a new sweep"
            )
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _parse_workers(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [parse_worker(v) if isinstance(v, str) else v for v in value]
        return value


def _run_name() -> str:
    params = model_values(SweepParams, current_flow_run.parameters)
    # sweeps of one name told apart in the runs list: when each started, and which sweep it was
    when = f"{utcnow():%Y-%m-%d %H:%M}"
    return f"sweep-{params.name or sweep_name(params.tasks)} {when}" + (f" {params.sweep_id[:8]}" if params.sweep_id else "")


def _request(item: WorkItem, params: SweepParams, sweep_id: str, traces: str, sandbox: str, run_id: str) -> RunRequest:
    return RunRequest.model_validate(dict(
        task_dir=item.task_dir, workers=params.workers, router=params.router, max_rounds=params.max_rounds,
        sandbox=sandbox, traces_dir=traces, sweep_id=sweep_id, run_id=run_id,
    ))  # sandbox: the backend the sweep resolved once, one of the names


def _run_label(item: WorkItem) -> str:
    """A (task, sample)'s flow run name, however it runs."""
    return f"{item.task_id}#{item.sample}"


def _in_process(item: WorkItem, request: RunRequest) -> Any:
    """The workflow's steps as plain calls in the sweep's flow run (the sweep attached the run's scope)."""
    return WORKFLOW_RUNS[item.workflow](request, PlainRunner())


def _via_deployment(
    item: WorkItem, params: SweepParams, request: RunRequest, store: TraceStore
) -> tuple[str, str | None]:
    """Trigger the run-task deployment and wait; returns (run_id, error).

    The idempotency key is the (sweep, task, sample): a resumed sweep waits for a run an earlier
    attempt started and a worker still executes, instead of starting a second one. A run that
    ended without writing its row (a crashed worker, or one lost with its host and marked Crashed
    while the sweep waited, flows/pool_runs.py) is started again under a fresh key.
    """
    # Unset fields stay out: run-task's form schema has no null for them (flows/parameters.py), and
    # each one's default is None anyway.
    parameters = request.model_dump(mode="json", exclude_none=True)
    key = f"{request.sweep_id}/{item.task_id}/{item.sample}"
    child = run_on_pool(params.deployment, parameters, key, _run_label(item))
    run_id = str((child.parameters or {}).get("run_id") or request.run_id)
    state = child.state
    if state is not None and state.is_final() and not state.is_completed() and run_row(store, run_id) is None:
        run_id = new_id()
        parameters["run_id"] = run_id
        child = run_on_pool(params.deployment, parameters, f"{key}/{run_id}", _run_label(item))
        state = child.state
    if state is not None and state.is_completed():
        return run_id, None
    ended = f"{state.name}: {state.message}" if state else "without a state"
    return run_id, f"flow run {child.name} ended {ended}"


#: sweep id -> its budget while the flow runs (kept out of task parameters: it is live state, not data)
_budgets: dict[str, Budget] = {}


def run_item(
    item: WorkItem, params: SweepParams, sweep_id: str, traces: str, sandbox: str, run_id: str | None = None
) -> SweepTaskRow:
    """Run one (task, sample), then record it in the ledger (after the run's own rows are written).

    A run that fails still finishes the item: its error is recorded and the sweep goes on.
    """
    store = TraceStore(traces)
    run_id = run_id or new_id()
    budget = _budgets.get(sweep_id)
    candidates = None
    error: str | None = None
    request = _request(item, params, sweep_id, traces, sandbox, run_id)
    if params.executor == "local":
        try:
            scope = RunScope(budget=budget, cache=params.cache, sample=item.sample, artifacts=False)
            with scoped(run_id, scope):
                summary = _in_process(item, request)
            candidates = candidates_from_summary(summary)
        except Exception as exc:  # the run failed; the sweep records it and continues
            error = f"{type(exc).__name__}: {exc}"
            if budget is not None and run_id in budget.refused:
                error = f"stopped by the {budget.refused[run_id]} ({error})"
    else:
        run_id, error = _via_deployment(item, params, request, store)
    run = ensure_run_row(
        store,
        run_id=run_id,
        sweep_id=sweep_id,
        task_id=item.task_id,
        workflow=item.workflow,
        task_dir=item.task_dir,
        error=error or "the run wrote no result",
    )
    if budget is not None and run_id in budget.refused and run["status"] != "stopped":
        run = {**run, "status": "stopped"}  # the run died of the refusal before it could say so
    row = ledger_row(run, item.sample, candidates)
    if params.executor == "deployment":
        _charge(sweep_id, row)
    store.write("sweep_tasks", [row])
    return row


def _charge(sweep_id: str, row: SweepTaskRow) -> None:
    """Another process made the run's calls: the sweep's budget learns their spend from its row."""
    budget = _budgets.get(sweep_id)
    if budget is not None:
        budget.charge(row.run_id, "run", row.prompt_tokens + row.completion_tokens, row.cost_usd)


def run_unit(
    unit: list[WorkItem], params: SweepParams, sweep_id: str, traces: str, sandbox: str, run_id: str | None
) -> list[SweepTaskRow]:
    """One entry of the sweep's queue: a (task, sample) under ``run_id``, or (``run_id`` None) a shard
    of them on a run of run-shard (flows/sweep_shards.py)."""
    if run_id is not None:
        return [run_item(unit[0], params, sweep_id, traces, sandbox, run_id)]
    shard_parameters = {"params": params.model_dump(mode="json"), "sweep_id": sweep_id, "traces": traces, "sandbox": sandbox}
    rows = run_shard(unit, shard_parameters, TraceStore(traces), sweep_id)
    for row in rows:
        _charge(sweep_id, row)
    return rows


def _skipped_row(item: WorkItem, sweep_id: str, reason: str) -> SweepTaskRow:
    return SweepTaskRow(
        sweep_id=sweep_id,
        task_id=item.task_id,
        sample=item.sample,
        run_id="",
        workflow=item.workflow,
        task_dir=item.task_dir,
        status="skipped",
        error=f"skipped: {reason}",
    )


def _run_usage(row: dict[str, Any] | SweepTaskRow) -> Usage:
    data = row.model_dump() if isinstance(row, SweepTaskRow) else row
    return Usage(
        tokens=int(data["prompt_tokens"] or 0) + int(data["completion_tokens"] or 0),
        cost_usd=float(data["cost_usd"] or 0.0),
    )


def _mean(runs: list[Usage]) -> Usage:
    if not runs:
        return Usage()
    return Usage(tokens=sum(u.tokens for u in runs) // len(runs), cost_usd=sum(u.cost_usd for u in runs) / len(runs))


def _adopt_orphans(store: TraceStore, sweep_id: str, todo: list[WorkItem]) -> list[WorkItem]:
    """Record runs that finished but lost their ledger row to a kill; return what is left to run."""
    orphans = orphan_runs(store, sweep_id)
    left = []
    for item in todo:
        runs = orphans.get(item.task_id)
        if runs:
            store.write("sweep_tasks", [ledger_row(runs.pop(0), item.sample, adopted=True)])
        else:
            left.append(item)
    return left


def _previous_report(store: TraceStore, name: str, sweep_id: str) -> SweepReport | None:
    earlier = [s for s in sweeps(store, name) if s["event"] == "finished" and s["sweep_id"] != sweep_id]
    return build_report(store, earlier[0]["sweep_id"], name) if earlier else None


def _chart(store: TraceStore, traces: str, name: str, sweep_id: str, history: int, ran: bool) -> Path | None:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name)
    # matplotlib writes local files; beside a remote store the chart goes to the local cache.
    charts = get_settings().cache_dir / "charts" if store.remote else Path(traces) / "charts"
    out = charts / f"{slug}-{sweep_id}.png"
    if not ran:  # a resume with nothing left to run: keep the chart its last run drew (matplotlib costs seconds)
        return out if out.is_file() else None
    from domain.sweep_chart import history_chart  # imports matplotlib: only when a chart is drawn

    recent = [s for s in sweeps(store, name) if s["event"] == "finished"][:history]
    return history_chart(list(reversed(recent)), out, f"sweeps named {name}")


class Prepared(BaseModel):
    """What a sweep resolves before it runs anything; every check here fails with one clear line."""

    name: str
    sweep_id: str
    traces: str
    sandbox: str
    items: list[WorkItem]
    tasks: int


#: What the CLI prepared for the sweep it is about to start in this process, by the sweep's parameters
#: (JSON): the flow takes it instead of reading and validating every task folder again (a third of a
#: finished 14,042-task sweep's resume).
_handed_over: dict[str, Prepared] = {}


def hand_over(params: SweepParams, prepared: Prepared) -> None:
    """Give the sweep flow run about to start with ``params`` what :func:`prepare` made of them."""
    _handed_over[params.model_dump_json()] = prepared.model_copy(update={"sweep_id": params.sweep_id})


def prepare(params: SweepParams) -> Prepared:
    """Select and validate the tasks, check the workers, resolve the sandbox (used by the CLI too,
    so that bad input is refused before a flow run exists)."""
    settings = get_settings()
    tasks = select_tasks(params.tasks, list(params.workflows))
    if params.workers:
        preflight(list(params.workers), settings)
    else:
        check_router(params.router or settings.router_mode, settings)
    if params.max_cost is not None and not params.ignore_unpriced:
        refuse_unpriced(
            list(params.workers), params.router or settings.router_mode, sorted({t.workflow for t in tasks}), settings
        )

    return Prepared(
        name=params.name or sweep_name(params.tasks),
        sweep_id=params.sweep_id or new_id(),
        traces=absolute_root(params.traces_dir or settings.traces_dir),
        # "auto" is resolved once: every run of the sweep uses the same backend, and a missing one fails now.
        sandbox=get_backend(params.sandbox, settings).name,
        items=work_items(tasks, params.samples),
        tasks=len(tasks),
    )


@flow(name="sweep", flow_run_name=_run_name)
@model_parameters(SweepParams)
def sweep_flow(params: SweepParams) -> SweepReport:
    """Run every task under ``tasks``; resume ``sweep_id`` when it has finished runs. Its parameters
    are SweepParams' fields: ``sweep_flow(**dict(params))``."""
    logger = get_run_logger()
    started = time.perf_counter()
    if params.retry_errors and not params.sweep_id:
        raise UserInputError(RETRY_NEEDS_SWEEP)
    prep = _handed_over.pop(params.model_dump_json(), None) or prepare(params)
    name, sweep_id, traces, sandbox, items = prep.name, prep.sweep_id, prep.traces, prep.sandbox, prep.items
    store = TraceStore(traces)
    store.write(
        "sweeps",
        [
            SweepRow(
                sweep_id=sweep_id,
                name=name,
                event="started",
                tasks=params.tasks,
                params=params.model_dump_json(),
            )
        ],
    )
    record = ledger(store, sweep_id)
    keep = ("completed",) if params.retry_errors else DONE
    done = {(r["task_id"], r["sample"]) for r in record if r["status"] in keep}
    pending = [i for i in items if (i.task_id, i.sample) not in done]
    todo = _adopt_orphans(store, sweep_id, pending)
    spent = [_run_usage(r) for r in record if r["status"] in DONE]  # what one run costs, on average
    tokens_so_far, cost_so_far = spent_by_sweep(store, sweep_id)
    budget = Budget(
        max_cost_usd=params.max_cost,
        max_tokens=params.max_tokens,
        ignore_unpriced=params.ignore_unpriced,
        already_spent=Usage(tokens=tokens_so_far, cost_usd=cost_so_far),
    )
    logger.info(
        "sweep %s (%s): %d task(s) × %d sample(s); %d already finished, %d to run, %d at a time",
        sweep_id,
        name,
        prep.tasks,
        params.samples,
        len(items) - len(todo),
        len(todo),
        params.concurrency,
    )
    progress = ProgressArtifact(name, len(items), len(items) - len(todo))
    done_count = len(items) - len(todo)
    ticker = Ticker(done_count)
    # deployment: shards of tasks per flow run, unless one each (a budget checks before each start)
    size = 1
    if params.executor == "deployment":
        size = shard_size(params.shard_size or (1 if budget.limited else None), len(todo), params.concurrency)
    queue = list(reversed(split(todo, size)))
    in_flight: dict[Future[list[SweepTaskRow]], str] = {}
    pool = ThreadPoolExecutor(max_workers=params.concurrency, thread_name_prefix=f"sweep-{sweep_id}")
    stop_reason: str | None = None

    def submit_next() -> bool:
        """Start the next item if the budget lets it; False when nothing was started."""
        nonlocal stop_reason
        if not queue or stop_reason is not None:
            return False
        if budget.limited:
            refusal = budget.run_refusal(_mean(spent), list(in_flight.values()))
            if refusal is not None:
                if not in_flight:  # nothing will free room: the rest is skipped
                    stop_reason = refusal
                return False
        run_id = new_id() if size == 1 else None  # a shard's runs get their ids from run_shard
        # Each run sees the sweep's flow run context (its logger, its artifacts' flow run).
        context = contextvars.copy_context()
        unit = queue.pop()
        in_flight[pool.submit(context.run, run_unit, unit, params, sweep_id, traces, sandbox, run_id)] = run_id or ""
        return True

    def tick(batch: WriteBatch | None, force: bool = False) -> None:
        """Record the finished runs (the batch's flush) and show them in the progress artifact, at the
        ticker's ticks, not per run."""
        if ticker.tick(done_count, force):
            if batch is not None:
                batch.flush()
            progress.update(done_count)

    _budgets[sweep_id] = budget
    # In-process runs' trace rows wait in one batch, flushed at each tick (orchestrator/trace_batch.py);
    # the deployment's runs write their own rows in their own processes.
    with batched(store) if params.executor == "local" else nullcontext() as batch:
        try:
            while len(in_flight) < params.concurrency and submit_next():
                pass
            while in_flight:
                finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in finished:
                    del in_flight[future]
                    rows = future.result()  # raises only when recording failed (e.g. the trace folder is not writable)
                    spent += [_run_usage(row) for row in rows if row.status in DONE]
                    done_count += len(rows)
                tick(batch)
                while len(in_flight) < params.concurrency and submit_next():
                    pass  # with nothing in flight, a refusal names the stop and the rest is skipped
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _budgets.pop(sweep_id, None)
        tick(batch, force=True)
    if queue:
        reason = stop_reason or "budget"
        left = [item for unit in reversed(queue) for item in unit]
        store.write("sweep_tasks", [_skipped_row(item, sweep_id, reason) for item in left])
        logger.warning(
            "sweep %s: %d run(s) not started (%s); resume with a larger budget to run them",
            sweep_id, len(left), reason,
        )

    report = build_report(store, sweep_id, name, round(time.perf_counter() - started, 3))
    previous = _previous_report(store, name, sweep_id)
    store.write(
        "sweeps",
        [
            SweepRow(
                sweep_id=sweep_id,
                name=name,
                event="finished",
                tasks=params.tasks,
                params=params.model_dump_json(),
                total=report.total,
                passed=report.passed,
                failed=report.failed,
                errored=report.errored,
                skipped=report.skipped,
                pass_rate=report.pass_rate,
                cost_usd=report.cost_usd,
                duration_s=report.duration_s,
                models=json.dumps([m.model_dump() for m in report.models]),
            )
        ],
    )
    chart = _chart(store, traces, name, sweep_id, params.history, ran=bool(pending))
    publish(report, compare(report, previous) if previous else None, chart)
    logger.info(
        "sweep %s: %d/%d passed (%.1f%%), %d errored; artifacts under key %s",
        sweep_id,
        report.passed,
        report.total,
        100 * report.pass_rate,
        report.errored,
        artifact_key(name, "report"),
    )
    return report
