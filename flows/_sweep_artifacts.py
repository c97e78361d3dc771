"""Prefect artifacts of a sweep: progress while it runs; at the end the per-task and per-model tables
and a markdown report (comparison with the previous sweep, pass@k, the history chart)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from domain.sweep_report import Comparison, SweepReport
from domain.usage import total_tokens, usd
from tasks.bookkeeping import bookkeeping


def artifact_key(name: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only; one key per sweep name, so the UI
    lists each nightly sweep's artifacts as versions of the same key."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "sweep"
    return f"sweep-{slug}-{what}"[:120]


class ProgressArtifact:
    """A progress artifact updated as (task, sample) runs finish (Prefect API failures are retried,
    then dropped: progress is bookkeeping, tasks/bookkeeping.py)."""

    def __init__(self, name: str, total: int, done: int) -> None:
        self.total = max(total, 1)
        created = bookkeeping(
            "the sweep's progress artifact", create_progress_artifact,
            progress=self._pct(done), key=artifact_key(name, "progress"), description=self._text(done),
        )  # fmt: skip
        self.id = cast(UUID | None, created)  # the sync call returns the id; the union is for async callers

    def _pct(self, done: int) -> float:
        return round(100.0 * done / self.total, 2)

    def _text(self, done: int) -> str:
        return f"{done} of {self.total} runs finished"

    def update(self, done: int) -> None:
        if self.id is not None:
            bookkeeping(
                "the sweep's progress", update_progress_artifact,
                self.id, progress=self._pct(done), description=self._text(done),
            )  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def task_table(report: SweepReport) -> list[dict[str, Any]]:
    return [
        {
            "task": t.task_id,
            "workflow": t.workflow,
            "passed": f"{t.passed}/{t.samples}" if report.samples > 1 else ("yes" if t.passed else "no"),
            "errored": t.errored,
            "rounds": t.rounds,
            "cost_usd": usd(t.cost_usd),
            "duration_s": t.duration_s,
        }
        for t in report.tasks
    ]


def model_table(report: SweepReport) -> list[dict[str, Any]]:
    return [
        {
            "model": m.model,
            "candidates": m.candidates,
            "passed": m.passed,
            "pass_rate": _pct(m.pass_rate),
            "calls": m.calls,
            "prompt_tokens": m.prompt_tokens,
            "completion_tokens": m.completion_tokens,
            "cost_usd": usd(m.cost_usd),
        }
        for m in report.models
    ]


def _names(ids: list[str], limit: int = 30) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:limit])
    return shown + (f" … and {len(ids) - limit} more" if len(ids) > limit else "")


def report_markdown(report: SweepReport, comparison: Comparison | None, chart: Path | None) -> str:
    lines = [
        f"# Sweep `{report.name}` — `{report.sweep_id}`",
        "",
        f"**{report.passed} of {report.total} passed ({_pct(report.pass_rate)})**, {report.failed} failed, "
        f"{report.errored} errored, over {len(report.tasks)} task(s) × {report.samples} sample(s); "
        f"cost {usd(report.cost_usd)}{'' if report.cost_complete else ' (some costs unknown)'}; "
        f"{total_tokens(report):,} tokens; {report.duration_s:.1f}s wall clock.",
        "",
        " · ".join(f"**{k}** {_pct(v)}" for k, v in report.pass_at_k.items()),
        "",
    ]
    if comparison is None:
        lines += [
            "## Compared with the previous sweep",
            "",
            f"No earlier finished sweep named `{report.name}`.",
            "",
        ]
    else:
        c = comparison
        lines += [
            f"## Compared with the previous sweep `{c.previous_sweep_id}`",
            "",
            "| | previous | now | change |",
            "|---|---|---|---|",
            f"| pass rate | {_pct(c.previous_pass_rate)} | {_pct(report.pass_rate)} "
            f"| {100 * c.pass_rate_delta:+.1f} pt |",
            f"| cost | {usd(c.previous_cost)} | {usd(report.cost_usd)} | {usd(c.cost_delta, signed=True)} |",
            "",
            f"**Newly failing ({len(c.newly_failing)}):** {_names(c.newly_failing) or 'none'}",
            "",
            f"**Newly passing ({len(c.newly_passing)}):** {_names(c.newly_passing) or 'none'}",
            "",
        ]
        if c.added or c.removed:
            lines += [
                f"Tasks added: {_names(c.added) or 'none'}; removed: {_names(c.removed) or 'none'}.",
                "",
            ]
    lines += [
        "## Models",
        "",
        "| model | pass rate | passed/judged | calls | tokens | cost |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{m.model}` | {_pct(m.pass_rate)} | {m.passed}/{m.judged} | {m.calls} | "
        f"{total_tokens(m):,} | {usd(m.cost_usd)} |"
        for m in report.models
    ]
    if chart is not None:
        # Inline: a file:// link to the worker's disk is refused by browsers and would show its path.
        encoded = base64.b64encode(chart.read_bytes()).decode("ascii")
        lines += [
            "",
            "## History",
            "",
            f"Pass rate and cost per model over the recent sweeps named `{report.name}` "
            f"(also saved as `{chart.name}` in the trace store's charts folder).",
            "",
            f"![pass rate and cost per model](data:image/png;base64,{encoded})",
        ]
    return "\n".join(lines) + "\n"


def publish(report: SweepReport, comparison: Comparison | None, chart: Path | None) -> None:
    bookkeeping(
        "the sweep's task table", create_table_artifact,
        task_table(report), key=artifact_key(report.name, "tasks"), description=f"Per task, sweep {report.sweep_id}",
    )  # fmt: skip
    bookkeeping(
        "the sweep's model table", create_table_artifact,
        model_table(report), key=artifact_key(report.name, "models"),
        description=f"Per model, sweep {report.sweep_id}",
    )  # fmt: skip
    bookkeeping(
        "the sweep's report", create_markdown_artifact,
        report_markdown(report, comparison, chart),
        key=artifact_key(report.name, "report"),
        description=f"Sweep {report.sweep_id}: summary, comparison with the previous sweep, history chart",
    )
