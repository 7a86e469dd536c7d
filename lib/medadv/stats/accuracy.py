"""Accuracies that a constant classifier cannot pass: balanced accuracy, the constant classifier's own values, the
degenerate-classifier flag, and their confidence intervals.

Plain accuracy rewards predicting the majority class: on a test set that is 70% negative, a classifier that calls
every image negative is 70% accurate, and it stays 70% accurate under any attack (nothing an attacker does changes a
constant output). The kit therefore compares **balanced accuracy**, the mean of the per-class accuracies
(sensitivity and specificity; Brodersen et al., ICPR 2010), for which every constant classifier scores exactly 0.5,
and reports beside each accuracy what the constant classifier scores (:func:`constant_accuracy`). A classifier that
gives one class to more than :data:`DEGENERATE_SHARE` of the images is flagged **degenerate**: its accuracies say
more about the class prior than about the images.

Intervals: a balanced accuracy is the mean of two independent binomial rates (the positives' and the negatives'),
so its interval is the MOVER combination of their Wilson intervals (Zou & Donner, Stat. Med. 27, 2008; for a
difference of two rates this is Newcombe's hybrid score interval, Stat. Med. 17, 1998, method 10). A difference of two
classifiers' rates on the same images is treated as unpaired: conservative for positively correlated outcomes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from medadv.errors import DataError
from medadv.stats.binomial import check_level

__all__ = [
    "DEGENERATE_SHARE",
    "Interval",
    "balanced_accuracy",
    "balanced_interval",
    "class_rates",
    "constant_accuracy",
    "difference_interval",
    "is_degenerate",
    "majority_share",
    "wilson",
]

#: A classifier that gives one class to more than this share of the test images is degenerate.
DEGENERATE_SHARE = 0.95
#: (value, low, high)
Interval = tuple[float, float, float]


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise DataError(
            f"labels have shape {y.shape} and values {np.unique(y)[:5].tolist()}; expected (N,) labels in {{0, 1}}."
        )
    return y.astype(bool)


def class_rates(y: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """The share of correct decisions among the positives (sensitivity) and among the negatives (specificity).

    Args:
        y: labels (N,) in {0, 1}; correct: (N,) bool, whether each image was classified correctly.

    Returns:
        (sensitivity, specificity); NaN for a class with no image.
    """
    y, correct = _labels(y), np.asarray(correct, dtype=bool)
    if correct.shape != y.shape:
        raise DataError(f"correct has shape {correct.shape}; expected the labels' shape {y.shape}.")
    sens = float(correct[y].mean()) if y.any() else math.nan
    spec = float(correct[~y].mean()) if (~y).any() else math.nan
    return sens, spec


def balanced_accuracy(y: np.ndarray, correct: np.ndarray) -> float:
    """Balanced accuracy: the mean of sensitivity and specificity (0.5 for every constant classifier).

    Returns:
        The balanced accuracy in [0, 1]; NaN when a class has no image.
    """
    sens, spec = class_rates(y, correct)
    return (sens + spec) / 2.0


def majority_share(y: np.ndarray) -> float:
    """The share of the larger class: the plain accuracy of the constant classifier that predicts it.

    Returns:
        The share in [0.5, 1].
    """
    y = _labels(y)
    return float(max(y.mean(), 1.0 - y.mean())) if len(y) else math.nan


def constant_accuracy(y: np.ndarray) -> dict[str, float]:
    """What the best constant classifier scores on these labels.

    Returns:
        ``{"constant_accuracy": majority share, "constant_balanced_accuracy": 0.5}``.
    """
    return {"constant_accuracy": majority_share(y), "constant_balanced_accuracy": 0.5}


def is_degenerate(predicted_positive: np.ndarray, share: float = DEGENERATE_SHARE) -> bool:
    """Whether a classifier gives one class to more than ``share`` of the images.

    Args:
        predicted_positive: (N,) bool, the classifier's decision for each image.

    Returns:
        True when either class takes more than ``share`` of the decisions.
    """
    p = np.asarray(predicted_positive, dtype=bool)
    return bool(len(p) and max(p.mean(), 1.0 - p.mean()) > share)


def wilson(k: int, n: int, level: float = 0.95) -> Interval:
    """``k / n`` with its Wilson score interval (scipy's ``binomtest(...).proportion_ci(method="wilson")``).

    Returns:
        (rate, low, high); NaNs when ``n`` is 0.
    """
    check_level(level)
    if n == 0:
        return math.nan, math.nan, math.nan
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return k / n, float(ci.low), float(ci.high)


def balanced_interval(k_pos: int, n_pos: int, k_neg: int, n_neg: int, level: float = 0.95) -> Interval:
    """Balanced accuracy from the correct counts of each class, with its MOVER interval (module docstring).

    Returns:
        (balanced accuracy, low, high).
    """
    (p1, l1, u1), (p2, l2, u2) = wilson(k_pos, n_pos, level), wilson(k_neg, n_neg, level)
    value = (p1 + p2) / 2.0
    return (value, value - math.hypot(p1 - l1, p2 - l2) / 2.0, value + math.hypot(u1 - p1, u2 - p2) / 2.0)


def difference_interval(a: Interval, b: Interval) -> Interval:
    """``a - b`` of two estimates with their intervals, by MOVER (Newcombe's method 10 when both are Wilson
    intervals of single rates); unpaired, so conservative for positively correlated estimates.

    Returns:
        (difference, low, high).
    """
    (va, la, ua), (vb, lb, ub) = a, b
    d = va - vb
    return d, d - math.hypot(va - la, ub - vb), d + math.hypot(ua - va, vb - lb)
