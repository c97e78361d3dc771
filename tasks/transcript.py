"""A run's transcript for the Prefect UI: for each candidate and round, the code, the test output and
the verdict (from the ``attempts`` table), and each candidate's final answer. Secrets never reach it:
it shows only what the trace tables already hold, and those are redacted when written."""

from __future__ import annotations

from typing import Any

from orchestrator.records import RunSummary
from orchestrator.traces import TraceStore

#: characters of one code block or test output shown (the trace tables hold the rest)
_SHOWN = 4000


def _block(text: str, lang: str = "") -> list[str]:
    cut = text if len(text) <= _SHOWN else text[:_SHOWN] + f"\n… ({len(text) - _SHOWN} more characters)"
    fence = "~~~~" if "```" in cut else "```"
    return [f"{fence}{lang}", cut.rstrip("\n"), fence]


def transcript_markdown(summary: RunSummary, attempts: list[dict[str, Any]]) -> str:
    lines = [f"# Transcript of {summary.task_id} ({summary.workflow}), run `{summary.run_id}`", ""]
    for cand in summary.candidates:
        best = " (best)" if cand.candidate_id == summary.best_candidate else ""
        verdict = {True: "passed", False: "failed", None: "no verdict"}[cand.passed]
        lines += [f"## Candidate `{cand.candidate_id[:8]}`{best}: {cand.worker}, {verdict}", ""]
        mine = sorted(
            (a for a in attempts if a["candidate_id"] == cand.candidate_id), key=lambda a: (a["round"], a["suite"])
        )
        for a in mine:
            outcome = "passed" if a["passed"] else "failed"
            lines += [
                f"### Round {a['round']}, {a['suite']} tests: {outcome} "
                f"({a['tests_passed']} passed, {a['tests_failed']} failed, {a['tests_errors']} errors"
                f"{', timed out' if a['timed_out'] else ''})",
                "",
                "Code:",
                "",
                *_block(a["code"], "python"),
                "",
                "Test output:",
                "",
                *_block(a["output_excerpt"] or "(none)"),
                "",
            ]
        if not mine:
            lines += ["Answer:", "", *_block(cand.output or "(empty)"), ""]
        if cand.error:
            lines += [f"error: {cand.error}", ""]
    return "\n".join(lines)


def run_transcript(summary: RunSummary, store: TraceStore) -> str:
    return transcript_markdown(summary, store.rows("attempts", run_id=summary.run_id))
