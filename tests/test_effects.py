"""Declared effects: the profile section, each statistic against hand-computed values, and a run folder recomputed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv.config import load_profile, profile_from_dict
from medadv.effects import (
    EFFECT_COLUMNS,
    Effect,
    SplitCounts,
    declared_effects,
    evaluate_effect,
    evaluate_effects,
    evaluate_run,
    newcombe_difference,
)
from medadv.errors import ConfigError, RunError

CURVES = pd.DataFrame(
    {
        "model": ["vgg_erm", "vgg_pgd_at", "vgg_erm_matched", "vgg_erm", "vgg_pgd_at"],
        "attack": ["pgd", "pgd", "pgd", "clean", "clean"],
        "eps": [0.00784314, 0.00784314, 0.00784314, 0.0, 0.0],  # as the tables write 2/255
        "accuracy": [0.1, 0.6, 0.25, 0.9, 0.85],
    }
)
PGD = {"attack": "pgd", "eps": 2 / 255}


def _effect(**kw) -> Effect:
    base = {
        "name": "e",
        "paper": "002",
        "claim": "c",
        "table": "robustness_curves",
        "column": "accuracy",
        "expected": ">",
        "rows": PGD,
    }
    return Effect(**(base | kw))


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_every_profile_declares_the_headline_effects(name: str) -> None:
    effects = declared_effects(load_profile(name))
    names = [e.name for e in effects]
    assert {"gan_fools_erm", "pgd_at_ahead_under_attack", "pgd_at_maps_align_better", "gradcam_map_moves"} <= set(names)
    by_name = {e.name: e for e in effects}
    assert by_name["gan_fools_erm"].paper_value == 0.691 and by_name["gan_fools_erm"].threshold == 0.6
    assert by_name["erm_auc_real"].paper_value == 0.82 and by_name["gan_adversarial_auc"].paper_value == 0.94
    assert by_name["pgd_at_ahead_under_attack"].reference[0] == "vgg_erm_matched"
    # the robustness effects read the worst case over the attack ensemble
    for effect in ("attacks_fool_erm", "pgd_at_keeps_accuracy", "pgd_at_ahead_under_attack", "rtda_ahead_under_attack"):
        assert by_name[effect].table == "robustness_worst_case"
        assert by_name[effect].column == "worst_case_balanced_accuracy"
    assert by_name["pgd_at_maps_align_better"].max_p == 0.01


def test_an_unknown_key_or_statistic_is_refused_by_name() -> None:
    raw = load_profile("smoke").to_dict()
    raw["effects"] = {
        "x": {
            "paper": "001",
            "claim": "c",
            "table": "t",
            "column": "v",
            "statistic": "value",
            "expected": ">",
            "treshold": 0.5,
        }
    }
    with pytest.raises(ConfigError, match="effects.x.*unknown keys \\['treshold'\\]"):
        declared_effects(profile_from_dict(raw))
    with pytest.raises(ConfigError, match="statistic is 'median'"):
        _effect(statistic="median")
    with pytest.raises(ConfigError, match="needs a reference"):
        _effect(statistic="proportion_difference")


def test_proportion_of_counts_has_the_exact_binomial_interval() -> None:
    table = pd.DataFrame({"row": ["Fooling rate, overall"], "value": [251 / 363], "n": [251], "N": [363]})
    e = _effect(
        table="gan_attack_table",
        rows={"row": "Fooling rate, overall"},
        column="value",
        statistic="proportion",
        count_column="n",
        total_column="N",
        expected=">=",
        threshold=0.6,
    )
    row = evaluate_effect(e, table, test=SplitCounts(400, 600), seed=0)
    assert row["value"] == pytest.approx(0.691460, abs=1e-6) and row["n"] == 363 and row["holds"] is True
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.641144, 0.738620), abs=1e-6)  # Clopper-Pearson
    assert row["expected"] == ">= 0.6"


def test_rate_of_the_test_images_and_a_wrong_denominator() -> None:
    e = _effect(statistic="proportion", model="vgg_erm", expected="<", threshold=0.2)
    row = evaluate_effect(e, CURVES, test=SplitCounts(8, 12), seed=0)
    assert row["value"] == pytest.approx(0.1) and row["n"] == 20 and row["holds"] is True
    with pytest.raises(ConfigError, match="not a rate of the run's 7 test images"):
        evaluate_effect(e, CURVES, test=SplitCounts(3, 4), seed=0)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Table II example (e): 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
    d, low, high = newcombe_difference(56, 70, 48, 80)
    assert (d, low, high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_difference_uses_the_matched_twin_when_present_else_erm() -> None:
    e = _effect(statistic="proportion_difference", model="vgg_pgd_at", reference=("vgg_erm_matched", "vgg_erm"))
    row = evaluate_effect(e, CURVES, test=SplitCounts(8, 12), seed=0)
    assert row["reference"] == "vgg_erm_matched" and row["value"] == pytest.approx(0.35)
    assert row["ci_low"] == pytest.approx(newcombe_difference(12, 20, 5, 20)[1])
    assert "vs vgg_erm_matched" in row["reads"] and row["note"] == ""
    row = evaluate_effect(e, CURVES[CURVES["model"] != "vgg_erm_matched"], test=SplitCounts(8, 12), seed=0)
    assert row["reference"] == "vgg_erm" and row["value"] == pytest.approx(0.5)
    # the fall-back is said (notebook 04 explains no vgg_erm_matched, so the map effects read vgg_erm)
    assert row["note"] == "reference vgg_erm: vgg_erm_matched, declared first, is not in robustness_curves"


def test_an_absent_model_is_reported_not_dropped() -> None:
    e = _effect(statistic="proportion", model="vgg_rtda")
    table = evaluate_effects([e], {"robustness_curves": CURVES}, test=SplitCounts(8, 12), seed=0)
    assert list(table.columns) == list(EFFECT_COLUMNS)
    assert math.isnan(table.loc[0, "value"]) and pd.isna(table.loc[0, "holds"])
    assert table.loc[0, "note"] == "not evaluated: vgg_rtda not in robustness_curves"


def test_value_needs_exactly_one_row_and_known_columns() -> None:
    e = _effect(statistic="value", rows={"attack": "pgd"})
    with pytest.raises(ConfigError, match="select 3 rows"):
        evaluate_effect(e, CURVES.assign(ci_low=0.0, ci_high=1.0), test=SplitCounts(8, 12), seed=0)
    with pytest.raises(ConfigError, match="no column\\(s\\) \\['norm'\\]"):
        evaluate_effect(_effect(statistic="value", rows={"norm": "linf"}), CURVES, test=SplitCounts(8, 12), seed=0)


def _paired_scores() -> pd.DataFrame:
    ref = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    diff = np.array([0.05, 0.1, -0.02, 0.2, 0.15, 0.3, 0.25, 0.01])
    ids = [f"i{k}" for k in range(8)]
    return pd.DataFrame(
        {
            "image_id": ids * 2,
            "model": ["vgg_erm"] * 8 + ["vgg_pgd_at"] * 8,
            "metric": "rma",
            "score": np.concatenate([ref, ref + diff]),
        }
    )


def test_rank_biserial_needs_the_declared_p() -> None:
    e = _effect(
        table="alignment_scores",
        rows={"metric": "rma"},
        column="score",
        statistic="rank_biserial",
        pair_on=("image_id",),
        model="vgg_pgd_at",
        reference=("vgg_erm",),
        threshold=0.0,
        max_p=0.01,
    )
    row = evaluate_effect(e, _paired_scores(), test=SplitCounts(0, 0), seed=0)
    # ranks of |d|: 0.01->1, 0.02->2 (negative), 0.05->3, 0.1->4, 0.15->5, 0.2->6, 0.25->7, 0.3->8; T- = 2, T+ = 34
    assert row["value"] == pytest.approx((34 - 2) / 36)
    assert row["p_value"] == pytest.approx(2 * 3 / 256)  # exact: 3 of 256 sign patterns have T- <= 2, two-sided
    assert row["p_value"] > 0.01 and row["holds"] is False and row["n"] == 8
    assert row["ci_low"] < row["value"] <= row["ci_high"] <= 1.0 and row["note"] == ""
    # a data set without lesion masks: every alignment score is NaN, and the effect says it was not evaluated
    row = evaluate_effect(e, _paired_scores().assign(score=np.nan), test=SplitCounts(0, 0), seed=0)
    assert row["holds"] is None and np.isnan(row["value"])
    assert row["note"] == "not evaluated: no finite score in the rows it reads of alignment_scores"


def test_paired_mean_difference_and_mean_of_flags() -> None:
    cells = pd.DataFrame(
        {"model": ["a"] * 3 + ["b"] * 3, "corruption": ["x", "y", "z"] * 2, "accuracy": [0.8, 0.7, 0.6, 0.7, 0.7, 0.4]}
    )
    e = _effect(
        table="corruption_accuracy",
        rows={},
        statistic="paired_mean_difference",
        pair_on=("corruption",),
        model="a",
        reference=("b",),
    )
    row = evaluate_effect(e, cells, test=SplitCounts(0, 0), seed=0)
    assert row["value"] == pytest.approx(0.1) and row["n"] == 3 and row["holds"] is True
    assert 0.0 <= row["ci_low"] <= 0.1 <= row["ci_high"] <= 0.2
    flags = pd.DataFrame({"model": "m", "label_kept": [True] * 9 + [False]})
    e = _effect(
        table="explanation_attack",
        rows={},
        column="label_kept",
        statistic="mean",
        model="m",
        expected=">=",
        threshold=0.8,
    )
    row = evaluate_effect(e, flags, test=SplitCounts(0, 0), seed=0)
    assert row["value"] == pytest.approx(0.9) and row["ci_method"].startswith("exact binomial")


def test_evaluate_run_reads_the_folder_and_names_a_missing_table(tmp_path: Path) -> None:
    raw = load_profile("smoke").to_dict()
    raw["effects"] = {"attacks_fool_erm": raw["effects"]["attacks_fool_erm"]}
    (tmp_path / "tables").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"profile": raw}))
    pd.DataFrame({"split": ["train"] * 5 + ["test"] * 20, "label": [0] * 5 + [1] * 8 + [0] * 12}).to_csv(
        tmp_path / "cohort.csv", index=False
    )
    with pytest.raises(RunError, match="robustness_worst_case.csv is missing"):
        evaluate_run(tmp_path)
    WORST.to_csv(tmp_path / "tables" / "robustness_worst_case.csv", index=False)
    with pytest.raises(RunError, match="classifier_metrics.csv is missing"):
        evaluate_run(tmp_path)
    _metrics(vgg_erm=(0.9, False)).to_csv(tmp_path / "tables" / "classifier_metrics.csv", index=False)
    with pytest.raises(RunError, match="attack_sanity.csv is missing: .* run notebook 03_attack_evaluation"):
        evaluate_run(tmp_path)  # the masking checks qualify every robustness effect: no silent pass without them
    _sanity(vgg_erm=()).to_csv(tmp_path / "tables" / "attack_sanity.csv", index=False)
    table = evaluate_run(tmp_path)
    assert table["effect"].tolist() == ["attacks_fool_erm"] and table.loc[0, "value"] == pytest.approx(0.1875)
    assert bool(table.loc[0, "holds"]) is True and table.loc[0, "n"] == 20 and bool(table.loc[0, "interpretable"])
    assert bool(table.loc[0, "masking_suspected"]) is False and table.loc[0, "masking"] == ""


#: Robustness curves with per-class rates of 8 positives and 12 negatives; vgg_pgd_at is a constant classifier (it
#: calls every image negative), which keeps 60% plain accuracy under any attack and 0.5 balanced accuracy.
BALANCED = pd.DataFrame(
    {
        "model": ["vgg_erm", "vgg_pgd_at", "vgg_erm"],
        "attack": ["pgd", "pgd", "clean"],
        "norm": "linf",
        "eps": [0.00784314, 0.00784314, 0.0],
        "sensitivity": [0.125, 0.0, 0.875],
        "specificity": [0.25, 1.0, 0.75],
    }
).assign(
    accuracy=lambda t: (8 * t.sensitivity + 12 * t.specificity) / 20,
    balanced_accuracy=lambda t: (t.sensitivity + t.specificity) / 2,
)


#: The worst case over an ensemble, with the per-class rates its balanced accuracy is the mean of (8 positives, 12
#: negatives); vgg_erm keeps 1 of 8 and 3 of 12.
WORST = pd.DataFrame(
    {
        "model": ["vgg_erm", "vgg_pgd_at"],
        "norm": "linf",
        "eps": 0.00784314,
        "n_images": 20,
        "attacks": "pgd+square",
        "worst_case_sensitivity": [0.125, 0.5],
        "worst_case_specificity": [0.25, 0.75],
    }
).assign(
    worst_case_accuracy=lambda t: (8 * t.worst_case_sensitivity + 12 * t.worst_case_specificity) / 20,
    worst_case_balanced_accuracy=lambda t: (t.worst_case_sensitivity + t.worst_case_specificity) / 2,
)
CHECKS = (
    "a_large_budget",
    "a_unbounded",
    "b_iterative_vs_one_step",
    "c_white_box_vs_black_box",
    "d_steps_and_restarts",
    "e_monotone_in_budget",
)


def _sanity(**failed: tuple[str, ...]) -> pd.DataFrame:
    """attack_sanity rows: model -> the checks it fails (it passes the others)."""
    return pd.DataFrame(
        [
            {"model": model, "check": check, "value": 0.0, "passes": check not in fails, "meaning": "hand-made"}
            for model, fails in failed.items()
            for check in CHECKS
        ]
    )


def _metrics(**models: tuple[float, bool]) -> pd.DataFrame:
    """classifier_metrics rows with competence columns: model -> (validation AUC, degenerate); gate 0.8; the first
    model is the reference."""
    rows = []
    for k, (model, (val_auc, degenerate)) in enumerate(models.items()):
        for split in ("val", "test"):
            rows.append(
                {
                    "model": model,
                    "split": split,
                    "auc": val_auc,
                    "best_val_auc": val_auc,
                    "min_val_auc": 0.8,
                    "passes_gate": val_auc >= 0.8,
                    "degenerate": degenerate,
                    "predicted_positive_rate": 0.0 if degenerate else 0.4,
                    "competent": val_auc >= 0.8 and not degenerate,
                    "reference": k == 0,
                }
            )
    return pd.DataFrame(rows)


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    return centre - half, centre + half


def test_balanced_accuracy_and_its_difference_by_hand() -> None:
    e = _effect(statistic="balanced_accuracy", column="balanced_accuracy", model="vgg_erm", expected="<", threshold=0.2)
    row = evaluate_effect(e, BALANCED, test=SplitCounts(8, 12), seed=0)
    (l1, u1), (l2, u2) = _wilson(1, 8), _wilson(3, 12)
    value = (1 / 8 + 3 / 12) / 2
    assert row["value"] == pytest.approx(value) and row["holds"] is True
    assert row["ci_low"] == pytest.approx(value - math.hypot(1 / 8 - l1, 3 / 12 - l2) / 2)
    assert row["ci_high"] == pytest.approx(value + math.hypot(u1 - 1 / 8, u2 - 3 / 12) / 2)
    d = _effect(
        statistic="balanced_accuracy_difference", column="balanced_accuracy", model="vgg_pgd_at", reference=("vgg_erm",)
    )
    row = evaluate_effect(d, BALANCED, test=SplitCounts(8, 12), seed=0)
    assert row["value"] == pytest.approx(0.5 - value)
    with pytest.raises(ConfigError, match="is not the mean of sensitivity"):
        evaluate_effect(e, BALANCED.assign(balanced_accuracy=0.3), test=SplitCounts(8, 12), seed=0)
    with pytest.raises(ConfigError, match=r"no column\(s\) \['sensitivity', 'specificity'\]"):
        evaluate_effect(e, CURVES.assign(norm="linf", balanced_accuracy=0.5), test=SplitCounts(8, 12), seed=0)


def test_a_constant_classifier_cannot_hold_an_accuracy_effect_and_its_effects_are_not_interpretable() -> None:
    keeps = _effect(
        statistic="balanced_accuracy",
        column="balanced_accuracy",
        model="vgg_pgd_at",
        expected=">",
        threshold=0.5,
        name="keeps",
    )
    plain = _effect(
        statistic="proportion", column="accuracy", model="vgg_pgd_at", expected=">=", threshold=0.5, name="plain"
    )
    ahead = _effect(
        statistic="balanced_accuracy_difference",
        column="balanced_accuracy",
        model="vgg_pgd_at",
        reference=("vgg_erm",),
        name="ahead",
    )
    gan = _effect(table="gan_attack_table", rows={"row": "AUC"}, column="value", statistic="value", name="gan")
    tables = {
        "robustness_curves": BALANCED,
        "gan_attack_table": pd.DataFrame({"row": ["AUC"], "value": [0.6], "ci_low": [0.5], "ci_high": [0.7]}),
    }
    metrics = _metrics(vgg_erm=(0.7, False), vgg_pgd_at=(0.85, True))
    table = evaluate_effects([keeps, plain, ahead, gan], tables, SplitCounts(8, 12), 0, metrics).set_index("effect")
    assert bool(table.loc["plain", "holds"]) is True  # what plain accuracy let a constant classifier claim
    assert bool(table.loc["keeps", "holds"]) is False  # balanced accuracy 0.5 is not above 0.5
    assert bool(table.loc["ahead", "holds"]) is True  # a constant model "ahead" of a fooled one ...
    assert not table["interpretable"].any()  # ... is flagged, and so is everything that reads the weak reference
    assert "vgg_pgd_at degenerate" in table.loc["keeps", "competence"]
    assert "vgg_erm below the competence gate (validation AUC 0.700 < 0.8)" in table.loc["ahead", "competence"]
    assert table.loc["gan", "competence"].startswith("vgg_erm below")  # Table 1 reads the reference classifier
    fine = evaluate_effects(
        [keeps, gan], tables, SplitCounts(8, 12), 0, _metrics(vgg_erm=(0.9, False), vgg_pgd_at=(0.9, False))
    )
    assert fine["interpretable"].all() and (fine["competence"] == "").all()


def test_an_effect_that_reads_a_masked_model_carries_masking_suspected() -> None:
    worst = _effect(
        table="robustness_worst_case",
        rows={"norm": "linf", "eps": 2 / 255},
        column="worst_case_balanced_accuracy",
        statistic="balanced_accuracy",
        model="vgg_erm",
        expected="<",
        threshold=0.2,
        name="worst",
    )
    ahead = _effect(
        table="robustness_worst_case",
        rows={"norm": "linf", "eps": 2 / 255},
        column="worst_case_balanced_accuracy",
        statistic="balanced_accuracy_difference",
        model="vgg_pgd_at",
        reference=("vgg_erm",),
        name="ahead",
    )
    curve = _effect(statistic="balanced_accuracy", column="balanced_accuracy", model="vgg_pgd_at", name="curve")
    gan = _effect(table="gan_attack_table", rows={"row": "AUC"}, column="value", statistic="value", name="gan")
    tables = {
        "robustness_worst_case": WORST,
        "robustness_curves": BALANCED,
        "gan_attack_table": pd.DataFrame({"row": ["AUC"], "value": [0.6], "ci_low": [0.5], "ci_high": [0.7]}),
    }
    sanity = _sanity(vgg_erm=(), vgg_pgd_at=("c_white_box_vs_black_box", "e_monotone_in_budget"))
    table = evaluate_effects([worst, ahead, curve, gan], tables, SplitCounts(8, 12), 0, sanity=sanity)
    table = table.set_index("effect")
    assert list(table.reset_index().columns) == list(EFFECT_COLUMNS)
    # the worst case's balanced accuracy from its own per-class rates: (1/8 + 3/12) / 2
    assert table.loc["worst", "value"] == pytest.approx((1 / 8 + 3 / 12) / 2)
    assert bool(table.loc["worst", "masking_suspected"]) is False and table.loc["worst", "masking"] == ""
    for name in ("ahead", "curve"):  # vgg_pgd_at read as the model (ahead) or alone (curve): flagged either way
        assert bool(table.loc[name, "masking_suspected"]) is True
        assert table.loc[name, "masking"] == "vgg_pgd_at failed c_white_box_vs_black_box+e_monotone_in_budget"
    assert (
        pd.isna(table.loc["gan", "masking_suspected"]) and table.loc["gan", "masking"] == ""
    )  # not a robustness table
    # the reference's failures count too
    flipped = evaluate_effects(
        [ahead], tables, SplitCounts(8, 12), 0, sanity=_sanity(vgg_erm=("a_unbounded",), vgg_pgd_at=())
    ).iloc[0]
    assert bool(flipped["masking_suspected"]) is True and flipped["masking"] == "vgg_erm failed a_unbounded"
    unchecked = evaluate_effects([worst], tables, SplitCounts(8, 12), 0).iloc[0]
    assert pd.isna(unchecked["masking_suspected"]) and unchecked["masking"] == "not checked: no attack_sanity table"
