"""The chart: pass rate against tokens per strategy, and the routers' cost-quality curves, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from domain.quality.router_eval import RouterReport  # noqa: E402


def quality_chart(summary: list[dict[str, Any]], routers: list[RouterReport], out: Path) -> Path:
    panels = 1 + len(routers)
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 5), dpi=90, squeeze=False)
    ax = axes[0][0]
    for benchmark, marker in zip(dict.fromkeys(s["benchmark"] for s in summary), "osD^v", strict=False):
        group = [s for s in summary if s["benchmark"] == benchmark]
        xs = [float(s["tokens_ratio"] or 0.0) for s in group]
        ys = [100 * float(s["pass_at_1"]) for s in group]
        ax.scatter(xs, ys, marker=marker, s=50, label=f"{benchmark} ({group[0]['problems']} problems)")
        for x, y, s in zip(xs, ys, group, strict=True):
            ax.annotate(str(s["strategy"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel("tokens (prompt + completion), × the one call")
    ax.set_ylabel("pass@1, hidden tests (%)")
    ax.set_title("Strategies: pass rate against tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for rax, router in zip(axes[0][1:], routers, strict=True):
        for line in router.lines:
            xs = [100 * share for share, _ in line.curve]
            ys = [100 * rate for _, rate in line.curve]
            style = "o" if len(line.curve) == 1 else "-o"
            rax.plot(xs, ys, style, markersize=3, label=line.router)
        rax.set_xlabel("problems sent to the strong side (%)")
        rax.set_ylabel("pass@1, hidden tests (%)")
        rax.set_title(f"Routers {router.weak_name} → {router.strong_name} ({router.problems} problems)", fontsize=10)
        rax.grid(alpha=0.3)
        rax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
