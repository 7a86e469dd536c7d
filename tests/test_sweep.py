"""The Dask sweep: seeds and grid parsing, cluster choice, the batch script a Slurm or PBS job gets, retries,
resuming a killed sweep, and notebook 90's aggregation against hand-computed values. The small sweeps run tiny
notebooks on a real LocalCluster, and on dask-jobqueue's SLURMCluster with stand-ins for sbatch / squeue / scancel
(scripts/slurm_check.sh runs the smoke sweep on a real one-node Slurm); the smoke sweep (the ``smoke_sweep`` fixture
of conftest.py, checked in test_notebooks.py) runs the whole study for two seeds."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from medadv.config import ClusterConfig
from medadv.errors import ConfigError
from medadv.pipeline import DEFAULT_NOTEBOOKS, discover_notebooks, run_pipeline
from medadv.stages.replication import ReplicationConfig, aggregate, forest_figure
from medadv.sweep import (
    jobqueue_cluster,
    local_layout,
    main,
    parse_cluster_options,
    parse_grid,
    parse_seeds,
    plan_runs,
    run_sweep,
)

PARAMS = 'run_dir = "results/x"\nprofile = "smoke"\ndevice = "auto"\ndata_manifest = None\ndata_root = None\n'
# A run's notebook: writes its seed; fails once for seed 2 (then leaves a marker), always for seed 5, sleeps 120 s for
# 4 and 3 s for 6, 7 and 8 (long enough for two runs on one worker to overlap if the worker ran two at once).
BODY = """
import pathlib, time
import pandas as pd
from medadv.report import RunContext
t0 = time.time()
ctx = RunContext.open(run_dir, "00_tiny", profile=profile, device=device)
marker = pathlib.Path(run_dir) / "failed_once"
if ctx.profile.seed == 2 and not marker.exists():
    marker.write_text("x")
    raise RuntimeError("first attempt fails")
if ctx.profile.seed == 5:
    raise RuntimeError("always fails")
if ctx.profile.seed == 4:
    time.sleep(120)
if ctx.profile.seed in (6, 7, 8):
    time.sleep(3)
import os
ctx.save_table(pd.DataFrame({"seed": [ctx.profile.seed], "n": [ctx.profile.data.n_patients],
                             "malloc_trim": [os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset")],
                             "omp": [os.environ.get("OMP_NUM_THREADS")], "t0": [t0], "t1": [time.time()]}), "tiny")
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
    for bad in ("0", "x", "1,-2", "", "\u00b2", "3000000000", "18446744073709551616", "5,18446744073709551616"):
        with pytest.raises(ConfigError, match="--sweep"):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match=r"--sweep seed is 4294967296; expected a whole number from 0 to 4294967295"):
        parse_seeds("4294967296,1")
    assert parse_grid(["data.lesion_contrast=0.6,0.8"]) == ("data.lesion_contrast", [0.6, 0.8])
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid(["data.lesion_contrast"])
    assert local_layout(2, ClusterConfig()) == (1, 2)
    assert local_layout(16, ClusterConfig()) == (4, 4)
    assert local_layout(16, ClusterConfig(workers=3, threads_per_worker=2)) == (3, 2)


def test_cluster_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="needs options \\['memory'\\]"):
        ClusterConfig(kind="slurm", options={"cores": 8})
    with pytest.raises(ConfigError, match="tcp://host:8786"):
        ClusterConfig(address="host:8786")
    with pytest.raises(ConfigError, match="cluster.kind is 'lsf'"):
        ClusterConfig(kind="lsf")
    with pytest.raises(ConfigError, match="cores is 'eight'; expected the CPUs of one job"):
        ClusterConfig(kind="slurm", options={"cores": "eight", "memory": "4GB"})
    with pytest.raises(ConfigError, match="memory is 'lots'; expected the memory of one job"):
        ClusterConfig(kind="pbs", options={"cores": 8, "memory": "lots"})
    with pytest.raises(ConfigError, match="processes is 2; a job runs one run"):
        ClusterConfig(kind="pbs", options={"cores": 8, "memory": "4GB", "processes": 2})
    section = yaml.safe_load("kind: slurm\noptions: {cores: 2, memory: 4GB, walltime: 1:00:00}")
    assert section["options"]["walltime"] == 3600  # YAML 1.1's base 60, which Slurm would read as 3600 minutes
    with pytest.raises(ConfigError, match='walltime is 3600 \\(int\\).*quote it in the profile \\(walltime: "1:00:00"'):
        ClusterConfig.from_section(section)


