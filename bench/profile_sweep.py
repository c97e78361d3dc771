"""Where an ``orchestrator sweep`` spends its CPU: cProfile (per-thread CPU time) over the command and every run.

``python bench/profile_sweep.py [--top 25] [--sort tottime] -- SWEEP ARGS...`` runs ``orchestrator sweep
SWEEP ARGS...`` in this process with one cProfile profiler on the main thread and one per run (a
sweep's runs go on in its thread pool, which a plain ``python -m cProfile`` does not see), then prints
the merged profile's top entries. E.g. the 1,000-question sweep of bench/reasoning_sweep.py:
``python bench/profile_sweep.py -- DIR/questions --replay DIR/answers.jsonl --concurrency 8``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
import time
from typing import Any

import flows.sweep
from orchestrator.cli import main as cli_main

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _profiled(run_item: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        profile = cProfile.Profile(time.thread_time)  # this thread's CPU: 8 threads' waits hide it otherwise
        with _lock:
            _profiles.append(profile)
        profile.enable()  # this thread only
        try:
            return run_item(*args, **kwargs)
        finally:
            profile.disable()

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime", help="a pstats sort key: tottime, cumulative, ...")
    parser.add_argument("sweep", nargs=argparse.REMAINDER, help="the sweep's arguments, after --")
    opts = parser.parse_args()
    args = opts.sweep[1:] if opts.sweep[:1] == ["--"] else opts.sweep
    flows.sweep.run_item = _profiled(flows.sweep.run_item)  # type: ignore[assignment]
    main_profile = cProfile.Profile(time.thread_time)
    sys.argv = ["orchestrator", "sweep", *args, "--json"]
    main_profile.enable()
    try:
        cli_main()
    except SystemExit as exc:
        if exc.code not in (0, 1, None):
            raise
    finally:
        main_profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(main_profile, stream=out)
    for profile in _profiles:
        stats.add(profile)
    stats.strip_dirs().sort_stats(opts.sort).print_stats(opts.top)
    print(f"\n{len(_profiles)} runs profiled; top {opts.top} by {opts.sort}:", file=sys.stderr)
    print(out.getvalue(), file=sys.stderr)


if __name__ == "__main__":
    main()
