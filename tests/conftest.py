"""Shared fixtures: no downloads, and the smoke profile run end to end, once directly and once as a two-seed sweep
(the slowest fixtures of the suite, each made once per session and only for the tests marked ``notebooks``)."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
from _smoke import SMOKE_THREADS, SWEEP_SEEDS

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
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke pipeline run once into a run folder (``./run_all.sh --profile smoke``), with the torch threads of
    the sweep's runs (:data:`SMOKE_THREADS`, set through the variables a sweep sets).

    Returns:
        The run folder.
    """
    from medadv.pipeline import run_pipeline

    run = tmp_path_factory.mktemp("smoke_run")
    with pytest.MonkeyPatch.context() as patch:  # the kernels' torch threads, set as a sweep sets them
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            patch.setenv(name, SMOKE_THREADS)
        status = run_pipeline("smoke", run, device="cpu")
    assert status == 0, f"the smoke run failed: see {run / 'notebooks'}"
    return run


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke profile swept over :data:`SWEEP_SEEDS` on a local Dask cluster (one worker, 2 torch threads per run),
    with notebook 90's replication over both.

    Returns:
        The sweep folder (a ``seed-NNNN`` run folder per seed, ``tables``, ``figures``, ``report``).
    """
    from medadv.sweep import main

    sweep = tmp_path_factory.mktemp("smoke_sweep") / "sweep"
    seeds = ",".join(map(str, SWEEP_SEEDS))
    argv = ["--profile", "smoke", "--sweep", seeds, "--run-dir", str(sweep), "--device", "cpu", "--workers", "1"]
    assert main([*argv, "--threads-per-worker", SMOKE_THREADS]) == 0
    return sweep
