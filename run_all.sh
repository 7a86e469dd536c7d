#!/usr/bin/env bash
# The study, end to end: set up .venv if missing, then run every notebook in notebooks/ in order with papermill
# (`medadv run`; without bash: `python -m medadv run ...`).
#   ./run_all.sh [--profile smoke|default|full|workshop] [--run-dir DIR] [--only 00 03 ...] [--device cpu|cuda]
#                [--data MANIFEST --data-root DIR] [--set SECTION.KEY=VALUE ...] [--force]
# Relative paths are taken from the directory you call it from.
set -euo pipefail
kit="$(cd "$(dirname "$0")" && pwd)"
"$kit/scripts/setup_env.sh"
exec "$kit/.venv/bin/python" -m medadv run "$@"
