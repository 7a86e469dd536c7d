"""BUSI, the Breast Ultrasound Images data set (Al-Dhabyani et al., Data in Brief 28, 2020, 104863).

Layout under the data root (``options.folder``, default ``Dataset_BUSI_with_GT``)::

    Dataset_BUSI_with_GT/benign/benign (1).png          the image
    Dataset_BUSI_with_GT/benign/benign (1)_mask.png     its lesion mask
    Dataset_BUSI_with_GT/benign/benign (1)_mask_1.png   a second lesion's mask, ... (_mask_2.png, ...)
    Dataset_BUSI_with_GT/malignant/...   Dataset_BUSI_with_GT/normal/...

Each class folder's name is the source label, mapped by the manifest's ``label_map`` (malignant 1; benign and normal
0); a folder the map does not know is an error. Several masks of one image are merged lazily: ``mask_path`` is the
``union::`` reference of all of them (:mod:`medadv.data.images`), read as their union. Images of the classes in
``options.lesion_free`` (default ``normal``) get no mask (their masks are blank); every other image must have at
least one mask file.

Image files are found whatever the case of their suffix (``.png`` or ``.PNG``). A mask whose image is missing (an
orphan) and a file that is not a PNG are named in a warning and left out; with ``options.strict: true`` either is an
error. The data root may be the folder that holds ``Dataset_BUSI_with_GT`` or that folder itself
(:func:`medadv.data.sources.locate_top_folder`).

BUSI gives no patient ids, so each image is its own patient (``patient_id`` = ``image_id``). Several images of one
patient (and a few near-duplicates) exist in the set, so patient-level splits cannot fully prevent leakage; report
results on BUSI with that caveat. There is no official split.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from pathlib import Path

import pandas as pd

from medadv.data.images import union_mask
from medadv.data.sources.manifest import Manifest
from medadv.data.sources.reading import finish_cohort, relative, require_dir
from medadv.errors import DataError

log = logging.getLogger(__name__)

OPTIONS = {"folder": "Dataset_BUSI_with_GT", "lesion_free": ["normal"], "strict": False}
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?$")


def image_id(stem: str) -> str:
    """``benign (12)`` -> ``benign_12``: the image id of a BUSI file stem.

    Letters with accents lose them (``ñ`` -> ``n``); every run of other characters becomes one ``_``. A stem with no
    letter or digit left (``乳腺``) gets ``img_`` and the first 12 hex digits of its UTF-8 bytes' sha256, so no id is
    empty; two stems that give one id are named by :func:`medadv.data.cohort.validate_cohort`.

    Returns:
        The image id.
    """
    plain = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^0-9A-Za-z]+", "_", plain).strip("_")
    return text or "img_" + hashlib.sha256(stem.encode("utf-8")).hexdigest()[:12]


def holds_top_contents(folder: Path, manifest: Manifest) -> bool:
    """Whether ``folder`` holds BUSI's class folders (it is ``Dataset_BUSI_with_GT`` under another name).

    Returns:
        True when ``folder`` holds a class folder.
    """
    return any((folder / label).is_dir() for label in manifest.label_map)


def _class_files(folder: Path, strict: bool) -> tuple[list[Path], dict[str, list[Path]]]:
    """A class folder's images (any case of ``.png``) and each image stem's mask files; orphan masks and other files
    are warned about (an error when ``strict``)."""
    pngs = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() == ".png")
    others = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() != ".png")
    images = [f for f in pngs if not _MASK.match(f.stem)]
    masks: dict[str, list[Path]] = {}
    for f in pngs:
        match = _MASK.match(f.stem)
        if match:
            masks.setdefault(match["stem"], []).append(f)
    orphans = sorted(m.name for stem in set(masks) - {f.stem for f in images} for m in masks[stem])
    problems = []
    if orphans:
        problems.append(f"{len(orphans)} mask file(s) without their image, left out: {orphans[:5]}")
    if others:
        problems.append(f"{len(others)} file(s) that are not PNG images, left out: {others[:5]}")
    if problems and strict:
        raise DataError(
            f"{folder}: " + "; ".join(problems) + ". Restore the missing images from the BUSI download "
            "or delete the stray files (or set options.strict: false to leave them out with a warning)."
        )
    for problem in problems:
        log.warning("%s: %s", folder, problem)
    return images, masks


def load(manifest: Manifest, root: Path) -> pd.DataFrame:
    """The BUSI cohort under ``root`` (see the module docstring).

    Returns:
        The cohort table (:func:`medadv.data.sources.reading.finish_cohort`).
    """
    opts = manifest.loader_options(OPTIONS)
    if manifest.official_split:
        raise DataError(
            f"{manifest.path}: field 'official_split' is true, but BUSI has no official split; set it false."
        )
    base = require_dir(root / opts["folder"], manifest, "BUSI")
    rows = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        label = manifest.label(folder.name, str(folder))
        if label is None:
            continue
        files, masks = _class_files(folder, bool(opts["strict"]))
        for f in files:
            own = sorted(masks.get(f.stem, []), key=lambda p: (len(p.stem), p.stem))
            if folder.name in opts["lesion_free"]:
                mask = ""
            elif not own:
                raise DataError(
                    f"{f}: no mask file next to it (expected '{f.stem}_mask{f.suffix}'); restore the mask from the "
                    "BUSI download or delete the image."
                )
            else:
                mask = union_mask([relative(m, root) for m in own])
            iid = image_id(f.stem)
            rows.append(
                {
                    "image_id": iid,
                    "patient_id": iid,
                    "path": relative(f, root),
                    "label": label,
                    "mask_path": mask,
                    "view": "",
                    "split": "",
                    "source_label": folder.name,
                }
            )
    return finish_cohort(rows, manifest, root)
