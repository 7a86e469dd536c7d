"""Figures of notebook 00: example images with their lesion masks outlined, and intensity histograms per class.

Both read the images through :func:`medadv.data.images.read_image` (so they show exactly what the models get before
resizing) and are drawn at the text width in the kit's print style (:mod:`medadv.style`): mask outlines are white over
black, classes differ by line style, so both read in greyscale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medadv.data.images import read_image, read_mask, warn_narrow_range
from medadv.style import outline, paper_figure, paper_style, wrap

CLASS_NAMES = {0: "negative", 1: "positive"}
MAX_PIXELS = 128 * 128
"""Pixels per image kept for the intensity histograms (a regular subsample of larger images)."""
CLASS_STYLES = {0: {"linestyle": "--", "color": "0.45"}, 1: {"linestyle": "-", "color": "0.0"}}


def pick_examples(cohort: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` positive and ``n`` negative images, drawn with ``seed`` from the test split when it has enough (else from
    the whole cohort), positives first, each group sorted by image id.

    Returns:
        The rows of the chosen images, positives first.
    """
    picked = []
    for label in (1, 0):
        pool = cohort[cohort["label"] == label]
        test = pool[pool["split"] == "test"]
        pool = test if len(test) >= n else pool
        pool = pool.sort_values("image_id")
        take = min(n, len(pool))
        idx = np.sort(np.random.default_rng([seed, label]).choice(len(pool), size=take, replace=False))
        picked.append(pool.iloc[idx])
    return pd.concat(picked).reset_index(drop=True)


@paper_style
def plot_examples(cohort: pd.DataFrame, root: str | Path, n: int = 6, seed: int = 0) -> Figure:
    """A 2 x ``n`` grid at the text width: positive images (top row, lesion mask outlined) and negative images
    (bottom row), titled with image id and the data set's label.

    Returns:
        The figure.
    """
    root = Path(root)
    rows = pick_examples(cohort, n, seed)
    side = 6.7 / max(n, 1)
    fig, axes = paper_figure("text", 2 * side + 0.9, 2, n, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for row_idx, label in enumerate((1, 0)):
        axes[row_idx, 0].set_ylabel(CLASS_NAMES[label])
        for col, row in enumerate(rows[rows["label"] == label].itertuples(index=False)):
            ax = axes[row_idx, col]
            image = read_image(root / row.path)
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if row.mask_path:
                outline(ax, read_mask(root / row.mask_path, image.shape))
            ax.set_title(wrap(f"{row.image_id}\n{row.source_label}", side, 7.0), fontsize=7.0)
    fig.suptitle("Cohort examples (lesion masks outlined)")
    return fig


def intensity_samples(cohort: pd.DataFrame, root: str | Path, max_images: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per class, the pixel values of up to ``max_images`` images (seeded draw; at most ``MAX_PIXELS`` per image, a
    regular subsample) and each image's mean intensity: a table with columns ``label``, ``image_id``, ``mean`` and
    ``pixels`` (an array per image). Warns when the sampled images use a narrow part of their value range
    (:func:`medadv.data.images.warn_narrow_range`).

    Returns:
        The table, one row per sampled pixel.
    """
    root = Path(root)
    records = []
    for label in (0, 1):
        pool = cohort[cohort["label"] == label].sort_values("image_id")
        take = min(max_images, len(pool))
        idx = np.sort(np.random.default_rng([seed, 2, label]).choice(len(pool), size=take, replace=False))
        for row in pool.iloc[idx].itertuples(index=False):
            image = read_image(root / row.path)
            step = int(np.ceil(np.sqrt(image.size / MAX_PIXELS)))
            pixels = image[::step, ::step].ravel()  # a regular subsample keeps full-resolution data sets light
            records.append({"label": label, "image_id": row.image_id, "mean": float(pixels.mean()), "pixels": pixels})
    if records:
        warn_narrow_range(np.concatenate([r["pixels"] for r in records]), len(records))
    return pd.DataFrame(records)


@paper_style
def plot_intensity_histograms(cohort: pd.DataFrame, root: str | Path, max_images: int = 200, seed: int = 0) -> Figure:
    """Two panels at the text width, one line per class (negative dashed grey, positive solid black): the pixel
    intensity distribution (density, log scale) and the distribution of per-image mean intensity. A visible class
    difference here would be a shortcut a classifier could learn without looking at lesions.

    Returns:
        The figure.
    """
    samples = intensity_samples(cohort, root, max_images, seed)
    bins = np.linspace(0.0, 1.0, 65)
    n_mean_bins = int(np.clip(len(samples) // 8, 8, 30))
    mean_bins_edges = np.linspace(samples["mean"].min(), samples["mean"].max() + 1e-6, n_mean_bins + 1)
    fig, (ax_pix, ax_mean) = paper_figure("text", 2.8, 1, 2)
    for label, group in samples.groupby("label"):
        style = CLASS_STYLES[int(label)]
        name = f"{CLASS_NAMES[int(label)]} ({len(group)} images)"
        density, _ = np.histogram(np.concatenate(group["pixels"].to_list()), bins=bins, density=True)
        ax_pix.stairs(density, bins, label=name, linewidth=1.2, **style)
        mean_density, mean_bins = np.histogram(group["mean"], bins=mean_bins_edges, density=True)
        ax_mean.stairs(mean_density, mean_bins, label=name, linewidth=1.2, **style)
    ax_pix.set_yscale("log")
    ax_pix.set(xlabel="pixel intensity", ylabel="density", title="Pixel intensities")
    ax_mean.set(xlabel="mean intensity of an image", ylabel="density", title="Per-image mean intensity")
    for ax in (ax_pix, ax_mean):
        ax.legend(frameon=False)
    return fig
