#!/usr/bin/env bash
# Runs the orchestrator as a service: a local Prefect server (SQLite in PREFECT_HOME), the process work
# pool, the deployments of prefect.yaml and a worker. Idempotent: what already runs is left as it is.
#
#   scripts/serve.sh [start]        server + pool + deployments + one worker; prints the UI address
#   scripts/serve.sh server         server + pool + deployments + crash detection, no worker (the server host)
#   scripts/serve.sh deploy         pool + deployments only, on the server at PREFECT_API_URL
#   scripts/serve.sh worker [NAME]  one more worker on the pool (on another machine: set PREFECT_API_URL)
#   scripts/serve.sh stop           stops the workers, then the server, that this state folder started
#
# Environment: ORCH_PREFECT_HOST (127.0.0.1), ORCH_PREFECT_PORT (4200), PREFECT_API_URL (a server
# elsewhere; default: the local one), ORCH_WORK_POOL (orchestrator), ORCH_WORKER_NAME (worker-<host>),
# ORCH_WORKER_LIMIT (flow runs at once per worker; default no limit), ORCH_SERVE_DIR (pid files and
# logs; default .orchestrator/serve), ORCH_PYTHON (default .venv/bin/python). PREFECT_* settings pass
# through: PREFECT_HOME, PREFECT_API_DATABASE_CONNECTION_URL (PostgreSQL), PREFECT_WORKER_QUERY_SECONDS.
# Crash detection: flow runs send a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (30 here,
# Prefect's minimum; workers pass it to their runs); the automation `deploy` creates marks a flow run
# Crashed when ORCH_CRASH_AFTER_SECONDS (90) pass without a heartbeat or a final state. Every process
# that runs flows against the server (an `orchestrator sweep` too) must beat more often than that.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOST="${ORCH_PREFECT_HOST:-127.0.0.1}"
PORT="${ORCH_PREFECT_PORT:-4200}"
POOL="${ORCH_WORK_POOL:-orchestrator}"
STATE="${ORCH_SERVE_DIR:-$ROOT/.orchestrator/serve}"
if [ -n "${ORCH_PYTHON:-}" ]; then PY="$ORCH_PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY="python3"; fi
# A server listening on every interface (0.0.0.0, for workers on other machines) is reached locally on loopback.
LOCAL_API="http://$([ "$HOST" = 0.0.0.0 ] && echo 127.0.0.1 || echo "$HOST"):$PORT/api"
export PREFECT_API_URL="${PREFECT_API_URL:-$LOCAL_API}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-30}"
CRASH_AFTER="${ORCH_CRASH_AFTER_SECONDS:-90}"
mkdir -p "$STATE"

prefect() { "$PY" -m prefect "$@"; }

# Alive: the pid exists and is not a zombie (a killed process stays in state Z until it is reaped,
# and kill -0 still succeeds on it).
pid_alive() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }
alive() { [ -f "$1" ] && pid_alive "$(cat "$1")"; }

