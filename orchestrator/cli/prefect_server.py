"""Which Prefect server a command reports to: the configured one, else a running local one.

Without ``PREFECT_API_URL`` (in the environment or the active Prefect profile) Prefect starts a
temporary server in each process, which costs seconds to tens of seconds before the first flow
run. So when none is configured, the CLI asks ``ORCH_PREFECT_PROBE_URL`` (default
``http://127.0.0.1:4200/api``, where ``scripts/serve.sh`` and ``prefect server start`` listen) for
``/health`` with a short timeout, and uses that server when it answers. ``ORCH_PREFECT_PROBE_URL=off``
turns the probe off. Nothing here imports Prefect: it must run before Prefect reads its settings.
"""

from __future__ import annotations

import os
import tomllib
import urllib.request
from collections.abc import MutableMapping
from pathlib import Path

PROBE_URL_ENV = "ORCH_PREFECT_PROBE_URL"
DEFAULT_PROBE_URL = "http://127.0.0.1:4200/api"
#: A server on loopback answers /health in milliseconds; one that does not is not worth waiting for.
PROBE_TIMEOUT_S = 0.5


def configured(environ: MutableMapping[str, str]) -> bool:
    """Whether the environment or the active Prefect profile names an API URL."""
    if environ.get("PREFECT_API_URL"):
        return True
    home = Path(environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def answers(api_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as resp:  # noqa: S310 (a URL we were given)
            return bool(resp.status == 200 and resp.read().strip() == b"true")
    except (OSError, ValueError):
        return False


def use_running_server(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Point ``PREFECT_API_URL`` at the probed server when none is configured and it answers; its URL, or None."""
    if configured(environ):
        return None
    url = environ.get(PROBE_URL_ENV, DEFAULT_PROBE_URL).strip()
    if url.lower() in ("", "off") or not answers(url):
        return None
    environ["PREFECT_API_URL"] = url
    return url
