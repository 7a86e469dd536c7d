"""Shared fixtures. Tests run on the CPU with one thread per process so that the suite's figures are stable."""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("MEDADV_NO_PROGRESS", "1")
