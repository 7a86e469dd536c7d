"""The run folder (DESIGN.md, "The flow of data"): open it, save figures and tables into it, register every output.

A notebook starts with ``ctx = RunContext.open(run_dir, "03_attack_evaluation", profile=profile, device=device)``
and then only writes through ``ctx``: ``ctx.save_table(df, "gan_attack_table")``, ``ctx.save_figure(fig,
"gan_triplets")``, ``ctx.update_summary({...})``, ``ctx.register(path)`` for any other file. Every output lands in
``manifest.json`` with its sha256 and the notebook that made it, which is what a resumed run compares.

Outputs are written to be byte-identical between two runs with the same seed on the CPU: tables with a fixed float
format, figures without creation dates.

A notebook's outputs and its section of ``summary.json`` belong to one run of it. Opening the context clears the
section (so a key the notebook no longer writes, such as an MRMC p-value of a panel without confidence ratings, does
not survive) and moves the outputs it registered before to ``previous`` in ``manifest.json``; registering a file
again takes it back. What is still in ``previous`` when the notebook ends was not made this time:
:func:`remove_stale_outputs` (called by the runner after each notebook) deletes those files and lists them under
``removed``, so that ``tables/`` never holds a table of an earlier configuration.

Opening the context also marks the notebook ``running`` in ``manifest.json`` and the folder incomplete; only the
runner (:mod:`medadv.pipeline`) marks a notebook ``complete``, when it has run to its end. So a notebook opened in
JupyterLab on a finished folder leaves it incomplete, and the next ``medadv run --run-dir`` reruns that notebook. A
notebook's ``profile`` parameter must name the profile the folder was made with (``config.json``), and a folder
whose ``config.json`` is gone while ``manifest.json`` records outputs is not reopened with new settings.

While ``medadv run`` writes a folder it holds ``run.lock`` (pid, host, start time; :func:`locked`): a second run, or
a notebook opened by hand, is refused with the holder named; a lock whose process has ended is taken over.

Every CSV the kit writes through :func:`write_csv` has text cells that begin with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return prefixed with ``'``, so that a spreadsheet shows them as text instead of running them as a
formula (OWASP, "CSV injection"); numeric columns are untouched. ``cohort.csv`` is the exception: its paths and ids
are read back by the kit and must stay as the data set names them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import socket
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import psutil
from IPython import get_ipython

from medadv.allocator import keep_freed_memory
from medadv.config import Profile, load_profile, pick_device, profile_from_dict, profile_name, seed_everything
from medadv.console import RUN_LOGGER
from medadv.core import git_commit, kit_root, package_versions, read_json, sha256_file, unwritable, write_json
from medadv.data.cohort import validate_cohort
from medadv.errors import RunError
from medadv.layout import CONFIG_FILE, MANIFEST_FILE, SUBFOLDERS, RunLayout
from medadv.style import mark_smoke, print_problems, table_view

_log = logging.getLogger(__name__)
#: The profile whose figures carry :func:`medadv.style.mark_smoke`'s mark.
SMOKE_PROFILE = "smoke"

FLOAT_FORMAT = "%.6g"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The lock's token, given by the runner to the kernels it starts: a notebook of that run may open the locked folder.
LOCK_TOKEN_ENV = "MEDADV_RUN_LOCK"
DAMAGED_SUFFIX = ".damaged"
INTENDED_USE = (
    "Research and teaching only: not for clinical use. The kit's models, attacks, statistics and reader studies are "
    "for studying the safety of medical-imaging AI; none of its outputs may inform the care of a patient."
)


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells starting like a spreadsheet formula (:data:`FORMULA_STARTS`) get a
    leading ``'``; numbers, and text that cannot start a formula, are unchanged.

    Returns:
        A new table; ``table`` itself is left unchanged.
    """
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in out[column]]
    return out


def write_csv(table: pd.DataFrame, path: str | Path, index: bool = False) -> Path:
    """Write ``table`` as CSV the kit's one way: formulas neutralised, fixed float format, ``\n`` line ends.

    Returns:
        The path written.
    """
    neutralise_formulas(table).to_csv(path, index=index, float_format=FLOAT_FORMAT, lineterminator="\n")
    return Path(path)


