"""The adversarial set and education triplets of notebook 02: files, the index contract, and the flip rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from medadv.attacks.gan_attack import flip_rate
from medadv.data.adversarial import (
    ADVERSARIAL_COLUMNS,
    EDUCATION_COLUMNS,
    difference_image,
    read_adversarial_index,
    validate_adversarial_index,
    write_adversarial_set,
    write_education_set,
)
from medadv.data.images import read_image
from medadv.errors import DataError, RunError
from medadv.layout import RunLayout
from medadv.report import write_csv
from torch import nn


def cohort_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["p1_CC", "p1_MLO", "p2_CC", "p3 CC", "p4_CC"],
            "split": ["val", "val", "test", "test", "train"],
            "label": [1, 1, 0, 0, 1],
        }
    )


def test_adversarial_set_files_and_index(tmp_path) -> None:
    cohort = cohort_rows()
    rows = cohort[cohort["split"] != "train"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    real = rng.random((4, 1, 8, 8)).astype(np.float32)
    fake = np.clip(real + 0.1, 0, 1).astype(np.float32)
    index, paths = write_adversarial_set(RunLayout(tmp_path), rows, real, fake)
    assert tuple(index.columns) == ADVERSARIAL_COLUMNS
    assert list(index["fake_label"]) == [0, 0, 1, 1] and list(index["source_label"]) == [1, 1, 0, 0]
    assert index.loc[3, "path"] == "data/adversarial/test/p3_CC.png"  # file-name safe
    assert len(paths) == 4 and all(p.is_file() for p in paths)
    back = read_image(tmp_path / index.loc[0, "path"])
    np.testing.assert_allclose(back, fake[0, 0], atol=1 / 65535)  # 16 bits kept
    np.testing.assert_allclose(index["mean_abs_change"], np.abs(fake - real).mean(axis=(1, 2, 3)), atol=1e-5)
    validate_adversarial_index(index, cohort)
    with pytest.raises(DataError, match="missing"):
        validate_adversarial_index(index.iloc[:3], cohort)
    flipped_wrong = index.assign(fake_label=index["source_label"])
    with pytest.raises(DataError, match="not flipped"):
        validate_adversarial_index(flipped_wrong, cohort)
    with pytest.raises(DataError, match="columns"):
        validate_adversarial_index(index.drop(columns="path"), cohort)


def test_adversarial_index_is_read_back_as_written(tmp_path) -> None:
    cohort = cohort_rows().assign(image_id=["007", "7", "0.50", "NA", "p4_CC"])  # ids pandas would turn into numbers
    rows = cohort[cohort["split"] != "train"].reset_index(drop=True)
    real = np.full((4, 1, 4, 4), 0.25, np.float32)
    index, _ = write_adversarial_set(RunLayout(tmp_path), rows, real, real + 0.5)
    with pytest.raises(RunError, match="02_gan_training"):
        read_adversarial_index(RunLayout(tmp_path).adversarial_index)
    (tmp_path / "tables").mkdir()
    write_csv(index, tmp_path / "tables" / "adversarial_index.csv")
    back = read_adversarial_index(RunLayout(tmp_path).adversarial_index)
    assert back["image_id"].tolist() == ["007", "7", "0.50", "NA"]
    assert back["path"].tolist() == index["path"].tolist() and back["fake_label"].tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(back["mean_abs_change"], index["mean_abs_change"], rtol=1e-5)  # %.6g in the CSV
    validate_adversarial_index(back, cohort)
    assert read_adversarial_index(RunLayout(tmp_path).adversarial_index, cohort).equals(
        back
    )  # read and checked in one call
    with pytest.raises(DataError, match="not flipped"):
        read_adversarial_index(RunLayout(tmp_path).adversarial_index, cohort.assign(label=1 - cohort["label"]))


def test_adversarial_set_is_byte_identical(tmp_path) -> None:
    rows = cohort_rows().iloc[:2]
    real = np.full((2, 1, 4, 4), 0.3, np.float32)
    fake = np.full((2, 1, 4, 4), 0.6, np.float32)
    _, a = write_adversarial_set(RunLayout(tmp_path / "a"), rows, real, fake)
    _, b = write_adversarial_set(RunLayout(tmp_path / "b"), rows, real, fake)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    with pytest.raises(DataError, match="one real and one fake"):
        write_adversarial_set(RunLayout(tmp_path), rows, real, fake[:1])


def test_education_triplets(tmp_path) -> None:
    real = np.zeros((2, 1, 4, 4), np.float32)
    fake = real.copy()
    fake[0, 0, 1, 1] = 0.5
    index, paths = write_education_set(RunLayout(tmp_path), ["a", "b"], real, fake)
    assert tuple(index.columns) == EDUCATION_COLUMNS and len(paths) == 6
    diff = read_image(tmp_path / index.loc[0, "diff_path"])
    assert diff[1, 1] == pytest.approx(0.0, abs=1e-4) and diff[0, 0] == pytest.approx(0.5, abs=1e-4)
    assert read_image(tmp_path / index.loc[1, "diff_path"]) == pytest.approx(np.full((4, 4), 0.5), abs=1e-4)
    np.testing.assert_allclose(difference_image(np.array([0.2, 0.4]), np.array([0.4, 0.4])), [0.0, 0.5])


class _Brightness(nn.Module):
    """Positive when the mean pixel exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1)


def test_flip_rate_counts_correct_images_only() -> None:
    labels = np.array([1, 1, 0, 0, 0])
    real = np.array([0.9, 0.2, 0.1, 0.1, 0.1], np.float32).reshape(5, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    fake = np.array([0.1, 0.9, 0.9, 0.2, 0.9], np.float32).reshape(5, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    out = flip_rate(_Brightness(), real, fake, labels, torch.device("cpu")).set_index("source_label")
    assert out.loc["1", "n_correct"] == 1 and out.loc["1", "flip_rate"] == 1.0  # image 2 was misclassified
    assert out.loc["0", "n_correct"] == 3 and out.loc["0", "flip_rate"] == pytest.approx(2 / 3)
    assert out.loc["all", "n_flipped"] == 3 and out.loc["all", "flip_rate"] == pytest.approx(3 / 4)
