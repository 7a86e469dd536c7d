"""Tests of medadv.stats.auc against scikit-learn, a brute-force Mann-Whitney, and DeLong computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medadv.errors import ConfigError, DataError
from medadv.stats.auc import delong_ci, delong_components, delong_covariance, delong_test, roc_auc
from scipy import stats
from sklearn.metrics import roc_auc_score

# Small example worked by hand: 3 positives, 4 negatives, one tie across classes (0.4).
Y = np.array([1, 1, 1, 0, 0, 0, 0])
A = np.array([0.9, 0.6, 0.4, 0.7, 0.4, 0.2, 0.1])
B = np.array([0.8, 0.3, 0.5, 0.6, 0.2, 0.4, 0.7])


def _brute_placements(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, yy = s[y == 1], s[y == 0]
    psi = (x[:, None] > yy[None, :]) + 0.5 * (x[:, None] == yy[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def test_hand_example_placements_auc_and_variance() -> None:
    comp = delong_components(Y, A)
    np.testing.assert_allclose(comp.v10[0], [1.0, 0.75, 0.625])
    np.testing.assert_allclose(comp.v01[0], [1 / 3, 5 / 6, 1.0, 1.0])
    assert comp.auc[0] == pytest.approx(19 / 24)
    # S10 = 21/576, S01 = 172/1728 -> Var = S10/3 + S01/4 = 1/27.
    assert comp.covariance[0, 0] == pytest.approx(1 / 27)
    assert roc_auc(Y, B) == pytest.approx(7 / 12)


def test_hand_example_covariance_of_two_scores() -> None:
    auc, cov = delong_covariance(Y, np.vstack([A, B]))
    np.testing.assert_allclose(auc, [19 / 24, 7 / 12])
    np.testing.assert_allclose(cov, np.array([[64, 47], [47, 128]]) / 1728)


def test_hand_example_ci_and_test() -> None:
    auc, low, high = delong_ci(Y, A, level=0.95)
    half = stats.norm.ppf(0.975) * math.sqrt(1 / 27)
    assert auc == pytest.approx(19 / 24)
    assert low == pytest.approx(19 / 24 - half)
    assert high == 1.0  # 0.7917 + 0.3772 clipped to 1
    diff, z, p = delong_test(Y, A, B)
    assert diff == pytest.approx(5 / 24)
    assert z == pytest.approx((5 / 24) / math.sqrt(98 / 1728))
    assert z == pytest.approx(0.874818, abs=1e-6)
    assert p == pytest.approx(2 * stats.norm.sf(z))
    assert delong_test(Y, B, A)[1] == pytest.approx(-z)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_and_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    y[:2] = [0, 1]
    s = rng.integers(1, 6, 60).astype(float) + y  # many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    v10, v01 = _brute_placements(y, s)
    comp = delong_components(y, s)
    np.testing.assert_allclose(comp.v10[0], v10)
    np.testing.assert_allclose(comp.v01[0], v01)
    var = np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size
    assert comp.covariance[0, 0] == pytest.approx(var)


def test_accepts_bool_and_float_truth() -> None:
    assert roc_auc(Y.astype(bool), A) == roc_auc(Y.astype(float), A) == pytest.approx(19 / 24)


def test_perfect_separation_gives_point_interval_and_equal_scores_p_one() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    assert delong_ci(y, s) == (1.0, 1.0, 1.0)
    assert delong_test(y, s, s) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], "binary"),
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "1 of each class"),
        ([0, 1, 0, 1], [0.1, 0.2, 0.3], "one per case"),
        ([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4], "non-finite"),
        ([0, 1, 0, 1], [0.1, np.inf, 0.3, 0.4], "non-finite"),
        (["a", "b", "a", "b"], [0.1, 0.2, 0.3, 0.4], "dtype"),
        ([0, 1, 0, 1], ["x", "y", "z", "w"], "numeric"),
    ],
)
def test_bad_input_raises_data_error(y: list, s: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        roc_auc(y, s)


def test_delong_needs_two_per_class_and_same_lengths() -> None:
    with pytest.raises(DataError, match="at least 2 of each"):
        delong_ci([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="same cases"):
        delong_test(Y, A, B[:-1])
    with pytest.raises(ConfigError, match="level"):
        delong_ci(Y, A, level=1.5)
