"""The kit's bottom layer: file hashes, JSON files, the git commit and facts about the environment.

Every other module may import this one; it imports nothing of the kit but :mod:`medadv.errors` (and no third-party
package), so that the data loaders, the checkpoint format and the run folder (:mod:`medadv.report`) can all share
one definition of each helper without importing each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from medadv.errors import RunError

PACKAGES = (
    "medadv",
    "torch",
    "torchvision",
    "captum",
    "numpy",
    "pandas",
    "scipy",
    "papermill",
    "pydicom",
    "safetensors",
)

__all__ = [
    "PACKAGES",
    "first_names",
    "git_commit",
    "in_notebook_progress",
    "kit_root",
    "package_versions",
    "read_json",
    "sha256_file",
    "unwritable",
    "write_json",
]


def first_names(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``names`` for a message, and how many more there are: ``"a, b, c and 4 more"``.

    Returns:
        The text.
    """
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes.

    Returns:
        The 64-character lower-case hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file.

    Returns:
        The parsed value, or ``default`` if the file does not exist.

    Raises:
        RunError: the file is not valid JSON (naming it and what to do).
    """
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON ({exc}); delete it or rerun with --force.") from exc


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (a temporary file of this process renamed into place), sorted and indented; returns
    nothing.

    Raises:
        RunError: the file cannot be written (a read-only folder, a full disk), naming it and what to do.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise RunError(unwritable(path, exc)) from exc


def unwritable(path: Path, exc: OSError) -> str:
    """The message for a file or folder of a run that cannot be written.

    Returns:
        The message: the path, the system's reason, and what to do.
    """
    if isinstance(exc, (NotADirectoryError, FileExistsError)):  # a file where the run folder (or a part) should be
        return (
            f"{path}: cannot make the run folder ({exc.strerror or exc}): a file stands where a folder should be. "
            "Give a folder (--run-dir, or run_dir in a notebook), not a file."
        )
    return (
        f"{path}: cannot write ({exc.strerror or exc}); the run folder must be writable. Give a folder you can "
        "write to (--run-dir, or run_dir in a notebook), or fix its permissions or free disk space."
    )


def git_commit(start: Path | None = None) -> str:
    """The git commit of the kit's checkout.

    Returns:
        The commit's sha, with ``+dirty`` when the checkout has uncommitted changes; ``unknown`` outside git.
    """
    where = start or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide the study's numbers.

    Returns:
        ``python`` and each of :data:`PACKAGES` mapped to its version (``not installed`` when missing).
    """
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def kit_root() -> Path:
    """The kit's checkout, which a relative ``run_dir`` is resolved against (in JupyterLab, whose notebooks run in
    ``notebooks/``, and under papermill, which runs them in the checkout alike).

    Returns:
        The checkout this package was imported from when it has ``notebooks/`` (an editable install or
        ``PYTHONPATH=lib``); else the nearest folder at or above the current directory that has ``notebooks/``; else
        the current directory.
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "notebooks").is_dir():
        return checkout
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "notebooks").is_dir()), here)


def in_notebook_progress() -> bool:
    """Whether progress bars should show.

    Returns:
        False when papermill logs to a file (``MEDADV_NO_PROGRESS=1``) or there is no stderr, else True.
    """
    return os.environ.get("MEDADV_NO_PROGRESS", "0") != "1" and sys.stderr is not None
