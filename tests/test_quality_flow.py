"""The nightly quality flow end to end on one HumanEval and one GSM8K problem: the real Prefect engine,
the real local model (SmolLM2-135M as both models, short replies, so it is fast), the real sandbox;
the table and report artifacts are read back from the Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

from flows.quality_bench import ARTIFACT_KEY, QualityParams, quality_bench_flow
from tests.sweep_helpers import artifacts

SMALL = "smollm2-135m"


def test_the_quality_flow_runs_the_strategies_and_publishes_the_table_and_chart(prefect_api: str, tmp_path: Path) -> None:
    params = QualityParams(
        humaneval=["one", "filter2", "weak-one"],
        gsm8k=["one"],
        humaneval_limit=1,
        gsm8k_limit=1,
        work=str(tmp_path / "work"),
        max_tokens=48,
        strong=SMALL,
        weak=SMALL,
    )
    done = quality_bench_flow(**dict(params))

    table = {(s["benchmark"], s["strategy"]): s for s in done.summary}
    assert list(table) == [
        ("humaneval", "one"), ("humaneval", "filter(n=2,T=0.8)"), ("humaneval", "weak-one"), ("gsm8k", "one"),
    ]  # fmt: skip
    assert all(s["problems"] == 1 for s in done.summary)
    one, filt, weak = (table["humaneval", name] for name in ("one", "filter(n=2,T=0.8)", "weak-one"))
    # the same model greedy twice: the same answer (from the cache), the same verdict and tokens
    assert (weak["passed"], weak["tokens"]) == (one["passed"], one["tokens"]) and one["tokens"] > 0
    assert filt["tokens"] >= one["tokens"] and one["tokens_ratio"] == 1.0

    results = tmp_path / "work" / "results"
    rows = [json.loads(line) for f in results.glob("*.rows.jsonl") for line in f.read_text().splitlines()]
    assert sorted(r["task_id"] for r in rows) == ["HumanEval/0"] * 3 + ["gsm8k/0"]
    by_name = {r["strategy"]: r for r in rows if r["task_id"] == "HumanEval/0"}
    # filter starts from the one call and resamples only when it fails the visible tests
    assert by_name["filter(n=2,T=0.8)"]["candidates"] == (1 if by_name["one"]["visible_passed"] else 2)
    assert filt["calls"] == by_name["filter(n=2,T=0.8)"]["candidates"]

    [table_artifact] = artifacts(prefect_api, f"{ARTIFACT_KEY}-table")
    published = json.loads(table_artifact["data"])
    assert [(r["benchmark"], r["strategy"], r["passed"]) for r in published] == [
        (s["benchmark"], s["strategy"], s["passed"]) for s in done.summary
    ]
    [report] = artifacts(prefect_api, f"{ARTIFACT_KEY}-report")
    assert "| humaneval | `filter(n=2,T=0.8)` | 1 |" in report["data"]
    assert "](data:image/png;base64,iVBOR" in report["data"]  # the chart, embedded as a PNG
    assert done.chart.is_file() and done.chart.read_bytes()[:4] == b"\x89PNG"
