"""Patient-level stratified splits and the leakage check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from medadv import ConfigError, DataError
from medadv.data.cohort import COHORT_COLUMNS
from medadv.data.splits import assign_splits, check_leakage, patient_labels


def _cohort(n_pos: int, n_neg: int, views: int = 2, split: str = "") -> pd.DataFrame:
    rows = []
    for i in range(n_pos + n_neg):
        label = int(i < n_pos)
        for v in range(views):
            rows.append(
                {
                    "image_id": f"p{i:04d}_{v}",
                    "patient_id": f"p{i:04d}",
                    "path": f"img/p{i}_{v}.png",
                    "label": label,
                    "mask_path": "",
                    "view": "CC" if v == 0 else "MLO",
                    "split": split,
                    "modality": "mammography",
                    "source_label": "x",
                }
            )
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))


def test_patient_level_stratified_80_10_10():
    cohort = _cohort(180, 420)
    out = assign_splits(cohort, (0.8, 0.1, 0.1), seed=1)
    assert out["split"].ne("").all()
    assert out.groupby("patient_id")["split"].nunique().max() == 1
    counts = check_leakage(out)
    assert {k: v["patients"] for k, v in counts.items()} == {"train": 480, "val": 60, "test": 60}
    assert {k: v["positive_patients"] for k, v in counts.items()} == {"train": 144, "val": 18, "test": 18}
    assert {k: v["images"] for k, v in counts.items()} == {"train": 960, "val": 120, "test": 120}
    assert out.drop(columns="split").equals(cohort.drop(columns="split"))  # nothing else touched


def test_patient_positive_if_any_image_is():
    cohort = _cohort(3, 3)
    cohort.loc[cohort["image_id"] == "p0005_1", "label"] = 1
    assert patient_labels(cohort).to_dict() == {"p0000": 1, "p0001": 1, "p0002": 1, "p0003": 0, "p0004": 0, "p0005": 1}


def test_seeded_and_order_free():
    cohort = _cohort(30, 70)
    a = assign_splits(cohort, (0.6, 0.2, 0.2), seed=3)
    b = assign_splits(cohort.sample(frac=1.0, random_state=0), (0.6, 0.2, 0.2), seed=3).loc[a.index]
    c = assign_splits(cohort, (0.6, 0.2, 0.2), seed=4)
    assert a["split"].equals(b["split"])
    assert not a["split"].equals(c["split"])


def test_small_cohort_gets_both_classes_in_every_split():
    out = assign_splits(_cohort(3, 7), (0.8, 0.1, 0.1), seed=0)
    for name, values in check_leakage(out).items():
        assert values["positive_patients"] >= 1 and values["negative_patients"] >= 1, name


@pytest.mark.parametrize(
    ("n_pos", "n_neg", "word"), [(2, 20, "2 positive"), (20, 1, "1 negative"), (0, 10, "0 positive")]
)
def test_impossible_split_is_a_clear_error(n_pos, n_neg, word):
    with pytest.raises(DataError, match=word):
        assign_splits(_cohort(n_pos, n_neg), seed=0)


def test_a_class_without_images_names_its_source_labels_and_the_manifests_label_map():
    """A data set's empty class folder was told to use 'a larger phantom cohort'."""
    with pytest.raises(DataError) as info:
        assign_splits(_cohort(0, 10), seed=0)
    assert "0 positive patient(s) (source labels: none)" in str(info.value)
    assert "the folders or rows its manifest's label_map maps to 1 (positive) hold images" in str(info.value)
    with pytest.raises(DataError, match=r"1 negative patient\(s\) \(source labels: \['x'\]\)"):
        assign_splits(_cohort(20, 1), seed=0)


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.0), (0.8, 0.1, 0.2), (0.9, 0.1)])
def test_bad_fractions(fractions):
    with pytest.raises(ConfigError, match="fractions"):
        assign_splits(_cohort(10, 10), fractions, seed=0)


def test_official_split_is_kept():
    cohort = _cohort(6, 6)
    official = np.array(["train", "val", "test"])[np.arange(12) % 3]
    cohort["split"] = np.repeat(official, 2)
    out = assign_splits(cohort, seed=0)
    assert out["split"].tolist() == cohort["split"].tolist()
    assert check_leakage(out)["val"]["patients"] == 4


def test_partly_filled_split_is_refused():
    cohort = _cohort(6, 6)
    cohort.loc[:3, "split"] = "train"
    with pytest.raises(DataError, match="4 of 24 images"):
        assign_splits(cohort, seed=0)


def test_leakage_is_refused_naming_the_patient():
    out = assign_splits(_cohort(10, 10), seed=0)
    row = out.index[(out["patient_id"] == "p0007") & (out["view"] == "MLO")][0]
    other = next(s for s in ("train", "val", "test") if s != out.at[row, "split"])
    out.at[row, "split"] = other
    with pytest.raises(DataError, match="p0007") as info:
        check_leakage(out)
    assert "1 patient" in str(info.value) and "p0006" not in str(info.value)


def test_leakage_check_wants_every_image_split_and_every_split_filled():
    with pytest.raises(DataError, match="no split"):
        check_leakage(_cohort(3, 3))
    with pytest.raises(DataError, match=r"split 'test' has 0 positive and 0 negative images; every split needs both"):
        check_leakage(
            _cohort(3, 3).assign(split=lambda d: np.where(d["patient_id"].isin(["p0000", "p0003"]), "val", "train"))
        )


def test_an_official_split_with_one_class_is_refused_at_the_split_not_in_training() -> None:
    cohort = _cohort(6, 6)
    cohort["split"] = np.repeat(np.array(["train", "val", "test"])[np.arange(12) % 3], 2)
    cohort.loc[(cohort["split"] == "test") & (cohort["label"] == 1), "label"] = 0  # a test CSV without a malignant row
    out = assign_splits(cohort, seed=0)
    with pytest.raises(DataError, match=r"split 'test' has 0 positive and 8 negative images.*'official_split: false'"):
        check_leakage(out)
    everyone_negative = cohort.assign(label=0, source_label="BENIGN")  # every label of an official split is 0
    with pytest.raises(DataError, match=r"the cohort has 0 positive patient\(s\) \(source labels: none\)\. For a data"):
        assign_splits(everyone_negative, seed=0)


def test_official_split_without_val_gets_val_carved_from_train() -> None:
    rows = []
    for p in range(50):
        split = "test" if p < 10 else "train"
        rows.append(
            {
                "image_id": f"i{p}",
                "patient_id": f"p{p:02d}",
                "path": f"{p}.png",
                "label": int(p % 3 == 0),
                "mask_path": "",
                "view": "CC",
                "split": split,
                "modality": "mammography",
                "source_label": "",
            }
        )
    cohort = pd.DataFrame(rows)
    out = assign_splits(cohort, (0.8, 0.1, 0.1), seed=1)
    assert (out.loc[out["split"] == "test", "patient_id"] == cohort.loc[cohort["split"] == "test", "patient_id"]).all()
    val = out[out["split"] == "val"]
    assert 4 <= len(val) <= 6 and set(val["label"]) == {0, 1}
    assert set(val["patient_id"]) <= set(cohort.loc[cohort["split"] == "train", "patient_id"])
    check_leakage(out)
