"""Real data sets: a manifest YAML (``data_manifests/<set>.yaml``) plus one loader per data set's on-disk layout.

``load_cohort(manifest, root)`` reads the manifest (:mod:`medadv.data.sources.manifest`), verifies its sha256 list,
and calls the loader it names, which returns the cohort table of :mod:`medadv.data.cohort` with paths relative to
``root``. Loaders read only: nothing is ever written into the data root. Images or masks that are not single files
(members of an ``.npz``, several mask files of one image, boxes and polygons) get the path references described in
:mod:`medadv.data.images`, which :func:`medadv.data.images.read_image` and :func:`~medadv.data.images.read_mask`
resolve lazily.

Loaders (``loader:`` in the manifest):
    ``busi``         :mod:`medadv.data.sources.busi`         breast ultrasound, PNG + PNG masks
    ``cbis_ddsm``    :mod:`medadv.data.sources.cbis_ddsm`    film mammography, DICOM + ROI-mask DICOMs, case CSVs
    ``vindr_mammo``  :mod:`medadv.data.sources.vindr_mammo`  digital mammography, DICOM + BI-RADS and box CSVs
    ``medmnist``     :mod:`medadv.data.sources.medmnist`     MedMNIST ``.npz`` (BreastMNIST, PneumoniaMNIST)
    ``fracatlas``    :mod:`medadv.data.sources.fracatlas`    radiographs, JPEG + COCO polygons
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from medadv.data.sources import busi, cbis_ddsm, fracatlas, medmnist, vindr_mammo
from medadv.data.sources.manifest import Manifest, load_manifest, verify_checksums
from medadv.errors import DataError

LOADERS: dict[str, Callable[[Manifest, Path], pd.DataFrame]] = {
    "busi": busi.load,
    "cbis_ddsm": cbis_ddsm.load,
    "vindr_mammo": vindr_mammo.load,
    "medmnist": medmnist.load,
    "fracatlas": fracatlas.load,
}


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
    """
    parsed = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: data root not found (manifest {parsed.path}); give the folder that holds {parsed.name} "
            f"with --data-root. Expected layout:\n{parsed.layout}"
        )
    verify_checksums(parsed, root)
    return LOADERS[parsed.loader](parsed, root)


__all__ = ["LOADERS", "Manifest", "load_cohort", "load_manifest", "verify_checksums"]
