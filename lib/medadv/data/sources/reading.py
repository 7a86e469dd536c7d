"""Helpers shared by the data-set loaders: reading their tables and files with clear errors, and the final table."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from medadv.data.cohort import COHORT_COLUMNS, validate_cohort
from medadv.data.dicom import is_dicom
from medadv.data.images import dicom_frame
from medadv.data.sources.manifest import Manifest
from medadv.errors import DataError

log = logging.getLogger(__name__)


def require_file(path: Path, manifest: Manifest, what: str) -> Path:
    """``path`` if it is a file, else a :class:`DataError` that names it and the manifest's expected layout.

    Returns:
        ``path``.
    """
    if not path.is_file():
        raise DataError(
            f"{path}: {what} not found. {manifest.path} expects this layout under the data root:\n{manifest.layout}\n"
            "Check --data-root, or the file names in the manifest's options."
        )
    return path


def require_dir(path: Path, manifest: Manifest, what: str) -> Path:
    """``path`` if it is a folder, else a :class:`DataError` that names it and the manifest's expected layout.

    Returns:
        ``path``.
    """
    if not path.is_dir():
        raise DataError(
            f"{path}: {what} folder not found. {manifest.path} expects this layout under the data root:\n"
            f"{manifest.layout}\nCheck --data-root, or the folder names in the manifest's options."
        )
    return path


def normalise_column(name: str) -> str:
    """Column names compared without case, surrounding spaces, or the space / underscore difference.

    Returns:
        The normalised name.
    """
    return re.sub(r"[\s_]+", " ", str(name).strip().lower())


def read_table(path: Path, manifest: Manifest, columns: Iterable[str], what: str) -> pd.DataFrame:
    """Read a CSV of the data set as text, with column names normalised, checking that ``columns`` are present.

    Returns:
        The table, every cell a stripped string.
    """
    require_file(path, manifest, what)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {what} does not parse as CSV ({exc}); download it again.") from exc
    table.columns = [normalise_column(c) for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: {what} lacks the column(s) {missing} (it has {list(table.columns)}); is it the data set's "
            f"original file for {manifest.name}?"
        )
    return table.apply(lambda col: col.str.strip())


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with forward slashes (the cohort table's convention).

    Returns:
        The relative path, with forward slashes.
    """
    return path.relative_to(root).as_posix()


def finish_cohort(rows: list[Mapping[str, Any]], manifest: Manifest, root: Path) -> pd.DataFrame:
    """The validated cohort table of a loader's rows (modality from the manifest; split empty unless official; DICOM
    images as the manifest's ``dicom_frame`` of each file when it names one).

    Returns:
        The validated cohort table, sorted by image id.

    Raises:
        DataError: no rows (nothing found under ``root``, or every label dropped), or a table that fails validation.
    """
    if not rows:
        raise DataError(
            f"{root}: no images found for {manifest.name} (or every label was dropped by the label_map of "
            f"{manifest.path}); expected this layout under the data root:\n{manifest.layout}"
        )
    table = pd.DataFrame(rows)
    if manifest.dicom_frame is not None:
        table["path"] = [dicom_frame(p, manifest.dicom_frame) if is_dicom(root / p) else p for p in table["path"]]
    table["modality"] = manifest.modality
    if not manifest.official_split:
        table["split"] = ""
    for col in COHORT_COLUMNS:
        if col not in table.columns:
            table[col] = ""
    table = table.sort_values("image_id", kind="stable").reset_index(drop=True)
    cohort = validate_cohort(table.loc[:, list(COHORT_COLUMNS)], where=f"{manifest.name} cohort from {root}")
    log.info(
        "%s: %d images, %d positive, %d with masks",
        manifest.name,
        len(cohort),
        int(cohort["label"].sum()),
        int((cohort["mask_path"] != "").sum()),
    )
    return cohort
