"""VinDr-Mammo loader on a tiny tree in VinDr-Mammo's real layout (images/<study>/<image>.dicom + two CSVs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medadv import DataError
from medadv.data.images import load_split, read_mask
from medadv.data.sources import load_cohort
from test_dicom import write_dicom

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "vindr_mammo.yaml"
BREAST_HEADER = "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,split\n"
FINDING_HEADER = (
    "image_id,study_id,series_id,laterality,view_position,height,width,breast_birads,breast_density,"
    "finding_categories,finding_birads,xmin,ymin,xmax,ymax,split\n"
)
# image, study, laterality, view, BI-RADS, split
IMAGES = [
    ("img_a", "st1", "L", "CC", "BI-RADS 4", "training"),
    ("img_b", "st1", "L", "MLO", "BI-RADS 4", "training"),
    ("img_c", "st1", "R", "CC", "BI-RADS 1", "training"),
    ("img_d", "st2", "L", "CC", "BI-RADS 3", "test"),
    ("img_e", "st2", "R", "MLO", "BI-RADS 2", "test"),
]


def _tree(root: Path, extra_birads: str | None = None) -> Path:
    rows = []
    for image, study, side, view, birads, split in IMAGES:
        write_dicom(
            root / "images" / study / f"{image}.dicom",
            np.full((24, 16), 1000, np.uint16),
            bits_stored=12,
            photometric="MONOCHROME1",
        )
        birads = extra_birads if image == "img_e" and extra_birads else birads
        rows.append(f"{study},se,{image},{side},{view},24,16,{birads},DENSITY C,{split}\n")
    (root / "breast-level_annotations.csv").write_text(BREAST_HEADER + "".join(rows))
    (root / "finding_annotations.csv").write_text(
        FINDING_HEADER
        + "img_a,st1,se,L,CC,24,16,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,2.5,3.0,6.0,8.2,training\n"
        + "img_a,st1,se,L,CC,24,16,BI-RADS 4,DENSITY C,['Suspicious Calcification'],BI-RADS 4,10,15,12,18,training\n"
        + "img_b,st1,se,L,MLO,24,16,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,0,0,4,4,training\n"
        + "img_c,st1,se,R,CC,24,16,BI-RADS 1,DENSITY C,['No Finding'],,,,,,training\n"
        + "img_e,st2,se,R,MLO,24,16,BI-RADS 2,DENSITY C,['No Finding'],,,,,,test\n"
    )
    return root


def test_vindr_cohort(tmp_path: Path) -> None:
    root = _tree(tmp_path / "vindr")
    cohort = load_cohort(MANIFEST, root)
    assert list(cohort["image_id"]) == ["img_a", "img_b", "img_c", "img_e"]  # BI-RADS 3 dropped by the manifest
    assert list(cohort["label"]) == [1, 1, 0, 0]
    assert list(cohort["split"]) == ["train", "train", "train", "test"]
    assert list(cohort["patient_id"]) == ["st1", "st1", "st1", "st2"]
    assert list(cohort["view"]) == ["CC", "MLO", "CC", "MLO"]
    assert list(cohort["source_label"]) == ["BI-RADS 4", "BI-RADS 4", "BI-RADS 1", "BI-RADS 2"]
    assert cohort["path"].iloc[0] == "images/st1/img_a.dicom"
    assert cohort["mask_path"].iloc[0] == "shapes::24x16::rect:2.5,3,6,8.2|rect:10,15,12,18"
    assert list(cohort["mask_path"].iloc[2:]) == ["", ""]


def test_vindr_boxes_become_masks(tmp_path: Path) -> None:
    root = _tree(tmp_path / "vindr")
    cohort = load_cohort(MANIFEST, root)
    mask = read_mask(root / cohort["mask_path"].iloc[0], (24, 16))
    # box x 2.5..6, y 3..8.2 covers rows 3..8 and columns 2..5; box x 10..12, y 15..18 rows 15..17, columns 10..11
    assert mask.sum() == 6 * 4 + 3 * 2
    assert mask[3:9, 2:6].all() and mask[15:18, 10:12].all() and not mask[0, 0]
    arrays = load_split(cohort, root, (24, 16), "train")
    assert list(arrays.has_mask) == [True, True, False]
    assert np.allclose(arrays.images, 1.0 - 1000 / 4095, atol=1e-6)  # MONOCHROME1 inverted, 12-bit range


def test_a_box_outside_its_image_is_named_not_drawn_as_an_empty_mask(tmp_path: Path) -> None:
    root = _tree(tmp_path / "vindr")
    csv = root / "finding_annotations.csv"
    csv.write_text(csv.read_text().replace(",0,0,4,4,", ",5000,0,5100,4,"))  # x beyond the 16 columns of img_b
    message = (
        r"finding_annotations\.csv: the finding box of image img_b \(xmin 5000, .*\) lies outside the image, 24 x 16"
    )
    with pytest.raises(DataError, match=message):
        load_cohort(MANIFEST, root)
    # a cohort table written by hand with such a box is refused when its mask is drawn
    with pytest.raises(
        DataError, match=r"4: the shape 'rect:5000,0,5100,4' lies wholly outside its 24 x 16 pixel grid"
    ):
        read_mask(root / "shapes::24x16::rect:2,2,4,4|rect:5000,0,5100,4")
    with pytest.raises(DataError, match=r"^[^(]*the shape 'poly:-9,-9,-5,-9,-5,-5' lies wholly outside"):
        read_mask(root / "shapes::24x16::poly:-9,-9,-5,-9,-5,-5")
    assert read_mask(root / "shapes::24x16::rect:-3,-3,1,1").sum() == 1  # a box partly inside keeps its inside


def test_a_repeated_csv_row_is_named_as_such(tmp_path: Path) -> None:
    root = _tree(tmp_path / "vindr")
    csv = root / "breast-level_annotations.csv"
    csv.write_text(csv.read_text() + csv.read_text().splitlines(keepends=True)[1])  # img_a's row twice
    with pytest.raises(DataError, match=r"image id 'img_a' is listed 2 times for the same file, images/st1/img_a"):
        load_cohort(MANIFEST, root)


def test_vindr_unknown_birads(tmp_path: Path) -> None:
    root = _tree(tmp_path / "vindr", extra_birads="BI-RADS 0")
    with pytest.raises(DataError, match=r"breast-level_annotations\.csv: unknown label 'BI-RADS 0'.*label_map"):
        load_cohort(MANIFEST, root)


def test_vindr_missing_image(tmp_path: Path) -> None:
    root = _tree(tmp_path / "vindr")
    (root / "images" / "st1" / "img_b.dicom").unlink()
    with pytest.raises(DataError, match=r"1 images listed in breast-level_annotations\.csv are missing.*img_b\.dicom"):
        load_cohort(MANIFEST, root)


def test_multiframe_images_take_the_manifests_frame(tmp_path: Path) -> None:
    import shutil

    from medadv.data.images import read_image
    from pydicom.data import get_testdata_file

    cine = get_testdata_file("examples_ybr_color.dcm")  # 30 frames of colour ultrasound
    if cine is None:
        pytest.skip("examples_ybr_color.dcm is not among the installed pydicom's test files")
    root = _tree(tmp_path / "vindr")
    shutil.copy(cine, root / "images" / "st1" / "img_c.dicom")
    cohort = load_cohort(MANIFEST, root)
    with pytest.raises(DataError, match=r"img_c\.dicom: multi-frame DICOM with 30 frames.*'dicom_frame: N'"):
        read_image(root / cohort.set_index("image_id").at["img_c", "path"])
    chosen = tmp_path / "vindr_frame.yaml"
    chosen.write_text(MANIFEST.read_text() + "dicom_frame: 4\n")
    paths = load_cohort(chosen, root).set_index("image_id")["path"]
    assert paths["img_c"] == "images/st1/img_c.dicom::frame/4"
    assert paths["img_a"] == "images/st1/img_a.dicom::frame/4"  # single-frame files ignore the frame number
    assert read_image(root / paths["img_c"]).shape == (240, 320)
    np.testing.assert_array_equal(read_image(root / paths["img_a"]), read_image(root / "images/st1/img_a.dicom"))
    chosen.write_text(MANIFEST.read_text() + "dicom_frame: -1\n")
    with pytest.raises(DataError, match=r"field 'dicom_frame' is -1; expected a frame number"):
        load_cohort(chosen, root)
