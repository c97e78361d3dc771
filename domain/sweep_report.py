"""A sweep's numbers, read back from the ledger: totals, per task, per model, pass@k, and the
comparison with the previous sweep of the same name. Pure reads and arithmetic; no Prefect here."""

from __future__ import annotations

import json
from collections import defaultdict
from math import comb
from typing import Any

from pydantic import BaseModel, Field

from domain.sweep_ledger import BUDGET_LEFT, DONE, ledger, query
from domain.usage import total_tokens
from orchestrator.traces import TraceStore

#: The k of pass@k reported when several samples are drawn (plus the sample count itself).
PASS_AT = (1, 2, 5, 10, 20, 50, 100)


class TaskResult(BaseModel):
    task_id: str
    workflow: str
    samples: int
    passed: int  # samples that passed
    errored: int
    rounds: int
    cost_usd: float | None
    duration_s: float

    @property
    def pass_fraction(self) -> float:
        return self.passed / self.samples if self.samples else 0.0


class ModelStats(BaseModel):
    """One model over the sweep. Tokens and cost come from the ``calls`` table (retries and fallbacks
    included); the pass rate from the candidates the model produced whose verdict is known."""

    model: str
    candidates: int = 0
    judged: int = 0
    passed: int = 0
    pass_rate: float | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0


