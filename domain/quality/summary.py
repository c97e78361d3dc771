"""The table: per-problem rows of several passes merged into one summary row per strategy.

Rows are grouped by benchmark (the task id's prefix); a rerun's row for a problem wins. Each strategy
is compared with the one-call baseline (``one`` when present, else the first strategy seen) on the
problems both finished: Δ points and × tokens are paired, problem for problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BASELINE = "one"


def benchmark_of(task_id: str) -> str:
    return task_id.split("/")[0].lower()


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def by_strategy(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """benchmark -> strategy -> task id -> row, strategies in first-seen order, the last row winning."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for row in rows:
        out.setdefault(benchmark_of(row["task_id"]), {}).setdefault(row["strategy"], {})[row["task_id"]] = row
    return out


def ordered(tasks: Iterable[str]) -> list[str]:
    """Task ids in benchmark order (by the number after the last slash)."""
    return sorted(tasks, key=lambda t: int(t.rsplit("/", 1)[-1]) if t.rsplit("/", 1)[-1].isdigit() else 0)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    model_s = sum(r["model_s"] for r in rows)
    test_s = sum(r["test_s"] for r in rows)
    return {
        "problems": n,
        "passed": sum(bool(r["passed"]) for r in rows),
        "pass_at_1": round(sum(bool(r["passed"]) for r in rows) / n, 4) if n else 0.0,
        "tokens": sum(r["tokens"] for r in rows),
        "calls": sum(r["calls"] for r in rows),
        "model_s": round(model_s, 1),
        "test_s": round(test_s, 1),
        "wall_s": round(model_s + test_s, 1),
        "cost_usd": 0.0,  # local models: free in dollars (their time is wall_s)
    }


def summaries(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per (benchmark, strategy): each strategy over the problems it finished that the
    baseline finished too, with the baseline's figures on exactly those problems beside it (a strategy
    run on a subset is compared with the one call on that subset, never with the whole)."""
    out: list[dict[str, Any]] = []
    for benchmark, strategies in by_strategy(rows).items():
        base_name = BASELINE if BASELINE in strategies else next(iter(strategies))
        base_rows = strategies[base_name]
        for name, rows_by_task in strategies.items():
            tasks = ordered(t for t in rows_by_task if t in base_rows)
            mine, base = summarise([rows_by_task[t] for t in tasks]), summarise([base_rows[t] for t in tasks])
            out.append(
                {
                    "benchmark": benchmark,
                    "strategy": name,
                    **mine,
                    "baseline": base_name,
                    "baseline_pass_at_1": base["pass_at_1"],
                    "points_over_baseline": round(100 * (mine["pass_at_1"] - base["pass_at_1"]), 1),
                    "tokens_ratio": round(mine["tokens"] / base["tokens"], 2) if base["tokens"] else None,
                }
            )
    return out


def markdown_table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| benchmark | strategy | problems | pass@1 (hidden) | one call, same problems | Δ points | tokens | × one call | wall time | cost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        delta = "—" if s["strategy"] == s["baseline"] else f"{s['points_over_baseline']:+.1f}"
        lines.append(
            f"| {s['benchmark']} | `{s['strategy']}` | {s['problems']} | {s['passed']}/{s['problems']} = "
            f"{100 * s['pass_at_1']:.1f} % | {100 * s['baseline_pass_at_1']:.1f} % | {delta} | {s['tokens']:,} | {s['tokens_ratio']} | "
            f"{s['wall_s']:,.0f} s | ${s['cost_usd']:.2f} |"
        )
    return "\n".join(lines)


def text_table(summary: list[dict[str, Any]]) -> str:
    header = f"{'strategy':44} {'problems':>8} {'pass@1':>8} {'Δ pts':>6} {'tokens':>9} {'× base':>7} {'wall s':>8}"
    lines = [header, "-" * len(header)]
    for s in summary:
        lines.append(
            f"{s['benchmark'] + ' ' + s['strategy']:44} {s['problems']:>8} {100 * s['pass_at_1']:>7.1f}% "
            f"{s['points_over_baseline']:>+6.1f} {s['tokens']:>9} {s['tokens_ratio']!s:>7} {s['wall_s']:>8}"
        )
    return "\n".join(lines)
