"""The rag_qa flow: retrieve top-k chunks of the task's documents, answer citing them, verify the citations."""

from __future__ import annotations

from flows.questions import question_flow

rag_qa_flow = question_flow(
    "rag_qa", "Answer one question from the task's documents (docs/ or corpus), citing the chunks used as [c3].",
    rag=True,
)
