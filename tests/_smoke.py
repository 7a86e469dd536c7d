"""The settings of the suite's smoke runs (conftest.py's ``smoke_run`` and ``smoke_sweep``), for the tests that read
them."""

from __future__ import annotations

from medadv.config import load_profile

#: The smoke profile's own seed, and the sweep's: the profile's seed again (the same run, made by a sweep) and one more.
SMOKE_SEED = load_profile("smoke").seed
SWEEP_SEEDS = (SMOKE_SEED, SMOKE_SEED + 1)
#: Torch threads of every smoke run (a run's numbers depend on the count): the same on any machine.
SMOKE_THREADS = "2"
