"""Worst-case robust accuracy over an ensemble, image by image, on hand-made and random per-image outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from medadv import DataError
from medadv.attacks.worst_case import (
    CLEAN,
    FOOLED_PREFIX,
    PER_IMAGE_COLUMNS,
    ROBUST,
    attack_accuracies,
    first_fooled,
    worst_case_accuracy,
)
from medadv.stats.accuracy import balanced_accuracy


def _table(
    correct: dict[str, list[bool]],
    labels: list[int],
    clean: list[bool],
    model: str = "m",
    norm: str = "linf",
    eps: float = 2 / 255,
) -> pd.DataFrame:
    rows = [
        {
            "model": model,
            "norm": norm,
            "eps": eps,
            "attack": attack,
            "image_id": f"i{k}",
            "label": labels[k],
            "clean_correct": clean[k],
            "correct": c,
        }
        for attack, values in correct.items()
        for k, c in enumerate(values)
    ]
    return pd.DataFrame(rows, columns=list(PER_IMAGE_COLUMNS))


def test_a_hand_made_ensemble():
    # six images (labels 0 0 0 0 1 1); image 5 wrong unattacked; pgd fools 1 and 2, square fools 2 and 3
    table = _table(
        {"pgd": [True, False, False, True, True, True], "square": [True, True, False, False, True, True]},
        labels=[0, 0, 0, 0, 1, 1],
        clean=[True, True, True, True, True, False],
    )
    worst = worst_case_accuracy(table, order=["pgd", "square"]).iloc[0]
    assert worst["worst_case_accuracy"] == pytest.approx(2 / 6)  # images 0 and 4
    assert worst["worst_case_balanced_accuracy"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert (worst["worst_case_sensitivity"], worst["worst_case_specificity"]) == pytest.approx((1 / 2, 1 / 4))
    assert worst["wrong_clean"] == pytest.approx(1 / 6)
    assert worst[FOOLED_PREFIX + "pgd"] == pytest.approx(2 / 6)  # 1 and 2
    assert worst[FOOLED_PREFIX + "square"] == pytest.approx(1 / 6)  # 3: square fooled 2 as well, but pgd first
    assert worst["attacks"] == "pgd+square" and worst["n_images"] == 6
    firsts = first_fooled(table, order=["square", "pgd"])
    assert firsts["first_fooled_by"].tolist() == [ROBUST, "pgd", "square", "square", ROBUST, CLEAN]
    assert firsts["robust"].tolist() == [True, False, False, False, True, False]
    own = attack_accuracies(table).set_index("attack")
    assert own.loc["pgd", "accuracy"] == pytest.approx(3 / 6)  # 0, 3, 4 (5 was wrong unattacked)
    assert own.loc["square", "balanced_accuracy"] == pytest.approx((2 / 4 + 1 / 2) / 2)


def test_a_constant_classifier_scores_half_in_balanced_accuracy():
    labels = np.array([0] * 7 + [1] * 3)
    always_negative = labels == 0
    assert balanced_accuracy(labels, always_negative) == 0.5
    assert always_negative.mean() == pytest.approx(0.7)  # its plain accuracy: the majority's share


def test_worst_case_is_never_above_any_single_attack_on_random_outcomes():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, k = int(rng.integers(2, 40)), int(rng.integers(1, 5))
        attacks = [f"a{j}" for j in range(k)]
        labels = [0, 1, *rng.integers(0, 2, n - 2).tolist()]  # both classes: balanced accuracy needs them
        clean = (rng.random(n) < 0.8).tolist()
        correct = {a: (rng.random(n) < rng.random()).tolist() for a in attacks}
        table = pd.concat([_table(correct, labels, clean, eps=e) for e in (1 / 255, 4 / 255)], ignore_index=True)
        order = list(rng.permutation(attacks))
        worst = worst_case_accuracy(table, order=order)
        own = attack_accuracies(table)
        for _, row in worst.iterrows():
            mine = own[np.isclose(own["eps"], row["eps"])]
            assert row["worst_case_accuracy"] <= mine["accuracy"].min() + 1e-12
            assert row["worst_case_balanced_accuracy"] <= mine["balanced_accuracy"].min() + 1e-12
            shares = row[[FOOLED_PREFIX + a for a in order]].sum()
            assert row["worst_case_accuracy"] + row["wrong_clean"] + shares == pytest.approx(1.0)
            # the rule itself: robust only if right unattacked and under every attack
            robust = np.array(clean) & np.all([correct[a] for a in attacks], axis=0)
            assert row["worst_case_accuracy"] == pytest.approx(robust.mean())


def test_bad_per_image_tables_are_named():
    table = _table({"pgd": [True, False], "square": [True, True]}, labels=[0, 1], clean=[True, True])
    with pytest.raises(DataError, match="lacks the column"):
        worst_case_accuracy(table.drop(columns="clean_correct"))
    with pytest.raises(DataError, match="repeat"):
        worst_case_accuracy(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(DataError, match=r"\['square'\] do not cover"):
        worst_case_accuracy(table.drop(index=3))
    with pytest.raises(DataError, match="more than one label"):
        worst_case_accuracy(table.assign(label=[0, 1, 1, 1]))
    with pytest.raises(DataError, match="missing: \\['square'\\]"):
        worst_case_accuracy(table, order=["pgd"])
    with pytest.raises(DataError, match="'correct' holds"):
        worst_case_accuracy(table.assign(correct=["yes", True, True, True]))
    with pytest.raises(DataError, match="no rows"):
        worst_case_accuracy(table.iloc[:0])
