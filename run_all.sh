#!/usr/bin/env bash
# The study, end to end: set up .venv if missing, then run every notebook in notebooks/ in order with papermill.
#   ./run_all.sh [--profile smoke|default|full] [--run-dir DIR] [--only 00 03 ...] [--device cpu|cuda]
#                [--data MANIFEST --data-root DIR] [--force]
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup_env.sh
export MPLBACKEND=agg
exec .venv/bin/python -m medadv.pipeline "$@"
