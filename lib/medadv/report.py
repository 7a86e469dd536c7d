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

Every CSV the kit writes through :func:`write_csv` has text cells that begin with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return prefixed with ``'``, so that a spreadsheet shows them as text instead of running them as a
formula (OWASP, "CSV injection"); numeric columns are untouched. ``cohort.csv`` is the exception: its paths and ids
are read back by the kit and must stay as the data set names them.
"""
from __future__ import annotations

import json
import logging
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from IPython import get_ipython

from medadv.config import Profile, load_profile, pick_device, profile_from_dict, seed_everything
from medadv.core import git_commit, kit_root, package_versions, read_json, sha256_file, write_json
from medadv.data.cohort import validate_cohort
from medadv.errors import RunError
from medadv.style import print_problems

_log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
COHORT_FILE = "cohort.csv"
FLOAT_FORMAT = "%.6g"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LOG_DIR = "logs"
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
    path = run_dir / MANIFEST_FILE
    manifest = read_json(path, default={})
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
    path = run_dir / LOG_DIR / f"{notebook}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
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
    run_dir.mkdir(parents=True, exist_ok=True)
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
    write_json(run_dir / CONFIG_FILE, config)
    return config


@dataclass
class RunContext:
    """A run folder opened by one notebook."""

    run_dir: Path
    notebook: str
    profile: Profile
    device: "torch.device"  # noqa: F821
    config: dict[str, Any]

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
        run sees the same profile. A relative ``run_dir`` is taken from the kit's checkout (:func:`resolve_run_dir`).
        The kit's log goes to ``logs/<notebook>.log`` (INFO), warnings also to the notebook (:func:`log_to_run`).

        Returns:
            The run context, its ``summary.json`` section for ``notebook`` started empty.
        """
        run_dir = resolve_run_dir(run_dir)
        for sub in ("figures", "tables", "checkpoints", "notebooks", "data"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        log_to_run(run_dir, notebook)
        draw_inline()
        config = read_json(run_dir / CONFIG_FILE)
        if config is None:
            overrides = {"data": {"manifest": data_manifest, "root": data_root}} if data_manifest else None
            config = write_config(run_dir, load_profile(profile, overrides), device)
        prof = profile_from_dict(config["profile"])
        dev = pick_device(config.get("device_requested", "auto") if device == "auto" else device)
        ctx = cls(run_dir=run_dir, notebook=notebook, profile=prof, device=dev, config=config)
        seed_everything(prof.seed)
        ctx._forget_outputs()
        return ctx

    # ---- folders -------------------------------------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.run_dir / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.run_dir / "tables"

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def data_dir(self) -> Path:
        """Files a notebook makes for later notebooks (phantom images, adversarial images, reader packages)."""
        return self.run_dir / "data"

    @property
    def image_root(self) -> Path:
        """Root that the cohort's ``path`` and ``mask_path`` are relative to."""
        root = self.profile.data.root
        return Path(root) if root else self.run_dir

    # ---- manifest ------------------------------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return read_json(self.run_dir / MANIFEST_FILE, default={"outputs": {}, "notebooks": {}, "complete": False})

    def _forget_outputs(self) -> None:
        """Move this notebook's earlier outputs to ``previous`` (a rerun registers them afresh) and clear its section
        of ``summary.json`` (see the module docstring)."""
        manifest = self._manifest()
        mine = {k: v for k, v in manifest["outputs"].items() if v.get("notebook") == self.notebook}
        manifest["outputs"] = {k: v for k, v in manifest["outputs"].items() if k not in mine}
        previous = manifest.setdefault("previous", {})
        previous[self.notebook] = {**previous.get(self.notebook, {}), **mine}
        write_json(self.run_dir / MANIFEST_FILE, manifest)
        summary = read_json(self.run_dir / SUMMARY_FILE, default={})
        if self.notebook in summary:
            summary.pop(self.notebook)
            write_json(self.run_dir / SUMMARY_FILE, summary)

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
                raise RunError(f"{rel} is an output of notebook {owner}; notebook {self.notebook} cannot register it too.")
            manifest["outputs"][rel] = {"sha256": sha256_file(path), "notebook": self.notebook, "bytes": path.stat().st_size}
            manifest.get("previous", {}).get(self.notebook, {}).pop(rel, None)
        write_json(self.run_dir / MANIFEST_FILE, manifest)

    # ---- outputs -------------------------------------------------------------------------------------------------
    def save_table(self, table: pd.DataFrame, name: str, index: bool = False) -> Path:
        """Write ``tables/<name>.csv`` (:func:`write_csv`: formulas neutralised, fixed float format) and register it.

        Returns:
            The path of the CSV written.
        """
        return self.register(write_csv(table, self.tables_dir / f"{name}.csv", index=index))

    def read_table(self, name: str, made_by: str | None = None) -> pd.DataFrame:
        """Read ``tables/<name>.csv`` written by an earlier notebook; a clear error names that notebook if missing.

        Returns:
            The table, empty cells read as NaN.
        """
        path = self.tables_dir / f"{name}.csv"
        if not path.is_file():
            who = f" (made by notebook {made_by})" if made_by else ""
            raise RunError(f"{path} is missing{who}; run that notebook for this run folder first.")
        return pd.read_csv(path, keep_default_na=False, na_values=[""])

    def save_figure(self, fig: "matplotlib.figure.Figure", name: str, dpi: int = 120) -> Path:  # noqa: F821
        """Write ``figures/<name>.png`` and ``.pdf`` without timestamps, register both, and return the png's path.

        The figure is first checked with :func:`medadv.style.print_problems` (printed size, text of at least 7 pt,
        nothing drawn outside it); each problem found is logged as a warning naming the figure, and the figure is
        still written. A layout problem (a long model name from a user's profile pushing a legend out of the column)
        must not cost a run the results computed before it; the tests hold every figure the notebooks save to none.

        Returns:
            The path of the PNG (the PDF lies beside it).
        """
        for problem in print_problems(fig):
            _log.warning("figure %r does not print at its size: %s; make it with medadv.style.paper_figure "
                         "(see medadv.style)", name, problem)
        png = self.figures_dir / f"{name}.png"
        pdf = self.figures_dir / f"{name}.pdf"
        fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
        self.register(pdf)
        return self.register(png)

    def require(self, relative: str, made_by: str) -> Path:
        """Path of an input file that an earlier notebook wrote; a clear :class:`RunError` if it is not there.

        Returns:
            The absolute path of the file.
        """
        path = self.run_dir / relative
        if not path.exists():
            raise RunError(f"{path} is missing; it is made by notebook {made_by}: run that notebook for this run folder first.")
        return path

    def cohort(self) -> pd.DataFrame:
        """The cohort table written by notebook 00.

        Returns:
            The validated cohort table (:func:`medadv.data.cohort.validate_cohort`).
        """
        path = self.require(COHORT_FILE, "00_data_prep")
        return validate_cohort(pd.read_csv(path, dtype={"image_id": str, "patient_id": str}, keep_default_na=False), str(path), require_split=True)

    def update_summary(self, values: Mapping[str, Any]) -> None:
        """Merge headline numbers into ``summary.json`` under this notebook's name (a section that
        :meth:`open` started empty for this run)."""
        path = self.run_dir / SUMMARY_FILE
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
