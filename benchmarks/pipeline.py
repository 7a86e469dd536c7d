"""Seconds and peak memory of the study for one profile, run as a user runs it, and where inside it they go.

The whole profile runs in one process, ``python -m medadv.pipeline --profile P --run-dir R --device D --force``, the
command that ``./run_all.sh`` and ``medadv run`` execute, so the total is what a user waits for: the runner's start
and profile check, every notebook's kernel, and the report. Usage::

    .venv/bin/python benchmarks/pipeline.py --profile default [--device cpu] [--run-dir DIR] [--out DIR] [--py-spy]

Prints one line per notebook, the runner's own share and the total, then the per-stage breakdown. A notebook's
seconds are the runner's (``manifest.json``: its kernel's start to its last cell's end); its peak is the largest
resident memory of its Jupyter kernel and the kernel's children, read every 0.2 s while it runs (Linux: the
kernel's own high-water mark ``VmHWM``, so a peak is missed only in a notebook's last 0.2 s; elsewhere the largest
resident size sampled); each notebook runs in a kernel of its own, started in order, so the n-th kernel is the n-th
notebook (a kernel's forks count in its peak). The run's peak is the largest process of the whole tree, exact
(``wait4``'s resource usage). A notebook's start-up runs from papermill's start, which includes the kernel's start,
to the end of its first code cell after the parameters (the kit's imports). Every code cell's seconds as papermill
recorded them (``metadata.papermill.duration``) are written to ``OUT/cells.csv`` (default: ``RUN/benchmark``) and the
slowest printed. With ``--py-spy`` the run's process tree is sampled by py-spy (``pip install py-spy``; it reads the
kernels' Python stacks from outside, so the run is not instrumented) into ``OUT/run.speedscope.json``, one profile
per process (open it at https://www.speedscope.app or with py-spy's own viewer).

Each notebook is not run in a process of its own (``--only NN``): that pays the runner's start, its profile check
(which imports torch) and the report once per notebook, 10-13 s each on 2 cores, which no user waits for. The README
quotes these figures for the default and workshop profiles on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from medadv.pipeline import DEFAULT_NOTEBOOKS, discover_notebooks

CELL_COLUMNS = ("notebook", "cell", "seconds", "first_line")
KERNEL_MODULE = "ipykernel_launcher"  # how jupyter_client starts the kit's kernel (its spec's argv)


class KernelPeaks(threading.Thread):
    """Samples, every ``interval`` seconds until stopped, the peak resident memory of each Jupyter kernel that the
    process ``pid`` starts (the kernel and its own children together)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.runner, self.interval = psutil.Process(pid), interval
        self.halt = threading.Event()
        self.peaks: dict[tuple[int, float], float] = {}  # (pid, start time) -> MiB
        self.others: set[tuple[int, float]] = set()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                children = self.runner.children(recursive=True)
            except psutil.Error:
                return
            for proc in children:
                try:
                    key = (proc.pid, proc.create_time())
                    if key in self.others:
                        continue
                    if key not in self.peaks and not is_kernel(proc):
                        self.others.add(key)
                        continue
                    peak = max(peak_mib(p) for p in [proc, *proc.children(recursive=True)])
                except psutil.Error:
                    continue
                self.peaks[key] = max(self.peaks.get(key, 0.0), peak)

    def in_order(self) -> list[float]:
        """Returns:
        Each kernel's peak MiB, in the order the kernels started."""
        return [self.peaks[key] for key in sorted(self.peaks, key=lambda key: key[1])]


def is_kernel(proc: psutil.Process) -> bool:
    """Whether ``proc`` is a Jupyter kernel: started as ``ipykernel_launcher`` by a process that is not one (a
    kernel's own forks carry its command line; they count in its peak, not as kernels).

    Returns:
        True for a kernel.
    """
    parent = proc.parent()
    return KERNEL_MODULE in " ".join(proc.cmdline()) and (
        parent is None or KERNEL_MODULE not in " ".join(parent.cmdline())
    )


def peak_mib(proc: psutil.Process) -> float:
    """The process's peak resident memory so far where the system keeps it (Linux ``VmHWM``), else its resident size.

    Returns:
        MiB.
    """
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024.0
    except (OSError, StopIteration):
        return proc.memory_info().rss / 2**20


def run_profile(profile: str, run_dir: Path, device: str, spy: Path | None) -> tuple[float, float, int, list[float]]:
    """Run the whole profile in one child process (under ``py-spy record`` when ``spy`` names its output file).

    Returns:
        (seconds, peak MiB of the process tree's largest process, exit status, each kernel's peak MiB in order).
    """
    cmd = [
        sys.executable,
        "-m",
        "medadv.pipeline",
        "--profile",
        profile,
        "--run-dir",
        str(run_dir),
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
    sampler = KernelPeaks(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    sampler.halt.set()
    sampler.join()
    return seconds, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status), sampler.in_order()


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
    parser.add_argument("--out", help="folder for cells.csv and the py-spy profile (default: RUN/benchmark)")
    parser.add_argument("--py-spy", action="store_true", help="sample the run with py-spy (a speedscope file)")
    parser.add_argument("--top", type=int, default=15, help="how many of the slowest cells to print")
    args = parser.parse_args()
    if args.py_spy and py_spy_command() is None:
        parser.error("--py-spy: the py-spy command is not on PATH; install it with `pip install py-spy`.")
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix=f"medadv-bench-{args.profile}-"))
    out = Path(args.out) if args.out else run_dir / "benchmark"
    out.mkdir(parents=True, exist_ok=True)
    print(f"profile {args.profile}, device {args.device}, {os.cpu_count()} CPU cores, run folder {run_dir}", flush=True)
    spy = out / "run.speedscope.json" if args.py_spy else None
    total, peak, code, kernels = run_profile(args.profile, run_dir, args.device, spy)
    if code:
        print(f"the run FAILED after {total:.1f} s (exit status {code}): see {run_dir / 'pipeline.log'}")
        return 1
    notebooks = discover_notebooks(DEFAULT_NOTEBOOKS)
    if len(kernels) != len(notebooks):
        print(f"{len(kernels)} kernels seen for {len(notebooks)} notebooks: the per-notebook peaks are not shown")
        kernels = [float("nan")] * len(notebooks)
    ran = json.loads((run_dir / "manifest.json").read_text())["notebooks"]
    print(f"{'notebook':<28}{'seconds':>10}{'peak MiB':>10}{'start-up':>10}")
    cells, own = [], total
    for nb, kernel_peak in zip(notebooks, kernels, strict=True):
        seconds = float(ran[nb.stem]["seconds"])
        own -= seconds
        rows, startup = cell_seconds(run_dir / "notebooks" / nb.name)
        cells += rows
        print(f"{nb.stem:<28}{seconds:>10.1f}{kernel_peak:>10.0f}{startup:>10.1f}")
    print(f"{'runner (start, check, report)':<28}{own:>10.1f}")
    print(f"{'total':<28}{total:>10.1f}{peak:>10.0f}")
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
