"""The core package: typed records and every trace table's row model, settings, task folders, the
trace store, the registry and errors; and the CLI (``orchestrator.cli``, the top layer).

The core modules import nothing of flows/, tasks/, domain/, providers/ or sandbox/ (``lint-imports``).
"""

__all__ = ["cli", "errors", "importers", "records", "registry", "settings", "taskspec", "traces"]
