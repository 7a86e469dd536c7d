"""The GAN's adversarial image set and the education triplets of paper 001, written into the run folder.

Paper 001 ("AI model study"): every test image is modified by the generator of its class, and the fake carries the
flipped label (a negative-looking fake of a positive is labelled negative, and vice versa). Here this is done for
every val and test image. Files (the contract read by notebooks 03 and 05):

* ``data/adversarial/<split>/<image_id>.png``: the fake as a 16-bit grey PNG (65536 levels, read back by
  :func:`medadv.data.images.read_image` into [0, 1]);
* ``tables/adversarial_index.csv``: image_id, split, source_label, fake_label, path (relative to the run folder),
  mean_abs_change (mean |fake - real| over the image, on the stored 16-bit fake);
* ``data/education/<image_id>_{real,fake,diff}.png`` and ``tables/education_index.csv`` (image_id, real_path,
  fake_path, diff_path): paper 001's Session 4 triplets (Fig. 2) from TRAIN images. The difference image is the
  subtraction real - fake, shown as 0.5 + 0.5 * d / max|d| (mid-grey = no change, stretched per image so that the
  small edits are visible, as in the paper's figure).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medadv.data.pixels import quantize, save_png16
from medadv.errors import DataError, RunError
from medadv.layout import RunLayout
from medadv.style import paper_figure, paper_style, row_label, wrap

ADVERSARIAL_COLUMNS = ("image_id", "split", "source_label", "fake_label", "path", "mean_abs_change")
EDUCATION_COLUMNS = ("image_id", "real_path", "fake_path", "diff_path")

__all__ = [
    "ADVERSARIAL_COLUMNS",
    "EDUCATION_COLUMNS",
    "difference_image",
    "education_selection",
    "plot_triplets",
    "read_adversarial_index",
    "validate_adversarial_index",
    "write_adversarial_set",
    "write_education_set",
]


def difference_image(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """Paper 001 Fig. 2's subtraction real - fake, mapped to [0, 1] as 0.5 + 0.5 * d / max|d| (0.5 if unchanged).

    Returns:
        The difference image, float64 in [0, 1], the shape of ``real``.
    """
    d = np.asarray(real, dtype=np.float64) - np.asarray(fake, dtype=np.float64)
    peak = float(np.abs(d).max())
    return np.full_like(d, 0.5) if peak == 0.0 else 0.5 + 0.5 * d / peak


def _file_stem(image_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(image_id))


def write_adversarial_set(
    layout: RunLayout, rows: pd.DataFrame, real: np.ndarray, fake: np.ndarray
) -> tuple[pd.DataFrame, list[Path]]:
    """Write each fake as a 16-bit PNG under the run folder's ``data/adversarial`` and build the adversarial index.

    Args:
        layout: the run folder's layout (the fakes go to ``layout.adversarial``; the index's paths are relative to
            the run folder).
        rows: one row per image with image_id, split and label (the cohort rows of ``real``, in order).
        real, fake: (N, 1, H, W) in [0, 1]; ``fake[i]`` is the flipped-label counterpart of ``real[i]``.

    Returns:
        (index with :data:`ADVERSARIAL_COLUMNS`, the written paths) — register the paths with the run context.
    """
    real = np.asarray(real)
    fake = np.asarray(fake)
    if real.shape != fake.shape or len(rows) != len(real):
        raise DataError(
            f"{len(rows)} rows, real {real.shape}, fake {fake.shape}; expected one real and one fake per row."
        )
    stems = [f"{split}/{_file_stem(i)}" for i, split in zip(rows["image_id"], rows["split"], strict=True)]
    if len(set(stems)) != len(stems):
        raise DataError("image ids collide once made file-name safe; give the cohort unique alphanumeric image ids.")
    records, paths = [], []
    for k, row in enumerate(rows.itertuples(index=False)):
        path = save_png16(layout.adversarial / f"{stems[k]}.png", fake[k, 0])
        rel = layout.relative(path)
        stored = quantize(fake[k, 0], 16).astype(np.float64) / 65535.0
        records.append(
            {
                "image_id": str(row.image_id),
                "split": row.split,
                "source_label": int(row.label),
                "fake_label": 1 - int(row.label),
                "path": rel,
                "mean_abs_change": float(np.abs(stored - real[k, 0]).mean()),
            }
        )
        paths.append(path)
    return pd.DataFrame(records, columns=list(ADVERSARIAL_COLUMNS)), paths


def validate_adversarial_index(
    index: pd.DataFrame, cohort: pd.DataFrame, splits: tuple[str, ...] = ("val", "test")
) -> None:
    """Check the adversarial index contract: columns, one row for every image of ``splits``, flipped labels.

    Raises:
        DataError: naming the missing columns, missing or extra images, or rows whose labels are not flipped.
    """
    missing = [c for c in ADVERSARIAL_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"adversarial_index: missing columns {missing}; expected {list(ADVERSARIAL_COLUMNS)}.")
    want = cohort[cohort["split"].isin(splits)]
    lost = sorted(set(want["image_id"].astype(str)) - set(index["image_id"].astype(str)))
    if lost or len(index) != len(want):
        raise DataError(
            f"adversarial_index: {len(index)} rows for {len(want)} {'/'.join(splits)} images; missing {lost[:5]}."
        )
    labels = dict(zip(want["image_id"].astype(str), want["label"].astype(int), strict=True))
    bad = [
        i
        for i, s, f in zip(index["image_id"].astype(str), index["source_label"], index["fake_label"], strict=True)
        if int(s) != labels[i] or int(f) != 1 - labels[i]
    ]
    if bad:
        raise DataError(f"adversarial_index: labels not flipped (or source label wrong) for {bad[:5]}.")


def read_adversarial_index(path: Path, cohort: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a run folder's adversarial index (``RunLayout.adversarial_index``, written by notebook 02), image ids as
    text: the one reader of the file; with ``cohort``, checked against it by :func:`validate_adversarial_index`.

    Returns:
        The index as written (:data:`ADVERSARIAL_COLUMNS`).

    Raises:
        RunError: the file is missing (run notebook 02 for this run folder first).
        DataError: with ``cohort``, the index does not match it.
    """
    if not path.is_file():
        raise RunError(
            f"{path} is missing; it is made by notebook 02_gan_training: run that notebook for this run folder first."
        )
    index = pd.read_csv(path, dtype={"image_id": str}, keep_default_na=False)
    if cohort is not None:
        validate_adversarial_index(index, cohort)
    return index


