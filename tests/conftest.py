"""Shared fixtures. Tests run on the CPU with one thread per process so that the suite's figures are stable."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("MEDADV_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test downloads anything: torch's download (behind torchvision's pretrained weights) fails as it does on a
    machine without a network."""
    import torch.hub

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"the tests never download ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-seed sweep of the smoke profile on a local Dask cluster: seed 7 (the profile's own) and seed 8, each run
    with this process's number of torch threads (what an ordinary run started from here gets). ``test_sweep`` checks
    the sweep; ``test_notebooks`` compares its seed-7 run with an ordinary run of the profile, which must give the same
    tables (a sweep's run is an ordinary run), so that one end-to-end run serves both."""
    import torch
    from medadv.sweep import main

    sweep = tmp_path_factory.mktemp("smoke_sweep") / "sweep"
    threads = str(torch.get_num_threads())
    args = ["--profile", "smoke", "--sweep", "7,8", "--run-dir", str(sweep), "--device", "cpu"]
    assert main([*args, "--threads-per-worker", threads]) == 0, f"the smoke sweep failed: see {sweep}"
    return sweep
