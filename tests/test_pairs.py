"""Preference-pair export: the files load with `datasets` in the shapes TRL's DPOTrainer reads."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from domain.pairs import export_pairs, format_for, pair_records
from orchestrator.errors import UserInputError
from orchestrator.records import PreferencePairRow
from orchestrator.traces import TraceStore

SYSTEM = "You are a careful Python programmer."


def pair(task_id: str, chosen: str, rejected: str, *, margin: float = 1.0, workflow: str = "coding") -> PreferencePairRow:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Solve {task_id}."}]
    return PreferencePairRow(
        run_id=f"run-{task_id}", task_id=task_id, workflow=workflow,
        prompt=f"{SYSTEM}\n\nSolve {task_id}.", prompt_messages=json.dumps(messages),
        chosen=chosen, rejected=rejected, chosen_candidate="c1", rejected_candidate="c2",
        chosen_model="replay:good", rejected_model="replay:bad", chosen_score=1.0, rejected_score=1.0 - margin,
        margin=margin, basis="execution", judge_model="execution",
    )


@pytest.fixture
def store(tmp_path: Path) -> TraceStore:
    store = TraceStore(tmp_path / "traces")
    store.write("preference_pairs", [pair("t1", "good 1", "bad 1"), pair("t2", "good 2", "bad 2", margin=0.3)])
    store.write("preference_pairs", [pair("t1", "good 1", "bad 1")])  # the same pair from a re-run
    store.write("preference_pairs", [pair("q1", "42", "41", workflow="reasoning")])
    return store


def load(path: Path, tmp_path: Path) -> datasets.Dataset:
    builder = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_standard_export_loads_with_datasets(store, tmp_path, suffix):
    out = tmp_path / f"pairs{suffix}"
    count = export_pairs(store, out, fmt=format_for(out, None), conversational=False)
    assert count == 3  # the repeated pair is written once
    ds = load(out, tmp_path)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert all(ds.features[c] == datasets.Value("string") for c in ds.column_names)
    rows = ds.to_list()
    assert rows[0] == {"prompt": f"{SYSTEM}\n\nSolve t1.", "chosen": "good 1", "rejected": "bad 1"}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_conversational_export_loads_with_datasets(store, tmp_path, suffix):
    out = tmp_path / f"pairs{suffix}"
    export_pairs(store, out, fmt=format_for(out, None), conversational=True)
    ds = load(out, tmp_path)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    for column in ds.column_names:
        feature = ds.features[column]
        inner = feature.feature if hasattr(feature, "feature") else feature[0]  # List (datasets 4+) or [..]
        assert dict(inner) == message, column
    first = ds[0]
    assert first["prompt"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Solve t1."}]
    assert first["chosen"] == [{"role": "assistant", "content": "good 1"}]
    assert first["rejected"] == [{"role": "assistant", "content": "bad 1"}]


def test_filters_by_margin_and_workflow(store):
    assert len(pair_records(store, conversational=False, min_margin=0.5)) == 2
    assert [r["chosen"] for r in pair_records(store, conversational=False, workflow="reasoning")] == ["42"]


def test_no_pairs_is_a_clear_error_and_writes_nothing(tmp_path):
    out = tmp_path / "pairs.jsonl"
    with pytest.raises(UserInputError, match="no preference pairs"):
        export_pairs(TraceStore(tmp_path / "empty"), out, fmt="jsonl", conversational=False)
    assert not out.exists()


def test_bad_format_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="jsonl or parquet"):
        format_for(tmp_path / "x.csv", "csv")


def test_cli_export(cli, store, tmp_path):
    out = tmp_path / "dpo" / "pairs.parquet"
    proc = cli("pairs", "export", str(out), "--conversational", "--traces", str(store.root))
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 preference pair(s)" in proc.stderr and "conversational, parquet" in proc.stderr
    assert load(out, tmp_path).num_rows == 3
    empty = cli("pairs", "export", str(tmp_path / "none.jsonl"), "--traces", str(tmp_path / "nothing"))
    assert empty.returncode == 2 and "no preference pairs" in empty.stderr
