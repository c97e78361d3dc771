#!/usr/bin/env bash
# The test command: installs (idempotent) and runs the whole suite, Docker sandbox included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"
