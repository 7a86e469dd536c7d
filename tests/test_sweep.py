"""The Dask sweep: seeds and grid parsing, cluster choice, retries, resuming a killed sweep, and notebook 90's
aggregation against hand-computed values. The small sweeps run tiny notebooks on a real LocalCluster; the smoke
sweep (marked ``notebooks``) runs the whole study for two seeds."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from medadv.errors import ConfigError
from medadv.pipeline import DEFAULT_NOTEBOOKS, discover_notebooks
from medadv.stages.replication import ReplicationConfig, aggregate, forest_figure
from medadv.sweep import (ClusterConfig, jobqueue_cluster, local_layout, main, parse_grid, parse_seeds, plan_runs,
                          run_sweep)

PARAMS = 'run_dir = "results/x"\nprofile = "smoke"\ndevice = "auto"\ndata_manifest = None\ndata_root = None\n'
# A run's notebook: writes its seed; fails once for seed 2 (then leaves a marker), always for seed 5, sleeps for 4.
BODY = """
import pathlib, time
import pandas as pd
from medadv.report import RunContext
ctx = RunContext.open(run_dir, "00_tiny", profile=profile, device=device)
marker = pathlib.Path(run_dir) / "failed_once"
if ctx.profile.seed == 2 and not marker.exists():
    marker.write_text("x")
    raise RuntimeError("first attempt fails")
if ctx.profile.seed == 5:
    raise RuntimeError("always fails")
if ctx.profile.seed == 4:
    time.sleep(120)
import os
ctx.save_table(pd.DataFrame({"seed": [ctx.profile.seed], "n": [ctx.profile.data.n_patients],
                             "malloc_trim": [os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset")],
                             "omp": [os.environ.get("OMP_NUM_THREADS")]}), "tiny")
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "00_tiny.ipynb")
    return folder


def test_seeds_grid_and_layout_parse() -> None:
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("3,7,11") == [3, 7, 11] and parse_seeds("4,") == [4]
    for bad in ("0", "x", "1,-2", ""):
        with pytest.raises(ConfigError, match="--sweep"):
            parse_seeds(bad)
    assert parse_grid(["data.lesion_contrast=0.6,0.8"]) == ("data.lesion_contrast", [0.6, 0.8])
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid(["data.lesion_contrast"])
    assert local_layout(2, ClusterConfig()) == (1, 2)
    assert local_layout(16, ClusterConfig()) == (4, 4)
    assert local_layout(16, ClusterConfig(workers=3, threads_per_worker=2)) == (3, 2)


def test_cluster_config_is_checked_and_slurm_gets_a_job_script() -> None:
    with pytest.raises(ConfigError, match="needs options \\['memory'\\]"):
        ClusterConfig(kind="slurm", options={"cores": 8})
    with pytest.raises(ConfigError, match="tcp://host:8786"):
        ClusterConfig(address="host:8786")
    with pytest.raises(ConfigError, match="cluster.kind is 'lsf'"):
        ClusterConfig(kind="lsf")
    cluster = jobqueue_cluster(ClusterConfig(kind="slurm", options={"cores": 8, "memory": "32GB", "walltime": "02:00:00",
                                                                    "queue": "gpu"}))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script and "#SBATCH --cpus-per-task=8" in script and "#SBATCH -t 02:00:00" in script


def test_plan_sets_seed_and_grid_and_refuses_unknown_keys(tmp_path: Path) -> None:
    specs = plan_runs("smoke", [3, 4], tmp_path, ("data.n_patients", [40, 80]))
    assert [s.run_dir.name for s in specs] == ["data.n_patients-40_seed-0003", "data.n_patients-40_seed-0004",
                                               "data.n_patients-80_seed-0003", "data.n_patients-80_seed-0004"]
    raw = yaml.safe_load((specs[3].run_dir / "profile.yaml").read_text())
    assert raw["seed"] == 4 and raw["data"]["n_patients"] == 80 and "effects" in raw
    with pytest.raises(ConfigError, match="no key 'n_patient'"):
        plan_runs("smoke", [0], tmp_path, ("data.n_patient", [40]))
    with pytest.raises(ConfigError, match="data.n_patients is 5"):
        plan_runs("smoke", [0], tmp_path, ("data.n_patients", [5]))