def test_cluster_options_keep_the_text_the_scheduler_reads(capsys: pytest.CaptureFixture[str]) -> None:
    options = parse_cluster_options(
        [
            "cores=8",
            "memory=32GB",
            "walltime=1:00:00",
            "queue=gpu",
            "account=0123",
            'job_extra_directives=["--gres=gpu:1"]',
            "nanny=false",
            "death_timeout=60.5",
        ]
    )
    assert options == {
        "cores": 8,
        "memory": "32GB",
        "walltime": "1:00:00",
        "queue": "gpu",
        "account": "0123",
        "job_extra_directives": ["--gres=gpu:1"],
        "nanny": False,
        "death_timeout": "60.5",
    }
    assert parse_cluster_options(["walltime=12:00:00"]) == {"walltime": "12:00:00"}  # YAML 1.1: 43200
    for bad in ("cores2", "=8", "cores=", "2cores=8", "job_extra_directives=[oops"):
        with pytest.raises(ConfigError, match=f"--cluster-option '{re.escape(bad)}'"):
            parse_cluster_options([bad])
    assert main(["--profile", "smoke", "--sweep", "2", "--cluster", "slurm", "--cluster-option", "cores2"]) == 2
    out = capsys.readouterr()
    said = out.out + out.err
    assert "--cluster-option 'cores2': expected KEY=VALUE" in said and "--param" not in said


def job_script(kind: str, options: dict, jobs_dir: Path) -> str:
    cluster = jobqueue_cluster(ClusterConfig(kind=kind, options=options), jobs_dir)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def test_each_job_script_runs_one_run_with_the_jobs_cpus_memory_and_walltime(tmp_path: Path) -> None:
    """The batch script the kit submits, without a Slurm or PBS: one Dask worker with one thread (one run at a time),
    the job's CPUs, memory and walltime as asked, and the scheduler's output files in the sweep's jobs/ folder."""
    options = parse_cluster_options(["cores=8", "memory=32GB", "walltime=1:00:00", "queue=gpu"])
    slurm = job_script("slurm", options, tmp_path / "jobs")
    for line in (
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=30G",
        "#SBATCH -t 1:00:00",
        "#SBATCH -p gpu",
        f"#SBATCH -o {tmp_path / 'jobs'}/dask-worker-%J.out",
        f"#SBATCH -e {tmp_path / 'jobs'}/dask-worker-%J.err",
    ):
        assert line in slurm.splitlines(), (line, slurm)
    pbs = job_script("pbs", options, tmp_path / "jobs")
    for line in (
        "#PBS -l select=1:ncpus=8:mem=30GB",
        "#PBS -l walltime=1:00:00",
        "#PBS -q gpu",
        f"#PBS -o {tmp_path / 'jobs'}/",
    ):
        assert line in pbs.splitlines(), (line, pbs)
    for script in (slurm, pbs):
        command = script.strip().splitlines()[-1].split()
        assert command[1:3] == ["-m", "distributed.cli.dask_worker"]
        assert command.count("--nthreads") == 1 and command[command.index("--nthreads") + 1] == "1"
        assert command[command.index("--memory-limit") + 1] == "29.80GiB" and "--nworkers" not in command
    assert (
        job_script("slurm", dict(options, job_cpu=4, log_directory="/elsewhere"), tmp_path / "jobs").count(
            "--cpus-per-task=4"
        )
        == 1
    )  # the user's own keys win
    with pytest.raises(ConfigError, match="cluster options .* for slurm: .*unexpected keyword argument 'gpus'"):
        job_script("slurm", dict(options, gpus=1), tmp_path / "jobs")


