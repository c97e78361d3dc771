"""HumanEval's canonical answers swept over 1, 2 and 3 worker hosts of the scale-out set-up.

A script, not a test (root: it makes network namespaces): ``python bench/multihost_sweep.py
[--limit N] [--workers 1,2,3] [--limit-per-worker 2] [--shard-size N]``. For each worker count it starts the topology of
docs/deployment.md (tests/multihost_cluster.py: PostgreSQL, ``serve.sh server``, ``serve.sh worker``
per network namespace, traces on moto's S3 server), runs ``orchestrator sweep --executor deployment``
from the server host and prints the sweep's wall clock, and its ratio to the first worker count's. All hosts share this machine's cores, so the
figures show the overhead of the set-up and how runs spread, not what more machines would add.
SIGTERM, SIGHUP and Ctrl-C end it through the cluster's teardown: no namespace, PostgreSQL or server is
left behind.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.multihost_cluster import start_cluster  # noqa: E402

ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))
#: Signals that end the script: each raises SystemExit where the script is, so start_cluster's teardown runs.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _stop(signum: int, _frame: object) -> None:
    # A second signal (a terminal closing sends SIGHUP after SIGINT, an impatient Ctrl-C) must not cut
    # the teardown short; the commands it runs inherit the ignoring and finish too.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(f"stopped by {signal.Signals(signum).name}; the cluster is torn down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=164, help="HumanEval problems")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to measure")
    parser.add_argument("--limit-per-worker", type=int, default=2, help="flow runs at once per worker")
    parser.add_argument("--shard-size", type=int, default=None, help="tasks per flow run (default: the sweep's)")
    opts = parser.parse_args()
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)

    work = Path(tempfile.mkdtemp(prefix="multihost-bench-"))
    tasks, replay = work / "humaneval", work / "canonical.jsonl"
    subprocess.run(
        [ORCHESTRATOR, "import", "humaneval", str(tasks), "--limit", str(opts.limit), "--force",
         "--canonical-replay", str(replay)],
        check=True, capture_output=True,
    )
    first: float | None = None
    for count in (int(n) for n in opts.workers.split(",")):
        names = [f"host-{n}" for n in range(1, count + 1)]
        with start_cluster(
            work / f"w{count}", names, pool="bench", limit=opts.limit_per_worker, heartbeat_s=30, crash_after_s=90
        ) as cluster:
            concurrency = count * opts.limit_per_worker
            args = [
                "sweep", str(tasks), "--replay", str(replay), "--sandbox", "local", "--executor", "deployment",
                "--concurrency", str(concurrency), "--name", f"bench-{count}",
                "--traces", cluster.traces_uri(f"w{count}"), "--json",
                *(["--shard-size", str(opts.shard_size)] if opts.shard_size else []),
            ]
            started = time.perf_counter()
            proc = subprocess.run([ORCHESTRATOR, *args], env=cluster.client_env(), capture_output=True, text=True)
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                sys.exit(f"sweep on {count} worker(s) exited {proc.returncode}:\n{proc.stderr[-3000:]}")
            out = json.loads(proc.stdout)
            first = first or wall
            print(
                f"{count} worker(s), {opts.limit_per_worker} runs each at once: {out['passed']}/{out['total']} "
                f"passed in {wall:.0f}s ({out['total'] / wall:.2f} tasks/s; {first / wall:.2f}x the first count's speed)",
                flush=True,
            )


if __name__ == "__main__":
    main()
