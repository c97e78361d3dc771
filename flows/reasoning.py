"""The reasoning flow: solvers reason to an ``ANSWER:`` line; debate, verifier, vote and judge as configured."""

from __future__ import annotations

from flows.questions import question_flow

reasoning_flow = question_flow(
    "reasoning", "Answer one question with every solver; score against the reference when there is one."
)
