"""BUSI loader on a tiny tree in BUSI's real layout (Dataset_BUSI_with_GT/<class>/<class> (n).png + _mask[_k].png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from medadv.data.images import load_split, read_mask
from medadv.data.sources import load_cohort
from PIL import Image

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "busi.yaml"


def _save(path: Path, arr: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    (img.convert("RGB") if mode == "RGB" else img).save(path)


def _tree(root: Path) -> Path:
    base = root / "Dataset_BUSI_with_GT"
    rng = np.random.default_rng(0)
    for name, count in (("benign", 2), ("malignant", 1), ("normal", 1)):
        for i in range(1, count + 1):
            _save(base / name / f"{name} ({i}).png", rng.integers(0, 255, (16, 12), dtype=np.uint8), mode="RGB")
            _save(base / name / f"{name} ({i})_mask.png", np.zeros((16, 12), np.uint8))
    first = np.zeros((16, 12), np.uint8)
    first[2:5, 2:5] = 255
    second = np.zeros((16, 12), np.uint8)
    second[10:13, 6:9] = 255
    _save(base / "malignant" / "malignant (1)_mask.png", first)
    _save(base / "malignant" / "malignant (1)_mask_1.png", second)  # a second lesion of the same image
    return root


def test_busi_cohort(tmp_path: Path) -> None:
    root = _tree(tmp_path / "busi")
    cohort = load_cohort(MANIFEST, root)
    assert list(cohort["image_id"]) == ["benign_1", "benign_2", "malignant_1", "normal_1"]
    assert list(cohort["label"]) == [0, 0, 1, 0]
    assert list(cohort["source_label"]) == ["benign", "benign", "malignant", "normal"]
    assert (cohort["patient_id"] == cohort["image_id"]).all()
    assert (cohort["modality"] == "ultrasound").all() and (cohort["split"] == "").all()
    row = cohort.set_index("image_id").loc["malignant_1"]
    assert row["path"] == "Dataset_BUSI_with_GT/malignant/malignant (1).png"
    assert row["mask_path"] == (
        "union::Dataset_BUSI_with_GT/malignant/malignant (1)_mask.png|"
        "Dataset_BUSI_with_GT/malignant/malignant (1)_mask_1.png"
    )
    assert cohort.set_index("image_id").loc["normal_1", "mask_path"] == ""  # lesion-free class: no mask


def test_busi_masks_are_merged(tmp_path: Path) -> None:
    root = _tree(tmp_path / "busi")
    cohort = load_cohort(MANIFEST, root)
    mask_path = cohort.set_index("image_id").loc["malignant_1", "mask_path"]
    mask = read_mask(root / mask_path, (16, 12))
    assert mask.sum() == 18 and mask[3, 3] and mask[11, 7] and not mask[7, 7]
    arrays = load_split(cohort, root, (16, 12))
    assert arrays.images.shape == (4, 1, 16, 12) and arrays.images.dtype == np.float32
    assert 0.0 <= arrays.images.min() and arrays.images.max() <= 1.0
    assert list(arrays.has_mask) == [True, True, True, False]
    assert arrays.masks[2, 0].sum() == 18 and arrays.masks[0, 0].sum() == 0


def test_upper_case_png_is_kept_and_orphan_masks_are_named(tmp_path: Path, caplog) -> None:
    import logging

    import pytest
    from medadv import DataError

    root = _tree(tmp_path / "busi")
    base = root / "Dataset_BUSI_with_GT"
    _save(base / "benign" / "benign (3).PNG", np.zeros((16, 12), np.uint8))
    _save(base / "benign" / "benign (3)_mask.png", np.full((16, 12), 255, np.uint8))
    _save(base / "benign" / "benign (9)_mask.png", np.zeros((16, 12), np.uint8))  # its image is missing
    (base / "benign" / "notes.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="medadv.data.sources.busi"):
        cohort = load_cohort(MANIFEST, root)
    assert "benign_3" in set(cohort["image_id"]) and len(cohort) == 5
    assert cohort.set_index("image_id").at["benign_3", "path"] == "Dataset_BUSI_with_GT/benign/benign (3).PNG"
    assert "1 mask file(s) without their image, left out: ['benign (9)_mask.png']" in caplog.text
    assert "1 file(s) that are not PNG images, left out: ['notes.txt']" in caplog.text

    strict = tmp_path / "busi_strict.yaml"
    strict.write_text(MANIFEST.read_text().replace("strict: false", "strict: true"))
    with pytest.raises(DataError, match=r"benign: 1 mask file\(s\) without their image.*benign \(9\)_mask\.png"):
        load_cohort(strict, root)


def test_data_root_may_be_the_busi_folder_itself(tmp_path: Path, caplog) -> None:
    import logging

    outer = _tree(tmp_path / "busi")
    expected = load_cohort(MANIFEST, outer)
    inner = outer / "Dataset_BUSI_with_GT"
    with caplog.at_level(logging.INFO, logger="medadv.data.sources"):
        cohort = load_cohort(MANIFEST, inner)
    assert "is the data set's folder Dataset_BUSI_with_GT itself" in caplog.text
    assert list(cohort["image_id"]) == list(expected["image_id"])
    assert cohort["path"].iloc[0] == "benign/benign (1).png"
    renamed = inner.rename(tmp_path / "busi_download")  # found by its class folders under another name
    split = load_split(load_cohort(MANIFEST, renamed), renamed, (8, 8))
    assert split.images.shape == (4, 1, 8, 8) and split.has_mask.tolist() == [True, True, True, False]
