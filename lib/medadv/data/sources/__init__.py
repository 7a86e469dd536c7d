"""Real data sets: a manifest YAML (``data_manifests/<set>.yaml``) plus one loader per data set's on-disk layout.

``load_cohort(manifest, root)`` reads the manifest (:mod:`medadv.data.sources.manifest`), verifies its sha256 list,
and calls the loader it names, which returns the cohort table of :mod:`medadv.data.cohort` with paths relative to
``root``. Loaders read only: nothing is ever written into the data root. Images or masks that are not single files
(members of an ``.npz``, several mask files of one image, boxes and polygons) get the path references described in
:mod:`medadv.data.images`, which :func:`medadv.data.images.read_image` and :func:`~medadv.data.images.read_mask`
resolve lazily.

Loaders whose data set unpacks into one fixed top folder (BUSI's ``Dataset_BUSI_with_GT``, ``FracAtlas``) accept as
the data root either the folder that holds it or that folder itself (by its name, or by the content the loader
expects inside it); which one was found is logged, and the manifest's ``sha256`` paths are read from inside the
folder in the second case.

Loaders (``loader:`` in the manifest):
    ``busi``         :mod:`medadv.data.sources.busi`         breast ultrasound, PNG + PNG masks
    ``cbis_ddsm``    :mod:`medadv.data.sources.cbis_ddsm`    film mammography, DICOM + ROI-mask DICOMs, case CSVs
    ``vindr_mammo``  :mod:`medadv.data.sources.vindr_mammo`  digital mammography, DICOM + BI-RADS and box CSVs
    ``medmnist``     :mod:`medadv.data.sources.medmnist`     MedMNIST ``.npz`` (BreastMNIST, PneumoniaMNIST)
    ``fracatlas``    :mod:`medadv.data.sources.fracatlas`    radiographs, JPEG + COCO polygons
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from medadv.data.sources import busi, cbis_ddsm, fracatlas, medmnist, vindr_mammo
from medadv.data.sources.manifest import Manifest, read_manifest, verify_checksums
from medadv.errors import DataError

log = logging.getLogger(__name__)

LOADERS: dict[str, Callable[[Manifest, Path], pd.DataFrame]] = {
    "busi": busi.load,
    "cbis_ddsm": cbis_ddsm.load,
    "vindr_mammo": vindr_mammo.load,
    "medmnist": medmnist.load,
    "fracatlas": fracatlas.load,
}
# loaders whose data set sits in one fixed top folder: the option that names it (default in the loader's OPTIONS),
# and a test of whether a folder holds what that top folder holds
TOP_FOLDERS: dict[str, tuple[str, dict[str, object], Callable[[Path, Manifest], bool]]] = {
    "busi": ("folder", busi.OPTIONS, busi.holds_top_contents),
    "fracatlas": ("folder", fracatlas.OPTIONS, fracatlas.holds_top_contents),
}


def load_manifest(path: str | Path) -> Manifest:
    """Parse and check a manifest YAML file (:func:`~medadv.data.sources.manifest.read_manifest`), its ``loader``
    one of :data:`LOADERS`.

    Returns:
        The parsed :class:`Manifest`.

    Raises:
        DataError: missing file, YAML that does not parse, a missing / unknown / ill-typed field (named).
    """
    return read_manifest(path, LOADERS)


def locate_top_folder(manifest: Manifest, root: Path) -> Manifest:
    """The manifest to load ``root`` with (see the module docstring).

    Returns:
        ``manifest`` itself when ``root`` holds the loader's top folder (or the loader has none, or neither is
        found: the loader's error then names the missing folder); when ``root`` is that folder, a copy whose top
        folder is ``.`` and whose ``sha256`` paths lose the folder's prefix.
    """
    if manifest.loader not in TOP_FOLDERS:
        return manifest
    option, defaults, holds = TOP_FOLDERS[manifest.loader]
    folder = str(manifest.options.get(option, defaults[option]))
    if folder in ("", ".") or (root / folder).is_dir():
        log.info("%s: the data root %s holds the data set's folder %s", manifest.name, root, folder)
        return manifest
    if root.name != folder and not holds(root, manifest):
        return manifest
    log.info(
        "%s: the data root %s is the data set's folder %s itself; reading it in place", manifest.name, root, folder
    )
    prefix = folder.rstrip("/") + "/"
    sha = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in manifest.sha256.items()}
    return dataclasses.replace(manifest, options={**manifest.options, option: "."}, sha256=sha)


def load_cohort(manifest: str | Path | Manifest, root: str | Path) -> pd.DataFrame:
    """Load a real data set into the cohort table.

    Args:
        manifest: a manifest YAML path (``data_manifests/busi.yaml``) or a parsed :class:`Manifest`.
        root: the folder that holds the data set as its publisher distributes it (see the manifest's ``layout``).

    Returns:
        The validated cohort table (``medadv.data.cohort.COHORT_COLUMNS``), sorted by ``image_id``, paths relative
        to ``root``; ``split`` holds the official split when the manifest keeps it, else is empty.

    Raises:
        DataError: a bad manifest, a missing data root, a checksum mismatch, files missing from the layout, unknown
            labels, or an empty cohort - each naming the file and what to do.

    Example:
        Three images in BUSI's layout (a class folder each, a mask beside each image) and a manifest for them:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> folder_for_example = tempfile.TemporaryDirectory()  # removed when the session ends
        >>> root = Path(folder_for_example.name)
        >>> for name in ("benign (1)", "malignant (1)", "normal (1)"):
        ...     folder = root / "Dataset_BUSI_with_GT" / name.split()[0]
        ...     folder.mkdir(parents=True, exist_ok=True)
        ...     Image.fromarray(np.full((8, 8), 128, np.uint8)).save(folder / f"{name}.png")
        ...     Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{name}_mask.png")
        >>> manifest = root / "busi.yaml"
        >>> _ = manifest.write_text(
        ...     "name: busi\\nloader: busi\\nmodality: ultrasound\\nsource: this example\\nlicence: CC0 1.0\\n"
        ...     "citation: Al-Dhabyani et al., Data in Brief 28 (2020) 104863\\n"
        ...     "layout: <data-root>/Dataset_BUSI_with_GT/<class>/<class> (n).png, <class> (n)_mask.png\\n"
        ...     "label_map: {malignant: 1, benign: 0, normal: 0}\\npatient_id: each image is its own patient\\n"
        ...     "options: {lesion_free: [normal]}\\n")
        >>> cohort = load_cohort(manifest, root)
        >>> cohort[["image_id", "label", "source_label"]].values.tolist()
        [['benign_1', 0, 'benign'], ['malignant_1', 1, 'malignant'], ['normal_1', 0, 'normal']]
        >>> cohort.loc[1, "path"], cohort.loc[1, "mask_path"]
        ('Dataset_BUSI_with_GT/malignant/malignant (1).png', 'Dataset_BUSI_with_GT/malignant/malignant (1)_mask.png')
    """
    parsed = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    if not isinstance(root, (str, os.PathLike)) or not str(root).strip():
        raise DataError(
            f"data root is {root!r}; give the folder that holds {parsed.name} (a path, e.g. --data-root "
            f"DIR). Expected layout:\n{parsed.layout}"
        )
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: data root not found (manifest {parsed.path}); give the folder that holds {parsed.name} "
            f"with --data-root. Expected layout:\n{parsed.layout}"
        )
    parsed = locate_top_folder(parsed, root)
    verify_checksums(parsed, root)
    return LOADERS[parsed.loader](parsed, root)


__all__ = ["LOADERS", "Manifest", "load_cohort", "load_manifest", "verify_checksums"]
