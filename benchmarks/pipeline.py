"""Seconds and peak memory of each notebook of the study for one profile, and where inside each notebook they go.

Each notebook runs in its own process (``python -m medadv.pipeline --only NN --force``) in one fresh run folder, in
order, so that its wall time and its peak resident memory (the largest of the runner and its Jupyter kernel, from
``wait4``'s resource usage) are its own. Usage::

    .venv/bin/python benchmarks/pipeline.py --profile default [--device cpu] [--run-dir DIR] [--out DIR] [--py-spy]

Prints one line per notebook and the total, then the per-stage breakdown: the seconds of every code cell as papermill
recorded them in the executed notebook (``metadata.papermill.duration``), the slowest cells of the run, and each
notebook's start-up (from papermill's start, which includes the kernel's start, to the end of its first code cell
after the parameters: the kit's imports). The breakdown is written to ``OUT/cells.csv`` (default: ``RUN/benchmark``).
With ``--py-spy`` each notebook's process tree is also sampled by py-spy (``pip install py-spy``; it reads the
kernel's Python stacks from outside, so the run is not instrumented), one speedscope file per notebook in ``OUT``
(open them at https://www.speedscope.app or with ``py-spy``'s own viewer). The README quotes these figures for the
default and workshop profiles on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from medadv.pipeline import DEFAULT_NOTEBOOKS, discover_notebooks

CELL_COLUMNS = ("notebook", "cell", "seconds", "first_line")


def run_one(prefix: str, profile: str, run_dir: Path, device: str, spy: Path | None) -> tuple[float, float, int]:
    """Run one notebook in a child process (under ``py-spy record`` when ``spy`` names its output file).

    Returns:
        (seconds, peak MiB of the process tree's largest process, exit status).
    """
    cmd = [
        sys.executable,
        "-m",
        "medadv.pipeline",
        "--profile",
        profile,
        "--run-dir",
        str(run_dir),
        "--only",
        prefix,
        "--device",
        device,
        "--force",
    ]
    if spy is not None:
        cmd = [
            py_spy_command() or "py-spy",
            "record",
            "--subprocesses",
            "--idle",
            "--format",
            "speedscope",
            "--rate",
            "50",
            "--output",
            str(spy),
            "--",
            *cmd,
        ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def py_spy_command() -> str | None:
    """Where py-spy is: beside this Python (a virtual environment's ``bin``), else on PATH.

    Returns:
        The command's path, or None when py-spy is not installed.
    """
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def cell_seconds(executed: Path) -> tuple[list[dict[str, object]], float]:
    """The seconds papermill recorded for each code cell of an executed notebook.

    Returns:
        (one row per code cell: :data:`CELL_COLUMNS`, start-up seconds: papermill's start of the notebook, which
        includes the kernel's start, to the end of the first code cell after the parameters).
    """
    nb = nbformat.read(executed, as_version=4)
    rows, startup = [], float("nan")
    started = dt.datetime.fromisoformat(nb.metadata["papermill"]["start_time"])
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("papermill", {})
        if cell.cell_type != "code" or meta.get("duration") is None:
            continue
        tags = cell.metadata.get("tags", [])
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        rows.append(
            {
                "notebook": executed.stem,
                "cell": i,
                "seconds": round(float(meta["duration"]), 3),
                "first_line": first[:80],
            }
        )
        if startup != startup and not {"parameters", "injected-parameters"} & set(tags):
            startup = (dt.datetime.fromisoformat(meta["end_time"]) - started).total_seconds()
    return rows, startup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run-dir", help="run folder (default: a temporary folder)")
    parser.add_argument("--out", help="folder for cells.csv and the py-spy profiles (default: RUN/benchmark)")
    parser.add_argument("--py-spy", action="store_true", help="sample each notebook with py-spy (speedscope files)")
    parser.add_argument("--top", type=int, default=15, help="how many of the slowest cells to print")
    args = parser.parse_args()
    if args.py_spy and py_spy_command() is None:
        parser.error("--py-spy: the py-spy command is not on PATH; install it with `pip install py-spy`.")
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix=f"medadv-bench-{args.profile}-"))
    out = Path(args.out) if args.out else run_dir / "benchmark"
    out.mkdir(parents=True, exist_ok=True)
    print(f"profile {args.profile}, device {args.device}, {os.cpu_count()} CPU cores, run folder {run_dir}")
    print(f"{'notebook':<28}{'seconds':>10}{'peak MiB':>10}{'start-up':>10}")
    total, cells = 0.0, []
    for nb in discover_notebooks(DEFAULT_NOTEBOOKS):
        spy = out / f"{nb.stem}.speedscope.json" if args.py_spy else None
        seconds, peak, code = run_one(nb.name[:2], args.profile, run_dir, args.device, spy)
        total += seconds
        if code:
            print(f"{nb.stem:<28}{seconds:>10.1f}{peak:>10.0f}  FAILED: see {run_dir / 'notebooks' / nb.name}")
            return 1
        rows, startup = cell_seconds(run_dir / "notebooks" / nb.name)
        cells += rows
        print(f"{nb.stem:<28}{seconds:>10.1f}{peak:>10.0f}{startup:>10.1f}", flush=True)
    print(f"{'total':<28}{total:>10.1f}")
    with open(out / "cells.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CELL_COLUMNS)
        writer.writeheader()
        writer.writerows(cells)
    print(f"\nslowest cells (all: {out / 'cells.csv'}):")
    for row in sorted(cells, key=lambda r: -float(r["seconds"]))[: args.top]:
        print(f"{row['seconds']:>9.1f} s  {row['notebook']} cell {row['cell']}: {row['first_line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
