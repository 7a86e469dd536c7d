#!/usr/bin/env bash
# Create .venv (if missing) and install the kit into it; with --dev also the test extras and Chromium for the
# reader-app browser test. Needs Python 3.11+ and pip; nothing else. Safe to rerun: it only installs what is missing.
#   MEDADV_PYTHON      interpreter to build .venv with (default: python3.11, else python3)
#   MEDADV_TORCH_SPEC  torch/torchvision requirement installed first (default on Linux x86_64:
#                      "torch==2.14.1 torchvision==0.29.1"; elsewhere: the ranges of pyproject.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

py=${MEDADV_PYTHON:-$(command -v python3.11 || command -v python3 || true)}
if [ -z "$py" ]; then
  echo "medadv setup: no python3 found; install Python 3.11 or newer" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "medadv setup: $py is $("$py" --version 2>&1); Python 3.11 or newer is needed (set MEDADV_PYTHON)" >&2; exit 1; }
  echo "medadv setup: creating .venv with $("$py" --version 2>&1)"
  "$py" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# Whether every named module is installed, found without importing it: importing torch, torchvision and captum only
# to check for them took about 13 s of every ./run_all.sh on 2 cores.
have() { .venv/bin/python -c 'import importlib.util, sys; sys.exit(not all(importlib.util.find_spec(m) for m in sys.argv[1:]))' "$@"; }

if ! have torch torchvision; then
  spec=${MEDADV_TORCH_SPEC:-}
  if [ -z "$spec" ] && [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
    spec="torch==2.14.1 torchvision==0.29.1"
  fi
  if [ -n "$spec" ]; then
    echo "medadv setup: installing $spec (several GB, takes a few minutes)"
    # shellcheck disable=SC2086
    pip install $spec
  fi
fi
if ! have medadv papermill captum ipywidgets; then
  echo "medadv setup: installing the kit and its dependencies"
  pip install -e .
fi
if [ "$dev" = 1 ]; then
  if ! have pytest xdist sklearn playwright ruff; then
    echo "medadv setup: installing the test extras"
    pip install -e '.[dev]'
  fi
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "medadv setup: installing Debian's chromium for the reader-app browser test"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "medadv setup: the reader-app browser test needs Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium) or set MEDADV_CHROMIUM to its path" >&2
    fi
  fi
fi
