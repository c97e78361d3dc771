"""A large sweep of replayed reasoning questions: errored runs, ms per task, resume time, memory.

``python bench/reasoning_sweep.py [--count 1000] [--concurrency 8] [--workdir DIR]`` (under
``nice -n 10`` on a shared machine; PREFECT_API_URL, or a server found by the CLI's probe, is where
the sweep reports). Makes ``count`` reasoning tasks (``What is k + 1?``) and a replay file with each
correct answer, runs ``orchestrator sweep`` on them as a whole command, then resumes that finished
sweep (``--sweep-id``), and prints one JSON object: passed/errored counts, wall time and ms per task
of the sweep, the resume's wall time, the sweep process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))


def make_questions(root: Path, count: int) -> Path:
    """``count`` reasoning task folders and the replay file that answers each correctly."""
    lines = []
    for k in range(count):
        folder = root / f"q_{k:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "task.toml").write_text(
            f'id = "q_{k:05d}"\nworkflow = "reasoning"\nprompt = "What is {k} + 1?"\n'
            f'answer = "{k + 1}"\nanswer_type = "number"\n'
        )
        lines.append(json.dumps({"task_id": f"q_{k:05d}", "content": f"{k} + 1 = {k + 1}.\nANSWER: {k + 1}"}))
    replay = root.parent / "answers.jsonl"
    replay.write_text("\n".join(lines) + "\n")
    return replay


def sweep(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    proc = subprocess.run([ORCHESTRATOR, "sweep", *args, "--json"], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workdir", type=Path)
    opts = parser.parse_args()
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="reasoning-sweep-"))
    replay = make_questions(work / "questions", opts.count)
    env = {**os.environ, "ORCH_TRACES_DIR": str(work / "traces"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    common = ["--replay", str(replay), "--concurrency", str(opts.concurrency), "--name", "reasoning-bench"]
    seconds, out = sweep([str(work / "questions"), *common], env)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child: the sweep
    resume_s, again = sweep([str(work / "questions"), *common, "--sweep-id", str(out["sweep_id"])], env)
    print(json.dumps({
        "count": opts.count, "concurrency": opts.concurrency, "passed": out["passed"], "errored": out["errored"],
        "sweep_s": round(seconds, 1), "ms_per_task": round(1000 * seconds / opts.count, 1),
        "sweep_flow_s": out["duration_s"], "resume_s": round(resume_s, 1), "resume_passed": again["passed"],
        "peak_rss_mb": round(peak_mb), "load": os.getloadavg(), "workdir": str(work),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
