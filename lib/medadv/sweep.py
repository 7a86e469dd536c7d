"""The whole study over many seeds (and optionally a grid over one profile key), on Dask; then notebook 90 over them.

``medadv sweep 3 --profile smoke --run-dir results/sweep-smoke`` (or ``./run_all.sh --profile smoke --sweep 3 ...``,
``medadv run --sweep 3 ...``, ``python -m medadv.sweep ...``) makes one
run folder per seed under the sweep folder (``seed-0000``, ``seed-0001``, ...; ``--sweep 3,7,11`` lists seeds), each
with its own ``profile.yaml``: the profile with ``seed`` set, and so the cohort, the splits, the initial weights, the
attacks' random starts and the simulated readers all follow that seed (every one of them is seeded from
``profile.seed``). Each run is the ordinary resumable pipeline (:mod:`medadv.pipeline`) started as a subprocess by a
Dask task, so a run killed with its worker resumes at its first unfinished notebook, and ``sweep.json`` records each
run's status, attempts, seconds and the peak memory of its largest process.

Where the runs go (``--cluster``, or the profile's ``cluster:`` section; the command line wins):

* ``local`` (default): a ``distributed.LocalCluster`` on this machine: ``workers`` x ``threads_per_worker`` from the
  cores (a run per worker at a time, its torch using ``threads_per_worker`` threads; 4 threads per run when there are
  8 cores or more, else all cores and one worker);
* ``slurm`` / ``pbs``: ``dask_jobqueue.SLURMCluster`` / ``PBSCluster`` built from ``cluster.options`` (``cores``,
  ``memory``, ``walltime``, ``queue``, ``account``, ...; ``--cluster-option KEY=VALUE`` adds one) and scaled to one
  job per run, at most ``cluster.jobs``. Each job books ``cores`` CPUs and ``memory`` and runs one Dask worker with
  one thread, so it runs one run at a time, whose torch uses the job's ``cores`` threads (:func:`jobqueue_cluster`);
  the scheduler's output files go to the sweep folder's ``jobs/``. When the sweep is done, each started job's worker
  is retired and ends by itself (the scheduler records the job as completed); a job still waiting in the queue then
  can only be cancelled;
* ``--scheduler tcp://host:8786`` (or ``cluster.address``): an existing Dask scheduler whose workers see this checkout
  and the sweep folder (a shared file system).

A run that fails is retried once and reported; rerunning the sweep skips every run that finished with the same library
and notebooks, and reruns the others (each resuming where it stopped). Progress is logged (:mod:`medadv.console`) as
runs done / running / failed. The Dask part is the ``distributed`` scheduler's own (futures, ``as_completed``); only the
retry bookkeeping is written here, because Dask's own ``retries=`` does not say which runs needed one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from medadv.config import CLUSTER_KINDS, TEXT_OPTIONS, ClusterConfig, check_seed, load_profile, profile_from_dict
from medadv.console import RUN_LOGGER, console_logger, exit_process
from medadv.core import kit_root, read_json, write_json
from medadv.errors import ConfigError, MedadvError
from medadv.kernel import ensure_kernel
from medadv.layout import SWEEP_FILE, RunLayout
from medadv.pipeline import (
    DEFAULT_NOTEBOOKS,
    PATH_PARAMS,
    add_set_option,
    check_folder,
    check_profile,
    code_digest,
    execute_notebook,
    parse_params,
    resolve_data,
    resolve_profile,
)
from medadv.report import write_config
from medadv.run_report import write_report

REPLICATION_NOTEBOOK = "90_replication.ipynb"
MAX_ATTEMPTS = 2
JOBS_DIR = "jobs"
#: The command that lists a batch job while the scheduler still holds it (pending, running or completing).
JOB_STATUS_COMMANDS = {"slurm": ["squeue", "-h", "-o", "%i", "-j"], "pbs": ["qstat"]}
#: Seconds a retired job is given to end by itself before the cluster cancels it.
JOB_END_WAIT_S = 60.0
_WHOLE_NUMBER = re.compile(r"[+-]?(0|[1-9][0-9]*)")
#: Dask settings while a sweep's cluster runs. A task here is one run of minutes that waits on its pipeline process, so
#: the scheduler's and workers' fine-grained housekeeping (a 20 ms event-loop tick, 10 ms stack profiling, 100 ms
#: memory and 500 ms system monitors) buys nothing and competes with the run's torch threads: an idle one-worker
#: LocalCluster used 2.75 CPU seconds in 30 s with Dask's defaults, 0.32 s with these. A worker-saturation of 1.0
#: hands a one-thread worker one run at a time (Dask's 1.1 would queue a second run on it), so the runs not yet started
#: wait at the scheduler for the next free worker, such as a batch job that starts later.
QUIET_DASK = {
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
    "distributed.scheduler.worker-saturation": 1.0,
}
LOG = logging.getLogger(RUN_LOGGER)


def local_layout(cores: int, config: ClusterConfig) -> tuple[int, int]:
    """(workers, torch threads per run) for a LocalCluster on ``cores`` cores.

    Returns:
        The configured numbers where given; else 4 threads per run and ``cores // 4`` workers from 8 cores up, one
        worker with every core below that.
    """
    threads = config.threads_per_worker or (4 if cores >= 8 else max(1, cores))
    workers = config.workers or max(1, cores // threads)
    return workers, threads


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its seed, grid setting (``""`` without a grid) and folder."""

    seed: int
    setting: str
    run_dir: Path

    @property
    def label(self) -> str:
        return f"seed {self.seed}" + (f" ({self.setting})" if self.setting else "")