# Polls until the condition (a Python expression that may call get(path[, body]) on the API) holds,
# for at most the given seconds; the exit status says whether it did.
probe() {
  "$PY" - "$PREFECT_API_URL" "$2" "$1" <<'PY'
import json, sys, time, urllib.request
api, seconds, expr = sys.argv[1], float(sys.argv[2]), sys.argv[3]

def get(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as resp:
        return json.load(resp)

end = time.monotonic() + seconds
while True:
    try:
        if eval(expr, {"get": get}):
            sys.exit(0)
    except (OSError, ValueError):
        pass
    if time.monotonic() >= end:
        sys.exit(1)
    time.sleep(0.5)
PY
}

wait_for() {
  probe "$2" "$3" || { echo "serve: $1 did not happen within ${3}s (logs: $STATE)" >&2; exit 1; }
}

# Starts a command in its own process group (set -m), so `stop` can end it with everything it spawned.
spawn() {
  local pidfile="$1" log="$2"
  shift 2
  set -m
  nohup "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  set +m
}

start_server() {
  if [ "$PREFECT_API_URL" != "$LOCAL_API" ]; then
    echo "serve: using the Prefect server at $PREFECT_API_URL"
  elif alive "$STATE/server.pid"; then
    echo "serve: Prefect server already running (pid $(cat "$STATE/server.pid"))"
  elif probe 'get("/health") is True' 0; then
    echo "serve: a Prefect server (not started by this script) already answers at $PREFECT_API_URL; using it"
  else
    echo "serve: starting the Prefect server on $HOST:$PORT (log: $STATE/server.log)"
    spawn "$STATE/server.pid" "$STATE/server.log" "$PY" -m prefect server start --host "$HOST" --port "$PORT"
  fi
  wait_for "the Prefect API answering at $PREFECT_API_URL" 'get("/health") is True' 120
}

deploy() {
  if prefect work-pool inspect "$POOL" >/dev/null 2>&1; then
    echo "serve: work pool $POOL exists"
  else
    prefect work-pool create "$POOL" --type process >/dev/null
    echo "serve: created the process work pool $POOL"
  fi
  # ORCH_PROJECT_DIR stays unset here so that each worker's flow runs resolve it on their own machine.
  (cd "$ROOT" && env -u ORCH_PROJECT_DIR ORCH_WORK_POOL="$POOL" "$PY" -m prefect --no-prompt deploy --all \
    >"$STATE/deploy.log" 2>&1) || { cat "$STATE/deploy.log" >&2; echo "serve: deploying failed" >&2; exit 1; }
  echo "serve: deployed prefect.yaml to pool $POOL"
  crash_detection
}

# The automation that marks a flow run Crashed when its heartbeats stop (its worker's machine died):
# after a heartbeat, expect another one or a final state within CRASH_AFTER seconds.
crash_detection() {
  local name="crash-silent-flow-runs"
  "$PY" - "$PREFECT_API_URL" "$name" "$CRASH_AFTER" <<'PY'
import json, sys, urllib.request
api, name, within = sys.argv[1], sys.argv[2], int(sys.argv[3])

def call(method, path, body):
    req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.loads(resp.read() or "null")

automation = {
    "name": name,
    "description": "Flow runs whose heartbeats stopped (their worker died) are marked Crashed.",
    "trigger": {
        "type": "event", "posture": "Proactive", "threshold": 1, "within": within,
        "after": ["prefect.flow-run.heartbeat"],
        "expect": ["prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                   "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"],
        "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
        "for_each": ["prefect.resource.id"],
    },
    "actions": [{"type": "change-flow-run-state", "state": "CRASHED",
                 "message": f"no heartbeat for {within}s: its worker is gone"}],
}
existing = [a for a in call("POST", "/automations/filter", {}) if a["name"] == name]
if existing:
    call("PUT", f"/automations/{existing[0]['id']}", automation)
else:
    call("POST", "/automations/", automation)
PY
  echo "serve: crash detection: a flow run silent for ${CRASH_AFTER}s is marked Crashed"
}

start_worker() {
  local name="${1:-${ORCH_WORKER_NAME:-worker-$(hostname)}}"
  local pidfile="$STATE/worker-$name.pid"
  if alive "$pidfile"; then
    echo "serve: worker $name already running (pid $(cat "$pidfile"))"
  else
    local args=(--pool "$POOL" --name "$name")
    [ -n "${ORCH_WORKER_LIMIT:-}" ] && args+=(--limit "$ORCH_WORKER_LIMIT")
    echo "serve: starting worker $name on pool $POOL (log: $STATE/worker-$name.log)"
    (cd "$ROOT" && export ORCH_PROJECT_DIR="${ORCH_PROJECT_DIR:-$ROOT}" &&
      spawn "$pidfile" "$STATE/worker-$name.log" "$PY" -m prefect worker start "${args[@]}")
  fi
  wait_for "worker $name coming online" \
    "any(w['name'] == '$name' and w['status'] == 'ONLINE' for w in get('/work_pools/$POOL/workers/filter', {}))" 60
}

stop_pidfile() {
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if pid_alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 40); do pid_alive "$pid" || break; sleep 0.5; done
    pid_alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null
    echo "serve: stopped $(basename "$pidfile" .pid) (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop() {
  # Workers first: a worker whose server is gone retries its connection for a while before it exits.
  for pidfile in "$STATE"/worker-*.pid; do [ -e "$pidfile" ] && stop_pidfile "$pidfile"; done
  stop_pidfile "$STATE/server.pid"
}

case "${1:-start}" in
  start)
    start_server
    deploy
    start_worker
    echo "serve: ready. UI: ${PREFECT_API_URL%/api}  (for the CLI: export PREFECT_API_URL=$PREFECT_API_URL)"
    ;;
  server)
    start_server
    deploy
    echo "serve: server ready. Workers join with: PREFECT_API_URL=$PREFECT_API_URL scripts/serve.sh worker NAME"
    ;;
  deploy) wait_for "the Prefect API answering at $PREFECT_API_URL" 'get("/health") is True' 30; deploy ;;
  worker) wait_for "the Prefect API answering at $PREFECT_API_URL" 'get("/health") is True' 30; start_worker "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: scripts/serve.sh [start|server|deploy|worker [NAME]|stop]" >&2; exit 2 ;;
esac
