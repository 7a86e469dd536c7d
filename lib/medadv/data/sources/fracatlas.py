"""FracAtlas (Abedeen et al., Sci Data 10, 521, 2023; figshare doi:10.6084/m9.figshare.22363012).

Layout under the data root (``options.folder``, default ``FracAtlas``, the folder of the figshare archive)::

    FracAtlas/images/Fractured/IMG0000019.jpg   FracAtlas/images/Non_fractured/IMG0000000.jpg
    FracAtlas/dataset.csv       image_id, hand, leg, hip, shoulder, mixed, hardware, multiscan, fractured,
                                fracture_count, frontal, lateral, oblique
    FracAtlas/Annotations/COCO JSON/COCO_fracture_masks.json

Label: the image's folder name through the manifest's ``label_map`` (Fractured 1, Non_fractured 0), checked against
``dataset.csv``'s ``fractured`` column. View: the ``frontal`` / ``lateral`` / ``oblique`` flags of the CSV (joined
by ``+`` when several are set). Mask: the image's COCO annotations, polygons where given and boxes otherwise, as a
``shapes::`` reference rasterised lazily by :func:`medadv.data.images.read_mask` (:func:`skimage.draw.polygon`);
fractured images without annotations have no mask. FracAtlas gives no patient ids, so each image is its own patient
(images flagged ``multiscan`` show one patient several times: a leakage caveat). There is no official split for
classification. The data root may be the folder that holds ``FracAtlas`` or that folder itself
(:func:`medadv.data.sources.locate_top_folder`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from medadv.data.images import shapes_mask
from medadv.data.sources.manifest import Manifest
from medadv.data.sources.reading import finish_cohort, read_table, relative, require_dir, require_file
from medadv.errors import DataError

OPTIONS = {
    "folder": "FracAtlas",
    "csv": "dataset.csv",
    "coco": "Annotations/COCO JSON/COCO_fracture_masks.json",
    "image_suffixes": [".jpg", ".jpeg", ".png"],
}
VIEWS = ("frontal", "lateral", "oblique")


def _coco_masks(path: Path) -> dict[str, str]:
    """File name -> ``shapes::`` mask reference of every annotated image in a COCO file."""
    try:
        coco = json.loads(path.read_text())
        images = {img["id"]: img for img in coco["images"]}
        shapes: dict[Any, tuple[list, list]] = {}
        for ann in coco["annotations"]:
            rects, polys = shapes.setdefault(ann["image_id"], ([], []))
            segmentation = ann.get("segmentation")
            if isinstance(segmentation, list) and segmentation:
                polys.extend(p for p in segmentation if len(p) >= 6)
            else:
                x, y, w, h = ann["bbox"]
                rects.append((x, y, x + w, y + h))
        return {
            images[iid]["file_name"]: shapes_mask((int(images[iid]["height"]), int(images[iid]["width"])), rects, polys)
            for iid, (rects, polys) in shapes.items()
            if rects or polys
        }
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: not a COCO annotation file this loader can read ({type(exc).__name__}: {exc}); "
            "download FracAtlas again."
        ) from exc


def holds_top_contents(folder: Path, manifest: Manifest) -> bool:
    """Whether ``folder`` holds what the ``FracAtlas`` folder holds (``images/`` and the dataset CSV).

    Returns:
        True when ``folder`` holds ``images/`` and the CSV.
    """
    csv = str(manifest.options.get("csv", OPTIONS["csv"]))
    return (folder / "images").is_dir() and (folder / csv).is_file()


def load(manifest: Manifest, root: Path) -> pd.DataFrame:
    """The FracAtlas cohort under ``root`` (see the module docstring).

    Returns:
        The cohort table (:func:`medadv.data.sources.reading.finish_cohort`).
    """
    opts = manifest.loader_options(OPTIONS)
    if manifest.official_split:
        raise DataError(f"{manifest.path}: field 'official_split' is true, but FracAtlas has no classification split.")
    base = root / opts["folder"]
    images_dir = require_dir(base / "images", manifest, "FracAtlas images")
    csv_path = base / opts["csv"]
    table = read_table(csv_path, manifest, ("image id", "fractured") + VIEWS, "FracAtlas dataset CSV")
    # file names are matched without regard to case, as the image suffixes are: a copy made on a case-insensitive
    # file system may hold IMG0000001.JPG where the CSV and the COCO file say IMG0000001.jpg
    info = {str(name).lower(): meta for name, meta in table.set_index("image id").to_dict("index").items()}
    coco = _coco_masks(require_file(base / opts["coco"], manifest, "COCO annotation file"))
    masks = {name.lower(): mask for name, mask in coco.items()}
    suffixes = tuple(s.lower() for s in opts["image_suffixes"])
    rows = []
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        label = manifest.label(folder.name, str(folder))
        if label is None:
            continue
        for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes):
            meta = info.get(image.name.lower())
            if meta is None:
                raise DataError(
                    f"{image}: not listed in {csv_path}; restore the original dataset.csv or remove the image."
                )
            if str(meta["fractured"]) not in ("0", "1") or int(meta["fractured"]) != label:
                raise DataError(
                    f"{image}: in folder {folder.name!r} (label {label}) but {csv_path.name} says fractured="
                    f"{meta['fractured']!r}; fix the label_map of {manifest.path} or the data."
                )
            rows.append(
                {
                    "image_id": image.stem,
                    "patient_id": image.stem,
                    "path": relative(image, root),
                    "label": label,
                    "mask_path": masks.get(image.name.lower(), ""),
                    "view": "+".join(v for v in VIEWS if str(meta[v]) == "1"),
                    "split": "",
                    "source_label": folder.name,
                }
            )
    return finish_cohort(rows, manifest, root)