#: The most seeds ``--sweep N`` takes (each is a whole run of the study; N is a count, not a seed).
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list[int]:
    """``"10"`` -> seeds 0..9; ``"3,7,11"`` -> those seeds.

    Returns:
        The seeds in the order given, each once; a :class:`ConfigError` for anything else.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or not all(re.fullmatch(r"[0-9]{1,12}", p) for p in parts):
        raise ConfigError(f"--sweep {text!r}: expected a number of seeds (10 -> seeds 0-9) or a list like 3,7,11.")
    if len(parts) == 1 and "," not in str(text):
        if not 1 <= int(parts[0]) <= MAX_SEEDS:
            raise ConfigError(
                f"--sweep {parts[0]}: a sweep runs 1 to {MAX_SEEDS} seeds (each a whole run of the study); for "
                "other seeds than 0 to N-1 give them as a list, like 3,7,11."
            )
        seeds = list(range(int(parts[0])))
    else:
        seeds = list(dict.fromkeys(int(p) for p in parts))
    return [check_seed(seed, "--sweep seed") for seed in seeds]


def parse_grid(items: Sequence[str]) -> tuple[str, list[Any]] | None:
    """``["data.n_patients=200,400"]`` -> ``("data.n_patients", [200, 400])`` (values read as YAML scalars).

    Returns:
        None without a grid; one key only (a ConfigError for more, or for a malformed item).
    """
    if not items:
        return None
    if len(items) > 1:
        raise ConfigError(f"--grid given {len(items)} times; a sweep takes one grid key beside the seeds.")
    key, sep, values = items[0].partition("=")
    if not sep or not key or not values:
        raise ConfigError(f"--grid {items[0]!r}: expected KEY=V1,V2,... e.g. data.lesion_contrast=0.6,0.8.")
    if key.strip() == "seed":
        raise ConfigError(
            f"--grid {items[0]!r}: the seeds are the sweep's own argument (medadv sweep {values}); a grid varies one "
            "profile setting beside them (every run of a grid value with its seed would otherwise run the same seed)."
        )
    return key, [yaml.safe_load(v) for v in values.split(",")]


def _set_key(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--grid {key}: the profile has no section {part!r}; known: {sorted(raw)}.")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"--grid {key}: the profile has no key {parts[-1]!r} there; known: {sorted(node)}.")
    node[parts[-1]] = value
    return raw


def plan_runs(
    profile: str,
    seeds: Sequence[int],
    sweep_dir: Path,
    grid: tuple[str, list[Any]] | None,
    overrides: Mapping[str, Any] | None = None,
) -> list[RunSpec]:
    """Make each run's folder and ``profile.yaml`` (the profile with its seed and grid value set), once every run's
    profile has passed the runner's check (:func:`medadv.pipeline.check_profile`): a value no run can take is refused
    before any folder is made, not by every run of the sweep.

    Returns:
        One :class:`RunSpec` per (grid value, seed), grid values outermost.

    Raises:
        ConfigError: a run's profile that the runner would refuse (a grid value named as ``--grid``).
    """
    base = load_profile(profile, overrides).to_dict()
    settings = [("", None)] if grid is None else [(f"{grid[0]}={v}", v) for v in grid[1]]
    planned = []
    for (setting, value), seed in itertools.product(settings, seeds):
        raw = yaml.safe_load(yaml.safe_dump(base))
        raw["seed"] = int(seed)
        if grid is not None:
            _set_key(raw, grid[0], value)
        try:
            check_profile(profile_from_dict(raw), overrides)
        except ConfigError as exc:
            raise ConfigError(f"--grid {setting}: {exc}" if setting else str(exc)) from None
        folder = f"seed-{seed:04d}" if not setting else f"{setting.replace('=', '-')}_seed-{seed:04d}"
        planned.append((RunSpec(int(seed), setting, sweep_dir / folder), raw))
    for spec, raw in planned:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        RunLayout(spec.run_dir).profile.write_text(yaml.safe_dump(raw, sort_keys=False))
    return [spec for spec, _ in planned]


def sweep_digest(notebooks_dir: Path) -> str:
    """sha256 of the library and the notebooks: a finished run is skipped only while this is unchanged.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256(code_digest().encode())
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def run_complete(run_dir: Path) -> bool:
    """Whether the run folder's ``manifest.json`` says every notebook completed.

    Returns:
        True when the run completed.
    """
    manifest = read_json(RunLayout(run_dir).manifest, default={})
    return bool(manifest.get("complete"))


