"""Patient-level stratified train / validation / test splits, and the leakage check.

Paper 001 ("AI-CAD classifier" and "Results") split its cohort at the patient level, 80% / 10% / 10%: every image of
a patient lies in one split, so that the test AUC is not inflated by a second view of a training patient. Splits
here are stratified by the patient's label (a patient is positive when any of their images is), so that each split
keeps the cohort's positive fraction, and each split gets at least one positive and one negative patient whenever the
cohort has three of each. A data set's official split (for example VinDr-Mammo's) is kept as it is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medadv.data.cohort import SPLITS
from medadv.errors import ConfigError, DataError


def _allocate(n: int, fractions: tuple[float, float, float]) -> np.ndarray:
    """Split ``n`` patients into three counts by the largest-remainder method, each at least 1 when ``n >= 3``."""
    raw = np.asarray(fractions, float) * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    while n >= len(counts) and (counts == 0).any():
        counts[int(np.argmax(counts))] -= 1
        counts[int(np.flatnonzero(counts == 0)[0])] += 1
    return counts


def patient_labels(cohort: pd.DataFrame) -> pd.Series:
    """One label per patient (index: patient_id, sorted): 1 when any of the patient's images is positive.

    Returns:
        The labels, indexed by patient_id.
    """
    return cohort.groupby("patient_id", sort=True)["label"].max().astype(int)


def _carve_val(cohort: pd.DataFrame, fractions: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """An official split without a validation set (CBIS-DDSM, VinDr-Mammo): move val / (train + val) of the train
    patients, stratified by patient label and shuffled with ``seed``, to ``val``; test stays as published."""
    out = cohort.copy()
    labels = patient_labels(out[out["split"] == "train"])
    share = fractions[1] / (fractions[0] + fractions[1])
    rng = np.random.default_rng(seed)
    moved: list[str] = []
    for label in (1, 0):
        patients = labels.index[labels == label].to_numpy()
        patients = patients[rng.permutation(len(patients))]
        n_val = max(1, min(round(share * len(patients)), len(patients) - 1)) if len(patients) >= 2 else 0
        moved.extend(patients[:n_val])
    out.loc[out["patient_id"].isin(moved), "split"] = "val"
    return out


def _refuse_too_few(cohort: pd.DataFrame, labels: pd.Series, label: int, needed: int) -> None:
    """Refuse a cohort with fewer than ``needed`` patients of class ``label``, naming the source labels it found."""
    name = "positive" if label == 1 else "negative"
    found = int((labels == label).sum())
    if found >= needed:
        return
    sources = sorted(set(cohort.loc[cohort["label"] == label, "source_label"].astype(str)) - {""})
    why = f"; at least {needed} are needed so that train, val and test each get one" if needed > 1 else ""
    raise DataError(
        f"the cohort has {found} {name} patient(s) (source labels: {sources or 'none'}){why}. For a data set, check "
        f"that the folders or rows its manifest's label_map maps to {label} ({name}) hold images; for the phantom, "
        "give a larger data.n_patients."
    )


def assign_splits(
    cohort: pd.DataFrame, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> pd.DataFrame:
    """Assign ``train`` / ``val`` / ``test`` to every image, at the patient level, stratified by patient label.

    Within each label, the patients (sorted by id, then shuffled with ``seed``) are cut into three groups of sizes
    given by ``fractions`` (largest remainder, at least one patient per split when the label has three or more).
    A cohort whose ``split`` column is already filled for every image (an official split) keeps it; when that split
    has no ``val`` images, ``val`` is carved from ``train`` at the patient level (see :func:`_carve_val`).

    Args:
        cohort: the cohort table (:mod:`medadv.data.cohort`).
        fractions: train, validation and test fractions of the patients (paper 001: 0.8, 0.1, 0.1).
        seed: seed of the shuffle; the profile's seed in the notebooks.

    Returns:
        A copy of ``cohort`` with the ``split`` column filled.

    Raises:
        ConfigError: ``fractions`` are not three positive numbers summing to 1.
        DataError: the split column is filled for some images only, or the cohort has fewer than three positive or
            three negative patients, so some split would lack one class.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(
            f"split fractions are {fractions}; expected three positive fractions (train, val, test) summing to 1."
        )
    out = cohort.copy()
    split = out["split"].fillna("").astype(str)
    labels = patient_labels(out)
    if (split != "").all():
        for label in (1, 0):
            _refuse_too_few(out, labels, label, 1)
        return _carve_val(out, fractions, seed) if not (split == "val").any() else out
    if (split != "").any():
        raise DataError(
            f"the cohort's split column is filled for {(split != '').sum()} of {len(split)} images; give an official "
            "split for every image, or for none (then splits are drawn at the patient level)."
        )
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for label in (1, 0):
        _refuse_too_few(out, labels, label, len(SPLITS))
        patients = labels.index[labels == label].to_numpy()
        patients = patients[rng.permutation(len(patients))]
        bounds = np.cumsum(_allocate(len(patients), fractions))[:-1]
        for name_split, group in zip(SPLITS, np.split(patients, bounds), strict=True):
            assignment.update(dict.fromkeys(group, name_split))
    out["split"] = out["patient_id"].map(assignment)
    return out


