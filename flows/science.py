"""The science flow: reasoning plus the ``python_sandbox`` tool (solver code runs in the task sandbox)."""

from __future__ import annotations

from flows.questions import question_flow

science_flow = question_flow(
    "science",
    "Answer one science question; the solver may run Python (no network, the task's limits) before answering.",
    python_tool=True,
)
