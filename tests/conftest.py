"""Shared fixtures: no downloads, and the smoke profile run end to end, once directly and once as a two-seed sweep
(the slowest fixtures of the suite, each made once per session and only for the tests marked ``notebooks``).

The suite runs on pytest-xdist's workers, one per CPU this process may use (``-n auto`` in pyproject.toml; ``-n 0``
runs it in one process). Every test that reads a smoke run is in :data:`SMOKE_MODULES`, which one worker runs whole,
so each smoke fixture is made once; the other workers take the rest one test at a time meanwhile."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
from _smoke import SMOKE_THREADS, SWEEP_SEEDS

os.environ.setdefault("MPLBACKEND", "agg")
# Idle OpenMP threads sleep instead of spinning: two workers' torch threads share the cores (5x slower when they spin).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MEDADV_NO_PROGRESS", "1")

#: The test modules whose tests read the smoke runs (``smoke_run``, ``smoke_sweep``): each goes whole to one worker.
SMOKE_MODULES = frozenset({"tests/test_notebooks.py"})
#: Modules whose tests each start kernels or processes (up to tens of seconds a test): they
#: are handed out first, so that the many short tests fill the workers' last minutes instead of a sweep test running
#: alone at the end (in collection order, test_sweep.py's three came last and ran after every other test).
SLOW_MODULES = frozenset({"test_sweep.py", "test_pipeline.py", "test_pretrained.py", "test_ddp.py"})
#: At most this many workers under ``-n auto``: the smoke module (about 40% of the suite's time) is the longest chain,
#: so more workers only add processes that import torch.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per CPU this process may run on (its affinity, which a container's or a batch job's CPU
    set restricts, unlike psutil's count of the machine's cores), at most :data:`MAX_WORKERS`.

    Returns:
        The number of workers.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(usable, MAX_WORKERS)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under xdist's default ``--dist load``: each module of :data:`SMOKE_MODULES` is one unit of work, every other
    test a unit of its own. xdist hands out the largest units first, so the smoke module starts at once.

    (``--dist loadgroup`` with an ``xdist_group`` mark would say the same, but pytest-xdist 3.8 names a group by
    rewriting ``item._nodeid``, which pytest 9.2 no longer reads: the groups fell apart and the smoke runs were made
    once per worker.)

    Returns:
        The scheduler; ``None`` under another ``--dist``, which xdist then makes itself.
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SmokeModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SMOKE_MODULES else nodeid

    return SmokeModulesTogether(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests of :data:`SLOW_MODULES` first, the rest after them, each in its order (xdist hands out single tests
    in collection order, after the smoke module)."""
    items.sort(key=lambda item: item.path.name not in SLOW_MODULES)


def pytest_configure(config: pytest.Config) -> None:
    """The kit's Jupyter kernel is registered (:func:`medadv.kernel.ensure_kernel`) by the main process, before any
    xdist worker starts, so that no two workers write its spec at once."""
    if not hasattr(config, "workerinput"):
        from medadv.kernel import ensure_kernel

        ensure_kernel()


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