# Stand-ins for Slurm's commands on this machine, enough for dask-jobqueue, on a node with room for one job: sbatch
# runs the first job script in the background (in its own session, output where its #SBATCH -o / -e lines say, else
# slurm-<id>.out in the directory it was called from, as Slurm does) and records its exit status when it ends; a later
# job stays pending, as on a full node. squeue lists a job while it is pending or running; scancel kills a running job
# or drops a pending one and records it as cancelled (a finished job: an error, as Slurm's).
FAKE_SLURM = {
    "sbatch": """#!/bin/bash
set -e
state="$FAKE_SLURM_DIR"
exec 9>"$state/lock"; flock 9
id=$(( $(cat "$state/counter" 2>/dev/null || echo 1000) + 1 )); echo "$id" > "$state/counter"
cp "$1" "$state/$id.script"
if compgen -G "$state/*.pid" >/dev/null; then touch "$state/$id.pending"; echo "Submitted batch job $id"; exit 0; fi
out=$(sed -n 's/^#SBATCH -o //p' "$1" | sed "s/%J/$id/"); err=$(sed -n 's/^#SBATCH -e //p' "$1" | sed "s/%J/$id/")
out=${out:-$PWD/slurm-$id.out}; err=${err:-$out}
setsid bash -c "bash '$state/$id.script' >>'$out' 2>>'$err'; echo \\$? > '$state/$id.rc'" \\
  </dev/null >/dev/null 2>&1 9>&- &
echo $! > "$state/$id.pid"
echo "Submitted batch job $id"
""",
    "squeue": """#!/bin/bash
id="${@: -1}"
state="$FAKE_SLURM_DIR"
if [ -f "$state/$id.pending" ] || { [ -f "$state/$id.pid" ] && [ ! -f "$state/$id.rc" ]; }; then echo "$id"; fi
""",
    "scancel": """#!/bin/bash
id="$1"
state="$FAKE_SLURM_DIR"
if [ -f "$state/$id.rc" ]; then echo "scancel: error: Job/step already completing or completed" >&2; exit 1; fi
if [ -f "$state/$id.pending" ]; then rm "$state/$id.pending"; else kill -TERM -- -"$(cat "$state/$id.pid")" || true; fi
echo "$id" >> "$state/cancelled"
""",
}


