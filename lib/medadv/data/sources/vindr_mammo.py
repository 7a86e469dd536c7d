"""VinDr-Mammo (Nguyen et al., Sci Data 10, 277, 2023; PhysioNet doi:10.13026/br2v-7517).

Layout under the data root (names in ``options``)::

    breast-level_annotations.csv   study_id, series_id, image_id, laterality, view_position, height, width,
                                   breast_birads, breast_density, split
    finding_annotations.csv        study_id, series_id, image_id, ..., finding_categories, finding_birads,
                                   xmin, ymin, xmax, ymax, split
    images/<study_id>/<image_id>.dicom

Label: the breast-level BI-RADS of the image's breast through the manifest's ``label_map``; the shipped manifest maps
BI-RADS 4 and 5 to 1, BI-RADS 1 and 2 to 0 and drops BI-RADS 3 (probably benign; map it to 0 or 1 to keep it).
Mask: every finding of the image that has a box (``xmin..ymax`` given; "No Finding" rows have none) becomes a
rectangle on the image's ``height`` x ``width`` grid, as a ``shapes::`` reference drawn lazily by
:func:`medadv.data.images.read_mask`; images without boxed findings have no mask. Patient id: ``study_id`` (the
set has one screening study per patient). Official split (``training`` -> train, ``test`` -> test) kept when
``official_split`` is true; ``val`` is carved from train by the splits module.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from medadv.data.images import shapes_mask
from medadv.data.sources.manifest import Manifest
from medadv.data.sources.reading import finish_cohort, read_table, relative
from medadv.errors import DataError

OPTIONS = {
    "breast_csv": "breast-level_annotations.csv",
    "finding_csv": "finding_annotations.csv",
    "image_folder": "images",
    "image_suffix": ".dicom",
}
BREAST_COLUMNS = ("study id", "image id", "laterality", "view position", "height", "width", "breast birads", "split")
FINDING_COLUMNS = ("image id", "xmin", "ymin", "xmax", "ymax")
SPLITS = {"training": "train", "train": "train", "test": "test"}


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise DataError(f"{where}: column {column!r} holds {text!r}; expected a number.") from exc
    return value


def _boxes(findings: pd.DataFrame, where: str) -> dict[str, list[tuple[float, ...]]]:
    boxes: dict[str, list[tuple[float, ...]]] = {}
    for row in findings.to_dict("records"):
        if not row["xmin"]:
            continue
        box = tuple(_number(row[c], where, c) for c in ("xmin", "ymin", "xmax", "ymax"))
        if any(math.isnan(v) for v in box):
            continue
        boxes.setdefault(row["image id"], []).append(box)
    return boxes


def _check_boxes(
    own: list[tuple[float, ...]], shape: tuple[int, ...], image_id: str, finding_csv: Path, breast_csv: Path
) -> None:
    """Refuse a finding box that lies wholly outside its image: it would make an empty lesion mask."""
    height, width = shape
    for xmin, ymin, xmax, ymax in own:
        if max(xmin, xmax) <= 0 or min(xmin, xmax) >= width or max(ymin, ymax) <= 0 or min(ymin, ymax) >= height:
            raise DataError(
                f"{finding_csv}: the finding box of image {image_id} (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, "
                f"ymax {ymax:g}) lies outside the image, {height} x {width} pixels (height x width) in "
                f"{breast_csv.name}; the boxes are in the image's pixels (x the column, y the row). Check the CSV's "
                "coordinates, and that height and width are not swapped."
            )


def load(manifest: Manifest, root: Path) -> pd.DataFrame:
    """The VinDr-Mammo cohort under ``root`` (see the module docstring).

    Returns:
        The cohort table (:func:`medadv.data.sources.reading.finish_cohort`).
    """
    opts = manifest.loader_options(OPTIONS)
    breast_csv, finding_csv = root / opts["breast_csv"], root / opts["finding_csv"]
    breasts = read_table(breast_csv, manifest, BREAST_COLUMNS, "breast-level annotation CSV")
    boxes = _boxes(read_table(finding_csv, manifest, FINDING_COLUMNS, "finding annotation CSV"), str(finding_csv))
    rows, missing = [], []
    for row in breasts.to_dict("records"):
        label = manifest.label(row["breast birads"], str(breast_csv))
        if label is None:
            continue
        split = SPLITS.get(row["split"].lower())
        if split is None:
            raise DataError(
                f"{breast_csv}: split {row['split']!r} for image {row['image id']}; expected training or test."
            )
        image = root / opts["image_folder"] / row["study id"] / f"{row['image id']}{opts['image_suffix']}"
        if not image.is_file():
            missing.append(image)
            continue
        shape = tuple(int(_number(row[c], str(breast_csv), c)) for c in ("height", "width"))
        own = boxes.get(row["image id"], [])
        _check_boxes(own, shape, row["image id"], finding_csv, breast_csv)
        rows.append(
            {
                "image_id": row["image id"],
                "patient_id": row["study id"],
                "path": relative(image, root),
                "label": label,
                "mask_path": shapes_mask(shape, rects=own) if own else "",
                "view": row["view position"],
                "split": split,
                "source_label": row["breast birads"],
            }
        )
    if missing:
        raise DataError(
            f"{root}: {len(missing)} images listed in {breast_csv.name} are missing, e.g. {missing[:3]}; download "
            "them again (PhysioNet), or remove their rows from the CSV to work on a subset."
        )
    return finish_cohort(rows, manifest, root)
