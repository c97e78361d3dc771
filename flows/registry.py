"""Workflow name -> the Prefect flow that runs it. A new workflow is one module plus one entry here.

Every workflow flow is made by :func:`flows._workflow.workflow_flow`: it takes the fields of
:class:`orchestrator.records.RunRequest` and returns a :class:`orchestrator.records.RunSummary`.
"""

from __future__ import annotations

from typing import Any

from flows._workflow import RUNS, WorkflowRun
from flows.coding import coding_flow
from flows.rag_qa import rag_qa_flow
from flows.reasoning import reasoning_flow
from flows.science import science_flow

WORKFLOW_FLOWS: dict[str, Any] = {
    "coding": coding_flow,
    "reasoning": reasoning_flow,
    "science": science_flow,
    "rag_qa": rag_qa_flow,
}

#: Workflow name -> its plain run function ``run(request, runner)``: the same steps, no flow run of
#: their own (e.g. many tasks inside one sweep flow run, with a PlainRunner).
WORKFLOW_RUNS: dict[str, WorkflowRun] = {name: RUNS[flow.name] for name, flow in WORKFLOW_FLOWS.items()}