def remove_stale_outputs(run_dir: str | Path, notebook: str) -> list[str]:
    """Delete the files that ``notebook`` registered in an earlier run and did not register in its last one.

    Returns:
        Their paths relative to the run folder (also listed under ``removed`` in ``manifest.json``).
    """
    run_dir = Path(run_dir)
    path = RunLayout(run_dir).manifest
    manifest = read_manifest(run_dir)
    stale = sorted(manifest.get("previous", {}).pop(notebook, {}))
    for rel in stale:
        if rel not in manifest.get("outputs", {}):
            (run_dir / rel).unlink(missing_ok=True)
    if stale:
        manifest.setdefault("removed", {})[notebook] = stale
    else:
        manifest.get("removed", {}).pop(notebook, None)
    write_json(path, manifest)
    return stale


def now() -> str:
    """The time, for the run folder's records.

    Returns:
        UTC in ISO 8601 to the second.
    """
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run folder's ``manifest.json`` (an empty one when there is none).

    Returns:
        The manifest, with ``outputs``, ``notebooks`` and ``complete`` present.

    Raises:
        RunError: the file does not parse (a truncated write, an edit): the error says how to rerun every notebook.
    """
    try:
        manifest = read_json(RunLayout(run_dir).manifest, default={})
    except RunError:
        manifest = None
    if not isinstance(manifest, dict):
        raise RunError(damaged_message(run_dir, [MANIFEST_FILE]))
    for key, empty in (("outputs", {}), ("notebooks", {}), ("complete", False)):
        manifest.setdefault(key, empty)
    return manifest


def broken_outputs(run_dir: Path, manifest: dict[str, Any], name: str | None = None) -> list[str]:
    """The registered outputs (of notebook ``name``, or of every notebook) that are missing or whose bytes no longer
    match their recorded sha256, relative to the run folder.

    Returns:
        The paths relative to the run folder, sorted.
    """
    return sorted(
        rel
        for rel, meta in manifest.get("outputs", {}).items()
        if (name is None or meta.get("notebook") == name)
        and (not (run_dir / rel).is_file() or sha256_file(run_dir / rel) != meta["sha256"])
    )


def damaged_records(run_dir: Path) -> list[str]:
    """The run folder's records (``config.json``, ``manifest.json``) that exist but do not parse as a JSON object.

    Returns:
        Their file names.
    """
    out = []
    for name in (CONFIG_FILE, MANIFEST_FILE):
        try:
            ok = isinstance(read_json(run_dir / name, default={}), dict)
        except RunError:
            ok = False
        if not ok:
            out.append(name)
    return out


def damaged_message(run_dir: Path, names: Sequence[str]) -> str:
    """What to say about damaged records (a truncated ``manifest.json``): the way out that works.

    Returns:
        The message.
    """
    return (
        f"{', '.join(str(run_dir / n) for n in names)}: damaged (not valid JSON); these files record the run's "
        "settings and every output with the notebook that made it, so the folder cannot be resumed. Rerun every "
        f"notebook with: medadv run --run-dir {run_dir} --force (the damaged files are kept as "
        f"<name>{DAMAGED_SUFFIX}), or give a new --run-dir."
    )


def set_aside_damaged(run_dir: Path) -> list[str]:
    """Rename the damaged records (:func:`damaged_records`) to ``<name>.damaged``, so a forced run starts them afresh.

    Returns:
        The names set aside.
    """
    names = damaged_records(run_dir)
    for name in names:
        os.replace(run_dir / name, run_dir / f"{name}{DAMAGED_SUFFIX}")
    return names


def record_settings(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Record in ``manifest.json`` the settings the outputs are made with (``config.json``'s profile and device), so
    that a run folder whose ``config.json`` was deleted still knows them."""
    manifest = read_manifest(run_dir)
    manifest["settings"] = {"profile": config["profile"], "device": config["device"]}
    write_json(RunLayout(run_dir).manifest, manifest)