class SweepReport(BaseModel):
    sweep_id: str
    name: str
    total: int  # finished (task, sample) runs
    passed: int
    failed: int
    errored: int
    skipped: int = 0  # (task, sample)s the budget left: not started, or stopped between calls
    pass_rate: float
    cost_usd: float  # the sum of the known costs
    cost_complete: bool  # False when some run's cost is unknown (a model missing from the price table)
    prompt_tokens: int
    completion_tokens: int
    duration_s: float = 0.0  # wall clock of the sweep invocation that produced this report
    task_time_s: float  # the runs' own durations, summed
    samples: int
    adopted: int  # ledger rows recovered from orphan runs on resume
    pass_at_k: dict[str, float] = Field(default_factory=dict)
    tasks: list[TaskResult] = Field(default_factory=list)
    models: list[ModelStats] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The one JSON object ``orchestrator sweep --json`` prints."""
        return {
            "sweep_id": self.sweep_id,
            "name": self.name,
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errored": self.errored,
            "skipped": self.skipped,
            "pass_rate": round(self.pass_rate, 6),
            "cost": round(self.cost_usd, 10),
            "cost_complete": self.cost_complete,
            "duration_s": round(self.duration_s, 3),
            "tasks": len(self.tasks),
            "samples": self.samples,
            "pass_at_k": self.pass_at_k,
            "tokens": total_tokens(self),
            "models": [m.model_dump() for m in self.models],
        }


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_pass_at_k(tasks: list[TaskResult]) -> dict[str, float]:
    """pass@k averaged over tasks, for every k in PASS_AT up to the fewest samples any task has."""
    if not tasks:
        return {}
    fewest = min(t.samples for t in tasks)
    ks = sorted({k for k in PASS_AT if k <= fewest} | {fewest})
    return {
        f"pass@{k}": round(sum(pass_at_k(t.samples, t.passed, k) for t in tasks) / len(tasks), 6) for k in ks
    }


def _sum_known(values: list[float | None]) -> tuple[float, bool]:
    return round(sum(v for v in values if v is not None), 10), all(v is not None for v in values)


def _task_results(rows: list[dict[str, Any]]) -> list[TaskResult]:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_task[row["task_id"]].append(row)
    results = []
    for task_id, samples in sorted(by_task.items()):
        cost, complete = _sum_known([r["cost_usd"] for r in samples])
        results.append(
            TaskResult(
                task_id=task_id,
                workflow=samples[0]["workflow"],
                samples=len(samples),
                passed=sum(1 for r in samples if r["passed"] and r["status"] != "error"),
                errored=sum(1 for r in samples if r["status"] == "error"),
                rounds=max(r["rounds"] for r in samples),
                cost_usd=cost if complete else None,
                duration_s=round(sum(r["duration_s"] for r in samples), 3),
            )
        )
    return results


def _model_stats(store: TraceStore, rows: list[dict[str, Any]]) -> list[ModelStats]:
    stats: dict[str, ModelStats] = {}
    for row in rows:
        for cand in json.loads(row["candidates"] or "[]"):
            m = stats.setdefault(cand["model"], ModelStats(model=cand["model"]))
            m.candidates += 1
            if cand.get("passed") is not None:
                m.judged += 1
                m.passed += bool(cand["passed"])
    usage = query(
        store,
        "SELECT provider || ':' || model AS model, count(*) FILTER (WHERE attempt > 0) AS calls, sum(prompt_tokens) AS pt, "
        "sum(completion_tokens) AS ct, sum(cost_usd) AS cost, bool_or(ok AND cost_usd IS NULL) AS unknown "
        "FROM calls WHERE list_contains(?, run_id) GROUP BY 1",
        [[r["run_id"] for r in rows]],
    )
    for u in usage:
        m = stats.setdefault(u["model"], ModelStats(model=u["model"]))
        m.calls, m.prompt_tokens, m.completion_tokens = int(u["calls"]), int(u["pt"] or 0), int(u["ct"] or 0)
        m.cost_usd = None if u["unknown"] else round(float(u["cost"] or 0.0), 10)
    for m in stats.values():
        m.pass_rate = round(m.passed / m.judged, 6) if m.judged else None
    return sorted(stats.values(), key=lambda m: m.model)


def build_report(store: TraceStore, sweep_id: str, name: str, duration_s: float = 0.0) -> SweepReport:
    """The sweep's report from its (deduplicated) ledger: each (task, sample) counted once, with its
    latest run; what the budget left is counted apart (``skipped``), not as failed."""
    record = ledger(store, sweep_id)
    rows = [r for r in record if r["status"] in DONE]
    tasks = _task_results(rows)
    errored = sum(1 for r in rows if r["status"] == "error")
    passed = sum(1 for r in rows if r["passed"] and r["status"] != "error")
    cost, complete = _sum_known([r["cost_usd"] for r in rows])
    samples = max((t.samples for t in tasks), default=1)
    models = _model_stats(store, rows)
    return SweepReport(
        sweep_id=sweep_id,
        name=name,
        total=len(rows),
        passed=passed,
        failed=len(rows) - passed - errored,
        errored=errored,
        skipped=sum(1 for r in record if r["status"] in BUDGET_LEFT),
        pass_rate=round(passed / len(rows), 6) if rows else 0.0,
        cost_usd=cost,
        cost_complete=complete,
        # the calls table is the one source of tokens (the tester's and judge's calls, retries
        # included), so the headline is the models table's sum
        prompt_tokens=sum(m.prompt_tokens for m in models),
        completion_tokens=sum(m.completion_tokens for m in models),
        duration_s=duration_s,
        task_time_s=round(sum(r["duration_s"] for r in rows), 3),
        samples=samples,
        adopted=sum(1 for r in rows if r["adopted"]),
        pass_at_k=mean_pass_at_k(tasks)
        if samples > 1
        else {"pass@1": round(passed / len(rows), 6) if rows else 0.0},
        tasks=tasks,
        models=models,
    )


class Comparison(BaseModel):
    """Tonight against the previous sweep of the same name. A task counts as passing when at least
    half of its samples pass (with one sample: when it passes)."""

    previous_sweep_id: str
    newly_failing: list[str]
    newly_passing: list[str]
    added: list[str]
    removed: list[str]
    pass_rate_delta: float
    cost_delta: float
    previous_pass_rate: float
    previous_cost: float


def compare(current: SweepReport, previous: SweepReport) -> Comparison:
    now = {t.task_id: t.pass_fraction >= 0.5 for t in current.tasks}
    before = {t.task_id: t.pass_fraction >= 0.5 for t in previous.tasks}
    both = now.keys() & before.keys()
    return Comparison(
        previous_sweep_id=previous.sweep_id,
        newly_failing=sorted(t for t in both if before[t] and not now[t]),
        newly_passing=sorted(t for t in both if now[t] and not before[t]),
        added=sorted(now.keys() - before.keys()),
        removed=sorted(before.keys() - now.keys()),
        pass_rate_delta=round(current.pass_rate - previous.pass_rate, 6),
        cost_delta=round(current.cost_usd - previous.cost_usd, 10),
        previous_pass_rate=previous.pass_rate,
        previous_cost=previous.cost_usd,
    )
