"""How well a detector separates manipulated from clean images: AUC with DeLong CI, TPR at a fixed FPR, and a
validation-chosen threshold with a 1-5 confidence for the detector as a reader."""

from __future__ import annotations

import numpy as np

from medadv.errors import DataError
from medadv.stats.auc import delong_ci

__all__ = ["confidence_levels", "detection_metrics", "tpr_at_fpr"]


def _scores(values: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(values, dtype=float).reshape(-1)
    if s.size < 2 or not np.isfinite(s).all():
        raise DataError(
            f"{what}: {s.size} scores, finite: {bool(np.isfinite(s).all())}; expected at least two "
            "finite detector scores."
        )
    return s


def tpr_at_fpr(clean: np.ndarray, manipulated: np.ndarray, fpr: float = 0.05) -> float:
    """Share of manipulated images flagged at the threshold that flags at most ``fpr`` of the clean images.

    The threshold is the ``(floor(fpr * n_clean) + 1)``-th largest clean score and an image is flagged when its score
    is strictly above it, so the clean images' false-positive rate is at most ``fpr`` (0 flagged when
    ``fpr * n_clean < 1``).

    Returns:
        The share of manipulated images flagged.
    """
    c = np.sort(_scores(clean, "clean images"))[::-1]
    m = _scores(manipulated, "manipulated images")
    threshold = c[min(int(np.floor(fpr * c.size)), c.size - 1)]
    return float(np.mean(m > threshold))


def detection_metrics(
    clean: np.ndarray, manipulated: np.ndarray, level: float = 0.95, fpr: float = 0.05
) -> dict[str, float]:
    """Detection AUC (manipulated = positive) with its DeLong CI, and the TPR at ``fpr``.

    Returns:
        ``{"n_clean", "n_manipulated", "auc", "auc_ci_low", "auc_ci_high", "tpr_at_5fpr"}`` (the last at ``fpr``).
    """
    c, m = _scores(clean, "clean images"), _scores(manipulated, "manipulated images")
    y = np.concatenate([np.zeros(c.size), np.ones(m.size)])
    auc, low, high = delong_ci(y, np.concatenate([c, m]), level)
    return {
        "n_clean": int(c.size),
        "n_manipulated": int(m.size),
        "auc": auc,
        "auc_ci_low": low,
        "auc_ci_high": high,
        "tpr_at_5fpr": tpr_at_fpr(c, m, fpr),
    }


def confidence_levels(scores: np.ndarray, threshold: float, reference: np.ndarray, levels: int = 5) -> np.ndarray:
    """A reader's confidence 1..``levels`` in its answer from how far a score lies from the threshold.

    The distance ``|score - threshold|`` is ranked against the distances of the ``reference`` scores (the
    validation images the threshold was chosen on) on the same side of the threshold: the quantile ``q`` gives the
    level ``1 + floor(q * levels)`` (capped): a score as far out as the farthest validation scores is answered with
    the highest confidence.

    Returns:
        The confidence levels (N,), integers 1 to ``levels``.
    """
    s = np.asarray(scores, dtype=float)
    ref = _scores(reference, "reference scores")
    out = np.empty(s.size, dtype=int)
    for side in (True, False):
        mask = (s >= threshold) == side
        ref_side = np.sort(np.abs(ref[(ref >= threshold) == side] - threshold))
        if ref_side.size == 0:
            ref_side = np.sort(np.abs(ref - threshold))
        q = np.searchsorted(ref_side, np.abs(s[mask] - threshold), side="right") / ref_side.size
        out[mask] = np.minimum(levels, 1 + np.floor(q * levels)).astype(int)
    return out