def make_run_folders(run_dir: Path) -> None:
    """Create the run folder and its sub-folders.

    Raises:
        RunError: a folder cannot be made (read-only, a file in the way), naming it and what to do.
    """
    for sub in SUBFOLDERS:
        try:
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(unwritable(run_dir / sub, exc)) from exc


# ---- the lock -----------------------------------------------------------------------------------------------------
def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds the run folder's lock (``run.lock``: pid, host, process start time, since when, token).

    Returns:
        The lock's record; None when the folder is not locked or its holder has ended (a stale lock).
    """
    try:
        holder = json.loads((RunLayout(run_dir).lock).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "host": "?", "since": "?", "token": None}  # being written, or damaged: held
    if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid"), holder.get("created")):
        return None
    return holder


def _alive(pid: Any, created: Any) -> bool:
    """Whether process ``pid`` of this host runs and is the one that started at ``created`` (not a reused pid)."""
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(created)) < 1.0
    except (psutil.NoSuchProcess, TypeError, ValueError):
        return False
    except psutil.AccessDenied:
        return True


def locked_message(run_dir: Path, holder: Mapping[str, Any]) -> str:
    """What to say when another run holds the folder.

    Returns:
        The message: who holds it since when, and the two ways out.
    """
    return (
        f"{run_dir} is being written by another run (pid {holder.get('pid')} on host {holder.get('host')}, since "
        f"{holder.get('since')}); two runs in one folder would mix their outputs. Wait for it to finish, or use "
        f"another run folder. If no run is going on there, delete {RunLayout(run_dir).lock}."
    )


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock while a run writes it (the runner, :mod:`medadv.pipeline`): ``run.lock`` records the
    pid, host and start time; a lock whose process has ended on this host is stale and taken over (logged). The
    lock's token goes to the environment (:data:`LOCK_TOKEN_ENV`) so that the run's own kernels may open the folder.

    Yields:
        Nothing; the lock is held until the block ends (and released also on an error).

    Raises:
        RunError: another live run holds the lock, or the folder cannot be written.
    """
    token = uuid.uuid4().hex
    path = RunLayout(run_dir).lock
    me = psutil.Process()
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": me.create_time(),
        "since": now(),
        "token": token,
    }
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _take(path, record)
    except OSError as exc:
        raise RunError(unwritable(run_dir, exc)) from exc
    os.environ[LOCK_TOKEN_ENV] = token
    try:
        yield
    finally:
        os.environ.pop(LOCK_TOKEN_ENV, None)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("token") == token:
                path.unlink()


def _create(path: Path, tmp: Path) -> None:
    """Create ``path`` with ``tmp``'s content in one step: a hard link, or (where the file system has none) an
    exclusive create; :class:`FileExistsError` when ``path`` exists."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(tmp.read_text())


def _take(path: Path, record: Mapping[str, Any]) -> None:
    """Create the lock file with ``record`` (:func:`_create`), taking over a stale one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    try:
        for attempt in (0, 1):
            try:
                _create(path, tmp)
                return
            except FileExistsError:
                holder = lock_holder(path.parent)
                if holder is not None or attempt:
                    raise RunError(locked_message(path.parent, holder or {})) from None
                old = json.loads(path.read_text())
                logging.getLogger(RUN_LOGGER).info(
                    f"medadv: {path.parent}: took over the stale lock of pid "
                    f"{old.get('pid')} (it no longer runs on {old.get('host')})"
                )
                path.unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)


def check_unlocked(run_dir: Path) -> None:
    """Refuse to open a run folder that another run holds (a notebook opened by hand while ``medadv run`` writes it);
    the runner's own kernels carry its token and pass.

    Raises:
        RunError: naming the holder and the ways out.
    """
    holder = other_writer(run_dir)
    if holder is not None:
        raise RunError(locked_message(run_dir, holder))


def other_writer(run_dir: Path) -> dict[str, Any] | None:
    """The lock record of a run writing ``run_dir`` other than the caller's own (the runner writes its report, and its
    kernels their notebooks, under their own lock's token).

    Returns:
        The holder's ``run.lock`` record (pid, host, since), or None.
    """
    holder = lock_holder(run_dir)
    return holder if holder is not None and holder.get("token") != os.environ.get(LOCK_TOKEN_ENV) else None