def write_education_set(
    layout: RunLayout, image_ids: list[str], real: np.ndarray, fake: np.ndarray
) -> tuple[pd.DataFrame, list[Path]]:
    """Write paper 001's education triplets (real, fake, difference) as 16-bit PNGs under the run folder's
    ``data/education`` (``layout.education``; the index's paths are relative to the run folder).

    Returns:
        The education index (columns :data:`EDUCATION_COLUMNS`) and the PNG paths written.
    """
    if len(image_ids) != len(real) or np.shape(real) != np.shape(fake):
        raise DataError(
            f"{len(image_ids)} ids, real {np.shape(real)}, fake {np.shape(fake)}; expected one pair per id."
        )
    records, paths = [], []
    for k, image_id in enumerate(image_ids):
        stem = layout.relative(layout.education / _file_stem(image_id))
        rels = {"real_path": f"{stem}_real.png", "fake_path": f"{stem}_fake.png", "diff_path": f"{stem}_diff.png"}
        images = {
            "real_path": real[k, 0],
            "fake_path": fake[k, 0],
            "diff_path": difference_image(real[k, 0], fake[k, 0]),
        }
        for key, rel in rels.items():
            paths.append(save_png16(layout.root / rel, images[key]))
        records.append({"image_id": str(image_id), **rels})
    return pd.DataFrame(records, columns=list(EDUCATION_COLUMNS)), paths


def education_selection(labels: np.ndarray, per_generator: int, seed: int) -> np.ndarray:
    """Indices of the education images: ``per_generator`` positives (for ``remove``) then as many negatives (for
    ``insert``), each drawn without replacement by a generator seeded with ``seed`` (fewer if a class is smaller).

    Returns:
        The indices into ``labels``, positives first.
    """
    labels = np.asarray(labels).astype(int)
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == source))[:per_generator] for source in (1, 0)]
    return np.concatenate(picks).astype(int)


@paper_style
def plot_triplets(real: np.ndarray, fake: np.ndarray, titles: list[str]) -> Figure:
    """Paper 001 Fig. 2 at the text width: one row per image with the real image, its fake, and the difference
    real - fake (grey scale, symmetric range printed per row: mid-grey = unchanged, darker = the fake is brighter
    there).

    Args:
        real, fake: (N, 1, H, W) images in [0, 1].
        titles: one row label per image.

    Returns:
        The figure.
    """
    n = len(real)
    side = min(1.9, 8.4 / max(n, 1) - 0.2)  # 6 in of the text width for three panels, 0.2 in per row for titles
    fig, axes = paper_figure("text", (side + 0.2) * n + 0.3, n, 3, squeeze=False)
    for i in range(n):
        d = real[i, 0].astype(np.float64) - fake[i, 0]
        peak = max(float(np.abs(d).max()), 1e-6)
        panels = (
            (real[i, 0], 0.0, 1.0, "real"),
            (fake[i, 0], 0.0, 1.0, "fake"),
            (d, -peak, peak, f"real - fake (±{peak:.2g})"),
        )
        for ax, (img, lo, hi, name) in zip(axes[i], panels, strict=True):
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(wrap(name, side))
        row_label(axes[i, 0], titles[i])
    return fig
