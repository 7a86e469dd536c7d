"""The cohort table: one row per image, shared by every notebook (DESIGN.md, "The flow of data").

Columns (``COHORT_COLUMNS``):
    image_id    unique id of the image (string)
    patient_id  id of the patient; splits are made at this level
    path        image file, relative to the cohort's root (the run folder for the phantom, the data root otherwise)
    label       1 = positive (malignant / abnormal / fracture), 0 = negative
    mask_path   lesion mask file relative to the root, or empty when the image has no annotation
    view        acquisition view (``CC``, ``MLO``, ...) or empty
    split       ``train``, ``val`` or ``test`` (empty until splits are assigned)
    modality    ``mammography``, ``ultrasound`` or ``xray``
    source_label  the data set's own label text, kept for traceability
"""

from __future__ import annotations

import pandas as pd

from medadv.errors import DataError

COHORT_COLUMNS = ("image_id", "patient_id", "path", "label", "mask_path", "view", "split", "modality", "source_label")
SPLITS = ("train", "val", "test")


def validate_cohort(cohort: pd.DataFrame, where: str = "cohort", require_split: bool = False) -> pd.DataFrame:
    """Check a cohort table's columns and values; return it with normalised dtypes.

    Returns:
        The table with normalised dtypes, the cohort columns first.

    Raises:
        DataError: empty table, missing columns, empty or duplicate image ids (their files named), an empty
            patient id, labels other than 0/1, unknown splits.
    """
    missing = [c for c in COHORT_COLUMNS if c not in cohort.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; a cohort table needs {list(COHORT_COLUMNS)}.")
    if len(cohort) == 0:
        raise DataError(f"{where}: the cohort is empty (0 images); check the data root and the manifest's layout.")
    out = cohort.copy()
    for col in ("image_id", "patient_id", "path", "mask_path", "view", "split", "modality", "source_label"):
        out[col] = out[col].fillna("").astype(str)
    for col in ("image_id", "patient_id"):
        empty = out["path"][out[col].str.strip() == ""]
        if len(empty):
            raise DataError(
                f"{where}: {len(empty)} image(s) with an empty {col}, e.g. {list(empty[:3])}; every image "
                f"needs one (rename the file, or give the id in the data set's table)."
            )
    dup = out[out["image_id"].duplicated(keep=False)]
    if len(dup):
        first = dup["image_id"].iloc[0]
        files = list(dup.loc[dup["image_id"] == first, "path"])
        if len(set(files)) == 1:  # one file listed twice: a row of the data set's table is repeated
            raise DataError(
                f"{where}: image id {first!r} is listed {len(files)} times for the same file, {files[0]}; "
                f"{dup['image_id'].nunique()} id(s) repeat in all. A row of the data set's table is repeated: "
                "remove the repeated row(s)."
            )
        raise DataError(
            f"{where}: image id {first!r} is given to {len(files)} images, {files}; "
            f"{dup['image_id'].nunique()} id(s) repeat in all. Every image needs a unique image_id: rename "
            "one of the files (or fix the id in the data set's table)."
        )
    bad = sorted(set(out["label"].unique()) - {0, 1})
    if bad:
        raise DataError(f"{where}: labels {bad[:5]} seen; expected 0 (negative) or 1 (positive).")
    out["label"] = out["label"].astype(int)
    allowed = set(SPLITS) if require_split else set(SPLITS) | {""}
    bad_split = sorted(set(out["split"]) - allowed)
    if bad_split:
        raise DataError(f"{where}: split values {bad_split} seen; expected {sorted(allowed)}.")
    return out.loc[:, list(COHORT_COLUMNS) + [c for c in out.columns if c not in COHORT_COLUMNS]]
