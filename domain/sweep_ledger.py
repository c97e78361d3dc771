"""The sweep ledger: which (task, sample) of a sweep has finished, and the sweeps themselves.

Order of writes for one (task, sample): the workflow writes its ``runs`` row (and its calls/attempts),
*then* a ``sweep_tasks`` row is written here. Each write is one Parquet file renamed into place, so a
``kill -9`` leaves every file whole or absent; inside a sweep the writes wait in its write batch, which
keeps that order on disk (orchestrator/trace_batch.py). Resume reads the ledger and skips what is in it.

The one gap is a kill between the two writes: the run is in ``runs`` but not in the ledger. Resume
does not run such a task again; it *adopts* the orphan run (writes its ledger row from the ``runs``
row), so each (task, sample) has one run in ``runs`` for the sweep.

A (task, sample) may have several ledger rows: ``skipped`` (a budget kept it from starting),
``stopped`` (a budget refused one of its calls), then a later run when the sweep is resumed, or an
``error`` run followed by its rerun under ``--retry-errors``. Reads keep one row per (task_id,
sample): the latest run of record (a ``skipped`` row only when nothing ran), so a summary counts
each task once, with its latest run, even if two processes resumed the same sweep at once.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.records import RunRow, RunSummary, SweepTaskRow, WorkerSpec
from orchestrator.trace_batch import batch_for
from orchestrator.traces import TraceStore


def model_of(worker_label: str) -> tuple[str, str]:
    """``provider:model:role`` -> (``provider:model``, role); model names may hold colons themselves."""
    worker = WorkerSpec.from_label(worker_label)
    return worker.model_label, worker.role


def candidates_from_summary(summary: RunSummary) -> list[dict[str, Any]]:
    return [
        {"model": model_of(c.worker)[0], "role": model_of(c.worker)[1], "passed": c.passed}
        for c in summary.candidates
    ]


def candidates_from_run(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Candidates when only the ``runs`` row is known: a single solver carries the run's verdict;
    with several solvers the per-candidate verdicts are not in that row, so they stay unknown."""
    labels = json.loads(run.get("workers") or "[]")
    solvers = [model_of(label) for label in labels if model_of(label)[1] == "solver"]
    verdict = run.get("passed") if len(solvers) == 1 else None
    return [{"model": model, "role": role, "passed": verdict} for model, role in solvers]


def ledger_row(
    run: dict[str, Any], sample: int, candidates: list[dict[str, Any]] | None = None, *, adopted: bool = False
) -> SweepTaskRow:
    """The ledger row for a finished run, built from its ``runs`` row (the record both paths share)."""
    return SweepTaskRow(
        sweep_id=run["sweep_id"],
        task_id=run["task_id"],
        sample=sample,
        run_id=run["run_id"],
        workflow=run["workflow"],
        task_dir=run["task_dir"],
        status=run["status"] if run["status"] in ("error", "stopped") else "completed",
        passed=run["passed"],
        rounds=run["rounds"] or 0,
        prompt_tokens=run["prompt_tokens"] or 0,
        completion_tokens=run["completion_tokens"] or 0,
        cost_usd=run["cost_usd"],
        duration_s=run["duration_s"] or 0.0,
        candidates=json.dumps(candidates if candidates is not None else candidates_from_run(run)),
        adopted=adopted,
        error=run["error"],
    )


def query(store: TraceStore, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """Rows as dicts; views of only the tables ``sql`` names (a store of a year's history has many files)."""
    columns, rows = store.sql(sql, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def spent_by_sweep(store: TraceStore, sweep_id: str) -> tuple[int, float]:
    """Tokens and dollars the sweep's model calls have spent so far, every call of every run of it
    (stopped, errored and superseded runs too, the tester's and judge's calls too): what a resumed
    sweep's budget starts from. Calls without a price count 0 dollars."""
    if not {"runs", "calls"} <= set(store.table_names()):
        return 0, 0.0
    [row] = query(
        store,
        "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens, coalesce(sum(cost_usd), 0) AS cost "
        "FROM calls WHERE run_id IN (SELECT run_id FROM runs WHERE sweep_id = ?)",
        [sweep_id],
    )
    return int(row["tokens"]), float(row["cost"])


def run_row(store: TraceStore, run_id: str) -> dict[str, Any] | None:
    batch = batch_for(store)  # in a sweep, a run's row waits in the sweep's write batch
    pending = batch.pending("runs", run_id=run_id) if batch is not None else []
    if pending:
        return pending[0]
    rows = query(store, "SELECT * FROM runs WHERE run_id = ? ORDER BY finished_at LIMIT 1", [run_id])
    return rows[0] if rows else None


def ensure_run_row(
    store: TraceStore, *, run_id: str, sweep_id: str, task_id: str, workflow: str, task_dir: str, error: str
) -> dict[str, Any]:
    """The run's ``runs`` row; when the run died before writing one, an ``error`` row is written for it,
    so that every ledger row points at a run in ``runs``."""
    existing = run_row(store, run_id)
    if existing is not None:
        return existing
    row = RunRow(
        run_id=run_id,
        task_id=task_id,
        workflow=workflow,
        task_dir=task_dir,
        status="error",
        sweep_id=sweep_id,
        error=error[:2000],
    )
    store.write("runs", [row])
    return row.model_dump()


#: Statuses of a run that a plain resume does not run again.
DONE = ("completed", "error")
#: Statuses the budget left: a resume (with a larger budget) runs these again.
BUDGET_LEFT = ("skipped", "stopped")


def ledger(store: TraceStore, sweep_id: str) -> list[dict[str, Any]]:
    """The sweep's record, one row per (task_id, sample): its latest run, or its ``skipped`` row
    when it never ran."""
    return query(
        store,
        "SELECT * FROM sweep_tasks WHERE sweep_id = ? "
        "QUALIFY row_number() OVER (PARTITION BY task_id, sample "
        "ORDER BY status = 'skipped', finished_at DESC, run_id DESC) = 1 "
        "ORDER BY task_id, sample",
        [sweep_id],
    )


def finished(store: TraceStore, sweep_id: str) -> list[dict[str, Any]]:
    """The (task, sample)s whose latest run completed or errored: what a summary counts."""
    return [r for r in ledger(store, sweep_id) if r["status"] in DONE]


def finished_count(store: TraceStore, sweep_id: str) -> int:
    rows = query(
        store,
        "SELECT count(DISTINCT (task_id, sample)) AS n FROM sweep_tasks "
        "WHERE sweep_id = ? AND list_contains(?, status)",
        [sweep_id, list(DONE)],
    )
    return int(rows[0]["n"])


def orphan_runs(store: TraceStore, sweep_id: str) -> dict[str, list[dict[str, Any]]]:
    """Runs of the sweep that wrote their ``runs`` row but have no ledger row, by task id."""
    rows = query(
        store,
        "SELECT * FROM runs WHERE sweep_id = ? AND run_id NOT IN "
        "(SELECT run_id FROM sweep_tasks WHERE sweep_id = ?) ORDER BY finished_at",
        [sweep_id, sweep_id],
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["task_id"], []).append(row)
    return out


def sweeps(store: TraceStore, name: str | None = None) -> list[dict[str, Any]]:
    """Sweeps (latest event each), newest first; ``name`` filters."""
    where, params = ("WHERE name = ?", [name]) if name is not None else ("", [])
    return query(
        store,
        f"SELECT * FROM sweeps {where} "
        "QUALIFY row_number() OVER (PARTITION BY sweep_id ORDER BY ts DESC, event DESC) = 1 "
        "ORDER BY ts DESC",
        params,
    )
