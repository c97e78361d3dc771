"""Workflow name -> the Prefect flow that runs it. A new workflow is one module plus one entry here.

Every workflow flow is made by :func:`flows._workflow.workflow_flow`: it takes the fields of
:class:`orchestrator.records.RunRequest` and returns a :class:`orchestrator.records.RunSummary`.
"""

from __future__ import annotations

from typing import Any

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
