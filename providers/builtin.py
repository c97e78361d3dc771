"""Registry entries for the providers that ship with the orchestrator (one line each)."""

from __future__ import annotations

from providers import replay  # noqa: F401
