"""Alignment of attribution maps with annotated lesion masks (localisation metrics, after Quantus' shape).

Every metric is a small function of a batch of maps ``saliency`` (N, H, W) (larger = more relevant) and a batch of
boolean lesion masks ``mask`` (N, H, W), and returns one float score per image, shape (N,). For every metric here,
HIGHER IS BETTER (the map points more at the lesion); the chance level of an uninformative (constant) map is given
with each metric.

Shared conventions (defined once here, tested in ``tests/test_alignment.py``):

* **Empty mask** (an image without lesion pixels): the score is ``NaN`` for every metric: alignment is undefined.
  ``mask_auroc`` is also ``NaN`` for a mask that covers the whole image (no background pixels to rank against).
* **Ties** (pixels of equal value straddling a top-k cut, or several maxima): scores are the *expected value under a
  uniformly random tie-break*, computed exactly rather than sampled, so the result does not depend on pixel order.
* **Constant map** (including an all-zero map, e.g. a Grad-CAM with no positive evidence): every pixel ties, so each
  metric gives its chance level: the lesion's area fraction ``|M| / HW`` (``topk_coverage``,
  ``relevance_rank_accuracy``, ``relevance_mass_accuracy``), the bounding-box area fraction
  (``energy_pointing_game``), the tolerance-dilated lesion fraction (``pointing_game``), 0.5 (``mask_auroc``).
* Signs: rank-based metrics use the map's order as is (negative evidence ranks lowest); mass-based metrics
  (``energy_pointing_game``, ``relevance_mass_accuracy``) count positive relevance only, as in their papers.

The metrics are written with numpy/scipy rather than imported from Quantus: Quantus is not among the kit's
dependencies, expects model and data handles rather than precomputed maps, and leaves ties and empty masks undefined.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage, stats

from medadv.errors import DataError

TOPK_FRACTIONS = (0.05, 0.25, 0.5)


def _check(saliency: np.ndarray, mask: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (saliency, mask) batch; return float64 (N, H*W) maps and bool (N, H*W) masks."""
    sal = np.asarray(saliency)
    msk = np.asarray(mask)
    if sal.ndim != 3 or msk.shape != sal.shape:
        raise DataError(
            f"{name}: saliency of shape {sal.shape} and mask of shape {msk.shape}; expected two (N, H, W) arrays of "
            "the same shape (squeeze the channel axis of (N, 1, H, W) masks)."
        )
    if sal.shape[0] == 0:
        raise DataError(f"{name}: empty batch (N = 0); give at least one map.")
    sal = sal.astype(np.float64).reshape(sal.shape[0], -1)
    if not np.isfinite(sal).all():
        raise DataError(f"{name}: the saliency maps hold NaN or inf values; check the attribution method's output.")
    if msk.dtype != bool:
        if not np.isin(msk, (0, 1)).all():
            raise DataError(f"{name}: mask values {np.unique(msk)[:5]} seen; expected a boolean (or 0/1) lesion mask.")
        msk = msk.astype(bool)
    return sal, msk.reshape(msk.shape[0], -1)


