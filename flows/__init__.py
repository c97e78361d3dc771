"""Prefect flows: a workflow's steps over one state, and the flows that run them.

Layer rule (pyproject.toml, ``lint-imports``): flows import tasks/, domain/, providers/, sandbox/ and
the core package; nothing below imports flows. Private helpers start with ``_``.
"""

__all__ = [
    "coding",  # the coding flow: route -> tests -> rounds of solve/test/review -> verdict -> judge -> persist
    "coding_steps",  # CodingState and the coding steps (plain functions)
    "questions",  # the question workflows' pipeline (reasoning, science, rag_qa)
    "rag_qa",
    "reasoning",
    "registry",  # workflow name -> flow
    "run_task",  # the single-task entry point (the run-task deployment)
    "runner",  # Runner: steps' tasks as Prefect task runs, or as plain calls
    "science",
    "sweep",  # many tasks, bounded concurrency, resume
]