def resolve_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as an absolute path, a relative one taken from :func:`kit_root`.

    Returns:
        The absolute path of the run folder.
    """
    path = Path(run_dir).expanduser()
    return path if path.is_absolute() else (kit_root() / path).resolve()


def draw_inline() -> None:
    """In an IPython kernel whose matplotlib backend is the inline one (the runner sets it through ``MPLBACKEND``),
    switch inline drawing on as ``%matplotlib inline`` does. Set by the environment alone, the backend leaves
    matplotlib non-interactive, and only the first figure of a notebook reaches its outputs. Any other backend (a
    user's ``%matplotlib widget``, a plain Python) is left alone."""
    shell = get_ipython()
    if shell is not None and "inline" in matplotlib.get_backend():
        shell.run_line_magic("matplotlib", "inline")


def _table_html(table: pd.DataFrame) -> str:
    rows = pd.get_option("display.max_rows") or len(table)
    note = f"<p>first {rows} of {len(table)} rows</p>" if len(table) > rows else ""
    return table_view(table.head(rows)).to_html() + note


def show_tables_as_read() -> None:
    """In an IPython kernel, show every DataFrame a cell returns or displays through :func:`medadv.style.table_view`:
    each number with the digits that carry meaning (not the six of the CSV files), a default 0, 1, 2, ... index hidden,
    at most ``display.max_rows`` rows. The files the notebook writes keep their full precision."""
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, _table_html)