@pytest.fixture()
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The commands above first on PATH; every job still running at the end is killed."""
    bin_dir, state = tmp_path / "fake-slurm-bin", tmp_path / "fake-slurm-state"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in FAKE_SLURM.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    try:
        yield state
    finally:
        for pid_file in state.glob("*.pid"):
            if not pid_file.with_suffix(".rc").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_a_sweep_through_slurm_runs_one_run_per_job_and_ends_its_jobs(
    tiny: Path, tmp_path: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs, two Slurm jobs of 2 CPUs asked for, room for one (sbatch, squeue and scancel stood in for by the
    fake above): the started job's worker runs the runs one at a time, each with the job's 2 CPUs as torch threads;
    sweep.json counts the one worker that ran them; the job's output lands in the sweep's jobs/ folder; the started
    job ends by itself (exit status 0) and only the job that never started is cancelled. The scheduler and the worker
    talk over the loopback interface."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    status = main(
        [
            "--profile",
            "smoke",
            "--sweep",
            "6,7,8",
            "--run-dir",
            str(sweep),
            "--device",
            "cpu",
            "--notebooks",
            str(tiny),
            "--no-replication",
            "--cluster",
            "slurm",
            "--jobs",
            "2",
            "--cluster-option",
            "cores=2",
            "--cluster-option",
            "memory=2GB",
            "--cluster-option",
            "walltime=0:10:00",
            "--cluster-option",
            'scheduler_options={"host": "127.0.0.1"}',
            "--cluster-option",
            'worker_extra_args=["--host", "127.0.0.1"]',
        ]
    )
    assert status == 0
    record = json.loads((sweep / "sweep.json").read_text())
    runs = record["runs"]
    assert all(r["status"] == "complete" and r["attempts"] == 1 for r in runs.values())
    assert len({r["worker"] for r in runs.values()}) == 1
    assert record["cluster"] == {"kind": "slurm", "threads_per_run": 2, "workers": 1, "jobs": 2}
    tables = [pd.read_csv(sweep / name / "tables" / "tiny.csv").iloc[0] for name in runs]
    assert all(t["omp"] == 2 for t in tables)  # the run uses the job's CPUs
    spans = sorted((t["t0"], t["t1"]) for t in tables)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans  # one run at a time
    first, second = sorted(p.stem for p in fake_slurm.glob("*.script"))
    assert (fake_slurm / f"{first}.rc").read_text().strip() == "0"  # ended by itself, not by scancel
    assert (fake_slurm / "cancelled").read_text().split() == [second]  # only the job that never started
    assert "--cpus-per-task=2" in (fake_slurm / f"{first}.script").read_text()
    assert {p.name for p in (sweep / "jobs").iterdir()} == {f"dask-worker-{first}.out", f"dask-worker-{first}.err"}
    assert "End worker" in (sweep / "jobs" / f"dask-worker-{first}.err").read_text()
    assert not list(tmp_path.glob("slurm-*.out"))


def test_plan_sets_seed_and_grid_and_refuses_unknown_keys(tmp_path: Path) -> None:
    specs = plan_runs("smoke", [3, 4], tmp_path, ("data.n_patients", [40, 80]))
    assert [s.run_dir.name for s in specs] == [
        "data.n_patients-40_seed-0003",
        "data.n_patients-40_seed-0004",
        "data.n_patients-80_seed-0003",
        "data.n_patients-80_seed-0004",
    ]
    raw = yaml.safe_load((specs[3].run_dir / "profile.yaml").read_text())
    assert raw["seed"] == 4 and raw["data"]["n_patients"] == 80 and "effects" in raw
    with pytest.raises(ConfigError, match="no key 'n_patient'"):
        plan_runs("smoke", [0], tmp_path, ("data.n_patient", [40]))
    with pytest.raises(ConfigError, match="data.n_patients is 5"):
        plan_runs("smoke", [0], tmp_path, ("data.n_patients", [5]))


def test_sweep_retries_once_reports_failures_and_skips_finished_runs(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    sweep = tmp_path / "sweep"
    status = run_sweep(
        "smoke",
        [0, 2, 5],
        sweep,
        device="cpu",
        cluster=ClusterConfig(workers=1, threads_per_worker=1),
        notebooks_dir=tiny,
        replicate=False,
    )
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
    cmd = [
        sys.executable,
        "-m",
        "medadv.sweep",
        "--profile",
        "smoke",
        "--sweep",
        "0,4,1",
        "--run-dir",
        str(sweep),
        "--device",
        "cpu",
        "--workers",
        "1",
        "--threads-per-worker",
        "1",
        "--notebooks",
        str(tiny),
        "--no-replication",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (
            not (sweep / "seed-0004" / "notebooks").is_dir()
            or not (sweep / "seed-0000" / "tables" / "tiny.csv").is_file()
        ):
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
    per_seed = pd.DataFrame(
        {
            "seed": [0, 1, 2, 0, 1, 2],
            "setting": "",
            "effect": ["a"] * 3 + ["b"] * 3,
            "value": [0.2, 0.4, 0.9, 0.1, 0.1, float("nan")],
            "holds": [True, False, True, False, False, pd.NA],
            "paper_value": [0.691] * 3 + [float("nan")] * 3,
            "expected": [">= 0.3"] * 3 + ["> 0"] * 3,
            "interpretable": [True, True, False, True, False, True],
        }
    )
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


class _Planned(Exception):
    """Raised where a sweep plans its runs, before it writes anything."""


def test_a_sweep_without_a_folder_goes_to_the_kits_results_like_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from medadv import sweep
    from medadv.core import kit_root

    seen: list[Path] = []

    def stop(profile: str, seeds: list[int], sweep_dir: Path, *args: object, **kwargs: object) -> None:
        seen.append(sweep_dir)
        raise _Planned

    monkeypatch.setattr(sweep, "plan_runs", stop)
    monkeypatch.chdir(Path("/"))  # not the kit's checkout: a folder relative to it would land in /results
    with pytest.raises(_Planned):
        sweep.run_sweep("smoke", [0], None, device="cpu", replicate=False)
    (folder,) = seen
    assert folder.parent == (kit_root() / "results").resolve()
    assert re.fullmatch(r"sweep-smoke-\d{8}-\d{6}", folder.name)


def test_a_sweeps_set_reaches_every_run_and_bad_values_stop_it_before_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medadv import sweep

    folder = tmp_path / "sweep"
    for argv, message in (
        (["--set", "attacks.steps=0"], "--set attacks.*"),
        (["--set", "attacks.stepz=3"], "attacks.stepz"),
        (["--grid", "attacks.steps=5,0"], "--grid attacks.steps=0: "),
    ):
        assert main(["2", "--profile", "smoke", "--run-dir", str(folder), *argv]) == 2
        out = capsys.readouterr()
        assert message in out.out + out.err
        assert not folder.exists()  # refused before any run folder was made

    def plan_only(profile, seeds, sweep_dir, device, grid, cluster, extra, notebooks, overrides, replicate) -> int:
        plan_runs(profile, seeds, Path(sweep_dir), parse_grid(["attacks.steps=3,4"]), overrides)
        return 0

    monkeypatch.setattr(sweep, "run_sweep", plan_only)
    assert main(["2", "--profile", "smoke", "--run-dir", str(folder), "--set", "classifier.epochs=3"]) == 0
    runs = sorted(folder.glob("*/profile.yaml"))
    assert len(runs) == 4
    for path in runs:
        raw = yaml.safe_load(path.read_text())
        assert raw["classifier"]["epochs"] == 3 and raw["attacks"]["steps"] in (3, 4)


def test_a_sweep_refuses_seeds_given_otherwise_a_run_folder_and_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a user trial: --grid seed=1,2 ran each seed twice as two 'seeds', --set seed=5 was ignored (the report
    said seed 5), a run folder given as --run-dir was written into, and --only met a bare argparse error."""
    with pytest.raises(
        ConfigError, match=r"--grid 'seed=1,2': the seeds are the sweep's own argument \(medadv sweep 1,2\)"
    ):
        parse_grid(["seed=1,2"])
    folder = tmp_path / "sweep"
    assert main(["2", "--profile", "smoke", "--run-dir", str(folder), "--set", "seed=5"]) == 2
    assert "--set seed=5: a sweep sets each run's seed from its seeds argument" in capsys.readouterr().err
    run = tmp_path / "run"  # a run folder (its manifest.json), perhaps a sweep's own seed folder
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    assert main(["2", "--profile", "smoke", "--run-dir", str(run)]) == 2
    assert "is a run folder (manifest.json, no sweep.json), not a sweep folder" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]
    with pytest.raises(SystemExit) as info:
        main(["2", "--profile", "smoke", "--only", "00"])
    assert info.value.code == 2 and "--only is for one run" in capsys.readouterr().err
    (folder / "seed-0000").mkdir(parents=True)
    (folder / "sweep.json").write_text("{}")
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"is a sweep folder \(sweep\.json\); its runs are its seed-NNNN folders"):
        run_pipeline("smoke", folder, device="cpu")


def test_a_sweep_stopped_by_ctrl_c_marks_its_unfinished_runs_and_says_how_to_resume(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medadv import sweep

    @contextlib.contextmanager
    def no_cluster(*args: object) -> Iterator[tuple[None, int, dict[str, str]]]:
        yield None, 1, {}

    def interrupted(client, specs, record, sweep_dir, *args) -> None:
        record["runs"][specs[0].run_dir.name]["status"] = "complete"
        for spec in specs[1:]:
            record["runs"][spec.run_dir.name]["status"] = "queued"
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "sweep_cluster", no_cluster)
    monkeypatch.setattr(sweep, "execute", interrupted)
    folder = tmp_path / "sweep"
    assert main(["3", "--profile", "smoke", "--run-dir", str(folder), "--notebooks", str(tiny)]) == 130
    assert "stopped (Ctrl-C); the finished runs are kept" in capsys.readouterr().err
    record = json.loads((folder / "sweep.json").read_text())
    assert [record["runs"][f"seed-{i:04d}"]["status"] for i in range(3)] == ["complete", "stopped", "stopped"]
    assert "stopped" in record
