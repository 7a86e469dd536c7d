"""Alignment of attribution maps with annotated lesion masks (localisation metrics, after Quantus' shape).

Every metric is a small function of a batch of maps ``saliency`` (N, H, W) (larger = more relevant) and a batch of
boolean lesion masks ``mask`` (N, H, W), and returns one float score per image, shape (N,). For every metric here,
HIGHER IS BETTER (the map points more at the lesion); the chance level of an uninformative (constant) map is given
with each metric. Both are also data: :data:`METRICS` holds a :class:`MetricInfo` per table name (the keys of
:func:`metric_functions`) with its score direction, range and :meth:`MetricInfo.chance_level` per image, for tables
and plots that mark chance or say which way is better.

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

import dataclasses
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

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> peak = np.zeros((1, 4, 4))
        >>> peak[0, 3, 3] = 1.0  # the maximum in the far corner, 2.83 px from the lesion
        >>> pointing_game(peak, mask), pointing_game(peak, mask, tolerance=3.0)
        (array([0.]), array([1.]))
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

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> saliency = np.zeros((1, 4, 4))
        >>> saliency[0, 0, 0], saliency[0, 3, 3] = 3.0, 1.0  # three quarters of the energy on the lesion
        >>> energy_pointing_game(saliency, mask)
        array([0.75])
    """
    sal, msk = _check(saliency, mask, "energy_pointing_game")
    boxes = _bounding_boxes(msk, np.asarray(mask).shape[1:])
    return _with_empty_nan(_positive_mass_share(sal, boxes), msk)


