"""Paired comparisons of two models on the same images: Wilcoxon signed-rank test, matched-pairs rank-biserial
effect size, and Holm's step-down correction for a family of tests.

The test is scipy's (:func:`scipy.stats.wilcoxon`, Wilcoxon 1945, zero differences dropped as in Wilcoxon's own
procedure). The effect size and the Holm adjustment are a few lines each and written here because neither scipy nor
the kit's other dependencies provide them (scipy's ``false_discovery_control`` is Benjamini-Hochberg only).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from medadv.errors import DataError


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`wilcoxon_paired` for scores ``a`` against ``b`` on the same images.

    Attributes:
        n: pairs with both scores defined (NaN pairs are dropped).
        n_nonzero: pairs with a non-zero difference (the ones the test ranks).
        median_difference: median of ``a - b`` over the ``n`` pairs.
        statistic: scipy's two-sided statistic, the smaller of the signed-rank sums T+ and T- (NaN when n_nonzero = 0).
        p_value: two-sided p-value (1.0 when every difference is zero: no evidence of a difference).
        rank_biserial: matched-pairs rank-biserial correlation (T+ - T-) / (T+ + T-) in [-1, 1]; positive when ``a``
            tends to exceed ``b`` (0.0 when every difference is zero).
    """

    n: int
    n_nonzero: int
    median_difference: float
    statistic: float
    p_value: float
    rank_biserial: float


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (Kerby, "The simple difference formula: an
    approach to teaching nonparametric correlation", Comprehensive Psychology 3, 2014: r = (T+ - T-) / (T+ + T-)).

    Zero differences are dropped and tied absolute differences get average ranks, as in the Wilcoxon test.
    Returns 0.0 when no difference is non-zero.

    Returns:
        r in [-1, 1]; 0.0 when no difference is non-zero.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    t_plus = ranks[d > 0].sum()
    t_minus = ranks[d < 0].sum()
    return float((t_plus - t_minus) / (t_plus + t_minus))


def wilcoxon_paired(a: np.ndarray, b: np.ndarray, name: str = "scores") -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of ``a`` against ``b`` (paired by position) with its effect size.

    Pairs where either score is NaN are dropped (an image whose alignment is undefined). The p-value is exact for up
    to 50 pairs without zero or tied differences, and otherwise from the normal approximation with scipy's tie and
    zero correction (as R's ``wilcox.test``); scipy's own default would run an exhaustive permutation test for up to
    13 pairs with ties, which costs about a second per test and the study runs hundreds.

    Returns:
        :class:`PairedTest`: sizes, median difference, statistic, p-value and effect size.

    Raises:
        DataError: the two arrays differ in length, or fewer than one pair is left.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(f"{name}: paired scores of lengths {a.size} and {b.size}; a paired test needs equal lengths.")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size == 0:
        raise DataError(f"{name}: no pair with both scores defined; check for empty masks or NaN scores.")
    d = a - b
    n_nonzero = int((d != 0).sum())
    if n_nonzero == 0:
        return PairedTest(int(a.size), 0, 0.0, float("nan"), 1.0, 0.0)
    nonzero = np.abs(d[d != 0])
    exact = n_nonzero == d.size and np.unique(nonzero).size == nonzero.size and d.size <= 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's note on small samples for the normal approximation
        res = stats.wilcoxon(
            a, b, zero_method="wilcox", alternative="two-sided", method="exact" if exact else "asymptotic"
        )
    return PairedTest(
        n=int(a.size),
        n_nonzero=n_nonzero,
        median_difference=float(np.median(d)),
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        rank_biserial=rank_biserial(d),
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, "A simple sequentially rejective multiple test procedure",
    Scand J Statist 6, 1979): sorted ascending, p_(i) is multiplied by (m - i + 1), made monotone, capped at 1.

    NaN p-values stay NaN and do not count in the family size m. Rejecting where the adjusted value is below alpha
    controls the family-wise error rate at alpha.

    Returns:
        The adjusted p-values, in the order of ``p_values``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if ((p < 0) | (p > 1)).any():
        raise DataError(f"holm: p-values outside [0, 1] seen ({p[(p < 0) | (p > 1)][:3]}); pass raw p-values.")
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out
