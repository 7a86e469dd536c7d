"""Seconds and peak memory of each notebook of the study for one profile.

Each notebook runs in its own process (``python -m medadv.pipeline --only NN --force``) in one fresh run folder, in
order, so that its wall time and its peak resident memory (the largest of the runner and its Jupyter kernel, from
``wait4``'s resource usage) are its own. Usage::

    .venv/bin/python benchmarks/pipeline.py --profile smoke [--device cpu] [--run-dir DIR]

Prints one line per notebook and the total; the README quotes these figures for smoke and default on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medadv.pipeline import DEFAULT_NOTEBOOKS, discover_notebooks


def run_one(prefix: str, profile: str, run_dir: Path, device: str) -> tuple[float, float, int]:
    """Run one notebook in a child process; return (seconds, peak MiB, exit status)."""
    cmd = [sys.executable, "-m", "medadv.pipeline", "--profile", profile, "--run-dir", str(run_dir),
           "--only", prefix, "--device", device, "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run-dir", help="run folder (default: a temporary folder)")
    args = parser.parse_args()
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix=f"medadv-bench-{args.profile}-"))
    print(f"profile {args.profile}, device {args.device}, {os.cpu_count()} CPU cores, run folder {run_dir}")
    print(f"{'notebook':<28}{'seconds':>10}{'peak MiB':>10}")
    total = 0.0
    for nb in discover_notebooks(DEFAULT_NOTEBOOKS):
        seconds, peak, code = run_one(nb.name[:2], args.profile, run_dir, args.device)
        total += seconds
        print(f"{nb.stem:<28}{seconds:>10.1f}{peak:>10.0f}" + ("  FAILED" if code else ""), flush=True)
        if code:
            print(f"see {run_dir / 'notebooks' / nb.name}")
            return 1
    print(f"{'total':<28}{total:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