def test_sweep_retries_once_reports_failures_and_skips_finished_runs(tiny: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    sweep = tmp_path / "sweep"
    status = run_sweep("smoke", [0, 2, 5], sweep, device="cpu", cluster=ClusterConfig(workers=1, threads_per_worker=1),
                       notebooks_dir=tiny, replicate=False)
    assert status == 1
    runs = json.loads((sweep / "sweep.json").read_text())["runs"]
    assert runs["seed-0000"]["status"] == "complete" and runs["seed-0000"]["attempts"] == 1
    assert runs["seed-0002"]["status"] == "complete" and runs["seed-0002"]["attempts"] == 2
    assert runs["seed-0005"]["status"] == "failed" and runs["seed-0005"]["attempts"] == 2
    assert "always fails" in runs["seed-0005"]["error"]
    table = pd.read_csv(sweep / "seed-0002" / "tables" / "tiny.csv")
    assert table["seed"].tolist() == [2]
    # the Dask worker runs with MALLOC_TRIM_THRESHOLD_=65536 (1.4x slower attacks); the run gets the caller's unset
    assert table["malloc_trim"].tolist() == ["unset"] and table["omp"].tolist() == [1]
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ  # the LocalCluster's nanny set it here too; it is put back
    out = capsys.readouterr().out
    assert "seed 2 failed" in out and "retrying once" in out and "seed 5 FAILED twice" in out
    assert "sweep: 2/3 done, 0 running, 1 failed" in out
    finished = json.loads((sweep / "seed-0000" / "manifest.json").read_text())["finished"]
    assert run_sweep("smoke", [0, 2], sweep, device="cpu", notebooks_dir=tiny, replicate=False) == 0
    out = capsys.readouterr().out
    assert "seed 0 finished before with this code, skipped" in out and "0 to run" in out
    assert json.loads((sweep / "seed-0000" / "manifest.json").read_text())["finished"] == finished


def test_a_killed_sweep_resumes_without_redoing_finished_runs(tiny: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "medadv.sweep", "--profile", "smoke", "--sweep", "0,4,1", "--run-dir", str(sweep),
           "--device", "cpu", "--workers", "1", "--threads-per-worker", "1", "--notebooks", str(tiny),
           "--no-replication"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (sweep / "seed-0004" / "notebooks").is_dir() or not (sweep / "seed-0000" / "tables" / "tiny.csv").is_file():
            assert time.monotonic() < deadline and proc.poll() is None, "the sweep did not reach seed 4"
            time.sleep(0.5)
        time.sleep(3)  # seed 4's notebook is now sleeping: kill the sweep with its workers and runs
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = json.loads((sweep / "seed-0000" / "manifest.json").read_text())["finished"]
    assert not (sweep / "seed-0001" / "manifest.json").exists()
    # Resume with seed 4 (the one killed) dropped, so the test does not sleep again: seed 0 is skipped, 1 runs.
    assert main(cmd[3:6] + ["0,1"] + cmd[7:]) == 0
    assert json.loads((sweep / "seed-0000" / "manifest.json").read_text())["finished"] == finished
    record = json.loads((sweep / "sweep.json").read_text())["runs"]
    assert record["seed-0001"]["status"] == "complete" and record["seed-0000"]["status"] == "complete"
    assert record["seed-0004"]["status"] in ("queued", "running", "retrying")  # what the killed sweep left


def test_aggregation_matches_hand_computed_values() -> None:
    per_seed = pd.DataFrame({
        "seed": [0, 1, 2, 0, 1, 2], "setting": "", "effect": ["a"] * 3 + ["b"] * 3,
        "value": [0.2, 0.4, 0.9, 0.1, 0.1, float("nan")], "holds": [True, False, True, False, False, pd.NA],
        "paper_value": [0.691] * 3 + [float("nan")] * 3, "expected": [">= 0.3"] * 3 + ["> 0"] * 3,
        "interpretable": [True, True, False, True, False, True],
    })
    table = aggregate(per_seed, ReplicationConfig(), n_failed=1)
    assert list(table["seeds"]) == ["all", "interpretable"] * 2
    gated = table[table["seeds"] == "interpretable"].set_index("effect")
    assert gated.loc["a", "n_seeds"] == 2 and gated.loc["a", "mean"] == pytest.approx(0.3)  # seed 2 (0.9) left out
    assert gated.loc["a", "share_holding"] == pytest.approx(0.5) and gated.loc["b", "n_seeds"] == 1
    table = table[table["seeds"] == "all"]
    a, b = table.set_index("effect").loc["a"], table.set_index("effect").loc["b"]
    assert a["n_seeds"] == 3 and a["mean"] == pytest.approx(0.5) and a["share_holding"] == pytest.approx(2 / 3)
    assert 0.2 <= a["ci_low"] < 0.5 < a["ci_high"] <= 0.9 and a["paper_value"] == 0.691
    assert b["n_seeds"] == 2 and b["mean"] == pytest.approx(0.1) and (b["ci_low"], b["ci_high"]) == (0.1, 0.1)
    assert b["share_holding"] == 0.0 and a["n_runs_failed"] == 1
    # Two seeds: the bootstrap means are a, (a+b)/2, b with weights 1/4, 1/2, 1/4, so the 95% interval is [a, b].
    two = aggregate(per_seed[per_seed["seed"] < 2], ReplicationConfig())
    assert tuple(two.loc[0, ["ci_low", "ci_high"]]) == pytest.approx((0.2, 0.4))
    assert len(forest_figure(per_seed, aggregate(per_seed, ReplicationConfig())).axes[0].get_yticks()) == 2


def test_notebook_90_is_clean_and_not_in_a_runs_chain() -> None:
    path = DEFAULT_NOTEBOOKS / "90_replication.ipynb"
    assert path not in discover_notebooks(DEFAULT_NOTEBOOKS)
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all(c.outputs == [] and c.execution_count is None for c in code) and "papermill" not in nb.metadata


@pytest.mark.notebooks
def test_two_seed_smoke_sweep_on_a_local_cluster(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    assert main(["--profile", "smoke", "--sweep", "2", "--run-dir", str(sweep), "--device", "cpu"]) == 0
    table = pd.read_csv(sweep / "tables" / "replication_effects.csv")
    assert list(table.columns[:7]) == ["effect", "n_seeds", "mean", "ci_low", "ci_high", "share_holding", "paper_value"]
    assert (table["n_seeds"] == 2).all() and table["share_holding"].between(0, 1).all()
    per_seed = pd.read_csv(sweep / "tables" / "replication_per_seed.csv")
    for seed in (0, 1):
        effects = pd.read_csv(sweep / f"seed-{seed:04d}" / "tables" / "effects.csv")
        mine = per_seed[per_seed["seed"] == seed].set_index("effect")["value"]
        assert mine.to_dict() == pytest.approx(effects.set_index("effect")["value"].to_dict(), nan_ok=True)
    cohorts = [pd.read_csv(sweep / f"seed-{s:04d}" / "cohort.csv")["split"].tolist() for s in (0, 1)]
    assert cohorts[0] != cohorts[1]  # the seed drives the cohort and its splits
    assert (sweep / "figures" / "replication_forest.png").is_file()
