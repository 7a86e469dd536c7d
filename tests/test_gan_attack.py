"""Paper 001 Table 1 computed from hand-made scores whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from medadv import DataError
from medadv.attacks.gan_attack import gan_attack_evaluation, load_fakes
from medadv.data.pixels import save_png16


def _paper_counts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores that reproduce paper 001's high-resolution counts: 74 positives (44 correct, 42 fakes fooled),
    364 negatives (319 correct, 209 fakes fooled)."""
    labels = np.r_[np.ones(74, int), np.zeros(364, int)]
    real = np.r_[np.full(44, 0.8), np.full(30, 0.3), np.full(319, 0.2), np.full(45, 0.7)]
    fake_pos = np.r_[np.full(42, 0.1), np.full(2, 0.9), np.full(30, 0.4)]  # fakes of positives: label 0
    fake_neg = np.r_[np.full(209, 0.95), np.full(110, 0.05), np.full(45, 0.6)]  # fakes of negatives: label 1
    return labels, real, np.r_[fake_pos, fake_neg]


def test_reproduces_paper_001_counts_and_text():
    labels, real, fake = _paper_counts()
    result = gan_attack_evaluation(labels, real, fake)
    assert (result.accuracy_positive.n, result.accuracy_positive.N) == (44, 74)
    assert (result.fooled_positive.n, result.fooled_positive.N) == (42, 44)
    assert (result.accuracy_negative.n, result.accuracy_negative.N) == (319, 364)
    assert (result.fooled_negative.n, result.fooled_negative.N) == (209, 319)
    assert (result.fooled_overall.n, result.fooled_overall.N) == (251, 363)
    table = result.table().set_index("row")
    assert (
        table.loc["Fooling rate, fakes of correctly classified positives (called negative)", "text"]
        == "42 out of 44 (95.5%)"
    )
    assert table.loc["Accuracy, real positives (threshold 0.5)", "text"] == "44 out of 74 (59.5%)"
    assert table.loc["Accuracy, real negatives (threshold 0.5)", "text"] == "319 out of 364 (87.6%)"
    assert (
        table.loc["Fooling rate, fakes of correctly classified negatives (called positive)", "text"]
        == "209 out of 319 (65.5%)"
    )
    overall = table.loc["Fooling rate, overall"]
    assert overall["text"] == "251 out of 363 (69.1%)"
    assert overall["ci_low"] < 251 / 363 < overall["ci_high"]
    assert len(table) == 7
    summary = result.summary()
    assert summary["fooling_rate_overall"] == pytest.approx(251 / 363)


def test_aucs_on_a_tiny_known_case():
    labels = np.array([1, 1, 1, 0, 0, 0])
    real = np.array([0.9, 0.4, 0.7, 0.6, 0.1, 0.2])  # 8 of 9 positive-negative pairs ordered: AUC 8/9
    fake = np.array([0.2, 0.3, 0.1, 0.8, 0.9, 0.7])  # fakes follow their flipped labels perfectly: AUC 1
    result = gan_attack_evaluation(labels, real, fake)
    assert result.auc_real[0] == pytest.approx(8 / 9)
    assert result.auc_adversarial[0] == pytest.approx(1.0)
    # correct: positives 0.9, 0.7 (2 of 3); negatives 0.1, 0.2 (2 of 3); their fakes are all fooled
    assert result.fooled_overall.n == result.fooled_overall.N == 4
    # the threshold is inclusive: a score of exactly 0.5 is positive
    at_half = gan_attack_evaluation(labels, np.array([0.5, 0.5, 0.5, 0.4, 0.4, 0.4]), fake)
    assert at_half.accuracy_positive.n == 3 and at_half.accuracy_negative.n == 3


def test_no_correct_cases_gives_nan_rate():
    labels = np.array([1, 1, 0, 0])
    result = gan_attack_evaluation(labels, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.6, 0.6, 0.6, 0.6]))
    assert result.fooled_positive.N == 0 and np.isnan(result.fooled_positive.value)
    assert result.fooled_negative.text == "2 out of 2 (100.0%)"


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="expected one of each per image"):
        gan_attack_evaluation([1, 1, 0, 0], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DataError, match="labels"):
        gan_attack_evaluation([2, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DataError, match="NaN"):
        gan_attack_evaluation([1, 1, 0, 0], [0.1, np.nan, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])


def test_load_fakes_follows_the_index(tmp_path):
    a, b = np.linspace(0, 1, 64).reshape(8, 8), np.full((8, 8), 0.25)
    save_png16(tmp_path / "data/adversarial/test/a.png", a)
    save_png16(tmp_path / "data/adversarial/test/b.png", b)
    index = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "split": "test",
            "source_label": [1, 0],
            "fake_label": [0, 1],
            "path": ["data/adversarial/test/a.png", "data/adversarial/test/b.png"],
            "mean_abs_change": 0.1,
        }
    )
    fakes = load_fakes(tmp_path, index, ["b", "a"], (8, 8))
    assert fakes.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(fakes[0, 0], b, atol=1e-4)
    np.testing.assert_allclose(fakes[1, 0], a, atol=1e-4)
    with pytest.raises(DataError, match="no fake for 1"):
        load_fakes(tmp_path, index, ["a", "zzz"], (8, 8))
