"""Notebook 00's work: build the cohort of a run (phantom or real data), split it, check it, and summarise it.

``build_cohort`` is the one call that turns a profile into the split, validated cohort table that every later
notebook reads from ``cohort.csv``. The phantom is rendered into the run folder's ``data/phantom``
(``RunLayout.phantom``) with paths relative to the run folder (the run's image root); a real data set is read through
:func:`medadv.data.load_cohort` with paths relative to its data root.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

import medadv.data
from medadv.config import DataConfig
from medadv.data.cohort import SPLITS, validate_cohort
from medadv.data.phantom import generate_cohort
from medadv.data.splits import assign_splits, check_leakage, patient_labels
from medadv.layout import RunLayout

log = logging.getLogger(__name__)


def build_cohort(data: DataConfig, seed: int, layout: RunLayout) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The run's cohort table from the profile's ``data`` section: the phantom (``data.manifest`` is None) or a real
    data set, with patient-level splits (``data.split``, seeded by ``seed``, the profile's; an official split is
    kept), checked for patient leakage and validated: each check once (the loader's table is validated before the
    split, which fills only the ``split`` column and refuses a partial one; the leakage check runs on the split
    table).

    Returns:
        (the validated cohort table with its splits, the leakage check's patient and image counts per split:
        :func:`medadv.data.splits.check_leakage`).

    Raises:
        DataError: from the loader, the splits or the leakage check (see :mod:`medadv.data.splits`).
    """
    if data.manifest is None:
        cohort = generate_cohort(data, seed, layout.phantom, relative_to=layout.root)
        where = f"phantom cohort in {layout.phantom}"
    else:
        cohort = medadv.data.load_cohort(data.manifest, data.root)
        where = f"cohort of manifest {data.manifest}"
    cohort = assign_splits(validate_cohort(cohort, where), data.split, seed=seed)
    counts = check_leakage(cohort)
    log.info(
        "%s: %d images of %d patients; patients per split %s",
        where,
        len(cohort),
        cohort["patient_id"].nunique(),
        {name: c["patients"] for name, c in counts.items()},
    )
    return cohort, counts


def cohort_summary(cohort: pd.DataFrame) -> pd.DataFrame:
    """Counts of images and patients per split x label x view (rows in train, val, test order).

    Returns:
        One row per split, label and view: the counts of images and patients.
    """
    table = (
        cohort.groupby(["split", "label", "view"], sort=True)
        .agg(images=("image_id", "size"), patients=("patient_id", "nunique"))
        .reset_index()
    )
    present = [s for s in SPLITS if s in set(table["split"])]
    table["split"] = pd.Categorical(table["split"], categories=present, ordered=True)
    return table.sort_values(["split", "label", "view"]).reset_index(drop=True).astype({"split": str})


def leakage_table(counts: dict[str, dict[str, int]]) -> pd.DataFrame:
    """The counts of :func:`medadv.data.splits.check_leakage` as a table, one row per split.

    Returns:
        One row per split.
    """
    return pd.DataFrame([{"split": name, **values} for name, values in counts.items()])


def cohort_headline(cohort: pd.DataFrame, counts: dict[str, dict[str, int]]) -> dict[str, object]:
    """Headline numbers of notebook 00 for ``summary.json``: sizes, positive fraction, counts per split and the
    outcome of the leakage check (``leakage_ok`` is True: a leaking cohort stops the notebook with a DataError).

    Returns:
        The headline numbers, JSON-able.
    """
    labels = patient_labels(cohort)
    return {
        "n_images": int(len(cohort)),
        "n_patients": int(len(labels)),
        "positive_patient_fraction": round(float(labels.mean()), 6),
        "positive_image_fraction": round(float(cohort["label"].mean()), 6),
        "modality": ",".join(sorted(set(cohort["modality"]))),
        "splits": counts,
        "leakage_ok": True,
    }


def cohort_files(cohort: pd.DataFrame, root: str | Path) -> list[Path]:
    """Every image and mask file of the cohort (``root`` joined with ``path`` and non-empty ``mask_path``), in table
    order: the files notebook 00 registers in the run's manifest when it rendered them.

    Returns:
        The absolute file paths.
    """
    root = Path(root)
    paths = [root / p for p in cohort["path"]]
    return paths + [root / p for p in cohort["mask_path"] if p]
