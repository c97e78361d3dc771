"""The retriever of rag_qa: top-k chunks of the task's documents, each kept in the ``retrievals`` table.

A row per retrieved chunk holds its id, rank and score, the retriever in use (the embedding model,
or ``bm25`` with the reason it fell back), whether the on-disk index was reused, and, when the task
names its ``evidence``, whether the chunk is evidence and the recall@k of the whole retrieval.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from domain.rag_index import Hit, IndexHandle, RetrieverKind, evidence_hits, open_index, recall_at_k
from orchestrator.errors import TaskFormatError
from orchestrator.records import RetrievalRow
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from tasks.logs import run_logger

TOP_K = 4




class Retrieved(BaseModel):
    hits: list[Hit]
    index: IndexHandle
    recall_at_k: float | None


def docs_folder(spec: Task) -> Path:
    """``docs/`` in the task folder, else ``corpus`` (a path relative to the task folder, or absolute)."""
    if (spec.folder / "docs").is_dir():
        return spec.folder / "docs"
    if spec.spec.corpus:
        corpus = Path(spec.spec.corpus).expanduser()
        return corpus if corpus.is_absolute() else spec.folder / corpus
    raise TaskFormatError(spec.folder, "rag_qa task has no docs/ folder and no 'corpus'; add one")


@task(name="retrieve", cache_policy=NO_CACHE)
def retrieve(
    spec: Task, run_id: str, traces_dir: str, k: int = TOP_K, kind: RetrieverKind = "auto"
) -> Retrieved:
    """Open (or build) the index of the task's documents and fetch the top-k chunks for its prompt."""
    settings = get_settings()
    index, handle = open_index(docs_folder(spec), settings.cache_dir, kind, threads=settings.local_threads)
    logger = run_logger()
    logger.info(
        "retriever %s, index %s (%s, %d chunks)%s", handle.retriever, handle.key,
        "reused" if handle.reused else "built", handle.chunks,
        f"; fell back to BM25: {handle.fallback_reason}" if handle.fallback_reason else "",
    )
    query = spec.prompt.strip()
    hits = index.search(query, k)
    evidence = spec.spec.evidence
    found = evidence_hits(evidence or [], hits)
    recall = recall_at_k(evidence, hits)
    TraceStore(traces_dir).write(
        "retrievals",
        [
            RetrievalRow(
                run_id=run_id, task_id=spec.id, query=query[:2000], retriever=handle.retriever,
                fallback_reason=handle.fallback_reason, index_key=handle.key, index_reused=handle.reused, k=k,
                rank=h.rank, chunk_id=h.chunk.id, source=h.chunk.source, score=h.score,
                in_evidence=None if not evidence else bool({h.chunk.id, h.chunk.source} & found),
                recall_at_k=recall,
            )
            for h in hits
        ],
    )
    return Retrieved(hits=hits, index=handle, recall_at_k=recall)
