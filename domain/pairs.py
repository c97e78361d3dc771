"""Export the ``preference_pairs`` table in the formats TRL's DPOTrainer reads.

- standard: ``{"prompt": str, "chosen": str, "rejected": str}``; the prompt is the solvers' system
  and user messages as one text;
- conversational: ``{"prompt": [{"role", "content"}, ...], "chosen": [{"role": "assistant",
  "content"}], "rejected": [...]}``, which TRL renders with the model's chat template.

Only those three columns are written (metadata stays in the trace table), and a pair that repeats
another (same prompt, chosen and rejected, e.g. from re-running a replayed task) is written once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import UserInputError
from orchestrator.traces import TraceStore

ExportFormat = Literal["jsonl", "parquet"]
COLUMNS = ("prompt", "chosen", "rejected")

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SCHEMAS = {
    False: pa.schema([(c, pa.string()) for c in COLUMNS]),
    True: pa.schema([(c, _MESSAGES) for c in COLUMNS]),
}


def pair_records(
    store: TraceStore, *, conversational: bool, min_margin: float = 0.0, workflow: str | None = None
) -> list[dict[str, Any]]:
    """The pairs as DPO records, oldest first, without repeats."""
    rows = sorted(store.rows("preference_pairs"), key=lambda r: (r["ts"], r["pair_id"]))
    seen: set[tuple[str, str, str]] = set()
    out = []
    for row in rows:
        if row["margin"] < min_margin or (workflow and row["workflow"] != workflow):
            continue
        key = (row["prompt_messages"], row["chosen"], row["rejected"])
        if key in seen:
            continue
        seen.add(key)
        if conversational:
            prompt = [{"role": m["role"], "content": m["content"]} for m in json.loads(row["prompt_messages"])]
            out.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": row["chosen"]}],
                    "rejected": [{"role": "assistant", "content": row["rejected"]}],
                }
            )
        else:
            out.append({c: row[c] for c in COLUMNS})
    return out


def format_for(out: Path, fmt: str | None) -> ExportFormat:
    chosen = fmt or ("parquet" if out.suffix == ".parquet" else "jsonl")
    if chosen not in ("jsonl", "parquet"):
        raise UserInputError(f"--format {chosen!r}: choose jsonl or parquet")
    return chosen  # type: ignore[return-value]


def export_pairs(
    store: TraceStore,
    out: Path,
    *,
    fmt: ExportFormat,
    conversational: bool,
    min_margin: float = 0.0,
    workflow: str | None = None,
) -> int:
    """Write the pairs to ``out`` (whole or not at all); returns how many were written."""
    records = pair_records(store, conversational=conversational, min_margin=min_margin, workflow=workflow)
    if not records:
        raise UserInputError(
            f"no preference pairs in {store.root}{' for ' + workflow if workflow else ''}; "
            "run tasks with two or more workers so that the judge can compare candidates"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records, schema=SCHEMAS[conversational]), tmp)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return len(records)
