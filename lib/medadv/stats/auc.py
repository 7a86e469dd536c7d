"""Area under the ROC curve with DeLong's nonparametric variance, confidence interval and paired test.

The AUC is the trapezoidal (empirical) area, which equals the Mann-Whitney statistic with ties counted 1/2:
``AUC = 1/(m n) * sum_i sum_j psi(X_i, Y_j)``, ``psi(x, y) = 1`` if ``x > y``, ``1/2`` if ``x = y``, ``0`` otherwise,
for the ``m`` positive-case scores ``X`` and ``n`` negative-case scores ``Y``.

Its variance follows DeLong, DeLong & Clarke-Pearson (Biometrics 44:837-845, 1988). The *placements* (structural
components) of each positive and each negative case are

    V10(X_i) = 1/n * sum_j psi(X_i, Y_j)        (DeLong 1988, section 3)
    V01(Y_j) = 1/m * sum_i psi(X_i, Y_j)

and, for ``k`` scores on the same cases, ``S10`` and ``S01`` are the ``k x k`` sample covariance matrices (divisor
``m - 1`` and ``n - 1``) of the placements, and ``S = S10 / m + S01 / n`` estimates the covariance of the ``k`` AUCs
(DeLong 1988, eq. 5-6). The placements are computed from midranks in O(N log N) (Sun & Xu, IEEE Signal Processing
Letters 21:1389-1393, 2014): ``V10(X_i) = (R(X_i) - R_X(X_i)) / n`` where ``R`` is the midrank among all cases and
``R_X`` among the positives only, and symmetrically for the negatives.

scikit-learn offers the AUC but neither DeLong's covariance nor the paired test, and scipy has neither; the few lines
are written here so that the classifier notebooks, the attack evaluation and the MRMC analysis share one tested
implementation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from medadv.errors import ConfigError, DataError

__all__ = [
    "DeLongComponents",
    "check_binary_truth",
    "delong_ci",
    "delong_components",
    "delong_covariance",
    "delong_test",
    "roc_auc",
]


@dataclasses.dataclass(frozen=True)
class DeLongComponents:
    """DeLong placements of ``k`` scores on the same ``m`` positive and ``n`` negative cases.

    Attributes:
        auc: shape ``(k,)``, the trapezoidal AUC of each score.
        v10: shape ``(k, m)``, placement of each positive case (share of negatives it outscores, ties 1/2).
        v01: shape ``(k, n)``, placement of each negative case (share of positives that outscore it, ties 1/2).
    """

    auc: np.ndarray
    v10: np.ndarray
    v01: np.ndarray

    @property
    def covariance(self) -> np.ndarray:
        """``k x k`` DeLong covariance of the AUCs, ``S10 / m + S01 / n`` (DeLong 1988, eq. 5-6)."""
        m, n = self.v10.shape[1], self.v01.shape[1]
        s10 = np.atleast_2d(np.cov(self.v10, ddof=1))
        s01 = np.atleast_2d(np.cov(self.v01, ddof=1))
        return s10 / m + s01 / n


def check_binary_truth(y: ArrayLike, name: str = "y", min_per_class: int = 1) -> np.ndarray:
    """Return ``y`` as a boolean array (True = positive), or raise :class:`DataError` if it is not usable truth.

    Args:
        y: one truth value per case: 0/1 (int, float or bool).
        name: how the argument is called in error messages.
        min_per_class: fewest cases each class must have (DeLong's variance needs 2).

    Returns:
        The truth as a bool array (True = positive).
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{name} has shape {arr.shape}; expected a 1-D array with one 0/1 truth value per case.")
    if arr.dtype == bool:
        truth = arr
    else:
        if arr.dtype.kind not in "iuf":
            raise DataError(f"{name} has dtype {arr.dtype}; expected 0/1 numbers or booleans (1 = positive).")
        values = set(np.unique(arr).tolist())
        if not values <= {0, 1}:
            bad = sorted(values - {0, 1}, key=str)[:5]
            raise DataError(f"{name} holds {bad}; expected binary truth 0/1 (1 = positive). Recode it first.")
        truth = arr == 1
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if min(n_pos, n_neg) < min_per_class:
        raise DataError(
            f"{name} has {n_pos} positive and {n_neg} negative cases; the AUC needs at least {min_per_class} of each "
            "class. Use a sample that holds both classes."
        )
    return truth


def _check_scores(scores: ArrayLike, n_cases: int, name: str) -> np.ndarray:
    """Return scores as a float array of shape (k, n_cases), or raise DataError."""
    raw = np.asarray(scores)
    if raw.dtype.kind not in "iufb":
        raise DataError(f"{name} has dtype {raw.dtype}; expected numeric scores.")
    arr = np.atleast_2d(raw.astype(float))
    if arr.ndim != 2 or arr.shape[1] != n_cases:
        raise DataError(
            f"{name} has shape {np.shape(scores)}; expected {n_cases} scores per row, one per case of the truth."
        )
    if not np.all(np.isfinite(arr)):
        n_bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{name} holds {n_bad} non-finite value(s) (NaN or inf); every case needs a finite score.")
    return arr


def _midranks(x: np.ndarray) -> np.ndarray:
    """Midranks (average ranks of ties, 1-based) along the last axis."""
    return stats.rankdata(x, method="average", axis=-1)


def delong_components(y: ArrayLike, scores: ArrayLike) -> DeLongComponents:
    """DeLong placements and AUCs of one score (1-D) or several scores (2-D, one row per score) on the same cases.

    Args:
        y: binary truth per case (1 = positive); at least one case of each class.
        scores: shape ``(n_cases,)`` or ``(k, n_cases)``; larger = more likely positive.

    Returns:
        :class:`DeLongComponents`: the AUCs (k,) and the placements (k, m) and (k, n).
    """
    truth = check_binary_truth(y, "y")
    s = _check_scores(scores, truth.size, "scores")
    pos, neg = s[:, truth], s[:, ~truth]
    m, n = pos.shape[1], neg.shape[1]
    r_all = _midranks(s)
    v10 = (r_all[:, truth] - _midranks(pos)) / n
    v01 = 1.0 - (r_all[:, ~truth] - _midranks(neg)) / m
    return DeLongComponents(auc=v10.mean(axis=1), v10=v10, v01=v01)


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """Trapezoidal AUC of one score = Mann-Whitney U / (m n), ties counted 1/2.

    Returns:
        The AUC in [0, 1].

    Raises:
        DataError: ``y`` not binary or one class only, lengths differ, a score not finite.
    """
    if np.ndim(score) != 1:
        raise DataError(f"score has shape {np.shape(score)}; expected a 1-D array with one score per case.")
    return float(delong_components(y, score).auc[0])


def delong_covariance(y: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(k,)`` and their DeLong covariance matrix ``(k, k)`` for ``k`` scores on the same cases.

    Needs at least two cases of each class (the placements' sample covariances have divisor ``m - 1`` and ``n - 1``).

    Returns:
        (AUCs (k,), covariance (k, k)).
    """
    check_binary_truth(y, "y", min_per_class=2)
    comp = delong_components(y, scores)
    return comp.auc, comp.covariance


def _check_level(level: float) -> float:
    if not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level is {level}; expected a confidence level in (0, 1), e.g. 0.95.")
    return float(level)


def delong_ci(y: ArrayLike, score: ArrayLike, level: float = 0.95) -> tuple[float, float, float]:
    """AUC and its two-sided Wald confidence interval with DeLong's standard error, clipped to [0, 1].

    Returns:
        ``(auc, low, high)``. With zero estimated variance (e.g. perfect separation) the interval is the point.
    """
    level = _check_level(level)
    if np.ndim(score) != 1:
        raise DataError(f"score has shape {np.shape(score)}; expected a 1-D array with one score per case.")
    auc, cov = delong_covariance(y, score)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    half = float(stats.norm.ppf(0.5 + level / 2.0)) * se
    a = float(auc[0])
    return a, max(0.0, a - half), min(1.0, a + half)


def delong_test(y: ArrayLike, score_a: ArrayLike, score_b: ArrayLike) -> tuple[float, float, float]:
    """DeLong's paired two-sided test of equal AUC for two scores on the same cases (DeLong 1988, eq. 7).

    ``z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab)``, ``p = 2 (1 - Phi(|z|))``.

    Returns:
        ``(auc_a - auc_b, z, p)``. If the variance of the difference is zero, ``z`` is 0 (p = 1) for a zero
        difference and +-inf (p = 0) otherwise.
    """
    for name, sc in (("score_a", score_a), ("score_b", score_b)):
        if np.ndim(sc) != 1:
            raise DataError(f"{name} has shape {np.shape(sc)}; expected a 1-D array with one score per case.")
    if np.shape(score_a) != np.shape(score_b):
        raise DataError(
            f"score_a has {np.shape(score_a)[0]} scores and score_b {np.shape(score_b)[0]}; the paired test needs "
            "both scores on the same cases."
        )
    auc, cov = delong_covariance(y, np.vstack([np.asarray(score_a), np.asarray(score_b)]))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 1e-15:
        z = 0.0 if diff == 0.0 else float(np.copysign(np.inf, diff))
    else:
        z = diff / float(np.sqrt(var))
    p = float(2.0 * stats.norm.sf(abs(z)))
    return diff, z, p