#: What to do when a split lacks a class: drawn splits give every split both classes from three patients of each, so
#: the cause is an official split (or a cohort table's own split column), or a label_map that empties a class.
_SPLIT_ADVICE = (
    "A data set's official split (its manifest's 'official_split: true', or a cohort table's split column) is kept "
    "as published: set 'official_split: false' in the manifest to draw patient-level splits instead, or check the "
    "rows of that split and the label_map; for the phantom, give a larger data.n_patients."
)


def check_leakage(cohort: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Refuse a cohort in which a patient appears in two splits; return the counts per split.

    Returns:
        ``{split: {"patients", "images", "positive_patients", "negative_patients", "positive_images",
        "negative_images"}}`` for ``train``, ``val`` and ``test``.

    Raises:
        DataError: images without a split, a patient in two splits (the ids are named), or a split without images
            of both classes (none at all, or one class only: an official split can be so).
    """
    split = cohort["split"].fillna("").astype(str)
    if (split == "").any():
        missing = cohort.loc[split == "", "image_id"].astype(str).tolist()
        raise DataError(f"{len(missing)} images have no split (e.g. {missing[:5]}); call assign_splits first.")
    per_patient = cohort.assign(split=split).groupby("patient_id")["split"].nunique()
    leaked = per_patient.index[per_patient > 1].astype(str).tolist()
    if leaked:
        detail = {pid: sorted(set(split[cohort["patient_id"].astype(str) == pid])) for pid in leaked[:10]}
        raise DataError(
            f"patient leakage: {len(leaked)} patient(s) have images in more than one split: {detail}. Every image of a "
            "patient must be in the same split; fix the official split or let assign_splits draw one."
        )
    labels = patient_labels(cohort)
    counts: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        rows = cohort[split == name]
        pl = labels.loc[rows["patient_id"].unique()]
        counts[name] = {
            "patients": int(len(pl)),
            "images": int(len(rows)),
            "positive_patients": int((pl == 1).sum()),
            "negative_patients": int((pl == 0).sum()),
            "positive_images": int((rows["label"] == 1).sum()),
            "negative_images": int((rows["label"] == 0).sum()),
        }
        if not counts[name]["positive_images"] or not counts[name]["negative_images"]:
            raise DataError(
                f"split {name!r} has {counts[name]['positive_images']} positive and "
                f"{counts[name]['negative_images']} negative images; every split needs both classes (training draws "
                "class-balanced batches, and the validation and test AUCs compare the two). " + _SPLIT_ADVICE
            )
    return counts
