"""Worst-case robust accuracy over an ensemble of attacks, image by image (AutoAttack's rule), from per-image results.

An image counts as robust at a budget only if the model classifies it correctly unattacked and under every attack of
the ensemble at that budget (Croce & Hein 2020, AutoAttack: "the robust accuracy is the worst case over the attacks,
computed per point"). The worst case is therefore never above any single attack's accuracy, and usually below the
lowest of them: attacks fool different images. Each non-robust image is credited to the first attack, in a given
order, that fooled it (or to the clean image when the model was already wrong), which says what each attack adds.

Everything here is pure arithmetic over a table; no network is run. The input is the per-image table
(:data:`PER_IMAGE_COLUMNS`), one row per model, norm, budget, attack and image:

========================  ============================================================================================
``model``                 the classifier's name
``norm``                  ``"linf"`` or ``"l2"`` (any label: rows are grouped by it)
``eps``                   the budget in [0, 1] image units
``attack``                the attack's name (``"pgd"``, ``"apgd_margin"``, ``"square"``, ``"transfer_erm_s2"``, ...)
``image_id``              the image
``label``                 its true class (0 / 1)
``clean_correct``         whether the model classifies the unattacked image correctly (the same in every row of the
                          model and image)
``correct``               whether the model classifies this attack's image correctly
========================  ============================================================================================

Within one (model, norm, eps) group every attack must cover the same images, once each. Balanced accuracy is
:func:`medadv.stats.accuracy.balanced_accuracy`: the mean of the accuracies on the positives (sensitivity) and on the
negatives (specificity), so a constant classifier scores 0.5 whatever the class shares, where its plain accuracy is
the majority class's share; it is NaN when a group has images of one class only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from medadv.errors import DataError
from medadv.stats.accuracy import balanced_accuracy, class_rates

PER_IMAGE_COLUMNS = ("model", "norm", "eps", "attack", "image_id", "label", "clean_correct", "correct")
GROUP = ("model", "norm", "eps")
CLEAN = "clean"  # what :func:`first_fooled` names for an image the model got wrong unattacked
ROBUST = ""  # what it names for an image no attack fooled
ACCURACY_COLUMNS = ("model", "norm", "eps", "attack", "n_images", "accuracy", "balanced_accuracy")
WORST_CASE_COLUMNS = (
    "model",
    "norm",
    "eps",
    "n_images",
    "attacks",
    "worst_case_accuracy",
    "worst_case_balanced_accuracy",
    "worst_case_sensitivity",
    "worst_case_specificity",
    "wrong_clean",
)
FOOLED_PREFIX = "fooled_first_by_"


def _validated(table: pd.DataFrame, order: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """The table with boolean columns, checked; and the attack order (given, else first appearance)."""
    missing = [c for c in PER_IMAGE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"the per-image table lacks the column(s) {missing}; expected {list(PER_IMAGE_COLUMNS)} "
            "(one row per model, norm, eps, attack and image)."
        )
    if table.empty:
        raise DataError("the per-image table has no rows; expected one per model, norm, eps, attack and image.")
    key = [*GROUP, "attack", "image_id"]
    dup = table[table.duplicated(key, keep=False)]
    if not dup.empty:
        raise DataError(
            f"the per-image table has {len(dup)} rows that repeat a (model, norm, eps, attack, image_id), "
            f"e.g. {dup[key].iloc[0].tolist()}; each attack's result on an image must appear once."
        )
    for col in ("clean_correct", "correct"):
        if not table[col].isin([True, False]).all():
            raise DataError(
                f"column {col!r} holds {sorted(set(table[col].astype(str)) - {'True', 'False'})[:3]}; "
                "expected True or False in every row."
            )
    table = table.astype({"clean_correct": bool, "correct": bool})
    per_image = table.groupby(["model", "image_id"])[["label", "clean_correct"]].nunique()
    bad = per_image[(per_image > 1).any(axis=1)]
    if not bad.empty:
        raise DataError(
            f"image {bad.index[0][1]!r} of model {bad.index[0][0]!r} has more than one label or clean "
            "result; label and clean_correct belong to the image and must agree in all its rows."
        )
    attacks = list(dict.fromkeys(table["attack"]))
    order = attacks if order is None else list(order)
    unknown = sorted(set(attacks) - set(order))
    if unknown or len(set(order)) != len(order) or CLEAN in order:
        raise DataError(
            f"order {order} must list every attack of the table once (missing: {unknown}) and not name {CLEAN!r}."
        )
    return table, order


def _wide(group: pd.DataFrame, where: tuple) -> pd.DataFrame:
    """Images x attacks of one (model, norm, eps) group: whether each attack left each image correct."""
    wide = group.pivot(index="image_id", columns="attack", values="correct")
    if wide.isna().any().any():
        gaps = wide.columns[wide.isna().any()].tolist()
        raise DataError(
            f"model {where[0]!r}, {where[1]} eps {where[2]:g}: attack(s) {gaps} do not cover all "
            f"{len(wide)} images of the other attacks; the worst case needs every attack on every image."
        )
    return wide.astype(bool)


def first_fooled(table: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per model, budget and image: whether it is robust to the whole ensemble, and which attack fooled it first.

    Args:
        table: the per-image table (:data:`PER_IMAGE_COLUMNS`).
        order: the attacks in the order they are credited (cheapest first is the usual choice: "fgsm", "pgd", ...,
            "square", the transfer attacks); default: the order of their first rows in the table.

    Returns:
        One row per (model, norm, eps, image_id) with ``label``, ``robust`` (bool) and ``first_fooled_by``: the
        first attack in ``order`` under which the model is wrong, :data:`CLEAN` when it was wrong unattacked, or
        :data:`ROBUST` (the empty string) when no attack fooled it.
    """
    table, order = _validated(table, order)
    rows = []
    for where, group in table.groupby(list(GROUP), sort=False):
        wide = _wide(group, where)
        images = group.drop_duplicates("image_id").set_index("image_id").loc[wide.index]
        ranked = [a for a in order if a in wide.columns]
        wrong = ~wide[ranked].to_numpy()
        first = np.where(wrong.any(axis=1), np.array(ranked, dtype=object)[wrong.argmax(axis=1)], ROBUST)
        first = np.where(images["clean_correct"].to_numpy(), first, CLEAN)
        rows.append(
            pd.DataFrame(
                {
                    "model": where[0],
                    "norm": where[1],
                    "eps": where[2],
                    "image_id": wide.index,
                    "label": images["label"].to_numpy(),
                    "robust": first == ROBUST,
                    "first_fooled_by": first,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def attack_accuracies(table: pd.DataFrame) -> pd.DataFrame:
    """Each attack's own robust accuracy (correct unattacked and under that attack), plain and balanced.

    Returns:
        One row per (model, norm, eps, attack), columns :data:`ACCURACY_COLUMNS`.
    """
    table, _ = _validated(table, None)
    robust = table.assign(robust=table["clean_correct"] & table["correct"])
    rows = [
        {
            "model": m,
            "norm": n,
            "eps": e,
            "attack": a,
            "n_images": len(g),
            "accuracy": float(g["robust"].mean()),
            "balanced_accuracy": balanced_accuracy(g["label"].to_numpy(), g["robust"].to_numpy()),
        }
        for (m, n, e, a), g in robust.groupby([*GROUP, "attack"], sort=False)
    ]
    return pd.DataFrame(rows, columns=list(ACCURACY_COLUMNS))


def worst_case_accuracy(table: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Worst-case robust accuracy over the attacks of each (model, norm, eps), and what each attack fooled first.

    Args:
        table: the per-image table (:data:`PER_IMAGE_COLUMNS`).
        order: the order in which attacks are credited (see :func:`first_fooled`).

    Returns:
        One row per (model, norm, eps): :data:`WORST_CASE_COLUMNS` (``attacks``: the attacks of the group joined
        by ``+``; the worst case's balanced accuracy with the two per-class rates it is the mean of;
        ``wrong_clean``: the share of images wrong unattacked), then one column
        ``fooled_first_by_<attack>`` per attack of ``order``: the share of the images that attack fooled first (NaN
        where it was not run at that budget). Per row, ``worst_case_accuracy + wrong_clean`` and the shares add up
        to 1.
    """
    table, order = _validated(table, order)
    firsts = first_fooled(table, order)
    ran = table.groupby(list(GROUP), sort=False)["attack"].unique()
    rows = []
    for where, group in firsts.groupby(list(GROUP), sort=False):
        attacks = [a for a in order if a in set(ran.loc[where])]
        labels, robust = group["label"].to_numpy(), group["robust"].to_numpy()
        sensitivity, specificity = class_rates(labels, robust)
        row = {
            "model": where[0],
            "norm": where[1],
            "eps": where[2],
            "n_images": len(group),
            "attacks": "+".join(attacks),
            "worst_case_accuracy": float(robust.mean()),
            "worst_case_balanced_accuracy": balanced_accuracy(labels, robust),
            "worst_case_sensitivity": sensitivity,
            "worst_case_specificity": specificity,
            "wrong_clean": float((group["first_fooled_by"] == CLEAN).mean()),
        }
        for attack in order:
            share = float((group["first_fooled_by"] == attack).mean())
            row[FOOLED_PREFIX + attack] = share if attack in attacks else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=[*WORST_CASE_COLUMNS, *(FOOLED_PREFIX + a for a in order)])
