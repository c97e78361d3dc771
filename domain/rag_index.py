"""The rag_qa document index: chunks with stable ids, embedded (or BM25), kept on disk, searched top-k.

Chunk ids are ``c1``, ``c2``, … in reading order: files sorted by path, one chunk per paragraph
(a heading or a short title line joins the paragraph under it; a long paragraph is cut into windows of ``MAX_WORDS``).
A task's ``evidence`` names the chunks that support its answer, by id or by source file.

An index lives in ``cache_dir/rag-index/<key>/``, where the key hashes the documents, the chunking
and the retriever, so it is reused while nothing changed and rebuilt (in a new folder) when
anything did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from orchestrator.errors import UserInputError
from providers.embedder import Embedder, EmbedderUnavailable, load_embedder

DOC_SUFFIXES = (".md", ".markdown", ".txt", ".rst")
MAX_WORDS = 160
CHUNKING_VERSION = 1
RetrieverKind = Literal["auto", "embedding", "bm25"]
_WORD = re.compile(r"\w+", re.UNICODE)


class Chunk(BaseModel):
    id: str
    source: str
    text: str


class Hit(BaseModel):
    rank: int
    chunk: Chunk
    score: float


def read_documents(folder: Path) -> dict[str, str]:
    """Relative path -> text of every document under ``folder`` (Markdown and plain text)."""
    if not folder.is_dir():
        raise UserInputError(f"{folder}: the documents folder does not exist; add docs/ or fix 'corpus'")
    docs = {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in DOC_SUFFIXES
    }
    if not docs:
        raise UserInputError(f"{folder}: no documents ({', '.join(DOC_SUFFIXES)}); add some to retrieve from")
    return docs


def chunk_documents(docs: dict[str, str], max_words: int = MAX_WORDS) -> list[Chunk]:
    chunks: list[Chunk] = []
    for source, text in docs.items():
        heading = ""
        for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
            block = block.strip()
            if not block:
                continue
            if _is_heading(block):
                heading = f"{heading}\n{block}" if heading else block
                continue
            body = f"{heading}\n{block}" if heading else block
            heading = ""
            words = body.split()
            for start in range(0, len(words), max_words):
                chunks.append(Chunk(id=f"c{len(chunks) + 1}", source=source, text=" ".join(words[start:start + max_words])))
        if heading:
            chunks.append(Chunk(id=f"c{len(chunks) + 1}", source=source, text=heading))
    return chunks


def _is_heading(block: str) -> bool:
    """A Markdown heading, or a short title line of plain text (no full stop): it joins the next paragraph."""
    if "\n" in block:
        return False
    return block.startswith("#") or (len(block.split()) <= 10 and not block.rstrip().endswith((".", "?", "!", ":")))


def tokenize(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class Index:
    """Chunks plus what searches them: embedding vectors, or BM25 over their words."""

    def __init__(self, key: str, retriever: str, chunks: list[Chunk], vectors: np.ndarray | None,
                 embedder: Embedder | None, folder: Path) -> None:
        self.key, self.retriever, self.chunks, self.folder = key, retriever, chunks, folder
        self._vectors, self._embedder = vectors, embedder
        self._bm25 = None
        if vectors is None:
            from rank_bm25 import BM25Okapi

            self._bm25 = BM25Okapi([tokenize(c.text) or [""] for c in chunks])

    def search(self, query: str, k: int) -> list[Hit]:
        if self._bm25 is not None:
            scores = np.asarray(self._bm25.get_scores(tokenize(query)), dtype=np.float64)
        else:
            assert self._embedder is not None and self._vectors is not None
            scores = self._vectors @ self._embedder.embed([query])[0]
        order = sorted(range(len(self.chunks)), key=lambda i: (-float(scores[i]), i))[:k]
        return [Hit(rank=r + 1, chunk=self.chunks[i], score=round(float(scores[i]), 6)) for r, i in enumerate(order)]


class IndexHandle(BaseModel):
    """Where an index is and whether this call reused it (for the traces)."""

    key: str
    retriever: str
    folder: str
    reused: bool
    chunks: int
    fallback_reason: str | None = None


def _key(docs: dict[str, str], retriever: str) -> str:
    digest = hashlib.sha256(f"{retriever}|chunking-v{CHUNKING_VERSION}|{MAX_WORDS}".encode())
    for path, text in docs.items():
        digest.update(b"\0" + path.encode() + b"\0" + text.encode())
    return digest.hexdigest()[:24]


def open_index(
    docs_folder: Path, cache_dir: Path, kind: RetrieverKind = "auto", threads: int = 2
) -> tuple[Index, IndexHandle]:
    """Load the index of ``docs_folder`` from disk, or build and store it; embedding unless unavailable."""
    docs = read_documents(docs_folder)
    embedder: Embedder | None = None
    fallback_reason = None
    if kind != "bm25":
        try:
            embedder = load_embedder(cache_dir, threads)
        except EmbedderUnavailable as exc:
            if kind == "embedding":
                raise UserInputError(f"the embedding retriever is unavailable: {exc}") from None
            fallback_reason = str(exc)
    retriever = embedder.name if embedder else "bm25"
    key = _key(docs, retriever)
    folder = cache_dir / "rag-index" / key
    reused = (folder / "chunks.json").is_file()
    if not reused:
        _build(folder, chunk_documents(docs), embedder)
    chunks = [Chunk.model_validate(c) for c in json.loads((folder / "chunks.json").read_text(encoding="utf-8"))]
    vectors = np.load(folder / "vectors.npy") if embedder else None
    handle = IndexHandle(key=key, retriever=retriever, folder=str(folder), reused=reused, chunks=len(chunks),
                         fallback_reason=fallback_reason)
    return Index(key, retriever, chunks, vectors, embedder, folder), handle


def _build(folder: Path, chunks: list[Chunk], embedder: Embedder | None) -> None:
    """Write the index into a temporary folder and rename it into place (readers never see half of one)."""
    tmp = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        if embedder is not None:
            np.save(tmp / "vectors.npy", embedder.embed([c.text for c in chunks]))
        (tmp / "chunks.json").write_text(json.dumps([c.model_dump() for c in chunks], indent=1), encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "chunks.json").is_file():  # not a concurrent build of the same key: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def evidence_hits(evidence: list[str], hits: list[Hit]) -> set[str]:
    """The evidence items found among ``hits``: an item names a chunk id or a source file."""
    found = set()
    for item in evidence:
        if any(item in (h.chunk.id, h.chunk.source) for h in hits):
            found.add(item)
    return found


def recall_at_k(evidence: list[str] | None, hits: list[Hit]) -> float | None:
    if not evidence:
        return None
    return len(evidence_hits(evidence, hits)) / len(evidence)
