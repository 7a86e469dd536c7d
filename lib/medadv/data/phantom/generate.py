"""The phantom cohort: patients' labels and ids, rendering a patient or one view again, and writing the cohort's PNGs
and table.

See :mod:`medadv.data.phantom` for how an image is made.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from medadv.config import DataConfig
from medadv.core import in_notebook_progress
from medadv.data.cohort import COHORT_COLUMNS
from medadv.data.phantom.building_blocks import CONSPICUITY, VIEWS, PhantomPatient, PhantomView
from medadv.data.phantom.mammography import render_mammography
from medadv.data.phantom.ultrasound import render_ultrasound
from medadv.data.phantom.xray import render_xray
from medadv.data.pixels import save_png8, save_png16
from medadv.errors import ConfigError, DataError

log = logging.getLogger(__name__)


_RENDERERS = {"mammography": render_mammography, "ultrasound": render_ultrasound, "xray": render_xray}


def phantom_labels(config: DataConfig, seed: int) -> np.ndarray:
    """Labels of the cohort's patients: exactly ``round(n_patients * positive_fraction)`` positives (at least one, and
    at least one negative), in a seeded random order.

    Returns:
        The labels (n_patients,), int64.
    """
    n = config.n_patients
    n_pos = min(max(int(round(n * config.positive_fraction)), 1), n - 1)
    labels = np.zeros(n, np.int64)
    labels[:n_pos] = 1
    return np.random.default_rng([seed, 0]).permutation(labels)


def patient_id(index: int) -> str:
    """The id of phantom patient ``index``.

    Returns:
        The id, ``P<index>`` with five digits.
    """
    return f"P{index:05d}"


def render_patient(config: DataConfig, seed: int, index: int, positive: bool) -> PhantomPatient:
    """Render phantom patient ``index`` of the cohort made with ``seed`` (both views, lesion-free copies, masks).

    The patient draws from its own generator seeded by ``(seed, 1, index)``: the same patient comes out the same
    whatever the cohort size, and at another ``lesion_contrast`` only the lesion's amplitude changes. The lesion's
    peak is ``lesion_contrast`` times a conspicuity factor drawn log-uniformly from ``CONSPICUITY`` times
    ``REFERENCE_PEAK`` of its kind, in background standard deviations.

    Returns:
        The patient, with its views.
    """
    rng = np.random.default_rng([seed, 1, index])
    contrast = config.lesion_contrast * float(np.exp(rng.uniform(*np.log(CONSPICUITY))))
    kind, views = _RENDERERS[config.modality](rng, tuple(config.image_size), positive, contrast)
    return PhantomPatient(
        patient_id=patient_id(index),
        label=int(positive),
        source_label=kind,
        contrast=contrast if positive else 0.0,
        views=tuple(views),
    )


def phantom_view(config: DataConfig, seed: int, image_id: str) -> PhantomView:
    """Re-render one image of the cohort made by :func:`generate_cohort` with ``config`` and ``seed``, with its
    lesion-free version and its mask: the ground truth of a lesion removal (``lesion_free``), for example.

    Returns:
        The view: image, lesion-free image and mask.

    Raises:
        DataError: ``image_id`` is not one of this cohort's images (``P<index>_<view>``).
    """
    patient, _, view = image_id.partition("_")
    index = int(patient[1:]) if patient[:1] == "P" and patient[1:].isdigit() else -1
    if not 0 <= index < config.n_patients or view not in VIEWS[config.modality]:
        raise DataError(
            f"image id {image_id!r} is not in this phantom cohort ({config.n_patients} {config.modality} patients, "
            f"ids {patient_id(0)}_{VIEWS[config.modality][0]} ...); pass an id from its cohort table."
        )
    rendered = render_patient(config, seed, index, bool(phantom_labels(config, seed)[index]))
    return next(v for v in rendered.views if v.view == view)


def generate_cohort(
    config: DataConfig, seed: int, out_dir: str | Path, relative_to: str | Path | None = None
) -> pd.DataFrame:
    """Render the phantom cohort of ``config`` into ``out_dir`` and return its cohort table.

    Images are 16-bit grey PNGs in ``out_dir/images`` (``<patient>_<view>.png``), lesion masks 8-bit PNGs (0 or 255)
    in ``out_dir/masks``, both at ``config.image_size``. Negative patients have no mask file and an empty
    ``mask_path`` (no annotation; :func:`medadv.data.images.load_split` gives them an all-False mask).

    Args:
        config: the profile's ``data`` section (modality, n_patients, positive_fraction, image_size, lesion_contrast).
        seed: the cohort's seed (the profile's seed); the same seed gives byte-identical files.
        out_dir: folder to write into (created if missing).
        relative_to: folder that the table's ``path`` and ``mask_path`` are relative to (``out_dir`` or a parent of
            it); ``out_dir`` when None. Notebook 00 passes the run folder, the root of a phantom run's cohort paths.

    Returns:
        The cohort table (:data:`medadv.data.cohort.COHORT_COLUMNS`) with an empty ``split`` column, one row per image
        in patient order.

    Raises:
        ConfigError: ``out_dir`` does not lie inside ``relative_to``.
    """
    out_dir = Path(out_dir).resolve()
    base = Path(relative_to).resolve() if relative_to is not None else out_dir
    if not out_dir.is_relative_to(base):
        raise ConfigError(
            f"phantom output folder {out_dir} is not inside {base}; the cohort's paths are relative to it."
        )
    images_dir, masks_dir = out_dir / "images", out_dir / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    labels = phantom_labels(config, seed)
    rows = []
    log.info("rendering %d %s phantom patients into %s", config.n_patients, config.modality, out_dir)
    for index in tqdm(range(config.n_patients), desc="phantom", disable=not in_notebook_progress()):
        patient = render_patient(config, seed, index, bool(labels[index]))
        for view in patient.views:
            image_id = f"{patient.patient_id}_{view.view}"
            image_path = images_dir / f"{image_id}.png"
            save_png16(image_path, view.image)
            mask_rel = ""
            if patient.label:
                mask_path = masks_dir / f"{image_id}.png"
                save_png8(mask_path, view.mask)
                mask_rel = mask_path.relative_to(base).as_posix()
            rows.append(
                {
                    "image_id": image_id,
                    "patient_id": patient.patient_id,
                    "path": image_path.relative_to(base).as_posix(),
                    "label": patient.label,
                    "mask_path": mask_rel,
                    "view": view.view,
                    "split": "",
                    "modality": config.modality,
                    "source_label": patient.source_label,
                }
            )
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))


def render_arrays(config: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the phantom cohort of ``config`` and ``seed`` in memory, without files: the same patients and views as
    :func:`generate_cohort` writes (before the 16-bit PNG rounding), for a corpus that never becomes a run's cohort
    (the kit's pretraining corpus, :mod:`medadv.train.pretrain`).

    Returns:
        (images (N, 1, H, W) float32 in [0, 1], lesion masks (N, 1, H, W) bool, labels (N,) int64), two views per
        patient in patient order.
    """
    labels = phantom_labels(config, seed)
    images, masks, view_labels = [], [], []
    for index in range(config.n_patients):
        patient = render_patient(config, seed, index, bool(labels[index]))
        for view in patient.views:
            images.append(view.image.astype(np.float32))
            masks.append(view.mask)
            view_labels.append(patient.label)
    return np.stack(images)[:, None], np.stack(masks)[:, None], np.asarray(view_labels, np.int64)