def _topk_hits(sal: np.ndarray, msk: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Expected number of the ``k`` (per image) highest-ranked pixels that lie in the mask, ties broken at random.

    Pixels strictly above the k-th value count fully; the pixels tied with it share the remaining slots equally.
    """
    n = sal.shape[0]
    k = np.clip(k, 1, sal.shape[1])
    ordered = -np.sort(-sal, axis=1)
    cut = ordered[np.arange(n), k - 1][:, None]
    above = sal > cut
    tied = sal == cut
    slots = k - above.sum(axis=1)
    return (above & msk).sum(axis=1) + slots * (tied & msk).sum(axis=1) / tied.sum(axis=1)


def _n_top(fraction: float, n_pixels: int, name: str) -> int:
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"{name}: k is {fraction}; expected a fraction of the image's pixels in (0, 1].")
    return max(1, int(round(fraction * n_pixels)))


def _with_empty_nan(score: np.ndarray, msk: np.ndarray) -> np.ndarray:
    return np.where(msk.any(axis=1), score, np.nan)


def pointing_game(saliency: np.ndarray, mask: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Pointing game: is the map's maximum on the lesion (Zhang et al., "Top-down neural attention by excitation
    backprop", ECCV 2016, Sec. 5.1; their tolerance was 15 px at ImageNet resolution).

    A hit is a maximum within ``tolerance`` pixels (Euclidean) of a mask pixel. Several tied maxima score the share of
    them that hit (the expected hit of a random pick). Score in [0, 1], higher is better; 1 = hit, 0 = miss.
    """
    if tolerance < 0:
        raise DataError(f"pointing_game: tolerance is {tolerance}; expected a distance in pixels >= 0.")
    sal, msk = _check(saliency, mask, "pointing_game")
    shape = np.asarray(mask).shape[1:]
    scores = np.full(sal.shape[0], np.nan)
    for i in range(sal.shape[0]):
        if not msk[i].any():
            continue
        near = ndimage.distance_transform_edt(~msk[i].reshape(shape)).ravel() <= tolerance
        peak = sal[i] == sal[i].max()
        scores[i] = (peak & near).sum() / peak.sum()
    return scores


def _bounding_boxes(msk: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    boxes = np.zeros_like(msk)
    for i in range(msk.shape[0]):
        if msk[i].any():
            rows, cols = np.nonzero(msk[i].reshape(shape))
            box = np.zeros(shape, bool)
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            boxes[i] = box.ravel()
    return boxes


def _positive_mass_share(sal: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Share of the positive relevance inside ``region``; the region's area share when there is none (flat map)."""
    pos = np.clip(sal, 0.0, None)
    total = pos.sum(axis=1)
    inside = (pos * region).sum(axis=1)
    flat = region.mean(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), flat)


def energy_pointing_game(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Energy-based pointing game: share of the map's positive energy inside the lesion's bounding box (Wang et al.,
    "Score-CAM: Score-weighted visual explanations for convolutional neural networks", CVPRW 2020, Sec. 4.2).

    Score in [0, 1], higher is better; chance (constant map) = bounding-box area / image area.
    """
    sal, msk = _check(saliency, mask, "energy_pointing_game")
    boxes = _bounding_boxes(msk, np.asarray(mask).shape[1:])
    return _with_empty_nan(_positive_mass_share(sal, boxes), msk)


def relevance_mass_accuracy(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Relevance mass accuracy: share of the positive relevance that falls inside the lesion mask itself (Arras,
    Osman and Samek, "CLEVR-XAI: a benchmark dataset for the ground truth evaluation of neural network explanations",
    Information Fusion 81, 2022, Sec. 4.2: R_within / R_total).

    Score in [0, 1], higher is better; chance (constant map) = lesion area / image area.
    """
    sal, msk = _check(saliency, mask, "relevance_mass_accuracy")
    return _with_empty_nan(_positive_mass_share(sal, msk), msk)


def relevance_rank_accuracy(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Relevance rank accuracy: of the K = |mask| highest-ranked pixels, the share inside the mask (Arras, Osman and
    Samek 2022, Sec. 4.2: |P_topK intersect GT| / |GT|).

    Score in [0, 1], higher is better; chance (constant map) = lesion area / image area.
    """
    sal, msk = _check(saliency, mask, "relevance_rank_accuracy")
    size = msk.sum(axis=1)
    hits = _topk_hits(sal, msk, np.maximum(size, 1))
    return _with_empty_nan(hits / np.maximum(size, 1), msk)


def topk_coverage(saliency: np.ndarray, mask: np.ndarray, k: float = 0.05) -> np.ndarray:
    """Top-k coverage: the share of the top ``k`` fraction of pixels (by attribution) that lie inside the mask
    (Quantus' TopKIntersection, after Theiner et al., "Interpretable semantic photo geolocation", WACV 2022).

    ``k`` is a fraction of the image's pixels (the study uses 0.05, 0.25 and 0.5). Score in [0, 1], higher is better;
    chance (constant map) = lesion area / image area; 1 is reachable only when the lesion covers at least k.
    """
    sal, msk = _check(saliency, mask, "topk_coverage")
    n_top = _n_top(k, sal.shape[1], "topk_coverage")
    hits = _topk_hits(sal, msk, np.full(sal.shape[0], n_top))
    return _with_empty_nan(hits / n_top, msk)


def topk_iou(saliency: np.ndarray, mask: np.ndarray, k: float = 0.05) -> np.ndarray:
    """Intersection over union of the top ``k`` fraction of pixels and the lesion mask (the thresholded-saliency IoU
    of Saporta et al., "Benchmarking saliency methods for chest X-ray interpretation", Nat Mach Intell 4, 2022, with a
    top-k threshold).

    With ties at the cut the top-k set is fractional: IoU = I / (K + |M| - I) with I the expected intersection.
    Score in [0, 1], higher is better.
    """
    sal, msk = _check(saliency, mask, "topk_iou")
    n_top = _n_top(k, sal.shape[1], "topk_iou")
    inter = _topk_hits(sal, msk, np.full(sal.shape[0], n_top))
    return _with_empty_nan(inter / (n_top + msk.sum(axis=1) - inter), msk)


def mask_auroc(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of the map as a pixel-wise predictor of the mask (Quantus' AUC localisation metric;
    Fawcett, "An introduction to ROC analysis", Pattern Recognit Lett 27, 2006), via the Mann-Whitney U statistic.

    Tied pixels count one half. Score in [0, 1], higher is better, 0.5 = chance (constant map); ``NaN`` when the mask
    is empty or covers the whole image.
    """
    sal, msk = _check(saliency, mask, "mask_auroc")
    pos = msk.sum(axis=1)
    neg = msk.shape[1] - pos
    ranks = stats.rankdata(sal, axis=1)
    u = (ranks * msk).sum(axis=1) - pos * (pos + 1) / 2.0
    valid = (pos > 0) & (neg > 0)
    return np.where(valid, u / np.where(valid, pos * neg, 1), np.nan)


def _topk_metric(fn: Callable[..., np.ndarray], k: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def metric(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return fn(saliency, mask, k=k)

    return metric


def metric_functions(pointing_tolerance: float = 0.0) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Every metric of the study by its table name (``topk_coverage_5`` = k of 5 %), each (saliency, mask) -> (N,)."""
    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "pointing_game": lambda s, m: pointing_game(s, m, tolerance=pointing_tolerance),
        "energy_pointing_game": energy_pointing_game,
    }
    for k in TOPK_FRACTIONS:
        out[f"topk_coverage_{round(100 * k)}"] = _topk_metric(topk_coverage, k)
        out[f"topk_iou_{round(100 * k)}"] = _topk_metric(topk_iou, k)
    out["relevance_mass_accuracy"] = relevance_mass_accuracy
    out["relevance_rank_accuracy"] = relevance_rank_accuracy
    out["mask_auroc"] = mask_auroc
    return out


def score_all(
    saliency: np.ndarray, mask: np.ndarray, metrics: list[str] | tuple[str, ...], pointing_tolerance: float = 0.0
) -> dict[str, np.ndarray]:
    """Score a batch with several metrics by name (see :func:`metric_functions`); returns name -> (N,) scores."""
    table = metric_functions(pointing_tolerance)
    unknown = sorted(set(metrics) - set(table))
    if unknown:
        raise DataError(f"unknown alignment metrics {unknown}; known metrics are {sorted(table)}.")
    return {name: table[name](saliency, mask) for name in metrics}
