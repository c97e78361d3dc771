"""The quality benchmark (issue 12): orchestration strategies against one model call, on the local
models, hidden tests deciding.

Plain functions and records over ``providers.local`` and ``sandbox`` (no Prefect): ``harness`` (cached
model calls and verdicts, what each strategy spends), ``humaneval`` and ``gsm8k`` (the strategies),
``run`` (a benchmark pass, one JSONL row per strategy and problem), ``summary`` (the table),
``router_eval`` (routers between the two models, from the rows), ``chart`` (pass rate against tokens).
``bench/quality.py`` is the command line over them, ``flows/quality_bench.py`` the nightly flow.
"""
