"""Balanced accuracy, the constant classifier's values and the degenerate flag, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medadv.errors import DataError
from medadv.stats.accuracy import (
    balanced_accuracy,
    balanced_interval,
    class_rates,
    constant_accuracy,
    difference_interval,
    is_degenerate,
    wilson,
)


def test_balanced_accuracy_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  # 3 positives, 7 negatives
    pred = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    correct = pred == y
    assert class_rates(y, correct) == pytest.approx((1 / 3, 5 / 7))
    assert balanced_accuracy(y, correct) == pytest.approx((1 / 3 + 5 / 7) / 2)
    assert correct.mean() == pytest.approx(0.6)


def test_every_constant_classifier_scores_one_half_and_the_majority_share() -> None:
    y = np.array([1] * 3 + [0] * 7)
    for constant in (0, 1):
        correct = np.full(10, constant) == y
        assert balanced_accuracy(y, correct) == 0.5
        assert is_degenerate(np.full(10, constant, dtype=bool))
    assert constant_accuracy(y) == {"constant_accuracy": 0.7, "constant_balanced_accuracy": 0.5}
    assert correct.mean() == 0.3 and (~correct).mean() == 0.7  # plain accuracy rewards the majority guess


def test_degenerate_is_more_than_95_percent_one_class() -> None:
    assert not is_degenerate(np.array([True] * 95 + [False] * 5))
    assert is_degenerate(np.array([True] * 96 + [False] * 4))
    assert is_degenerate(np.array([False] * 97 + [True] * 3))


def test_intervals_combine_the_wilson_intervals() -> None:
    rate, low, high = wilson(3, 10)
    z = 1.959963984540054
    centre = (0.3 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.3 * 0.7 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (rate, low, high) == pytest.approx((0.3, centre - half, centre + half))
    value, lo, hi = balanced_interval(3, 10, 10, 10)
    assert value == pytest.approx(0.65) and lo < 0.65 < hi <= 1.0
    assert hi - lo < (high - low)  # two classes' evidence narrows the interval of their mean
    d, dlo, dhi = difference_interval((0.65, lo, hi), (0.5, 0.4, 0.6))
    assert d == pytest.approx(0.15) and dlo == pytest.approx(0.15 - math.hypot(0.65 - lo, 0.1))
    assert dhi == pytest.approx(0.15 + math.hypot(hi - 0.65, 0.1))


def test_labels_must_be_binary_vectors() -> None:
    with pytest.raises(DataError, match=r"labels have shape \(2, 1\)"):
        balanced_accuracy(np.array([[0], [1]]), np.array([True, False]))
    with pytest.raises(DataError, match="expected the labels' shape"):
        class_rates(np.array([0, 1]), np.array([True]))
