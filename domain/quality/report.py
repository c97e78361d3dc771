"""The report: the table, the routers and the chart from per-problem rows, and the marked block of
docs/quality.md and the README that shows them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.quality.chart import quality_chart
from domain.quality.router_eval import RouterReport, markdown, router_reports
from domain.quality.summary import by_strategy, markdown_table, summaries
from orchestrator.errors import UserInputError

BEGIN, END = "<!-- quality-report:begin -->", "<!-- quality-report:end -->"


@dataclass
class Report:
    summary: list[dict[str, Any]]
    routers: list[RouterReport]
    chart: Path

    def markdown(self, chart_link: str) -> str:
        parts = [markdown_table(self.summary)]
        parts += [markdown(router) for router in self.routers]
        parts.append(f"![pass rate against tokens; routers' cost-quality curves]({chart_link})")
        return "\n\n".join(parts)


def build_report(
    rows: list[dict[str, Any]],
    texts: dict[str, str],
    chart: Path,
    *,
    neighbours: int,
    margin: float,
    folds: int = 5,
) -> Report:
    if not rows:
        raise UserInputError("no rows to report on: run `bench/quality.py humaneval|gsm8k` first, or check the paths")
    summary = summaries(rows)
    routers = router_reports(
        by_strategy(rows).get("humaneval", {}), texts, neighbours=neighbours, margin=margin, folds=folds
    )
    return Report(summary=summary, routers=routers, chart=quality_chart(summary, routers, chart))


def replace_block(path: Path, text: str) -> None:
    """Put ``text`` between the report markers of ``path`` (which must have them: nothing else is touched)."""
    content = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        raise UserInputError(f"{path} has no {BEGIN} ... {END} block; add the two lines where the report goes")
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", content, count=1), encoding="utf-8")
