#!/usr/bin/env bash
# The test command: set up .venv with the test extras (and Chromium) if missing, then run pytest on the kit's tests
# (without bash: `python -m pytest` in the checkout). Extra arguments go to pytest (e.g. ./run_tests.sh -m "not notebooks" -x).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup_env.sh --dev
export MPLBACKEND=agg
exec .venv/bin/python -m pytest "$@"
