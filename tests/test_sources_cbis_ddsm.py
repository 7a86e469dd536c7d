"""CBIS-DDSM loader on a tiny tree in the layout the TCIA NBIA Data Retriever writes (CBIS-DDSM/<series folder>/
<study>/<series>/1-1.dcm), with the four case-description CSVs, whose paths do not match the file names on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medadv import DataError
from medadv.data.images import load_split, read_mask
from medadv.data.sources import load_cohort
from test_dicom import write_dicom

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "cbis_ddsm.yaml"
MASS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
    "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\n"
)
CALC_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,calc type,"
    "calc distribution,assessment,pathology,subtlety,image file path,cropped image file path,"
    "ROI mask file path\n"
)
SHAPE = (32, 24)


def _box(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[r0:r1, c0:c1] = 255
    return mask


def _full(base: Path, folder: str) -> None:
    write_dicom(
        base / folder / "07-20-2016-DDSM-NA-74994" / "1.000000-full mammogram images-24541" / "1-1.dcm",
        np.full(SHAPE, 2000, np.uint16),
        bits_stored=16,
    )


def _roi(base: Path, folder: str, mask: np.ndarray, mask_name: str = "1-1.dcm", crop: bool = True) -> None:
    series = base / folder / "07-21-2016-DDSM-NA-18015" / "1.000000-ROI mask images-47061"
    write_dicom(series / mask_name, mask)
    if crop:  # the cropped lesion, small, in the same series folder under the other name
        write_dicom(series / ("1-2.dcm" if mask_name == "1-1.dcm" else "1-1.dcm"), np.full((6, 5), 900, np.uint16))


def _row(header: str, patient: str, side: str, view: str, ab: int, kind: str, pathology: str, folder: str) -> str:
    uid = "1.3.6.1.4.1.9590.100.1.2.4221"
    image = f"{folder}/{uid}1/{uid}2/000000.dcm"
    crop = f"{folder}_{ab}/{uid}3/{uid}4/000000.dcm"
    roi = f'"{folder}_{ab}/{uid}3/{uid}4/000001.dcm\n"'  # as in the real CSVs: a newline inside the quoted cell
    if header is MASS_HEADER:
        return f"{patient},3,{side},{view},{ab},{kind},OVAL,CIRCUMSCRIBED,4,{pathology},4,{image},{crop},{roi}\n"
    return f"{patient},3,{side},{view},{ab},{kind},PLEOMORPHIC,CLUSTERED,4,{pathology},4,{image},{crop},{roi}\n"


def _tree(root: Path) -> Path:
    base = root / "CBIS-DDSM"
    # P_00001 LEFT CC: two masses (malignant, benign) and a calcification on the same mammogram (train)
    _full(base, "Mass-Training_P_00001_LEFT_CC")
    _full(base, "Calc-Training_P_00001_LEFT_CC")
    _roi(base, "Mass-Training_P_00001_LEFT_CC_1", _box(2, 6, 2, 6))
    _roi(base, "Mass-Training_P_00001_LEFT_CC_2", _box(10, 12, 10, 14), mask_name="1-2.dcm")  # swapped names
    _roi(base, "Calc-Training_P_00001_LEFT_CC_1", _box(20, 21, 0, 3), crop=False)  # mask alone
    # P_00002 RIGHT MLO: a benign mass (test)
    _full(base, "Mass-Test_P_00002_RIGHT_MLO")
    _roi(base, "Mass-Test_P_00002_RIGHT_MLO_1", _box(0, 1, 0, 1))
    # P_00003: a benign calcification in a train CSV, a malignant one in a test CSV
    _full(base, "Calc-Training_P_00003_LEFT_MLO")
    _roi(base, "Calc-Training_P_00003_LEFT_MLO_1", _box(5, 7, 5, 7))
    _full(base, "Calc-Test_P_00003_RIGHT_CC")
    _roi(base, "Calc-Test_P_00003_RIGHT_CC_1", _box(8, 9, 8, 9))
    (root / "mass_case_description_train_set.csv").write_text(
        MASS_HEADER
        + _row(MASS_HEADER, "P_00001", "LEFT", "CC", 1, "mass", "MALIGNANT", "Mass-Training_P_00001_LEFT_CC")
        + _row(MASS_HEADER, "P_00001", "LEFT", "CC", 2, "mass", "BENIGN", "Mass-Training_P_00001_LEFT_CC")
    )
    (root / "mass_case_description_test_set.csv").write_text(
        MASS_HEADER + _row(MASS_HEADER, "P_00002", "RIGHT", "MLO", 1, "mass", "BENIGN", "Mass-Test_P_00002_RIGHT_MLO")
    )
    (root / "calc_case_description_train_set.csv").write_text(
        CALC_HEADER
        + _row(
            CALC_HEADER,
            "P_00001",
            "LEFT",
            "CC",
            1,
            "calcification",
            "BENIGN_WITHOUT_CALLBACK",
            "Calc-Training_P_00001_LEFT_CC",
        )
        + _row(CALC_HEADER, "P_00003", "LEFT", "MLO", 1, "calcification", "BENIGN", "Calc-Training_P_00003_LEFT_MLO")
    )
    (root / "calc_case_description_test_set.csv").write_text(
        CALC_HEADER
        + _row(CALC_HEADER, "P_00003", "RIGHT", "CC", 1, "calcification", "MALIGNANT", "Calc-Test_P_00003_RIGHT_CC")
    )
    return root


def test_cbis_cohort(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _tree(tmp_path / "cbis")
    cohort = load_cohort(MANIFEST, root)
    assert "1 patients are in a train CSV and a test CSV (P_00003); all their images go to test" in caplog.text
    assert list(cohort["image_id"]) == ["P_00001_LEFT_CC", "P_00002_RIGHT_MLO", "P_00003_LEFT_MLO", "P_00003_RIGHT_CC"]
    assert list(cohort["label"]) == [1, 0, 0, 1]
    assert cohort["source_label"].iloc[0] == "BENIGN|BENIGN_WITHOUT_CALLBACK|MALIGNANT"
    assert list(cohort["split"]) == ["train", "test", "test", "test"]  # P_00003 has a test image: all go to test
    assert list(cohort["view"]) == ["CC", "MLO", "MLO", "CC"]
    assert cohort["path"].iloc[0] == (
        "CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-NA-74994/1.000000-full mammogram images-24541/1-1.dcm"
    )
    masks = cohort["mask_path"].iloc[0]
    assert masks.startswith("union::") and masks.count("|") == 2 and "1-2.dcm" in masks  # the swapped one resolved
    assert (cohort["modality"] == "mammography").all()


def test_cbis_masks_unioned_on_the_mammogram_grid(tmp_path: Path) -> None:
    root = _tree(tmp_path / "cbis")
    cohort = load_cohort(MANIFEST, root)
    mask = read_mask(root / cohort["mask_path"].iloc[0], SHAPE)
    assert mask.sum() == 16 + 8 + 3
    arrays = load_split(cohort, root, SHAPE)
    assert arrays.has_mask.all()
    assert np.allclose(arrays.images, 2000 / 65535, atol=1e-6)  # 16-bit range kept
    assert arrays.masks[0, 0].sum() == 27


def test_cbis_missing_roi(tmp_path: Path) -> None:
    root = _tree(tmp_path / "cbis")
    for file in (root / "CBIS-DDSM" / "Mass-Test_P_00002_RIGHT_MLO_1").rglob("*.dcm"):
        file.unlink()
    with pytest.raises(
        DataError, match=r"mass_case_description_test_set\.csv: the ROI mask .* is missing: no DICOM file"
    ):
        load_cohort(MANIFEST, root)


def test_cbis_unknown_pathology(tmp_path: Path) -> None:
    root = _tree(tmp_path / "cbis")
    path = root / "mass_case_description_test_set.csv"
    path.write_text(path.read_text().replace("BENIGN", "UNPROVEN"))
    with pytest.raises(DataError, match=r"mass_case_description_test_set\.csv: unknown label 'UNPROVEN'"):
        load_cohort(MANIFEST, root)


def test_cbis_uid_layout_with_swapped_roi_path(tmp_path: Path) -> None:
    """The older UID-named layout (files 000000.dcm, 000001.dcm at the CSVs' own paths), where the CSV's ROI path
    names the cropped image: the loader still takes the file of the mammogram's size."""
    root = tmp_path / "cbis"
    uid = "1.3.6.1.4.1.9590.100.1.2.4221"
    base = root / "CBIS-DDSM"
    write_dicom(base / "Mass-Test_P_00009_LEFT_CC" / f"{uid}1" / f"{uid}2" / "000000.dcm", np.full(SHAPE, 7, np.uint16))
    roi = base / "Mass-Test_P_00009_LEFT_CC_1" / f"{uid}3" / f"{uid}4"
    write_dicom(roi / "000000.dcm", _box(1, 3, 1, 3))  # the mask
    write_dicom(roi / "000001.dcm", np.full((6, 5), 900, np.uint16))  # the crop, which the CSV calls the mask
    (root / "mass_case_description_test_set.csv").write_text(
        MASS_HEADER + _row(MASS_HEADER, "P_00009", "LEFT", "CC", 1, "mass", "MALIGNANT", "Mass-Test_P_00009_LEFT_CC")
    )
    manifest = tmp_path / "cbis.yaml"
    manifest.write_text(
        MANIFEST.read_text()
        .replace(
            "    train: [mass_case_description_train_set.csv, calc_case_description_train_set.csv]\n", "    train: []\n"
        )
        .replace(
            "[mass_case_description_test_set.csv, calc_case_description_test_set.csv]",
            "[mass_case_description_test_set.csv]",
        )
    )
    cohort = load_cohort(manifest, root)
    assert cohort["path"].iloc[0].endswith(f"{uid}2/000000.dcm")
    assert cohort["mask_path"].iloc[0].endswith(f"{uid}4/000000.dcm")
    assert read_mask(root / cohort["mask_path"].iloc[0], SHAPE).sum() == 4
