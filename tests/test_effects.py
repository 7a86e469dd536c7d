"""Declared effects: the profile section, each statistic against hand-computed values, and a run folder recomputed."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medadv.config import load_profile, profile_from_dict
from medadv.effects import (EFFECT_COLUMNS, Effect, declared_effects, evaluate_effect, evaluate_effects, evaluate_run,
                            newcombe_difference)
from medadv.errors import ConfigError, RunError

CURVES = pd.DataFrame({
    "model": ["vgg_erm", "vgg_pgd_at", "vgg_erm_matched", "vgg_erm", "vgg_pgd_at"],
    "attack": ["pgd", "pgd", "pgd", "clean", "clean"],
    "eps": [0.00784314, 0.00784314, 0.00784314, 0.0, 0.0],  # as the tables write 2/255
    "accuracy": [0.1, 0.6, 0.25, 0.9, 0.85],
})
PGD = {"attack": "pgd", "eps": 2 / 255}


def _effect(**kw) -> Effect:
    base = {"name": "e", "paper": "002", "claim": "c", "table": "robustness_curves", "column": "accuracy",
            "expected": ">", "rows": PGD}
    return Effect(**(base | kw))


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_every_profile_declares_the_headline_effects(name: str) -> None:
    effects = declared_effects(load_profile(name))
    names = [e.name for e in effects]
    assert {"gan_fools_erm", "pgd_at_ahead_under_pgd", "pgd_at_maps_align_better", "gradcam_map_moves"} <= set(names)
    by_name = {e.name: e for e in effects}
    assert by_name["gan_fools_erm"].paper_value == 0.691 and by_name["gan_fools_erm"].threshold == 0.6
    assert by_name["erm_auc_real"].paper_value == 0.82 and by_name["gan_adversarial_auc"].paper_value == 0.94
    assert by_name["pgd_at_ahead_under_pgd"].reference[0] == "vgg_erm_matched"
    assert by_name["pgd_at_maps_align_better"].max_p == 0.01


def test_an_unknown_key_or_statistic_is_refused_by_name() -> None:
    raw = load_profile("smoke").to_dict()
    raw["effects"] = {"x": {"paper": "001", "claim": "c", "table": "t", "column": "v", "statistic": "value",
                            "expected": ">", "treshold": 0.5}}
    with pytest.raises(ConfigError, match="effects.x.*unknown keys \\['treshold'\\]"):
        declared_effects(profile_from_dict(raw))
    with pytest.raises(ConfigError, match="statistic is 'median'"):
        _effect(statistic="median")
    with pytest.raises(ConfigError, match="needs a reference"):
        _effect(statistic="proportion_difference")


def test_proportion_of_counts_has_the_exact_binomial_interval() -> None:
    table = pd.DataFrame({"row": ["Fooling rate, overall"], "value": [251 / 363], "n": [251], "N": [363]})
    e = _effect(table="gan_attack_table", rows={"row": "Fooling rate, overall"}, column="value",
                statistic="proportion", count_column="n", total_column="N", expected=">=", threshold=0.6)
    row = evaluate_effect(e, table, n_test=1000, seed=0)
    assert row["value"] == pytest.approx(0.691460, abs=1e-6) and row["n"] == 363 and row["holds"] is True
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.641144, 0.738620), abs=1e-6)  # Clopper-Pearson
    assert row["expected"] == ">= 0.6"


def test_rate_of_the_test_images_and_a_wrong_denominator() -> None:
    e = _effect(statistic="proportion", model="vgg_erm", expected="<", threshold=0.2)
    row = evaluate_effect(e, CURVES, n_test=20, seed=0)
    assert row["value"] == pytest.approx(0.1) and row["n"] == 20 and row["holds"] is True
    with pytest.raises(ConfigError, match="not a rate of the run's 7 test images"):
        evaluate_effect(e, CURVES, n_test=7, seed=0)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Table II example (e): 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
    d, low, high = newcombe_difference(56, 70, 48, 80)
    assert (d, low, high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_difference_uses_the_matched_twin_when_present_else_erm() -> None:
    e = _effect(statistic="proportion_difference", model="vgg_pgd_at", reference=("vgg_erm_matched", "vgg_erm"))
    row = evaluate_effect(e, CURVES, n_test=20, seed=0)
    assert row["reference"] == "vgg_erm_matched" and row["value"] == pytest.approx(0.35)
    assert row["ci_low"] == pytest.approx(newcombe_difference(12, 20, 5, 20)[1])
    assert "vs vgg_erm_matched" in row["reads"]
    row = evaluate_effect(e, CURVES[CURVES["model"] != "vgg_erm_matched"], n_test=20, seed=0)
    assert row["reference"] == "vgg_erm" and row["value"] == pytest.approx(0.5)


def test_an_absent_model_is_reported_not_dropped() -> None:
    e = _effect(statistic="proportion", model="vgg_rtda")
    table = evaluate_effects([e], {"robustness_curves": CURVES}, n_test=20, seed=0)
    assert list(table.columns) == list(EFFECT_COLUMNS)
    assert math.isnan(table.loc[0, "value"]) and pd.isna(table.loc[0, "holds"])
    assert table.loc[0, "note"] == "not evaluated: vgg_rtda not in robustness_curves"


def test_value_needs_exactly_one_row_and_known_columns() -> None:
    e = _effect(statistic="value", rows={"attack": "pgd"})
    with pytest.raises(ConfigError, match="select 3 rows"):
        evaluate_effect(e, CURVES.assign(ci_low=0.0, ci_high=1.0), n_test=20, seed=0)
    with pytest.raises(ConfigError, match="no column\\(s\\) \\['norm'\\]"):
        evaluate_effect(_effect(statistic="value", rows={"norm": "linf"}), CURVES, n_test=20, seed=0)


def _paired_scores() -> pd.DataFrame:
    ref = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    diff = np.array([0.05, 0.1, -0.02, 0.2, 0.15, 0.3, 0.25, 0.01])
    ids = [f"i{k}" for k in range(8)]
    return pd.DataFrame({"image_id": ids * 2, "model": ["vgg_erm"] * 8 + ["vgg_pgd_at"] * 8,
                         "metric": "rma", "score": np.concatenate([ref, ref + diff])})


def test_rank_biserial_needs_the_declared_p() -> None:
    e = _effect(table="alignment_scores", rows={"metric": "rma"}, column="score", statistic="rank_biserial",
                pair_on=("image_id",), model="vgg_pgd_at", reference=("vgg_erm",), threshold=0.0, max_p=0.01)
    row = evaluate_effect(e, _paired_scores(), n_test=0, seed=0)
    # ranks of |d|: 0.01->1, 0.02->2 (negative), 0.05->3, 0.1->4, 0.15->5, 0.2->6, 0.25->7, 0.3->8; T- = 2, T+ = 34
    assert row["value"] == pytest.approx((34 - 2) / 36)
    assert row["p_value"] == pytest.approx(2 * 3 / 256)  # exact: 3 of 256 sign patterns have T- <= 2, two-sided
    assert row["p_value"] > 0.01 and row["holds"] is False and row["n"] == 8
    assert row["ci_low"] < row["value"] <= row["ci_high"] <= 1.0


def test_paired_mean_difference_and_mean_of_flags() -> None:
    cells = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "corruption": ["x", "y", "z"] * 2,
                          "accuracy": [0.8, 0.7, 0.6, 0.7, 0.7, 0.4]})
    e = _effect(table="corruption_accuracy", rows={}, statistic="paired_mean_difference", pair_on=("corruption",),
                model="a", reference=("b",))
    row = evaluate_effect(e, cells, n_test=0, seed=0)
    assert row["value"] == pytest.approx(0.1) and row["n"] == 3 and row["holds"] is True
    assert 0.0 <= row["ci_low"] <= 0.1 <= row["ci_high"] <= 0.2
    flags = pd.DataFrame({"model": "m", "label_kept": [True] * 9 + [False]})
    e = _effect(table="explanation_attack", rows={}, column="label_kept", statistic="mean", model="m",
                expected=">=", threshold=0.8)
    row = evaluate_effect(e, flags, n_test=0, seed=0)
    assert row["value"] == pytest.approx(0.9) and row["ci_method"].startswith("exact binomial")


def test_evaluate_run_reads_the_folder_and_names_a_missing_table(tmp_path: Path) -> None:
    raw = load_profile("smoke").to_dict()
    raw["effects"] = {"pgd_fools_erm": raw["effects"]["pgd_fools_erm"]}
    (tmp_path / "tables").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"profile": raw}))
    pd.DataFrame({"split": ["train"] * 5 + ["test"] * 20}).to_csv(tmp_path / "cohort.csv", index=False)
    with pytest.raises(RunError, match="robustness_curves.csv is missing"):
        evaluate_run(tmp_path)
    CURVES.assign(norm="linf").to_csv(tmp_path / "tables" / "robustness_curves.csv", index=False)
    table = evaluate_run(tmp_path)
    assert table["effect"].tolist() == ["pgd_fools_erm"] and table.loc[0, "value"] == pytest.approx(0.1)
    assert bool(table.loc[0, "holds"]) is True and table.loc[0, "n"] == 20
