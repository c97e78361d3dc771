"""A run's transcript for the Prefect UI: for each candidate and round, the messages sent and the reply
(from the ``calls`` table), the code, the test output and the verdict (from ``attempts``); then the
calls of no candidate (route, tests written, judge). Secrets never reach it: it shows only what the
trace tables already hold, and those are redacted when written."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from orchestrator.records import RunSummary
from orchestrator.traces import TraceStore

#: characters of one code block, message or test output shown (the trace tables hold the rest)
_SHOWN = 4000
#: the calls that write a candidate's code, one per round, in order
_ROUND_PURPOSES = ("solve", "fix")
NOT_RECORDED = "(messages not recorded: the calls row predates trace schema 3)"


def _block(text: str, lang: str = "") -> list[str]:
    cut = text if len(text) <= _SHOWN else text[:_SHOWN] + f"\n… ({len(text) - _SHOWN} more characters)"
    fence = "~~~~" if "```" in cut else "```"
    return [f"{fence}{lang}", cut.rstrip("\n"), fence]


def _messages(call: dict[str, Any], seen: int) -> tuple[list[str], int]:
    """The call's messages after the first ``seen`` (those an earlier round already showed) and its
    reply, as markdown; returns them and how many messages the conversation holds with the reply."""
    if call.get("request") is None:
        return [NOT_RECORDED, ""], seen
    sent = json.loads(call["request"])
    lines: list[str] = []
    for message in sent[seen:] if seen <= len(sent) else sent:
        lines += [f"**{message['role']}**:", "", *_block(message["content"]), ""]
    if call.get("reply") is not None:
        lines += [f"**reply** ({call['provider']}:{call['model']}):", "", *_block(call["reply"]), ""]
    elif call.get("error"):
        lines += [f"**no reply**: {call['error']}", ""]
    return lines, len(sent) + 1


def _attempt(a: dict[str, Any]) -> list[str]:
    outcome = "passed" if a["passed"] else "failed"
    return [
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


def transcript_markdown(summary: RunSummary, attempts: list[dict[str, Any]], calls: list[dict[str, Any]]) -> str:
    lines = [f"# Transcript of {summary.task_id} ({summary.workflow}), run `{summary.run_id}`", ""]
    answered = sorted((c for c in calls if c["ok"]), key=lambda c: c["ts"])
    by_candidate: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for call in answered:
        by_candidate[call["candidate_id"]].append(call)
    for cand in summary.candidates:
        best = " (best)" if cand.candidate_id == summary.best_candidate else ""
        verdict = {True: "passed", False: "failed", None: "no verdict"}[cand.passed]
        lines += [f"## Candidate `{cand.candidate_id[:8]}`{best}: {cand.worker}, {verdict}", ""]
        mine = sorted(
            (a for a in attempts if a["candidate_id"] == cand.candidate_id), key=lambda a: (a["round"], a["suite"])
        )
        own_calls = by_candidate.pop(cand.candidate_id, [])
        # the n-th code-writing call wrote round n's code (a retried try's failed rows are not answers)
        round_calls = [c for c in own_calls if c["purpose"] in _ROUND_PURPOSES]
        seen = 0
        for number in sorted({a["round"] for a in mine}):
            lines += [f"### Round {number}: messages", ""]
            if number <= len(round_calls):
                shown, seen = _messages(round_calls[number - 1], seen)
                lines += shown
            for a in (a for a in mine if a["round"] == number):
                lines += _attempt(a)
        for call in (c for c in own_calls if c not in round_calls[: len({a["round"] for a in mine})]):
            lines += [f"### {call['purpose']}", ""]
            shown, seen = _messages(call, seen)
            lines += shown
        if not mine:
            lines += ["Answer:", "", *_block(cand.output or "(empty)"), ""]
        if cand.error:
            lines += [f"error: {cand.error}", ""]
    rest = [c for group in by_candidate.values() for c in group]
    if rest:
        lines += ["## Other calls (route, tests written, judge)", ""]
        for call in sorted(rest, key=lambda c: c["ts"]):
            lines += [f"### {call['purpose']}: {call['provider']}:{call['model']}", ""]
            lines += _messages(call, 0)[0]
    return "\n".join(lines)


def run_transcript(summary: RunSummary, store: TraceStore) -> str:
    return transcript_markdown(
        summary, store.rows("attempts", run_id=summary.run_id), store.rows("calls", run_id=summary.run_id)
    )
