"""MedMNIST loader on tiny .npz files with MedMNIST's keys (BreastMNIST's 0 = malignant;
PneumoniaMNIST's 1 = pneumonia)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medadv import DataError
from medadv.data.images import load_split, read_image
from medadv.data.sources import load_cohort

MANIFESTS = Path(__file__).resolve().parents[1] / "data_manifests"


def _npz(path: Path, labels: dict[str, list[int]], size: int = 28) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, values in labels.items():
        n = len(values)
        arrays[f"{split}_images"] = (np.arange(n * size * size) % 256).astype(np.uint8).reshape(n, size, size)
        arrays[f"{split}_labels"] = np.array(values, np.uint8).reshape(n, 1)
    np.savez_compressed(path, **arrays)
    return path


def test_breastmnist_labels_and_split(tmp_path: Path) -> None:
    _npz(tmp_path / "breastmnist.npz", {"train": [0, 1, 1], "val": [1], "test": [0, 1]})
    cohort = load_cohort(MANIFESTS / "breastmnist.yaml", tmp_path)
    by_id = cohort.set_index("image_id")
    assert len(cohort) == 6
    # BreastMNIST 0 = malignant -> our positive label 1
    assert by_id.loc["breastmnist-train-0", "label"] == 1 and by_id.loc["breastmnist-train-1", "label"] == 0
    assert by_id.loc["breastmnist-train-0", "source_label"] == "0"
    assert sorted(cohort["split"].value_counts().items()) == [("test", 2), ("train", 3), ("val", 1)]
    assert by_id.loc["breastmnist-test-1", "path"] == "breastmnist.npz::test_images/1"
    assert (cohort["modality"] == "ultrasound").all() and (cohort["mask_path"] == "").all()


def test_npz_member_images_read(tmp_path: Path) -> None:
    path = _npz(tmp_path / "breastmnist.npz", {"train": [0, 1, 1], "val": [1], "test": [0, 1]})
    with np.load(path) as archive:
        expected = archive["train_images"][2] / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "breastmnist.npz::train_images/2"), expected, rtol=1e-6)
    cohort = load_cohort(MANIFESTS / "breastmnist.yaml", tmp_path)
    arrays = load_split(cohort, tmp_path, (28, 28), "train")
    assert arrays.images.shape == (3, 1, 28, 28)
    np.testing.assert_allclose(arrays.images[2, 0], expected, rtol=1e-6)
    assert list(arrays.labels) == [1, 0, 0] and not arrays.has_mask.any()
    with pytest.raises(DataError, match=r"index 9 out of range; array 'train_images' holds 3 images"):
        read_image(tmp_path / "breastmnist.npz::train_images/9")


def test_pneumoniamnist(tmp_path: Path) -> None:
    _npz(tmp_path / "pneumoniamnist.npz", {"train": [1, 0], "val": [0], "test": [1]}, size=64)
    cohort = load_cohort(MANIFESTS / "pneumoniamnist.yaml", tmp_path)
    assert list(cohort.set_index("image_id").loc[["pneumoniamnist-train-0", "pneumoniamnist-train-1"], "label"]) == [
        1,
        0,
    ]
    assert (cohort["modality"] == "xray").all()
    assert read_image(tmp_path / cohort["path"].iloc[0]).shape == (64, 64)


def test_unknown_medmnist_label(tmp_path: Path) -> None:
    _npz(tmp_path / "breastmnist.npz", {"train": [0, 2], "val": [1], "test": [0]})
    with pytest.raises(DataError, match=r"breastmnist\.npz \(train_labels\[1\]\): unknown label '2'"):
        load_cohort(MANIFESTS / "breastmnist.yaml", tmp_path)


def test_missing_npz_key(tmp_path: Path) -> None:
    path = tmp_path / "breastmnist.npz"
    np.savez(path, train_images=np.zeros((1, 28, 28), np.uint8), train_labels=np.zeros((1, 1), np.uint8))
    with pytest.raises(DataError, match=r"^\S*breastmnist\.npz: no array .val_images."):
        load_cohort(MANIFESTS / "breastmnist.yaml", tmp_path)


def test_a_truncated_or_foreign_npz_is_named(tmp_path: Path) -> None:
    path = _npz(tmp_path / "breastmnist.npz", {"train": [0, 1, 1], "val": [1], "test": [0, 1]})
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # a download cut short: numpy raises zipfile.BadZipFile
    with pytest.raises(DataError, match=r"breastmnist\.npz: not a readable \.npz archive \(the zip file is truncated"):
        load_cohort(MANIFESTS / "breastmnist.yaml", tmp_path)
    with pytest.raises(DataError, match=r"breastmnist\.npz: not a readable \.npz archive .*download it again"):
        read_image(tmp_path / "breastmnist.npz::train_images/0")
    path.write_bytes(b"<html>rate limited</html>")  # an error page saved in its place
    with pytest.raises(
        DataError,
        match=r"breastmnist\.npz: not a readable \.npz archive \(neither a zip archive nor a NumPy array file\)",
    ):
        load_cohort(MANIFESTS / "breastmnist.yaml", tmp_path)
