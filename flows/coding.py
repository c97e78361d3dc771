"""The coding flow: route → tests (generated when the task has none) → rounds of solve, test, review →
final verdict (hidden suite) → judge → persist. The steps are in flows/coding_steps.py."""

from __future__ import annotations

from flows._workflow import workflow_flow
from flows.coding_steps import (
    final_verdict,
    generate_tests,
    judge,
    persist,
    review_round,
    route,
    solve_round,
    start,
    test_round,
)
from flows.runner import Runner
from orchestrator.records import RunRequest, RunSummary
from tasks.model_call import run_resources


def run_coding(request: RunRequest, runner: Runner) -> RunSummary:
    """Solve one coding task with every solver worker, fixing failures for up to ``max_rounds`` rounds."""
    with run_resources(request.run_id):
        state = start(request, runner)
        state = route(state, runner)
        state = generate_tests(state, runner)
        while state.active:  # the candidates still going on after the last review
            state = solve_round(state, runner)
            state = test_round(state, runner)
            state = review_round(state, runner)
        state = final_verdict(state, runner)
        state = judge(state, runner)
        state = persist(state)
    assert state.summary is not None
    return state.summary


coding_flow = workflow_flow(
    "coding", "Solve one coding task with every solver; pytest in the sandbox is the verifier.", run_coding
)
