"""Pass rate against tokens for the strategies in bench/quality.py's summary files.

``python bench/quality_chart.py bench/results/humaneval-41-every4-0.summary.jsonl [...] --png docs/quality.png``

One point per strategy (the last summary line of each strategy in each file), x = tokens relative to
the file's baseline (its first strategy), y = pass@1; one marker per file (benchmark and subset).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def latest_per_strategy(path: Path) -> list[dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[str(row["strategy"])] = row
    return list(rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+", type=Path)
    parser.add_argument("--png", type=Path, default=Path("docs/quality.png"))
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(8, 5))
    for path, marker in zip(args.summaries, "osD^v<>", strict=False):
        rows = latest_per_strategy(path)
        if not rows:
            continue
        first = rows[0]
        xs = [float(str(r["tokens_ratio"])) for r in rows]
        ys = [100 * float(str(r["pass_at_1"])) for r in rows]
        ax.scatter(
            xs,
            ys,
            marker=marker,
            s=50,
            label=f"{first['benchmark']} ({first['subset']}, {first['problems']})",
        )
        for x, y, r in zip(xs, ys, rows, strict=True):
            ax.annotate(str(r["strategy"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("tokens (prompt + completion), × the one-call baseline")
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("Strategies on the local models: pass rate against tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print(f"chart: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