def relevance_mass_accuracy(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Relevance mass accuracy: share of the positive relevance that falls inside the lesion mask itself (Arras,
    Osman and Samek, "CLEVR-XAI: a benchmark dataset for the ground truth evaluation of neural network explanations",
    Information Fusion 81, 2022, Sec. 4.2: R_within / R_total).

    Score in [0, 1], higher is better; chance (constant map) = lesion area / image area.

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> relevance_mass_accuracy(np.ones((1, 4, 4)), mask)  # a flat map: chance, 4 of 16 pixels
        array([0.25])
    """
    sal, msk = _check(saliency, mask, "relevance_mass_accuracy")
    return _with_empty_nan(_positive_mass_share(sal, msk), msk)


def relevance_rank_accuracy(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Relevance rank accuracy: of the K = |mask| highest-ranked pixels, the share inside the mask (Arras, Osman and
    Samek 2022, Sec. 4.2: |P_topK intersect GT| / |GT|).

    Score in [0, 1], higher is better; chance (constant map) = lesion area / image area.

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> relevance_rank_accuracy(mask.astype(float), mask)  # the map lights up the lesion exactly
        array([1.])
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

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> ramp = (15.0 - np.arange(16.0)).reshape(1, 4, 4)  # top row highest: 2 of its 4 pixels on the lesion
        >>> topk_coverage(ramp, mask, k=0.25)
        array([0.5])
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
    Score in [0, 1], higher is better; chance (constant map) = K |M| / HW / (K + |M| - K |M| / HW) for K top pixels.

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> ramp = (15.0 - np.arange(16.0)).reshape(1, 4, 4)  # top 4 pixels: the first row, 2 on the lesion
        >>> topk_iou(ramp, mask, k=0.25)  # 2 / (4 + 4 - 2)
        array([0.33333333])
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

    Returns:
        (N,) float scores, ``NaN`` where the mask is empty or covers the whole image.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), bool)
        >>> mask[0, :2, :2] = True  # a 2 x 2 lesion in the top-left corner of a 4 x 4 image
        >>> mask_auroc(mask.astype(float), mask), mask_auroc(np.zeros((1, 4, 4)), mask)
        (array([1.]), array([0.5]))
    """
    sal, msk = _check(saliency, mask, "mask_auroc")
    pos = msk.sum(axis=1)
    neg = msk.shape[1] - pos
    ranks = stats.rankdata(sal, axis=1)
    u = (ranks * msk).sum(axis=1) - pos * (pos + 1) / 2.0
    valid = (pos > 0) & (neg > 0)
    return np.where(valid, u / np.where(valid, pos * neg, 1), np.nan)


def _topk_metric(fn: Callable[..., np.ndarray], k: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``fn`` with its top-k fraction fixed to ``k``."""

    def metric(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return fn(saliency, mask, k=k)

    return metric


def metric_functions(pointing_tolerance: float = 0.0) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Every metric of the study by its table name (``topk_coverage_5`` = k of 5 %).

    Returns:
        ``{name: metric}``, each metric ``(saliency, mask) -> (N,)`` scores; the names are those of :data:`METRICS`.
    """
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
    """Score a batch with several metrics by name (see :func:`metric_functions`).

    Returns:
        ``{name: (N,) scores}`` in the order of ``metrics``.

    Raises:
        DataError: a name that is not a metric of :func:`metric_functions`.
    """
    table = metric_functions(pointing_tolerance)
    unknown = sorted(set(metrics) - set(table))
    if unknown:
        raise DataError(f"unknown alignment metrics {unknown}; known metrics are {sorted(table)}.")
    return {name: table[name](saliency, mask) for name in metrics}


# ---- what a score means: direction, range and chance level, as data ------------------------------------------------

ChanceFunction = Callable[[np.ndarray, float], np.ndarray]


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """How to read an alignment metric's score.

    Attributes:
        name: the metric's table name (a key of :func:`metric_functions`).
        higher_is_better: True when a larger score means a map that points more at the lesion.
        score_range: the smallest and largest score.
        chance: the chance level in words.
        chance_of: the chance level per image from the (N, H, W) masks and the pointing game's tolerance; use
            :meth:`chance_level`.
    """

    name: str
    higher_is_better: bool
    score_range: tuple[float, float]
    chance: str
    chance_of: ChanceFunction = dataclasses.field(repr=False)

    def chance_level(self, mask: np.ndarray, pointing_tolerance: float = 0.0) -> np.ndarray:
        """The score of an uninformative map (one that does not depend on where the lesion is) on each mask.

        A constant map scores exactly this; a map of independent random pixels scores it on average (for the top-k
        IoU, up to the small gap between the mean of a ratio and the ratio of means).

        Returns:
            (N,) floats, ``NaN`` where the metric itself is undefined (an empty mask; for ``mask_auroc`` also a mask
            that covers the image).

        Example:
            >>> import numpy as np
            >>> mask = np.zeros((1, 4, 4), bool)
            >>> mask[0, :2, :2] = True
            >>> METRICS["relevance_rank_accuracy"].chance_level(mask), METRICS["mask_auroc"].chance_level(mask)
            (array([0.25]), array([0.5]))
        """
        _, msk = _check(np.zeros(np.shape(mask)), mask, f"{self.name} chance level")
        return self.chance_of(np.asarray(msk.reshape(np.shape(mask))), pointing_tolerance)


def _lesion_fraction(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """The lesion's share of the image's pixels, ``NaN`` for an empty mask."""
    flat = mask.reshape(mask.shape[0], -1)
    return _with_empty_nan(flat.mean(axis=1), flat)


def _box_fraction(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """The lesion bounding box's share of the image's pixels, ``NaN`` for an empty mask."""
    flat = mask.reshape(mask.shape[0], -1)
    return _with_empty_nan(_bounding_boxes(flat, mask.shape[1:]).mean(axis=1), flat)


def _near_fraction(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """The share of pixels within ``tolerance`` of the lesion (the pointing game's hit zone), ``NaN`` if empty."""
    near = np.stack([ndimage.distance_transform_edt(~m) <= tolerance for m in mask])
    return _with_empty_nan(near.reshape(mask.shape[0], -1).mean(axis=1), mask.reshape(mask.shape[0], -1))


def _half(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """0.5 where the mask has lesion and background pixels, ``NaN`` otherwise."""
    flat = mask.reshape(mask.shape[0], -1)
    return np.where(flat.any(axis=1) & ~flat.all(axis=1), 0.5, np.nan)


def _topk_iou_chance(k: float) -> ChanceFunction:
    """The top-k IoU of a constant map: expected intersection I = K |M| / HW, IoU = I / (K + |M| - I)."""

    def chance(mask: np.ndarray, tolerance: float) -> np.ndarray:
        flat = mask.reshape(mask.shape[0], -1)
        n_top, size = _n_top(k, flat.shape[1], "topk_iou"), flat.sum(axis=1)
        inter = n_top * size / flat.shape[1]
        return _with_empty_nan(inter / (n_top + size - inter), flat)

    return chance


def _metric_info() -> dict[str, MetricInfo]:
    """The :class:`MetricInfo` of every metric of :func:`metric_functions`, under the same names."""
    unit = (0.0, 1.0)
    info = [
        MetricInfo("pointing_game", True, unit, "share of pixels within the tolerance of the lesion", _near_fraction),
        MetricInfo("energy_pointing_game", True, unit, "lesion bounding-box area / image area", _box_fraction),
    ]
    for k in TOPK_FRACTIONS:
        info.append(
            MetricInfo(f"topk_coverage_{round(100 * k)}", True, unit, "lesion area / image area", _lesion_fraction)
        )
        info.append(
            MetricInfo(
                f"topk_iou_{round(100 * k)}",
                True,
                unit,
                "I / (K + |M| - I) with I = K |M| / HW (K top pixels, |M| lesion pixels)",
                _topk_iou_chance(k),
            )
        )
    info += [
        MetricInfo("relevance_mass_accuracy", True, unit, "lesion area / image area", _lesion_fraction),
        MetricInfo("relevance_rank_accuracy", True, unit, "lesion area / image area", _lesion_fraction),
        MetricInfo("mask_auroc", True, unit, "0.5", _half),
    ]
    return {m.name: m for m in info}


METRICS: dict[str, MetricInfo] = _metric_info()
"""Score direction, range and chance level of every metric of :func:`metric_functions`, by table name."""
