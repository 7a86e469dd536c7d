"""MedMNIST v2 ``.npz`` files (Yang et al., Sci Data 10, 41, 2023): BreastMNIST, PneumoniaMNIST, and the other
single-label grey-level sets of the collection, in any of their sizes (28, 64, 128, 224).

Layout under the data root: one file (``options.file``, e.g. ``breastmnist.npz`` or ``breastmnist_224.npz``) holding
``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images``, ``test_labels``. Images stay in
the archive: ``path`` is the member reference ``<file>::<split>_images/<index>`` of :mod:`medadv.data.images`.

Labels: the archive's integer label (as text) through the manifest's ``label_map``. BreastMNIST's 0 is malignant and
1 is normal or benign, so its manifest maps ``"0"`` to 1; PneumoniaMNIST's 1 is pneumonia. No masks. MedMNIST gives
no patient ids, so each image is its own patient; BreastMNIST is derived from BUSI and shares its leakage caveat.
The official train / val / test split is kept when ``official_split`` is true.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medadv.data.images import npz_member, open_npz
from medadv.data.sources.manifest import Manifest
from medadv.data.sources.reading import finish_cohort, relative, require_file
from medadv.errors import DataError

OPTIONS = {"file": ""}
SPLITS = ("train", "val", "test")


def load(manifest: Manifest, root: Path) -> pd.DataFrame:
    """The cohort of one MedMNIST archive under ``root`` (see the module docstring).

    Returns:
        The cohort table (:func:`medadv.data.sources.reading.finish_cohort`).
    """
    opts = manifest.loader_options(OPTIONS)
    if not opts["file"]:
        raise DataError(f"{manifest.path}: field 'options.file' is missing; name the .npz file, e.g. breastmnist.npz.")
    file = require_file(root / opts["file"], manifest, "MedMNIST archive")
    rel = relative(file, root)
    prefix = Path(opts["file"]).name.split(".")[0]
    rows = []
    with open_npz(file) as archive:
        for split in SPLITS:
            for key in (f"{split}_images", f"{split}_labels"):
                if key not in archive.files:
                    raise DataError(f"{file}: no array {key!r} (it holds {archive.files}); is it a MedMNIST file?")
            n_images = len(archive[f"{split}_images"])
            labels = archive[f"{split}_labels"]
            if labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1) or len(labels) != n_images:
                raise DataError(
                    f"{file}: {split}_labels has shape {labels.shape} for {n_images} images; expected one "
                    "label per image (a single-label MedMNIST set)."
                )
            for index, value in enumerate(labels.reshape(-1).tolist()):
                source = str(int(value))
                label = manifest.label(source, f"{file} ({split}_labels[{index}])")
                if label is None:
                    continue
                iid = f"{prefix}-{split}-{index}"
                rows.append(
                    {
                        "image_id": iid,
                        "patient_id": iid,
                        "path": npz_member(rel, f"{split}_images", index),
                        "label": label,
                        "mask_path": "",
                        "view": "",
                        "split": split,
                        "source_label": source,
                    }
                )
    return finish_cohort(rows, manifest, root)
