"""The local provider: a small GGUF model run in-process by llama-cpp-python (no key, no server).

Model names and where their files come from live in :mod:`providers.model_files`. A model is
loaded once per process (per file, context size and thread count) and shared by every provider
instance; a ``Llama`` object is not re-entrant, so each loaded model has a lock around generation.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.records import Completion, Message, new_id
from orchestrator.settings import Settings
from providers.base import PROVIDERS, PermanentProviderError, TransientProviderError
from providers.model_files import ModelFileError, canonical_name, resolve_model_file

#: the create_chat_completion arguments a caller may pass through ``params``; others (task_id, ...)
#: are routing metadata for other providers and are ignored here
PASSTHROUGH_PARAMS = ("max_tokens", "temperature", "seed", "stop", "top_p")


@dataclass
class LoadedModel:
    name: str
    path: Path
    llama: Any  # llama_cpp.Llama (imported lazily: the [local] extra is optional)
    load_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_LOAD_LOCK = threading.Lock()
_BY_FILE: dict[tuple[Path, int, int], LoadedModel] = {}
_BY_NAME: dict[tuple[str, str, Path | None, Path, int, int], LoadedModel] = {}


def load_local_model(name: str, settings: Settings) -> LoadedModel:
    """The loaded model for a name, resolving and loading it on first use in this process."""
    by_name = (
        name,
        settings.model,
        settings.model_path,
        settings.cache_dir,
        settings.local_context,
        settings.local_threads,
    )
    loaded = _BY_NAME.get(by_name)  # the common case takes no lock: a load may hold it for long
    if loaded is not None:
        return loaded
    with _LOAD_LOCK:
        if by_name in _BY_NAME:
            return _BY_NAME[by_name]
        path = resolve_model_file(name, settings).resolve()
        by_file = (path, settings.local_context, settings.local_threads)
        if by_file not in _BY_FILE:
            _BY_FILE[by_file] = _load(canonical_name(name) or name, path, settings)
        _BY_NAME[by_name] = _BY_FILE[by_file]
        return _BY_NAME[by_name]


def _load(name: str, path: Path, settings: Settings) -> LoadedModel:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ModelFileError(
            "the local provider needs llama-cpp-python: pip install 'orchestrator[local]'",
            kind="not_installed",
        ) from None
    started = time.perf_counter()
    try:
        llama = open_llama(
            Llama,
            model_path=str(path),
            n_ctx=settings.local_context,
            n_threads=settings.local_threads,
            n_threads_batch=settings.local_threads,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"llama.cpp could not load {path}: {exc}", kind="model_load") from None
    return LoadedModel(name=name, path=path, llama=llama, load_s=time.perf_counter() - started)


def open_llama(llama_class: Any, **kwargs: Any) -> Any:
    """A llama.cpp model, loaded into plain CPU buffers on AMX hosts and closed at exit: left to
    ``Llama.__del__`` during interpreter teardown, its clean-up finds llama_cpp's functions already
    gone and prints "Exception ignored ... TypeError: 'NoneType' object is not callable"."""
    with plain_cpu_buffers_on_amx_hosts():
        llama = llama_class(**kwargs)
    atexit.register(llama.close)
    return llama


def cpu_has_amx() -> bool:
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False


@contextmanager
def plain_cpu_buffers_on_amx_hosts() -> Iterator[None]:
    """On a CPU with AMX, load weights into plain CPU buffers instead of llama.cpp's AMX buffers.

    With AMX buffers the first multi-token decode segfaults on some hosts (reproduced on this
    project's 2-core CI VM with llama-cpp-python 0.3.36; upstream llama.cpp#20824). ``Llama()``
    has no argument for ``use_extra_bufts``, so the default model params are adjusted for the
    duration of the load; callers hold ``_LOAD_LOCK``, so no other load sees the change.
    """
    if not cpu_has_amx():
        yield
        return
    import llama_cpp.llama_cpp as llama_lib

    original = llama_lib.llama_model_default_params

    def without_extra_buffer_types() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    llama_lib.llama_model_default_params = without_extra_buffer_types
    try:
        yield
    finally:
        llama_lib.llama_model_default_params = original


def response_format_for_llama(response_format: Any) -> dict[str, Any] | None:
    """Accept llama.cpp's ``{"type": "json_object", "schema": S}`` and OpenAI's
    ``{"type": "json_schema", "json_schema": {"schema": S}}``; both constrain output by a grammar."""
    if response_format is None:
        return None
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "text":
            return None
        if kind == "json_object":
            return dict(response_format)
        if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
            schema = response_format["json_schema"].get("schema")
            return {"type": "json_object", **({"schema": schema} if schema is not None else {})}
    raise PermanentProviderError(
        f"unsupported response_format {response_format!r}; use {{'type': 'json_object', 'schema': {{...}}}}",
        kind="bad_request",
    )


class LocalProvider:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def complete(self, messages: Sequence[Message], model: str, **params: Any) -> Completion:
        response_format = response_format_for_llama(params.get("response_format"))  # refuse before loading
        loaded = load_local_model(model, self._settings)
        request: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": self._settings.max_tokens,
            "temperature": self._settings.temperature,  # 0.0 (the default) is greedy decoding
        }
        request.update({key: params[key] for key in PASSTHROUGH_PARAMS if params.get(key) is not None})
        if response_format is not None:
            request["response_format"] = response_format
        with loaded.lock:
            started = time.perf_counter()  # after the lock: latency is this call's generation, not the queue
            try:
                response = loaded.llama.create_chat_completion(**request)
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise PermanentProviderError(
                        f"{loaded.name}: the prompt does not fit the context window ({exc}); "
                        "shorten it or raise ORCH_LOCAL_CONTEXT",
                        kind="context_length",
                    ) from None
                raise PermanentProviderError(f"{loaded.name}: {exc}", kind="bad_request") from None
            except RuntimeError as exc:
                # A failed decode leaves the KV cache half-written; reset so a retry starts clean.
                loaded.llama.reset()
                raise TransientProviderError(f"{loaded.name}: {exc}", kind="decode_failed") from None
        latency = time.perf_counter() - started
        usage = response.get("usage") or {}
        return Completion(
            text=response["choices"][0]["message"].get("content") or "",
            provider=self.name,
            model=canonical_name(model) or model,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            response_id=f"local-{new_id()}",
        )


@PROVIDERS.register("local")
def _factory(settings: Settings) -> LocalProvider:
    return LocalProvider(settings)
