"""Settings from the environment (prefix ``ORCH_``); provider keys and endpoints: providers/credentials.py."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigurationError
from orchestrator.records import Rounds, RouterMode, SandboxName

DEFAULT_ALLOWED_PROVIDERS = ("ollama", "openai", "anthropic", "gemini", "groq", "local", "replay")
DEFAULT_ALLOWED_OLLAMA_MODELS = ("llama3.2:latest", "qwen2.5:7b", "llama3:latest")



_EXPIRY_UNITS = {"s": 1, "m": 60, "h": 3600, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "Y": 365 * 86_400}


def parse_expiry(text: str) -> float | None:
    """``"12h"``, ``"1W"``, ``"30m"`` -> seconds (units s m h D W M Y, as Inspect writes them);
    ``"never"`` -> None (entries do not expire). Raises ValueError naming the accepted forms."""
    value = text.strip()
    if value.lower() == "never":
        return None
    number, unit = value[:-1], value[-1:]
    if unit not in _EXPIRY_UNITS or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"{text!r} is not an expiry; use a count and a unit (s m h D W M Y), e.g. 1W or 12h, or never")
    return float(int(number) * _EXPIRY_UNITS[unit])


class CallLimit(BaseModel):
    """A bound on one provider's (or one model's) calls: how many in flight, how many a minute."""

    in_flight: int | None = Field(default=None, ge=1, le=1024)
    rpm: int | None = Field(default=None, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", populate_by_name=True)

    # where things live: the trace store is a folder or a URI (s3://bucket/prefix) that pyarrow opens
    traces_dir: str = "traces"
    # a local trace table's write files are compacted once there are this many (0: never automatically)
    traces_compact_files: int = Field(default=32, ge=0, le=100_000)
    traces_delete_grace_s: float = Field(default=60.0, ge=0)  # how long a compacted file's sources stay
    # A sweep's progress tick (its runs' rows written, the progress artifact updated) every this many
    # finished runs or seconds, whichever comes first: what a kill can lose (flows/sweep.py)
    sweep_tick_runs: int = Field(default=50, ge=1)
    sweep_tick_s: float = Field(default=2.0, ge=0)
    traces_fsync: bool = True  # flush each trace file to disk before its rename (power-loss safety)
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "orchestrator")
    log_file: Path | None = None  # unset: <cache_dir>/orchestrator.log (Prefect's lines during a progress display)

    # defaults for a run
    provider: str = "local"
    model: str = "qwen2.5-coder-0.5b"
    max_rounds: Rounds = 2
    sandbox: SandboxName = "auto"
    sandbox_image: str = "orchestrator-sandbox:latest"
    sandbox_python: str | None = None  # interpreter of the local backend; unset: the system python3
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    # a sweep's run on the work pool with neither a heartbeat nor a state change for this long is lost
    # (its worker's host died): the sweep marks it Crashed and runs its tasks again (flows/pool_runs.py)
    crash_after_seconds: float = Field(default=90.0, gt=0)
    samples: int = Field(default=1, ge=1, le=16)  # answers per solver; above 1, majority vote

    # model calls
    call_timeout_s: float = Field(default=120.0, gt=0)
    call_retries: int = Field(default=3, ge=0, le=10)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=20.0, ge=0)
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)

    # local model
    model_path: Path | None = None
    local_threads: int = Field(default=2, ge=1)
    local_context: int = Field(default=4096, ge=512)

    # allow-lists (configuration, not constants)
    allowed_providers: tuple[str, ...] = DEFAULT_ALLOWED_PROVIDERS
    allowed_ollama_models: tuple[str, ...] = DEFAULT_ALLOWED_OLLAMA_MODELS
    router_mode: RouterMode = "hint"
    prices_file: Path | None = None

    # model-call cache (providers/cache.py): auto caches calls at temperature 0
    cache: Literal["auto", "on", "off"] = "auto"
    cache_path: Path | None = None  # unset: <cache_dir>/calls.sqlite
    cache_expiry: str = "1W"  # s m h D W M Y, or never

    # per-provider limits (providers/limits.py), shared by every run of the process
    provider_in_flight: int = Field(default=8, ge=1, le=1024)  # calls in flight per provider
    provider_rpm: int | None = Field(default=None, ge=1)  # requests a minute per provider; unset: no bound
    model_in_flight: int | None = Field(default=None, ge=1, le=1024)  # per provider:model; unset: none
    model_rpm: int | None = Field(default=None, ge=1)
    limits: dict[str, CallLimit] = Field(default_factory=dict)  # "provider" or "provider:model" -> override

    # cooldown (providers/cooldown.py): more than N failures in the window, or a 429, benches a model
    cooldown_failures: int = Field(default=3, ge=0)  # N
    cooldown_window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=5.0, ge=0)  # at least this long; a longer Retry-After wins

    # provider credentials and endpoints: each provider module declares the variables it reads
    # (OPENAI_API_KEY, OLLAMA_HOST, ...; providers/credentials.py); these, by provider, win over them.
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    base_urls: dict[str, str] = Field(default_factory=dict)

    # routing and judging (domain/routing.py, domain/router_learned.py, domain/judging.py)
    router_worker: str | None = None  # PROVIDER:MODEL of the LLM router; unset: the default provider/model
    learned_router_path: Path | None = None  # unset: <cache_dir>/router/learned_router.json
    learned_router_neighbours: int = Field(default=5, ge=1, le=100)
    learned_router_margin: float = Field(default=0.1, ge=0, le=1)  # quality a cheaper model may give up
    judge_worker: str | None = None  # PROVIDER:MODEL of the rubric judge; unset: no LLM judge
    judge_mode: Literal["pairwise", "pointwise"] = "pairwise"
    pair_min_margin: float = Field(default=0.2, gt=0, le=1)  # score gap that makes a preference pair

    @field_validator("cache_expiry")
    @classmethod
    def _check_expiry(cls, value: str) -> str:
        parse_expiry(value)
        return value

    @property
    def prefect_log_path(self) -> Path:
        return self.log_file or self.cache_dir / "orchestrator.log"

    @property
    def call_cache_path(self) -> Path:
        return self.cache_path or self.cache_dir / "calls.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "*"
        shown = "" if "key" in field else f"={error.get('input')!r}"  # a key's value is never echoed
        raise ConfigurationError(
            f"ORCH_{field.upper()}{shown}: {error['msg']}; fix or unset that environment variable"
        ) from None


def traces_root(traces_dir: str | None, settings: Settings | None = None) -> str:
    """The trace store a run writes to: the one it names, else ``ORCH_TRACES_DIR``."""
    return traces_dir or (settings or get_settings()).traces_dir
