#!/usr/bin/env bash
# Runs the orchestrator as a service: a local Prefect server (SQLite in PREFECT_HOME), the process work
# pool, the deployments of prefect.yaml and a worker. Idempotent: what already runs is left as it is.
#
#   scripts/serve.sh [start]        server + pool + deployments + one worker; prints the UI address
#   scripts/serve.sh server [--db postgres]  server + pool + deployments, no worker (the server host);
#                                   --db postgres: on PostgreSQL, its role and database created if missing
#   scripts/serve.sh deploy         pool + deployments only, on the server at PREFECT_API_URL
#   scripts/serve.sh worker [NAME]  one more worker on the pool (on another machine: set PREFECT_API_URL)
#   scripts/serve.sh stop           stops the workers, then the server, that this state folder started
#
# Environment: ORCH_PREFECT_HOST (127.0.0.1), ORCH_PREFECT_PORT (4200), PREFECT_API_URL (a server
# elsewhere; default: the local one), ORCH_WORK_POOL (orchestrator), ORCH_WORKER_NAME (worker-<host>),
# ORCH_WORKER_LIMIT (flow runs at once per worker; default no limit), ORCH_SERVE_DIR (pid files and
# logs; default .orchestrator/serve), ORCH_PYTHON (default .venv/bin/python). PREFECT_* settings pass
# through: PREFECT_HOME, PREFECT_API_DATABASE_CONNECTION_URL (PostgreSQL), PREFECT_WORKER_QUERY_SECONDS.
# --db postgres: PGHOST (default /var/run/postgresql, the socket of Debian's cluster) and PGPORT (5432)
# say where PostgreSQL is; the role and database ORCH_PG_DATABASE (prefect) are created as the postgres
# superuser (runuser/sudo -u postgres) unless they exist; the password is ORCH_PG_PASSWORD or one made
# up once and kept in $ORCH_SERVE_DIR/pg-password (mode 600); the server connects over TCP to
# ORCH_PG_ADDRESS (127.0.0.1). A PREFECT_API_DATABASE_CONNECTION_URL already set wins over all of this.
# Basic auth: a server started with PREFECT_SERVER_API_AUTH_STRING refuses clients without it; this
# script's own clients (its checks, the deploy, a worker) send PREFECT_API_AUTH_STRING, which defaults to
# the server's string where both are on one host. Worker hosts set PREFECT_API_AUTH_STRING.
# Lost hosts: flow runs send a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (30 here,
# Prefect's minimum; workers pass it to their runs); a sweep marks a run of its own Crashed after
# ORCH_CRASH_AFTER_SECONDS (90) without a heartbeat or a state change (flows/pool_runs.py).
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
if [ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ -z "${PREFECT_API_AUTH_STRING:-}" ]; then
  export PREFECT_API_AUTH_STRING="$PREFECT_SERVER_API_AUTH_STRING"
fi
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
import base64, json, os, sys, time, urllib.request
api, seconds, expr = sys.argv[1], float(sys.argv[2]), sys.argv[3]
headers = {"Content-Type": "application/json"}
if os.environ.get("PREFECT_API_AUTH_STRING"):  # as Prefect's client sends it
    headers["Authorization"] = "Basic " + base64.b64encode(os.environ["PREFECT_API_AUTH_STRING"].encode()).decode()

def get(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, headers=headers)
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
}

# PostgreSQL as the server's database: the role and database made unless they exist, then the URL.
postgres_db() {
  if [ -n "${PREFECT_API_DATABASE_CONNECTION_URL:-}" ]; then
    echo "serve: database: PREFECT_API_DATABASE_CONNECTION_URL as set"
    return
  fi
  local db="${ORCH_PG_DATABASE:-prefect}" pwfile="$STATE/pg-password" su=() pw
  export PGHOST="${PGHOST:-/var/run/postgresql}" PGPORT="${PGPORT:-5432}"
  if [ "$(id -un)" != postgres ]; then
    if [ "$(id -u)" = 0 ]; then su=(runuser -u postgres --); else su=(sudo -u postgres --preserve-env=PGHOST,PGPORT); fi
  fi
  command -v psql >/dev/null || { echo "serve: psql not found: install Debian's postgresql (scripts/install.sh does)" >&2; exit 2; }
  psql_admin() { "${su[@]}" psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
  psql_admin -tAc 'SELECT 1' >/dev/null 2>&1 ||
    { echo "serve: PostgreSQL does not answer at PGHOST=$PGHOST PGPORT=$PGPORT as user postgres; start it (systemctl start postgresql) or set PGHOST/PGPORT" >&2; exit 2; }
  if [ -n "${ORCH_PG_PASSWORD:-}" ]; then pw="$ORCH_PG_PASSWORD"
  elif [ -s "$pwfile" ]; then pw="$(cat "$pwfile")"
  elif [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$db'")" = 1 ]; then
    echo "serve: the PostgreSQL role $db exists but its password is unknown here: set ORCH_PG_PASSWORD" >&2; exit 2
  else
    pw="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
    (umask 077 && echo "$pw" >"$pwfile")
  fi
  if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$db'")" != 1 ]; then
    psql_admin <<<"CREATE ROLE \"$db\" LOGIN PASSWORD '$pw';"
    echo "serve: created the PostgreSQL role $db"
  fi
  if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE \"$db\" OWNER \"$db\""
    echo "serve: created the PostgreSQL database $db"
  fi
  export PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://$db:$pw@${ORCH_PG_ADDRESS:-127.0.0.1}:$PGPORT/$db"
  echo "serve: database: PostgreSQL $db at ${ORCH_PG_ADDRESS:-127.0.0.1}:$PGPORT"
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
    case "${2:-}" in
      "") ;;
      --db=postgres) postgres_db ;;
      --db) [ "${3:-}" = postgres ] || { echo "serve: --db takes postgres (the default is SQLite in PREFECT_HOME)" >&2; exit 2; }; postgres_db ;;
      *) echo "serve: server takes [--db postgres], not ${2}" >&2; exit 2 ;;
    esac
    start_server
    deploy
    echo "serve: server ready. Workers join with: PREFECT_API_URL=$PREFECT_API_URL scripts/serve.sh worker NAME"
    ;;
  deploy) wait_for "the Prefect API answering at $PREFECT_API_URL" 'get("/health") is True' 30; deploy ;;
  worker) wait_for "the Prefect API answering at $PREFECT_API_URL" 'get("/health") is True' 30; start_worker "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: scripts/serve.sh [start|server [--db postgres]|deploy|worker [NAME]|stop]" >&2; exit 2 ;;
esac
