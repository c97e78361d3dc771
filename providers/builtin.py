"""Registry entries for the providers that ship with the orchestrator (one line each, imported on first use)."""

from __future__ import annotations

from providers.base import PROVIDERS

PROVIDERS.add_lazy("local", "providers.local")
PROVIDERS.add_lazy("replay", "providers.replay")
PROVIDERS.add_lazy("openai", "providers.openai_provider")
PROVIDERS.add_lazy("anthropic", "providers.anthropic_provider")
PROVIDERS.add_lazy("gemini", "providers.gemini_provider")
PROVIDERS.add_lazy("groq", "providers.groq_provider")
PROVIDERS.add_lazy("ollama", "providers.ollama_provider")
