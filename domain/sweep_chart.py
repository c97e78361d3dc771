"""The history chart: pass rate and cost per model over the last N sweeps of a name, as a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402


def _short(label: str, width: int = 36) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def history_chart(history: list[dict[str, Any]], out: Path, title: str) -> Path | None:
    """Draw ``history`` (finished ``sweeps`` rows, oldest first) to ``out``; None when it is empty."""
    if not history:
        return None
    labels = [f"{row['ts']:%m-%d %H:%M}\n{row['sweep_id'][:8]}" for row in history]
    series: dict[str, dict[int, dict[str, Any]]] = {}
    for x, row in enumerate(history):
        for model in json.loads(row["models"] or "[]"):
            series.setdefault(model["model"], {})[x] = model
    fig, (rate_ax, cost_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, dpi=80)
    rate_ax.plot(
        range(len(history)), [100 * (r["pass_rate"] or 0) for r in history], "k--", label="sweep (all)"
    )
    for model, points in sorted(series.items()):
        xs = sorted(points)
        rate_ax.plot(
            [x for x in xs if points[x].get("pass_rate") is not None],
            [100 * points[x]["pass_rate"] for x in xs if points[x].get("pass_rate") is not None],
            marker="o",
            label=_short(model),
        )
        cost_ax.plot(
            [x for x in xs if points[x].get("cost_usd") is not None],
            [points[x]["cost_usd"] for x in xs if points[x].get("cost_usd") is not None],
            marker="o",
            label=_short(model),
        )
    rate_ax.set_ylabel("pass rate (%)")
    rate_ax.set_ylim(-5, 105)
    rate_ax.set_title(title)
    rate_ax.legend(fontsize="small", loc="lower left")
    cost_ax.set_ylabel("cost (USD)")
    # costs are never negative; all-zero costs (free or local models) get a 0..1 axis, not -0.04..0.04
    top = max((p.get("cost_usd") or 0.0 for points in series.values() for p in points.values()), default=0.0)
    cost_ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)
    cost_ax.set_xticks(range(len(history)), labels, fontsize="x-small")
    for ax in (rate_ax, cost_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(out)
    return out
