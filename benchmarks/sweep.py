"""Wall time of an N-seed sweep on Dask against N single runs of the same seeds, and peak memory per worker.

First each seed runs alone (``python -m medadv.pipeline`` on the seed's ``profile.yaml``, one after another, each
in a fresh folder), then the same seeds run as one sweep (``medadv.sweep``) on a LocalCluster of ``--workers``
workers (default 1, the issue's target: the sweep at most 1.05x the sum of the single runs), and notebook 90 over
them, timed apart (the single runs have no counterpart of it). Peak memory is the
largest process each run waited for (its notebook kernel, from the resource usage of waited-for children), as the
sweep records it per run in ``sweep.json``. Usage::

    .venv/bin/python benchmarks/sweep.py --profile smoke --seeds 2 [--workers 1] [--device cpu] [--out DIR]

Prints one line per single run, the sweep's total, the ratio, and per worker the peak memory; the README quotes them.
On a machine shared with other work the two halves see different loads: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from medadv.sweep import ClusterConfig, parse_seeds, plan_runs, run_replication, run_sweep


def single_run(profile_file: Path, run_dir: Path, device: str) -> tuple[float, float, int]:
    """One run of the pipeline in a child process; returns (seconds, peak MiB, exit status)."""
    cmd = [
        sys.executable,
        "-m",
        "medadv.pipeline",
        "--profile",
        str(profile_file),
        "--run-dir",
        str(run_dir),
        "--device",
        device,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seeds", default="2", help="N (seeds 0..N-1) or a list 3,7")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="medadv-sweep-bench-")).resolve()
    seeds = parse_seeds(args.seeds)
    threads = max(1, (os.cpu_count() or 1) // args.workers)

    singles = 0.0
    for spec in plan_runs(args.profile, seeds, out / "single", None):
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        seconds, peak, status = single_run(spec.run_dir / "profile.yaml", spec.run_dir, args.device)
        singles += seconds
        print(f"single run, seed {spec.seed}: {seconds:.1f} s, peak {peak:.0f} MiB, exit {status}", flush=True)

    start = time.perf_counter()
    status = run_sweep(
        args.profile,
        seeds,
        out / "sweep",
        device=args.device,
        cluster=ClusterConfig(workers=args.workers, threads_per_worker=threads),
        replicate=False,
    )
    runs = time.perf_counter() - start
    status |= run_replication(out / "sweep", out / "sweep" / "profile.yaml")
    total = time.perf_counter() - start
    record = json.loads((out / "sweep" / "sweep.json").read_text())
    peaks: dict[str, float] = defaultdict(float)
    for entry in record["runs"].values():
        peaks[entry.get("worker", "?")] = max(peaks[entry.get("worker", "?")], entry.get("peak_rss_mb", 0.0))
    print(
        f"sweep of {len(seeds)} seeds on {args.workers} worker(s) x {threads} threads: {runs:.1f} s for the runs, "
        f"{total:.1f} s with notebook 90 (exit {status})",
        flush=True,
    )
    print(
        f"sum of the single runs: {singles:.1f} s; sweep / sum = {runs / singles:.3f} for the runs, "
        f"{total / singles:.3f} with notebook 90 (target <= 1.05 on 1 worker)"
    )
    for worker, peak in sorted(peaks.items()):
        print(f"peak memory, worker {worker}: {peak:.0f} MiB (largest process of its runs)")
    print(f"runs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