def log_to_run(run_dir: Path, notebook: str, console_level: int = logging.WARNING) -> Path:
    """Send the kit's log records to ``<run_dir>/logs/<notebook>.log`` (INFO and above) and to the notebook's own
    output (``console_level`` and above: warnings and errors), replacing the handlers of an earlier call.

    Returns:
        The log file's path.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "medadv", False)]:
        root.removeHandler(handler)
        handler.close()
    path = RunLayout(run_dir).log(notebook)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
    except OSError as exc:
        raise RunError(unwritable(path, exc)) from exc
    to_file.setLevel(logging.INFO)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setLevel(console_level)
    to_console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for handler in (to_file, to_console):
        handler.medadv = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    return path


def write_config(run_dir: Path, profile: Profile, device: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Write ``config.json``: the resolved profile, seed, device, package versions, git commit, the ``--set``
    overrides already applied to the profile, and the kit's intended use.

    Returns:
        The configuration as written to ``config.json``.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(unwritable(run_dir, exc)) from exc
    resolved = str(pick_device(device))
    config = {
        "profile": profile.to_dict(),
        "seed": profile.seed,
        "device": resolved,
        "device_requested": device,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": f"{platform.system()} {platform.machine()}",
        "overrides": list(overrides),
        "intended_use": INTENDED_USE,
    }
    write_json(RunLayout(run_dir).config, config)
    return config


def _places(path: str | Path) -> set[Path]:
    """Where a path given to a notebook may point: from the kernel's folder, or from the kit's checkout (as run_dir)."""
    return {Path(path).expanduser().resolve(), resolve_run_dir(path)}


def _check_data_params(run_dir: Path, config: dict[str, Any], data: dict[str, str | None]) -> None:
    """Refuse a notebook's ``data_manifest`` / ``data_root`` that differs from the data set its folder was made with
    (the parameters would be ignored, and a notebook pointed at a real data set would show the phantom's numbers)."""
    recorded = config.get("profile", {}).get("data", {})
    for key, given in data.items():
        was = recorded.get(key)
        if given is None or (was and _places(given) & _places(was)):
            continue
        made_with = f"data set {recorded.get('manifest')} in {recorded.get('root')}" if was else "the phantom cohort"
        raise RunError(
            f"{run_dir} was made with {made_with} (its config.json), but this notebook's data_{key} parameter is "
            f"{given!r}; a notebook runs with its folder's data, so the parameter would be ignored. Set data_{key} = "
            f"{was!r} (or None) in the parameters cell to continue this run, or set run_dir to a new folder for that "
            "data set."
        )


def _recorded_config(run_dir: Path, profile: str, data: dict[str, str | None] | None = None) -> dict[str, Any] | None:
    """The folder's ``config.json``, checked against the notebook's ``profile`` parameter and its data parameters
    (``data``: ``{"manifest": ..., "root": ...}``); None for a new folder.

    Returns:
        The recorded configuration, or None when the folder records nothing yet.

    Raises:
        RunError: damaged records, a missing ``config.json`` beside recorded outputs, another profile or data set.
    """
    damaged = damaged_records(run_dir)
    if damaged:
        raise RunError(damaged_message(run_dir, damaged))
    config = read_json(RunLayout(run_dir).config)
    manifest = read_manifest(run_dir)
    if config is None:
        makers = sorted({v.get("notebook", "?") for v in manifest["outputs"].values()})
        if makers or manifest.get("settings"):
            raise RunError(
                f"{RunLayout(run_dir).config} is missing, but {MANIFEST_FILE} records outputs of {makers}; "
                "opening the folder would write new settings beside outputs made with other ones. Restore "
                f"config.json, open another run folder, or rerun every notebook with: medadv run --run-dir "
                f"{run_dir} --force"
            )
        return None
    recorded, asked = config.get("profile", {}).get("name"), profile_name(profile)
    if recorded != asked:
        raise RunError(
            f"{run_dir} was made with profile {recorded!r} (its config.json), but this notebook's profile "
            f"parameter is {asked!r}; a notebook runs with its folder's settings, so the parameter would be "
            f"ignored. Set profile = {recorded!r} in the parameters cell to continue this run, or set run_dir "
            f"to a new folder to run profile {asked!r}."
        )
    _check_data_params(run_dir, config, data or {})
    return config


@dataclass
class RunContext:
    """A run folder opened by one notebook."""

    run_dir: Path
    notebook: str
    profile: Profile
    device: "torch.device"  # noqa: F821
    config: dict[str, Any]
    #: the validated cohort table and the state of ``cohort.csv`` it was read from (:meth:`cohort`)
    _cohort: tuple[str, pd.DataFrame] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        run_dir: str | Path,
        notebook: str,
        profile: str = "smoke",
        device: str = "auto",
        data_manifest: str | None = None,
        data_root: str | None = None,
    ) -> "RunContext":
        """Open (or, interactively, create) a run folder for ``notebook`` and seed everything with the profile's seed.

        When the folder has no ``config.json`` yet (a notebook opened by hand), one is written from ``profile``,
        ``device`` and the data options; otherwise the recorded configuration is used, so that every notebook of a
        run sees the same profile, and a ``profile`` that names another profile is refused (as the runner refuses
        it). A relative ``run_dir`` is taken from the kit's checkout (:func:`resolve_run_dir`). The kit's log goes to
        ``logs/<notebook>.log`` (INFO), warnings also to the notebook (:func:`log_to_run`); the notebook shows its
        tables with the digits that carry meaning (:func:`show_tables_as_read`). The kernel's allocator keeps the
        memory it frees (:func:`medadv.allocator.keep_freed_memory`: faster steps, the same numbers).

        Opening marks the notebook ``running`` in ``manifest.json`` and the folder incomplete: only the runner marks
        a notebook ``complete``, once it has run to its end, so a notebook run by hand (in part or whole) is rerun by
        the next ``medadv run --run-dir`` on the folder.

        Returns:
            The run context, its ``summary.json`` section for ``notebook`` started empty.

        Raises:
            RunError: another run holds the folder's lock; the folder cannot be written; its records are damaged;
                its ``config.json`` is missing while ``manifest.json`` records outputs; ``profile``, or a data
                parameter that is given, differs from the folder's.
        """
        run_dir = resolve_run_dir(run_dir)
        check_unlocked(run_dir)
        make_run_folders(run_dir)
        log_to_run(run_dir, notebook)
        draw_inline()
        show_tables_as_read()
        config = _recorded_config(run_dir, profile, {"manifest": data_manifest, "root": data_root})
        if config is None:
            overrides = {"data": {"manifest": data_manifest, "root": data_root}} if data_manifest else None
            config = write_config(run_dir, load_profile(profile, overrides), device)
            record_settings(run_dir, config)
        prof = profile_from_dict(config["profile"])
        dev = pick_device(config.get("device_requested", "auto") if device == "auto" else device)
        ctx = cls(run_dir=run_dir, notebook=notebook, profile=prof, device=dev, config=config)
        seed_everything(prof.seed)
        keep_freed_memory()
        ctx._start()
        return ctx

    # ---- folders -------------------------------------------------------------------------------------------------
    @property
    def layout(self) -> RunLayout:
        """Every path of this run folder (:class:`medadv.layout.RunLayout`)."""
        return RunLayout(self.run_dir)

    @property
    def image_root(self) -> Path:
        """Root that the cohort's ``path`` and ``mask_path`` are relative to."""
        root = self.profile.data.root
        return Path(root) if root else self.run_dir

    # ---- manifest ------------------------------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return read_manifest(self.run_dir)

    def _start(self) -> None:
        """Mark this notebook ``running`` and the folder incomplete, move its earlier outputs to ``previous`` (a
        rerun registers them afresh) and clear its section of ``summary.json`` (see the module docstring)."""
        manifest = self._manifest()
        mine = {k: v for k, v in manifest["outputs"].items() if v.get("notebook") == self.notebook}
        manifest["outputs"] = {k: v for k, v in manifest["outputs"].items() if k not in mine}
        previous = manifest.setdefault("previous", {})
        previous[self.notebook] = {**previous.get(self.notebook, {}), **mine}
        entry = manifest["notebooks"].get(self.notebook, {})
        runner = bool(os.environ.get(LOCK_TOKEN_ENV))  # the runner's kernels carry its lock's token
        kept = (
            {k: entry[k] for k in ("key", "started") if k in entry}
            if runner and entry.get("status") == "running"
            else {}
        )
        manifest["notebooks"][self.notebook] = {
            **kept,
            "status": "running",
            "opened": now(),
            "opened_by": "runner" if runner else "hand",
        }
        manifest["complete"] = False
        write_json(self.layout.manifest, manifest)
        summary = read_json(self.layout.summary, default={})
        if self.notebook in summary:
            summary.pop(self.notebook)
            write_json(self.layout.summary, summary)

    def recorded_sha256(self, path: str | Path) -> str | None:
        """The sha256 this notebook registered for ``path`` (in this run or, not yet registered again, the last).

        Returns:
            The hex digest, or None when the run folder has no record of the file from this notebook.
        """
        try:
            rel = Path(path).resolve().relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:  # not in this run folder
            return None
        manifest = self._manifest()
        entry = manifest["outputs"].get(rel) or manifest.get("previous", {}).get(self.notebook, {}).get(rel)
        return entry["sha256"] if entry and entry.get("notebook", self.notebook) == self.notebook else None

    def register(self, path: str | Path) -> Path:
        """Record an output file in ``manifest.json`` with its sha256 and this notebook's name.

        Returns:
            ``path`` itself, so that a call can wrap the writing of a file.
        """
        path = Path(path)
        self.register_many([path])
        return path

    def register_many(self, paths: list[Path]) -> None:
        """Register many files with one manifest write (adversarial image sets, reader packages).

        A file that another notebook registered is refused: each output has one maker, which is what lets a resumed
        run tell which notebook's inputs changed.
        """
        manifest = self._manifest()
        root = self.run_dir.resolve()
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise RunError(f"cannot register {path}: no such file.")
            rel = path.resolve().relative_to(root).as_posix()
            owner = manifest["outputs"].get(rel, {}).get("notebook", self.notebook)
            if owner != self.notebook:
                raise RunError(
                    f"{rel} is an output of notebook {owner}; notebook {self.notebook} cannot register it too."
                )
            manifest["outputs"][rel] = {
                "sha256": sha256_file(path),
                "notebook": self.notebook,
                "bytes": path.stat().st_size,
            }
            manifest.get("previous", {}).get(self.notebook, {}).pop(rel, None)
        write_json(self.layout.manifest, manifest)

    # ---- outputs -------------------------------------------------------------------------------------------------
    def save_table(self, table: pd.DataFrame, name: str, index: bool = False) -> Path:
        """Write ``tables/<name>.csv`` (:func:`write_csv`: formulas neutralised, fixed float format) and register it.

        Returns:
            The path of the CSV written.
        """
        return self.register(write_csv(table, self.layout.table(name), index=index))

    def read_table(self, name: str, made_by: str | None = None) -> pd.DataFrame:
        """Read ``tables/<name>.csv`` written by an earlier notebook; a clear error names that notebook if missing.

        Returns:
            The table, empty cells read as NaN.
        """
        path = self.layout.table(name)
        if not path.is_file():
            who = f" (made by notebook {made_by})" if made_by else ""
            raise RunError(f"{path} is missing{who}; run that notebook for this run folder first.")
        return pd.read_csv(path, keep_default_na=False, na_values=[""])

    def save_figure(self, fig: "matplotlib.figure.Figure", name: str, dpi: int = 300) -> Path:  # noqa: F821
        """Write ``figures/<name>.png`` (300 dpi, print resolution) and ``.pdf`` without timestamps, register both, and
        return the png's path. A smoke run's figure is first marked as one (:func:`medadv.style.mark_smoke`), in the
        notebook too.

        The figure is first checked with :func:`medadv.style.print_problems` (printed size, text of at least 7 pt,
        nothing drawn outside it); each problem found is logged as a warning naming the figure, and the figure is
        still written. A layout problem (a long model name from a user's profile pushing a legend out of the column)
        must not cost a run the results computed before it; the tests hold every figure the notebooks save to none.

        Returns:
            The path of the PNG (the PDF lies beside it).
        """
        if self.profile.name == SMOKE_PROFILE:
            mark_smoke(fig)
        for problem in print_problems(fig):
            _log.warning(
                "figure %r does not print at its size: %s; make it with medadv.style.paper_figure (see medadv.style)",
                name,
                problem,
            )
        png = self.layout.figure(name)
        pdf = self.layout.figure(name, ".pdf")
        fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(
            pdf,
            bbox_inches="tight",
            metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
        )
        self.register(pdf)
        return self.register(png)

    def require(self, path: Path, made_by: str) -> Path:
        """An input file or folder of this run folder (a path of :attr:`layout`) that an earlier notebook wrote; a
        clear :class:`RunError` if it is not there.

        Returns:
            ``path`` itself.
        """
        if not path.exists():
            raise RunError(
                f"{path} is missing; it is made by notebook {made_by}: run that notebook for this run folder first."
            )
        return path

    def cohort(self) -> pd.DataFrame:
        """The cohort table written by notebook 00, read and validated once per notebook: a later call returns a copy
        of the same table while ``cohort.csv`` holds the same bytes (its sha256), and reads and validates it afresh once
        notebook 00 has rewritten it (a notebook open in JupyterLab while notebook 00 reruns).

        Returns:
            The validated cohort table (:func:`medadv.data.cohort.validate_cohort`).
        """
        path = self.require(self.layout.cohort, "00_data_prep")
        key = sha256_file(path)
        if self._cohort is None or self._cohort[0] != key:
            table = validate_cohort(
                pd.read_csv(path, dtype={"image_id": str, "patient_id": str}, keep_default_na=False),
                str(path),
                require_split=True,
            )
            self._cohort = (key, table)
        return self._cohort[1].copy()

    def update_summary(self, values: Mapping[str, Any]) -> None:
        """Merge headline numbers into ``summary.json`` under this notebook's name (a section that
        :meth:`open` started empty for this run)."""
        path = self.layout.summary
        summary = read_json(path, default={})
        plain = _finite_or_null(json.loads(json.dumps(dict(values), default=_json_default)))
        summary.setdefault(self.notebook, {}).update(plain)
        write_json(path, summary)


def _finite_or_null(value: Any) -> Any:
    """NaN and infinities become ``null``: summary.json stays strict JSON that every reader parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