def caller_environ() -> dict[str, str | None]:
    """The caller's values of the variables a Dask nanny sets in its worker processes (``distributed.nanny``'s
    ``pre-spawn-environ`` and ``environ``: ``MALLOC_TRIM_THRESHOLD_=65536`` and one thread for OpenMP, MKL and
    OpenBLAS), None where the caller has none.

    Those settings suit a worker that runs many small tasks, not the run a task starts: under
    ``MALLOC_TRIM_THRESHOLD_=65536`` notebooks 03 and 04 of the smoke profile took 52 and 45 s instead of 36 and 32 s
    on 2 cores (glibc hands freed memory back to the system after each of torch's large allocations). A run therefore
    gets the caller's values back (:func:`apply_environ`). A LocalCluster's nannies live in the calling process and
    write these variables into its own environment when they start their workers, so this is read before the
    cluster starts and put back once it has stopped (:func:`sweep_cluster`, before notebook 90).

    Returns:
        variable -> the caller's value or None.
    """
    import dask
    import distributed  # noqa: F401 - its import adds the nanny's defaults to dask.config

    names = {
        **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
        **dask.config.get("distributed.nanny.environ", {}),
    }
    return {name: os.environ.get(name) for name in sorted(names)}


def apply_environ(env: MutableMapping[str, str], caller: Mapping[str, str | None]) -> MutableMapping[str, str]:
    """Put ``caller``'s values (:func:`caller_environ`) into ``env`` over what the Dask nanny set, removing those the
    caller has not set.

    Returns:
        ``env`` itself (a copy of :data:`os.environ` for a run, or :data:`os.environ` once the cluster has stopped).
    """
    for name, value in caller.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_one(
    run_dir: str, device: str, threads: int, extra_args: Sequence[str], caller: Mapping[str, str | None]
) -> dict[str, Any]:
    """Run the pipeline for one run folder in a subprocess (a Dask task; the log goes to ``pipeline.log``), in this
    worker's environment with the ``caller``'s values put back (:func:`apply_environ`) and ``threads`` torch threads.

    Returns:
        ``rc`` (the pipeline's exit status), ``seconds``, ``peak_rss_mb`` (the largest process this worker has waited
        for so far, usually a notebook kernel) and ``worker`` (host:pid).
    """
    folder = Path(run_dir)
    env = dict(
        apply_environ(dict(os.environ), caller),
        MPLBACKEND="agg",
        MEDADV_NO_PROGRESS="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    cmd = [
        sys.executable,
        "-m",
        "medadv.pipeline",
        "--profile",
        str(RunLayout(folder).profile),
        "--run-dir",
        str(folder),
        "--device",
        device,
        *extra_args,
    ]
    start = time.perf_counter()
    with open(RunLayout(folder).pipeline_log, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "rc": rc,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def _failure_text(spec: RunSpec, outcome: dict[str, Any]) -> str:
    if "exception" in outcome:
        return outcome["exception"]
    failed = [
        f"{n}: {e.get('error', '')}"
        for n, e in read_json(RunLayout(spec.run_dir).manifest, {}).get("notebooks", {}).items()
        if e.get("status") == "failed"
    ]
    return f"pipeline exit status {outcome.get('rc')}" + (f" ({'; '.join(failed)})" if failed else "")


def make_client(config: ClusterConfig, n_runs: int, jobs_dir: Path) -> tuple[Any, Any, int]:
    """Start (or connect to) the Dask cluster of ``config`` for ``n_runs`` runs (a job queue's output files in
    ``jobs_dir``).

    Returns:
        (client, cluster or None for an existing scheduler, torch threads per run).
    """
    from distributed import Client, LocalCluster

    if config.address is not None:
        try:
            return Client(config.address, timeout="30s"), None, config.threads_per_worker or 1
        except OSError as exc:
            raise ConfigError(
                f"--scheduler {config.address}: no Dask scheduler answered ({exc}); start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS --nthreads 1`."
            ) from exc
    if config.kind == "local":
        workers, threads = local_layout(os.cpu_count() or 1, config)
        cluster = LocalCluster(
            n_workers=min(workers, n_runs),
            threads_per_worker=1,
            processes=True,
            dashboard_address=config.dashboard or ":0",
            scheduler_kwargs={"dashboard": config.dashboard is not None},
        )
        return Client(cluster), cluster, threads
    cluster = jobqueue_cluster(config, jobs_dir)
    cluster.scale(jobs=min(n_runs, config.jobs or n_runs))
    return Client(cluster), cluster, config.threads_per_worker or int(config.options["cores"])


@contextlib.contextmanager
def sweep_cluster(
    config: ClusterConfig, n_runs: int, jobs_dir: Path
) -> Iterator[tuple[Any, int, dict[str, str | None]]]:
    """The cluster of :func:`make_client` under :data:`QUIET_DASK`, closed on leaving (when the sweep ran to its end,
    a job queue's started jobs first end by themselves, :func:`end_jobs`; after an error or Ctrl-C its jobs are
    cancelled), and this process's environment put back as it was before the cluster started
    (:func:`caller_environ`).

    Yields:
        (client, torch threads per run, the caller's environment for :func:`run_one`).
    """
    import dask

    caller = caller_environ()
    with dask.config.set(QUIET_DASK):
        client, handle, threads = make_client(config, n_runs, jobs_dir)
        try:
            yield client, threads, caller
            if handle is not None and config.kind in JOB_STATUS_COMMANDS:
                end_jobs(client, handle, config.kind)  # after a sweep that ran to its end; else close() cancels
        finally:
            client.close()
            if handle is not None:
                handle.close()
            apply_environ(os.environ, caller)


def _job_listed(kind: str, job_id: str) -> bool:
    """Whether the batch scheduler still lists a job (pending, running or completing)."""
    try:
        out = subprocess.run(
            [*JOB_STATUS_COMMANDS[kind], job_id], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.info(f"sweep: cannot ask the scheduler about job {job_id} ({exc}); it is cancelled if still there")
        return False
    return out.returncode == 0 and job_id in out.stdout.split()


def end_jobs(client: Any, cluster: Any, kind: str, wait_s: float = JOB_END_WAIT_S) -> list[str]:
    """End a finished sweep's batch jobs the way the scheduler reads as finished: once the workers hold no result,
    retire every connected worker, which closes it and its nanny, so the job script's last command (``dask worker``)
    exits with status 0 and the job ends COMPLETED; then wait (``wait_s`` in all) until the scheduler no longer lists
    those jobs. The cluster's
    ``close()`` afterwards cancels what is left: jobs still waiting in the queue (a job that never started can only be
    cancelled) and any job that did not end in time.

    Returns:
        The ids of the started jobs that were still listed after ``wait_s`` (left to ``close()`` to cancel).
    """
    started = {str(w.get("name")) for w in client.scheduler_info()["workers"].values()}
    ids = [str(job.job_id) for name, job in cluster.workers.items() if str(name) in started and job.job_id]
    deadline = time.monotonic() + wait_s
    # A worker still holding a run's result (the client releases the sweep's futures asynchronously) cannot be
    # retired when no other worker could take that result: wait until the workers hold nothing.
    while any(client.has_what().values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if started:
        retired = client.retire_workers(close_workers=True)
        if len(retired) < len(started):
            LOG.info(f"sweep: {len(started) - len(retired)} of {len(started)} workers could not be retired")
    while ids and time.monotonic() < deadline:
        ids = [i for i in ids if _job_listed(kind, i)]
        if ids:
            time.sleep(1.0)
    if ids:
        LOG.info(
            f"sweep: job(s) {', '.join(ids)} still running {wait_s:.0f} s after their workers were retired; "
            "cancelling them"
        )
    return ids


def jobqueue_cluster(config: ClusterConfig, jobs_dir: Path | None = None) -> Any:
    """A ``dask_jobqueue`` SLURMCluster or PBSCluster from ``config.options``: one run per job.

    dask-jobqueue starts each job's worker with ``--nthreads`` equal to ``cores``, so a worker of an 8-core job would
    take eight runs at once inside one job's CPUs and memory. Here the worker is given one thread (``cores=1``: one run
    at a time), and the job still books the CPUs asked for, ``options["cores"]`` (Slurm: ``job_cpu``, i.e.
    ``#SBATCH --cpus-per-task``; PBS: ``resource_spec`` ``select=1:ncpus=...:mem=...``), which the run's torch uses
    (:func:`make_client`'s threads per run). The job's memory and walltime are the options' own.

    Args:
        config: a ``slurm`` or ``pbs`` cluster config.
        jobs_dir: where the scheduler writes each job's output and error files (``log_directory``; default: the
            scheduler's own, the directory the sweep was started from), unless the options give ``log_directory``.

    Returns:
        The cluster, not yet scaled (``cluster.job_script()`` shows the batch script it will submit).
    """
    import dask_jobqueue
    from dask.utils import parse_bytes
    from dask_jobqueue.pbs import pbs_format_bytes_ceil

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[config.kind]
    options = dict(config.options)
    cpus = int(options["cores"])
    options |= {"cores": 1, "processes": 1}
    if jobs_dir is not None:
        options.setdefault("log_directory", str(jobs_dir))
    try:
        if config.kind == "slurm":
            options.setdefault("job_cpu", cpus)
        else:
            options.setdefault(
                "resource_spec", f"select=1:ncpus={cpus}:mem={pbs_format_bytes_ceil(parse_bytes(options['memory']))}"
            )
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"cluster options {sorted(config.options)} for {config.kind}: {exc}; see dask-jobqueue's "
            f"{cls.__name__} for the keys it takes."
        ) from exc


def _progress(record: dict[str, Any], client: Any) -> str:
    statuses = [r["status"] for r in record["runs"].values()]
    running = sum(len(v) for v in client.processing().values())
    return (
        f"sweep: {statuses.count('complete')}/{len(statuses)} done, {running} running, "
        f"{statuses.count('failed')} failed"
    )


def execute(
    client: Any,
    specs: Sequence[RunSpec],
    record: dict[str, Any],
    sweep_dir: Path,
    device: str,
    threads: int,
    extra_args: Sequence[str],
    digest: str,
    caller: Mapping[str, str | None],
) -> None:
    """Run every spec on the cluster in the ``caller``'s environment (:func:`run_one`), retrying a failed run
    once; ``record`` (``sweep.json``) is updated as runs end, ``record["cluster"]["workers"]`` with the number of
    Dask workers that have run a run so far."""
    from distributed import as_completed

    def submit(spec: RunSpec) -> Any:
        return client.submit(
            run_one,
            str(spec.run_dir),
            device,
            threads,
            list(extra_args),
            caller,
            pure=False,
            key=f"medadv-run-{spec.run_dir.name}-{time.time_ns()}",
        )

    pending, workers = {}, set()
    for spec in specs:
        pending[submit(spec)] = spec
        record["runs"][spec.run_dir.name] |= {"status": "queued"}
    write_json(sweep_dir / SWEEP_FILE, record)
    queue = as_completed(list(pending))
    for future in queue:
        spec = pending.pop(future)
        entry = record["runs"][spec.run_dir.name]
        try:
            outcome = future.result()
        except Exception as exc:  # a worker lost or killed: the run is retried like a failed one
            outcome = {"rc": None, "exception": f"{type(exc).__name__}: {exc}"}
        entry["attempts"] = entry.get("attempts", 0) + 1
        entry |= {k: outcome[k] for k in ("seconds", "peak_rss_mb", "worker") if k in outcome}
        workers.update([outcome["worker"]] if "worker" in outcome else [])
        record["cluster"]["workers"] = len(workers)
        if outcome.get("rc") == 0 and run_complete(spec.run_dir):
            entry |= {"status": "complete", "digest": digest, "error": None}
            note = f"{spec.label} done in {outcome['seconds']:.0f} s"
        elif entry["attempts"] < MAX_ATTEMPTS:
            entry |= {"status": "retrying", "error": _failure_text(spec, outcome)}
            retry = submit(spec)
            pending[retry] = spec
            queue.add(retry)
            note = f"{spec.label} failed ({entry['error']}); retrying once"
        else:
            entry |= {"status": "failed", "error": _failure_text(spec, outcome)}
            note = f"{spec.label} FAILED twice ({entry['error']}); see {RunLayout(spec.run_dir).pipeline_log}"
        write_json(sweep_dir / SWEEP_FILE, record)
        LOG.info(f"{_progress(record, client)}  [{note}]")


def run_replication(sweep_dir: Path, profile_file: Path) -> int:
    """Run notebook 90 over the sweep folder (papermill, the ``medadv`` kernel) into ``<sweep>/notebooks/``.

    Returns:
        0 when it ran, 1 when it failed (its error printed).
    """
    from papermill.exceptions import PapermillExecutionError

    notebook = DEFAULT_NOTEBOOKS / REPLICATION_NOTEBOOK
    out = RunLayout(sweep_dir).notebooks / REPLICATION_NOTEBOOK
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "run_dir": str(sweep_dir),
        "profile": str(profile_file),
        "device": "cpu",
        "data_manifest": None,
        "data_root": None,
    }
    try:
        execute_notebook(notebook, out, params, ensure_kernel())
    except PapermillExecutionError as exc:
        LOG.info(f"sweep: 90_replication FAILED: {exc.ename}: {exc.evalue}; executed notebook: {out}")
        return 1
    LOG.info(f"sweep: replication table in {RunLayout(sweep_dir).table('replication_effects')}")
    return 0


def _mark_stopped(record: dict[str, Any], sweep_dir: Path) -> None:
    """Record in ``sweep.json`` that the runs not finished when the sweep was stopped (Ctrl-C) are ``stopped``: they
    resume where their notebooks stopped when the same command runs again."""
    for entry in record["runs"].values():
        if entry.get("status") in ("planned", "queued", "retrying"):
            entry["status"] = "stopped"
    record["stopped"] = datetime.now().isoformat(timespec="seconds")
    write_json(sweep_dir / SWEEP_FILE, record)


def _record(
    sweep_dir: Path, profile: str, specs: Sequence[RunSpec], grid: tuple[str, list[Any]] | None
) -> dict[str, Any]:
    record = read_json(sweep_dir / SWEEP_FILE, default={"runs": {}})
    record |= {"profile": str(profile), "grid": None if grid is None else {"key": grid[0], "values": grid[1]}}
    for spec in specs:
        entry = record["runs"].setdefault(spec.run_dir.name, {})
        entry |= {"seed": spec.seed, "setting": spec.setting, "status": entry.get("status", "planned")}
    return record


def _to_run(specs: Sequence[RunSpec], record: dict[str, Any], digest: str, forced: bool) -> list[RunSpec]:
    todo = []
    for spec in specs:
        entry = record["runs"][spec.run_dir.name]
        if not forced and run_complete(spec.run_dir) and entry.get("digest") == digest:
            entry["status"] = "complete"
            LOG.info(f"sweep: {spec.label} finished before with this code, skipped")
        else:
            entry["attempts"] = 0
            todo.append(spec)
    return todo


def run_sweep(
    profile: str,
    seeds: Sequence[int],
    sweep_dir: str | Path | None = None,
    device: str = "auto",
    grid: tuple[str, list[Any]] | None = None,
    cluster: ClusterConfig | None = None,
    extra_args: Sequence[str] = (),
    notebooks_dir: str | Path = DEFAULT_NOTEBOOKS,
    overrides: Mapping[str, Any] | None = None,
    replicate: bool = True,
) -> int:
    """Run the study for every seed (and grid value) on Dask, then notebook 90 over the sweep folder.

    Args:
        profile: a profile name or YAML file; each run gets a copy with its seed (and grid value) set.
        seeds: the seeds.
        sweep_dir: the sweep folder (default: the kit's ``results/sweep-<profile>-<time>``, as ``medadv run`` puts a
            run in the kit's ``results/``); an existing one is resumed.
        device: passed to every run.
        grid: (dotted profile key, values) or None.
        cluster: where to run (default: the profile's ``cluster:`` section, else a LocalCluster).
        extra_args: more pipeline options for every run (``--force``, ``--param``, ``--data``, ...).
        notebooks_dir: the per-run notebooks (tests pass small ones).
        overrides: nested profile overrides (the data options).
        replicate: run notebook 90 at the end.

    Returns:
        0 when every run and notebook 90 completed, 1 when any failed (each named in ``sweep.json``).
    """
    console_logger()
    base = load_profile(profile, overrides)
    if cluster is None:
        cluster = ClusterConfig.from_profile(base)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    sweep_dir = Path(sweep_dir or kit_root() / "results" / f"sweep-{base.name}-{stamp}").resolve()
    check_folder(sweep_dir, sweep=True)
    specs = plan_runs(profile, seeds, sweep_dir, grid, overrides)
    base_file = RunLayout(sweep_dir).profile
    base_file.write_text(yaml.safe_dump(base.to_dict(), sort_keys=False))
    write_config(sweep_dir, base, "cpu")
    record = _record(sweep_dir, profile, specs, grid)
    digest = sweep_digest(Path(notebooks_dir))
    todo = _to_run(specs, record, digest, forced="--force" in extra_args)
    record["started"] = datetime.now().isoformat(timespec="seconds")
    record.pop("stopped", None)
    write_json(sweep_dir / SWEEP_FILE, record)
    LOG.info(f"sweep: {len(specs)} runs of profile {base.name} in {sweep_dir}; {len(todo)} to run")
    if todo:
        args = [*extra_args, "--notebooks", str(notebooks_dir)]
        with sweep_cluster(cluster, len(todo), sweep_dir / JOBS_DIR) as (client, threads, caller):
            record["cluster"] = {
                "kind": "address" if cluster.address else cluster.kind,
                "threads_per_run": threads,
                "workers": 0,
            }
            if cluster.kind != "local" and cluster.address is None:
                record["cluster"]["jobs"] = min(len(todo), cluster.jobs or len(todo))
            try:
                execute(client, todo, record, sweep_dir, device, threads, args, digest, caller)
            except KeyboardInterrupt:
                _mark_stopped(record, sweep_dir)
                raise
    record["finished"] = datetime.now().isoformat(timespec="seconds")
    write_json(sweep_dir / SWEEP_FILE, record)
    failed = [s.run_dir.name for s in specs if record["runs"][s.run_dir.name]["status"] != "complete"]
    if failed:
        LOG.info(f"sweep: {len(failed)} run(s) failed: {', '.join(failed)}; rerun the same command to retry them")
    status = run_replication(sweep_dir, base_file) if replicate else 0
    try:
        LOG.info(f"sweep: report in {write_report(sweep_dir)}")
    except (MedadvError, OSError, ValueError) as exc:
        LOG.error(f"sweep: the report could not be written ({exc}); write it with: medadv report {sweep_dir}")
        status = 1
    return 1 if failed or status else 0


def build_parser() -> argparse.ArgumentParser:
    """The options of ``medadv sweep`` (``run_all.sh --sweep``).

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="medadv sweep",
        description=__doc__.split("\n\n")[0],
        epilog="medadv sweep 10 and medadv sweep --sweep 10 are the same (the second as "
        "medadv run --sweep 10 and ./run_all.sh --sweep 10 pass it on).",
    )
    parser.add_argument("seeds", nargs="?", metavar="N|S1,S2,...", help="seeds: 10 -> 0-9, or a list 3,7,11")
    parser.add_argument(
        "--sweep", metavar="N|S1,S2,...", help="the seeds given as an option (as medadv run passes them)"
    )
    parser.add_argument("--profile", default="default", help="smoke, default, full, workshop, or a profile YAML file")
    parser.add_argument(
        "--run-dir",
        help="the sweep folder; an existing one is resumed (default: the kit's results/sweep-<profile>-<time>)",
    )
    parser.add_argument("--device", default="auto", help="every run's device: auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="one profile key swept beside the seeds, e.g. data.lesion_contrast=0.6,0.8",
    )
    parser.add_argument("--cluster", choices=CLUSTER_KINDS, help="local (default), slurm or pbs (dask-jobqueue)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, help="local workers (default: from the cores)")
    parser.add_argument("--threads-per-worker", type=int, help="torch threads per run (default: from the cores)")
    parser.add_argument("--jobs", type=int, help="most Slurm/PBS jobs at once (default: one per run)")
    parser.add_argument(
        "--cluster-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SLURMCluster/PBSCluster option, e.g. memory=32GB (repeatable)",
    )
    parser.add_argument("--data", metavar="MANIFEST", help="a real data set's manifest YAML (data_manifests/)")
    parser.add_argument("--data-root", metavar="DIR", help="the folder that holds that data set")
    parser.add_argument("--force", action="store_true", help="rerun every run's notebooks even if finished")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="an extra notebook parameter"
    )
    add_set_option(parser, "every run's profile.yaml holds it")
    parser.add_argument("--no-replication", action="store_true", help="skip notebook 90 at the end")
    parser.add_argument("--notebooks", default=str(DEFAULT_NOTEBOOKS), help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help=argparse.SUPPRESS)  # refused in main(), with the way to do it
    return parser


def parse_cluster_options(items: Sequence[str]) -> dict[str, Any]:
    """``--cluster-option KEY=VALUE`` items as keyword arguments of ``SLURMCluster`` / ``PBSCluster``.

    A value stays the text given (``walltime=1:00:00`` is ``"1:00:00"``: read as YAML 1.1 it would be the base-60
    number 3600, and ``#SBATCH -t 3600`` is 3600 minutes to Slurm), always for :data:`TEXT_OPTIONS` (``account=0123``
    stays ``"0123"``), else except a whole number without leading zeros (``cores=8``), ``true`` / ``false``, and a
    YAML list or mapping (``job_extra_directives=["--gres=gpu:1"]``).

    Returns:
        ``{key: value}``.

    Raises:
        ConfigError: an item that is not KEY=VALUE with a non-empty value, or a list / mapping that does not parse.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = (part.strip() for part in item.partition("="))
        if not sep or not key.isidentifier() or not text:
            raise ConfigError(
                f"--cluster-option {item!r}: expected KEY=VALUE, a SLURMCluster / PBSCluster option and "
                "its value, e.g. cores=8, memory=32GB or walltime=04:00:00."
            )
        if key in TEXT_OPTIONS:
            out[key] = text
        elif text[0] in "[{":
            try:
                out[key] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(
                    f"--cluster-option {item!r}: the value is not a YAML list or mapping ({exc}); e.g. "
                    'job_extra_directives=["--gres=gpu:1"].'
                ) from exc
        elif _WHOLE_NUMBER.fullmatch(text):
            out[key] = int(text)
        else:
            out[key] = {"true": True, "false": False}.get(text.lower(), text)
    return out


def cluster_from_args(args: argparse.Namespace, section: Mapping[str, Any]) -> ClusterConfig:
    """The profile's ``cluster:`` section with the command line's cluster options applied on top.

    Returns:
        The :class:`ClusterConfig` to run on.
    """
    raw = dict(section)
    raw["options"] = dict(raw.get("options", {})) | parse_cluster_options(args.cluster_option)
    for key, value in (
        ("kind", args.cluster),
        ("address", args.scheduler),
        ("workers", args.workers),
        ("threads_per_worker", args.threads_per_worker),
        ("jobs", args.jobs),
    ):
        if value is not None:
            raw[key] = value
    return ClusterConfig.from_section(raw)


def main(argv: list[str] | None = None) -> int:
    """``medadv sweep ...`` / ``run_all.sh --sweep ...`` / ``python -m medadv.sweep ...`` (see :func:`build_parser`),
    logging to ``medadv.run``.

    Returns:
        The exit status: :func:`run_sweep`'s, or 2 for a configuration error.
    """
    console_logger()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seeds is None and args.sweep is None:
        parser.error(
            "the seeds are required: medadv sweep N (seeds 0 to N-1) or medadv sweep S1,S2,... (or --sweep N|S1,S2,...)"
        )
    if args.only is not None:
        parser.error(
            "--only is for one run: a sweep runs every notebook of every run. To rerun notebooks of one of its runs: "
            "medadv run --run-dir SWEEP/seed-NNNN --profile SWEEP/seed-NNNN/profile.yaml --only ..."
        )
    if args.seeds is not None and args.sweep is not None and args.seeds != args.sweep:
        parser.error(f"the seeds are given twice, as {args.seeds} and as --sweep {args.sweep}; give them once")
    try:
        data_manifest, data_root = resolve_data(args.data, args.data_root)
        base, overrides = resolve_profile(args.profile, args.overrides, data_manifest, data_root)
        if "seed" in overrides:
            raise ConfigError(
                f"--set seed={overrides['seed']}: a sweep sets each run's seed from its seeds argument (medadv sweep "
                f"N for seeds 0 to N-1, or medadv sweep {overrides['seed']},... for a list); drop the --set."
            )
        params = parse_params(args.param)  # path parameters made absolute: a run may start in another directory
        extra = ["--force"] if args.force else []
        for item in args.param:
            name = item.partition("=")[0]
            absolute = name in PATH_PARAMS and params[name] is not None
            extra.append(f"--param={name}={params[name]}" if absolute else f"--param={item}")
        cluster = cluster_from_args(args, base.section("cluster"))
        return run_sweep(
            args.profile,
            parse_seeds(args.seeds or args.sweep),
            args.run_dir,
            args.device,
            parse_grid(args.grid),
            cluster,
            extra,
            args.notebooks,
            overrides or None,
            replicate=not args.no_replication,
        )
    except MedadvError as exc:
        LOG.error(f"medadv sweep: error: {exc}")
        return 2
    except KeyboardInterrupt:
        LOG.error(
            "medadv sweep: stopped (Ctrl-C); the finished runs are kept and sweep.json marks the others stopped. Run "
            "the same command again to resume: each run goes on from its last finished notebook."
        )
        return 130


if __name__ == "__main__":
    exit_process(main())
