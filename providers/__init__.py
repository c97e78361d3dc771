"""Model providers behind one Protocol, a registry by name (providers.builtin), retries and prices.

Providers know nothing of Prefect or of the sandbox (``lint-imports``).
"""
