"""FracAtlas loader on a tiny tree in FracAtlas's real layout (images/<class>/*.jpg, dataset.csv, COCO JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from medadv import DataError
from medadv.data.images import load_split, read_mask
from medadv.data.sources import load_cohort
from PIL import Image

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "fracatlas.yaml"
CSV_HEADER = (
    "image_id,hand,leg,hip,shoulder,mixed,hardware,multiscan,fractured,fracture_count,frontal,lateral,oblique\n"
)


def _tree(root: Path, fractured_flag: str = "1") -> Path:
    base = root / "FracAtlas"
    files = {"Fractured": ["IMG0000019.jpg", "IMG0000025.jpg"], "Non_fractured": ["IMG0000000.jpg"]}
    for folder, names in files.items():
        (base / "images" / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(np.full((20, 30), 120, np.uint8)).convert("RGB").save(base / "images" / folder / name)
    (base / "dataset.csv").write_text(
        CSV_HEADER
        + "IMG0000000.jpg,0,1,0,0,0,0,0,0,0,1,0,0\n"
        + f"IMG0000019.jpg,1,0,0,0,0,0,0,{fractured_flag},1,0,1,0\n"
        + "IMG0000025.jpg,0,1,0,0,0,1,0,1,2,1,1,0\n"
    )
    coco = {
        "images": [
            {"id": 1, "file_name": "IMG0000019.jpg", "width": 30, "height": 20},
            {"id": 2, "file_name": "IMG0000025.jpg", "width": 30, "height": 20},
        ],
        "annotations": [
            # a triangle with corners (2, 2), (12, 2), (2, 12) in x, y
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 12, 2, 2, 12]], "bbox": [2, 2, 10, 10]},
            # no polygon: the box x 20..25, y 5..9 is used
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": [], "bbox": [20, 5, 5, 4]},
            {
                "id": 3,
                "image_id": 2,
                "category_id": 1,
                "segmentation": [[0, 15, 4, 15, 4, 19, 0, 19]],
                "bbox": [0, 15, 4, 4],
            },
        ],
        "categories": [{"id": 1, "name": "fractured"}],
    }
    (base / "Annotations" / "COCO JSON").mkdir(parents=True)
    (base / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json").write_text(json.dumps(coco))
    return root


def test_fracatlas_cohort(tmp_path: Path) -> None:
    root = _tree(tmp_path / "frac")
    cohort = load_cohort(MANIFEST, root)
    by_id = cohort.set_index("image_id")
    assert list(cohort["image_id"]) == ["IMG0000000", "IMG0000019", "IMG0000025"]
    assert list(cohort["label"]) == [0, 1, 1]
    assert list(cohort["view"]) == ["frontal", "lateral", "frontal+lateral"]
    assert by_id.loc["IMG0000019", "path"] == "FracAtlas/images/Fractured/IMG0000019.jpg"
    assert by_id.loc["IMG0000000", "mask_path"] == ""
    assert by_id.loc["IMG0000019", "mask_path"] == "shapes::20x30::poly:2,2,12,2,2,12"
    assert (cohort["modality"] == "xray").all() and (cohort["patient_id"] == cohort["image_id"]).all()


def test_fracatlas_masks_rasterised(tmp_path: Path) -> None:
    root = _tree(tmp_path / "frac")
    cohort = load_cohort(MANIFEST, root).set_index("image_id")
    triangle = read_mask(root / cohort.loc["IMG0000019", "mask_path"], (20, 30))
    assert triangle[3, 3] and triangle[2, 11] and not triangle[11, 11] and not triangle[15, 20]
    assert 50 <= triangle.sum() <= 80  # half of the 10 x 10 square, plus its edge
    two = read_mask(root / cohort.loc["IMG0000025", "mask_path"], (20, 30))
    assert two[5:9, 20:25].all() and two[16, 2] and two.sum() == 20 + 25
    arrays = load_split(cohort.reset_index(), root, (20, 30))
    assert list(arrays.has_mask) == [False, True, True]


def test_fracatlas_label_disagrees_with_csv(tmp_path: Path) -> None:
    root = _tree(tmp_path / "frac", fractured_flag="0")
    with pytest.raises(
        DataError, match=r"IMG0000019\.jpg: in folder 'Fractured' \(label 1\) but dataset\.csv says fractured='0'"
    ):
        load_cohort(MANIFEST, root)


def test_data_root_may_be_the_fracatlas_folder_itself(tmp_path: Path) -> None:
    outer = _tree(tmp_path / "fa")
    expected = load_cohort(MANIFEST, outer)
    cohort = load_cohort(MANIFEST, outer / "FracAtlas")
    assert list(cohort["image_id"]) == list(expected["image_id"])
    assert [p.removeprefix("FracAtlas/") for p in expected["path"]] == list(cohort["path"])
    assert (outer / "FracAtlas" / cohort["path"].iloc[0]).is_file()


def test_an_upper_case_suffix_finds_its_csv_row_and_mask(tmp_path: Path) -> None:
    root = _tree(tmp_path / "frac")
    folder = root / "FracAtlas" / "images" / "Fractured"
    (folder / "IMG0000019.jpg").rename(folder / "IMG0000019.JPG")  # as a copy from a case-insensitive disk may name it
    by_id = load_cohort(MANIFEST, root).set_index("image_id")
    assert by_id.loc["IMG0000019", "path"] == "FracAtlas/images/Fractured/IMG0000019.JPG"
    assert by_id.loc["IMG0000019", "view"] == "lateral"
    assert by_id.loc["IMG0000019", "mask_path"] == "shapes::20x30::poly:2,2,12,2,2,12"
