"""CBIS-DDSM, the Curated Breast Imaging Subset of DDSM (Lee et al., Sci Data 4, 170177, 2017; TCIA
doi:10.7937/K9/TCIA.2016.7O02S9CY), as the NBIA Data Retriever writes it.

Layout under the data root::

    mass_case_description_train_set.csv   mass_case_description_test_set.csv
    calc_case_description_train_set.csv   calc_case_description_test_set.csv
    CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<study>/<series>/1-1.dcm          the full mammogram
    CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<study>/<series>/1-1.dcm, 1-2.dcm  ROI mask and cropped lesion

The case CSVs (``patient_id, breast_density / breast density, left or right breast, image view, abnormality id,
abnormality type, ..., pathology, ..., image file path, cropped image file path, ROI mask file path``) give one row
per abnormality. Their file paths name the right top folder but not always the right file below it: the TCIA
download names study and series folders by date and description (``07-20-2016-DDSM-NA-74994/1.000000-full mammogram
images-24541``) or by UID, and files ``1-1.dcm`` or ``000000.dcm``; in the ROI folders the mask and the cropped
image are swapped in some rows. So each path is resolved from its top folder: a full mammogram is the CSV path
itself when it exists, else the folder's only DICOM file; an ROI mask is the folder's only DICOM file, or, with two
files (mask and crop), the one whose Rows x Columns equal the mammogram's - the mask is drawn on the mammogram's
grid, the crop is small - whatever the CSV calls it. A folder with no DICOM file is a missing image or mask (an
error).

One image row per mammogram (patient, side, view; a mammogram that holds a mass and a calcification appears in both
collections as the same picture, and is one row): masks of all its abnormalities unioned (``union::``), label the
maximum over its abnormalities of the manifest's ``label_map`` of ``pathology`` (MALIGNANT 1; BENIGN and
BENIGN_WITHOUT_CALLBACK 0), ``source_label`` the pathologies joined by ``|``.

Patient id: the CSV's ``patient_id`` (``P_00001``). The official split (``options.csv``: train and test CSV files)
is kept when ``official_split`` is true; mass and calcification sets were split separately, so a patient in a test
CSV of either goes to ``test`` with all their images (logged), keeping the split patient-level. ``val`` stays empty:
the splits module carves it from ``train`` at patient level.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path, PurePosixPath

import pandas as pd

from medadv.data.dicom import header_int, read_dicom_header
from medadv.data.images import union_mask
from medadv.data.sources.manifest import Manifest
from medadv.data.sources.reading import finish_cohort, read_table, relative
from medadv.errors import DataError

log = logging.getLogger(__name__)

OPTIONS = {
    "image_folder": "CBIS-DDSM",
    "csv": {
        "train": ["mass_case_description_train_set.csv", "calc_case_description_train_set.csv"],
        "test": ["mass_case_description_test_set.csv", "calc_case_description_test_set.csv"],
    },
}
COLUMNS = (
    "patient id",
    "left or right breast",
    "image view",
    "abnormality id",
    "pathology",
    "image file path",
    "roi mask file path",
)
_DICOM_SUFFIXES = (".dcm", ".dicom")


def _dicoms(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _DICOM_SUFFIXES)


@functools.lru_cache(maxsize=256)
def _grid(path: Path) -> tuple[int, int]:
    header = read_dicom_header(path)
    return header_int(header, "Rows", path), header_int(header, "Columns", path)


class _Resolver:
    """Turns a case-CSV file path into the DICOM file on disk (see the module docstring)."""

    def __init__(self, base: Path, csv_path: Path) -> None:
        self.base = base
        self.csv_path = csv_path

    def _candidates(self, text: str, what: str, exact_first: bool) -> list[Path]:
        rel = PurePosixPath(text.strip().strip('"').replace("\\", "/"))
        exact = self.base / rel
        if exact_first and exact.is_file():
            return [exact]
        found = _dicoms(self.base / rel.parts[0])
        if not found:
            raise DataError(
                f"{self.csv_path}: the {what} {text.strip()!r} is missing: no DICOM file under "
                f"{self.base / rel.parts[0]}; download that series from TCIA again or drop the row from the CSV."
            )
        return found

    def image(self, text: str) -> Path:
        found = self._candidates(text, "image", exact_first=True)
        if len(found) != 1:
            raise DataError(
                f"{self.csv_path}: the image {text.strip()!r} matches {len(found)} DICOM files {found[:3]}; "
                "expected one full mammogram per folder."
            )
        return found[0]

    def mask(self, text: str, image: Path) -> Path:
        # every file of the ROI folder, even when the CSV's path exists: in some rows it names the crop
        found = self._candidates(text, "ROI mask", exact_first=False)
        if len(found) == 1:
            return found[0]
        grid = _grid(image)
        same = [p for p in found if _grid(p) == grid]
        if len(same) != 1:
            raise DataError(
                f"{self.csv_path}: the ROI mask {text.strip()!r}: {len(same)} of the DICOM files {found} have the "
                f"mammogram's size {grid}; expected exactly one (the mask). Check the folder's files."
            )
        return same[0]


def load(manifest: Manifest, root: Path) -> pd.DataFrame:
    """The CBIS-DDSM cohort under ``root`` (see the module docstring).

    Returns:
        The cohort table (:func:`medadv.data.sources.reading.finish_cohort`).
    """
    opts = manifest.loader_options(OPTIONS)
    csvs = opts["csv"]
    if not isinstance(csvs, dict) or set(csvs) - {"train", "test"}:
        raise DataError(
            f"{manifest.path}: field 'options.csv' is {csvs!r}; expected {{train: [files], test: [files]}}."
        )
    base = root / opts["image_folder"]
    records = []
    for split, files in sorted(csvs.items(), reverse=True):  # train first: its rows give an image's path
        for name in files:
            csv_path = root / name
            table = read_table(csv_path, manifest, COLUMNS, "case-description CSV")
            resolver = _Resolver(base, csv_path)
            for row in table.to_dict("records"):
                label = manifest.label(row["pathology"], str(csv_path))
                if label is None:
                    continue
                image = resolver.image(row["image file path"])
                records.append(
                    {
                        "patient_id": row["patient id"],
                        "image_id": f"{row['patient id']}_{row['left or right breast']}_{row['image view']}",
                        "path": relative(image, root),
                        "mask": relative(resolver.mask(row["roi mask file path"], image), root),
                        "label": label,
                        "view": row["image view"],
                        "official": split,
                        "source_label": row["pathology"],
                    }
                )
    if not records:
        return finish_cohort([], manifest, root)
    table = pd.DataFrame(records)
    test_patients = set(table.loc[table["official"] == "test", "patient_id"])
    moved = sorted(set(table.loc[table["official"] == "train", "patient_id"]) & test_patients)
    if moved and manifest.official_split:
        log.warning(
            "CBIS-DDSM: %d patients are in a train CSV and a test CSV (%s%s); all their images go to test.",
            len(moved),
            ", ".join(moved[:10]),
            ", ..." if len(moved) > 10 else "",
        )
    rows = []
    for iid, group in table.groupby("image_id", sort=True):
        patient = group["patient_id"].iloc[0]
        rows.append(
            {
                "image_id": iid,
                "patient_id": patient,
                "path": group["path"].iloc[0],
                "label": int(group["label"].max()),
                "mask_path": union_mask(sorted(group["mask"])),
                "view": group["view"].iloc[0],
                "split": "test" if patient in test_patients else "train",
                "source_label": "|".join(sorted(set(group["source_label"]))),
            }
        )
    return finish_cohort(rows, manifest, root)
