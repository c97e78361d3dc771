"""Orchestration strategies against one model call, on the real local models, hidden tests deciding.

The command line over ``domain/quality/`` (the strategies, the cache, the table, the routers, the
chart; docs/quality.md explains them)::

    python bench/quality.py humaneval --strategies one,filter3,filter5,fix2,fix4,cascade,weak-one [--every 4]
    python bench/quality.py gsm8k --strategies one,pal,pal-fix2,mix3,sc5,critic2 [--limit 200] [--every 8]
    python bench/quality.py table ROWS.jsonl ... [--out SUMMARY.jsonl]
    python bench/quality.py report ROWS.jsonl ... [--docs docs/quality.md] [--readme README.md] [--png docs/quality.png]

A pass runs every strategy on each problem in turn and appends one JSONL row per (strategy,
problem) to ``--out``; every model call and test verdict goes to ``--cache`` (also read from each
``--cache-from`` file or folder), so a rerun pays only for what is new. ``table`` merges rows of
several passes over the problems every strategy finished; ``report`` writes the table, the routers
and the chart into the marked block of docs/quality.md and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One llama.cpp thread unless told otherwise: on the shared 2-core machine, two threads that spin at
# each barrier while the other is descheduled ran 0.7-1.5 tokens/s against 7-9 for one thread
# (measured side by side at load average 9).
os.environ.setdefault("ORCH_LOCAL_THREADS", "1")

from domain.quality.harness import Bench, Cache, Config  # noqa: E402
from domain.quality.report import build_report, replace_block  # noqa: E402
from domain.quality.run import Pass, run_pass, subset_text, task_texts  # noqa: E402
from domain.quality.summary import read_rows, summaries, text_table  # noqa: E402
from orchestrator.errors import UserInputError  # noqa: E402
from orchestrator.settings import get_settings  # noqa: E402

WORK = ROOT / "bench-out" / "quality"


def run_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quality.py", description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=["humaneval", "gsm8k"])
    parser.add_argument("--strategies", default="one", help="Comma-separated, e.g. one,filter5,fix4 (see docs/quality.md).")
    parser.add_argument("--limit", type=int, default=None, help="First N problems (humaneval 164, gsm8k 200).")
    parser.add_argument("--every", type=int, default=1, help="Every k-th problem of those (a subset).")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--samples", type=int, default=5, help="For a bare filter/sc/pal-sc.")
    parser.add_argument("--temperature", type=float, default=0.8, help="Sampling temperature (filter, sc).")
    parser.add_argument("--rounds", type=int, default=3, help="For a bare fix/critic.")
    parser.add_argument("--fix-temperature", type=float, default=0.5)
    parser.add_argument("--no-merge", action="store_true", help="Keep replies as extracted (no starter merge).")
    parser.add_argument("--max-tokens", type=int, default=512, help="Per call.")
    parser.add_argument("--work", type=Path, default=WORK, help="Task folders (and the default cache).")
    parser.add_argument("--cache", type=Path, default=None, help="The cache this pass appends to; default WORK/cache.jsonl.")
    parser.add_argument("--cache-from", type=Path, action="append", default=[], help="Other caches to read (file or folder).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where the JSONL go.")
    parser.add_argument("--tag", default="", help="Suffix of the results file name.")
    parser.add_argument("--offline", action="store_true", help="Replay the cache only; stop at the first miss.")
    args = parser.parse_args(argv)
    for extra in args.cache_from:
        if not extra.exists():
            raise UserInputError(f"--cache-from {extra}: no such file or folder")
    config = Config(
        samples=args.samples,
        temperature=args.temperature,
        rounds=args.rounds,
        fix_temperature=args.fix_temperature,
        merge=not args.no_merge,
    )
    plan = Pass(
        benchmark=args.benchmark,
        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
        limit=args.limit,
        every=args.every,
        offset=args.offset,
    )
    plan.check(config)
    bench = Bench(Cache(args.cache or args.work / "cache.jsonl", also=args.cache_from), args.max_tokens, timeout_s=20.0)
    bench.offline = args.offline
    problems = len(range(args.offset, plan.size, args.every))
    stem = f"{args.benchmark}-{problems}" + (f"-{args.tag}" if args.tag else "")
    rows_path = args.out / f"{stem}.rows.jsonl"
    rows = run_pass(plan, bench, config, args.work, rows_path, progress=lambda line: print(line, flush=True))
    summary = summaries(rows)
    for s in summary:
        s["subset"] = subset_text(plan.size, args.every, args.offset)
    summary_path = args.out / f"{stem}.summary.jsonl"
    with summary_path.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(s) + "\n" for s in summary)
    print(text_table(summary))
    print(f"rows: {rows_path}\nsummary: {summary_path}")
    return 0


def rows_arg(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserInputError(f"no such rows file: {', '.join(missing)}")
    return paths


def table_main(argv: list[str]) -> int:
    """One table over several passes' rows, strategies compared over the problems all of them finished."""
    parser = argparse.ArgumentParser(prog="quality.py table")
    parser.add_argument("rows", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="Also write the summaries here (JSONL).")
    args = parser.parse_args(argv)
    summary = summaries(read_rows(rows_arg(args.rows)))
    print(text_table(summary))
    if args.out is not None:
        args.out.write_text("".join(json.dumps(s) + "\n" for s in summary), encoding="utf-8")
    return 0


def report_main(argv: list[str]) -> int:
    """The table, the routers and the chart, written into docs/quality.md and the README."""
    parser = argparse.ArgumentParser(prog="quality.py report")
    parser.add_argument("rows", nargs="+", type=Path)
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "quality.png")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "quality.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--work", type=Path, default=WORK, help="Task folders (the router reads the prompts).")
    parser.add_argument("--folds", type=int, default=5, help="The learned router's k-fold split.")
    args = parser.parse_args(argv)
    settings = get_settings()
    report = build_report(
        read_rows(rows_arg(args.rows)),
        task_texts("humaneval", args.work / "humaneval"),
        args.png,
        neighbours=settings.learned_router_neighbours,
        margin=settings.learned_router_margin,
        folds=args.folds,
    )
    print(text_table(report.summary))
    for target in (args.docs, args.readme):
        link = os.path.relpath(args.png, target.parent)
        replace_block(target, report.markdown(link))
        print(f"wrote the report into {target}")
    print(f"chart: {args.png}")
    return 0


def main(argv: list[str]) -> int:
    commands = {"table": table_main, "report": report_main}
    try:
        if argv[:1] and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return run_main(argv)
    except UserInputError as exc:
        print(f"quality.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
