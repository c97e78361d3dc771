"""The quality benchmark as a flow (the nightly ``quality-bench/nightly`` deployment): each benchmark's
pass is a task run (retried once: the cache makes a retry pay only for what was lost), then the report,
published as a table artifact and a markdown artifact with the chart embedded.

The strategies are ``domain/quality/``'s plain functions; ``bench/quality.py`` is the same from a shell.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from domain.quality.harness import STRONG, WEAK, Bench, Cache, Config
from domain.quality.report import Report, build_report
from domain.quality.run import Benchmark, Pass, run_pass, task_texts
from flows.parameters import model_parameters
from orchestrator.settings import get_settings
from tasks.bookkeeping import bookkeeping

ARTIFACT_KEY = "quality-bench"


class QualityParams(BaseModel):
    """What the nightly quality run measures (the form the Prefect UI shows)."""

    humaneval: list[str] = Field(
        title="HumanEval strategies", default=["one", "filter3", "filter5", "fix2", "fix4", "cascade", "weak-one"],
        description="HumanEval strategies, the one call first (empty: skip HumanEval).",
    )
    gsm8k: list[str] = Field(
        title="GSM8K strategies", default=["one", "pal", "pal-fix2", "mix3", "sc5", "critic2"], description="GSM8K strategies, the one call first (empty: skip GSM8K)."
    )
    humaneval_limit: int = Field(title="HumanEval problems", default=164, ge=1, le=164, description="HumanEval's first N problems.")
    gsm8k_limit: int = Field(title="GSM8K problems", default=200, ge=1, le=200, description="GSM8K's first N problems.")
    every: int = Field(title="Every k-th problem", default=1, ge=1, description="Every k-th problem of those (a subset).")
    work: str = Field(title="Work folder", default="bench-out/quality", description="Task folders, the call cache and the rows.")
    max_tokens: int = Field(title="Tokens per call at most", default=512, ge=16, le=4096, description="Per model call.")
    strong: str = Field(title="Strong model", default=STRONG, description="The strong local model.")
    weak: str = Field(title="Weak model", default=WEAK, description="The weak local model (cascade, router).")


def _plans(params: QualityParams) -> list[Pass]:
    chosen: list[tuple[Benchmark, list[str], int]] = [
        ("humaneval", params.humaneval, params.humaneval_limit),
        ("gsm8k", params.gsm8k, params.gsm8k_limit),
    ]
    return [Pass(benchmark=b, strategies=s, limit=n, every=params.every) for b, s, n in chosen if s]


@task(name="quality-pass", retries=1, cache_policy=NO_CACHE)
def run_benchmark(plan: Pass, params: QualityParams, rows_path: str) -> list[dict[str, Any]]:
    work = Path(params.work)
    config = Config(strong=params.strong, weak=params.weak)
    bench = Bench(Cache(work / "cache.jsonl"), params.max_tokens, timeout_s=20.0)
    Path(rows_path).unlink(missing_ok=True)  # a retry writes its rows afresh (the calls come from the cache)
    return run_pass(plan, bench, config, work, Path(rows_path), progress=get_run_logger().info)


@task(name="quality-report", cache_policy=NO_CACHE)
def report(rows: list[dict[str, Any]], params: QualityParams, chart: str) -> Report:
    settings = get_settings()
    return build_report(
        rows,
        task_texts("humaneval", Path(params.work) / "humaneval"),
        Path(chart),
        neighbours=settings.learned_router_neighbours,
        margin=settings.learned_router_margin,
    )


def publish(done: Report) -> None:
    encoded = base64.b64encode(done.chart.read_bytes()).decode("ascii")
    bookkeeping(
        "the quality table", create_table_artifact,
        done.summary, key=f"{ARTIFACT_KEY}-table", description="Per strategy: pass@1 (hidden tests), tokens, wall time, cost",
    )  # fmt: skip
    bookkeeping(
        "the quality report", create_markdown_artifact,
        "# Quality: strategies against one model call\n\n" + done.markdown(f"data:image/png;base64,{encoded}"),
        key=f"{ARTIFACT_KEY}-report", description="The table, the routers and the chart (pass rate against tokens)",
    )  # fmt: skip


@flow(name="quality-bench")
@model_parameters(QualityParams)
def quality_bench_flow(params: QualityParams) -> Report:
    """Its parameters are QualityParams' fields (each its own entry in the form and the Parameters
    tab): ``quality_bench_flow(**dict(params))``."""
    plans = _plans(params)
    for plan in plans:  # bad strategy names fail the run before any model call
        plan.check(Config(strong=params.strong, weak=params.weak))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    results = Path(params.work) / "results"
    rows: list[dict[str, Any]] = []
    for plan in plans:
        rows += run_benchmark(plan, params, str(results / f"{plan.benchmark}-{stamp}.rows.jsonl"))
    done = report(rows, params, str(results / f"quality-{stamp}.png"))
    publish(done)
    return done
