"""Paired Wilcoxon test, rank-biserial effect size and Holm correction against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from medadv.errors import DataError
from medadv.stats.paired import holm, rank_biserial, wilcoxon_paired


def test_rank_biserial_by_hand() -> None:
    # |d| = 1, 2, 3, 4 -> ranks 1..4; positives hold ranks 1, 3, 4 (T+ = 8), negative rank 2 (T- = 2).
    assert rank_biserial(np.array([1.0, -2.0, 3.0, 4.0])) == pytest.approx((8 - 2) / 10)
    # zeros dropped; tied |d| share ranks: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3; T+ = 1.5 + 3, T- = 1.5.
    assert rank_biserial(np.array([0.0, 1.0, -1.0, 2.0])) == pytest.approx((4.5 - 1.5) / 6)
    assert rank_biserial(np.array([0.0, 0.0])) == 0.0
    assert rank_biserial(np.array([0.5, 2.0, 1.0])) == 1.0


def test_wilcoxon_exact_small_sample_by_hand() -> None:
    # differences 1..6 all positive: T- = 0, exact two-sided p = 2 / 2**6.
    a = np.arange(1.0, 7.0) + 10.0
    b = np.full(6, 10.0)
    res = wilcoxon_paired(a, b)
    assert res.n == 6 and res.n_nonzero == 6
    assert res.statistic == 0.0
    assert res.p_value == pytest.approx(2 / 64)
    assert res.rank_biserial == 1.0
    assert res.median_difference == pytest.approx(3.5)
    flipped = wilcoxon_paired(b, a)
    assert flipped.rank_biserial == -1.0 and flipped.p_value == pytest.approx(2 / 64)


def test_wilcoxon_with_ties_uses_the_tie_corrected_normal_approximation() -> None:
    a = np.array([3.0, 3.0, 5.0, 1.0, 4.0, 2.0, 2.0])
    b = np.array([1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 3.0])
    # d = 2, 1, 2, 0, 3, 1, -1 -> zero dropped; |d| ranks: 1 -> 2 (x3), 2 -> 4.5 (x2), 3 -> 6; T- = 2, T+ = 19
    res = wilcoxon_paired(a, b)
    assert res.n == 7 and res.n_nonzero == 6 and res.statistic == 2.0
    assert res.rank_biserial == pytest.approx((19 - 2) / 21)
    # normal approximation by hand: mean 21/2, variance n(n+1)(2n+1)/24 minus the tie term sum(t^3 - t)/48
    var = 6 * 7 * 13 / 24 - ((27 - 3) + (8 - 2)) / 48
    z = (2.0 - 10.5) / np.sqrt(var)
    from scipy.stats import norm

    assert res.p_value == pytest.approx(2 * norm.cdf(z), rel=1e-6)


def test_wilcoxon_drops_nan_pairs_and_handles_all_zero() -> None:
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([1.0, 2.0, 3.0, np.nan])
    res = wilcoxon_paired(a, b)
    assert res.n == 2 and res.n_nonzero == 0 and res.p_value == 1.0 and res.rank_biserial == 0.0
    with pytest.raises(DataError, match="equal lengths"):
        wilcoxon_paired(np.ones(3), np.ones(4))
    with pytest.raises(DataError, match="no pair"):
        wilcoxon_paired(np.array([np.nan]), np.array([1.0]))


def test_holm_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.20
    expected = np.array([0.04, 0.09, 0.09, 0.20])
    np.testing.assert_allclose(holm(p), expected)
    np.testing.assert_allclose(holm(np.array([0.5, np.nan, 0.4])), [0.8, np.nan, 0.8])
    np.testing.assert_allclose(holm(np.array([0.9, 0.6])), [1.0, 1.0])
    assert holm(np.array([])).shape == (0,)
    with pytest.raises(DataError, match="outside"):
        holm(np.array([1.5]))
