"""Figures of notebook 04: alignment scores per model and method, a gallery of maps with the lesion outlined, and the
before / after panels of the Grad-CAM manipulation (after paper 004 Figs. 2-4).

Every figure reads in greyscale: maps use ``magma`` (monotone in lightness), models are told apart by grey levels and
position, and the lesion outline is drawn twice (a wide black line under a narrow white one) so it shows on any map.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

MAP_CMAP = "magma"
CLASS_NAMES = {0: "negative", 1: "positive"}


def outline(ax: plt.Axes, mask: np.ndarray) -> None:
    """Draw the lesion mask's outline on ``ax``: black under white, visible on dark and light maps alike."""
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="black", linewidths=2.2)
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.9)


def alignment_boxplot(scores: pd.DataFrame, metric: str, models: Sequence[str], methods: Sequence[str]) -> plt.Figure:
    """Box plot with the single images as points: ``metric`` per attribution method (x) and model (grey level).

    Returns:
        The figure.
    """
    data = scores[scores["metric"] == metric]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods), 4.2))
    palette = sns.color_palette("Greys", n_colors=len(models) + 1)[1:]
    common = {"data": data, "x": "method", "y": "score", "hue": "model", "order": list(methods), "hue_order": list(models)}
    sns.boxplot(**common, palette=palette, showfliers=False, linewidth=0.8, ax=ax)
    sns.stripplot(**common, dodge=True, palette="dark:black", size=2.2, alpha=0.6, legend=False, ax=ax)
    ax.set_xlabel("attribution method")
    ax.set_ylabel(f"{metric} (higher = on the lesion)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(title="model", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def _show_map(ax: plt.Axes, image: np.ndarray, sal: np.ndarray, mask: np.ndarray) -> None:
    peak = np.abs(sal).max()
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(np.clip(sal / peak, 0, 1) if peak > 0 else np.zeros_like(sal), cmap=MAP_CMAP, vmin=0, vmax=1, alpha=0.6)
    outline(ax, mask)
    ax.set_xticks([])
    ax.set_yticks([])


def map_gallery(
    images: np.ndarray, masks: np.ndarray, maps: Mapping[str, np.ndarray], image_ids: Sequence[str], rows: Sequence[int]
) -> plt.Figure:
    """Grid of maps over their images: one row per image index in ``rows``, the image first, then one column per
    entry of ``maps`` (title -> (N, H, W)); each map is scaled to its own maximum, its positive part shown.

    Returns:
        The figure.
    """
    cols = len(maps) + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.5 * cols, 1.55 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        axes[r, 0].imshow(images[i].squeeze(), cmap="gray", vmin=0, vmax=1)
        outline(axes[r, 0], masks[i].squeeze())
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(image_ids[i], fontsize=7)
        for c, (title, sal) in enumerate(maps.items(), start=1):
            _show_map(axes[r, c], images[i].squeeze(), sal[i], masks[i].squeeze())
            if r == 0:
                axes[r, c].set_title(title, fontsize=7)
    axes[0, 0].set_title("image + lesion", fontsize=7)
    fig.tight_layout()
    return fig


def manipulation_panels(
    examples: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]],
) -> plt.Figure:
    """Paper 004 Figs. 2-4 in one grid: per row (title, image, perturbed image, map before, map after, mask,
    label before, label after), the columns image, its Grad-CAM, perturbed image, its Grad-CAM, and the perturbation
    (scaled to its own maximum, value printed).

    Returns:
        The figure.
    """
    fig, axes = plt.subplots(len(examples), 5, figsize=(8.2, 1.75 * len(examples)), squeeze=False)
    heads = ["image", "Grad-CAM", "perturbed", "Grad-CAM after", "|perturbation|"]
    for r, (title, image, adv, before, after, mask, lab0, lab1) in enumerate(examples):
        image, adv = image.squeeze(), adv.squeeze()
        axes[r, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
        _show_map(axes[r, 1], image, before, mask)
        axes[r, 2].imshow(adv, cmap="gray", vmin=0, vmax=1)
        _show_map(axes[r, 3], adv, after, mask)
        diff = np.abs(adv - image)
        axes[r, 4].imshow(diff, cmap="gray", vmin=0, vmax=max(float(diff.max()), 1e-8))
        axes[r, 0].set_ylabel(title, fontsize=7)
        axes[r, 1].set_xlabel(f"predicted {CLASS_NAMES.get(lab0, lab0)}", fontsize=7)
        axes[r, 3].set_xlabel(f"predicted {CLASS_NAMES.get(lab1, lab1)}", fontsize=7)
        axes[r, 4].set_xlabel(f"max {diff.max():.3f}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    for c, head in enumerate(heads):
        axes[0, c].set_title(head, fontsize=8)
    fig.tight_layout()
    return fig


def fgsm_shift_figure(table: pd.DataFrame, steps: int, step_grey: float) -> plt.Figure:
    """Paper 004's experiment (``steps`` steps of ``step_grey`` grey levels) in two panels: the peak shift (pixels)
    and the top-k overlap of each image's Grad-CAM map, per model (x), split by whether the label changed (grey
    level), with the single images as points.

    Returns:
        The figure.
    """
    data = table.assign(label=np.where(table["label_changed"], "label changed", "label kept"))
    hue_order = ["label kept", "label changed"]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    for ax, column, label in ((axes[0], "peak_shift_px", "peak shift of the map (pixels)"),
                              (axes[1], "topk_overlap", "top-k overlap after / before")):
        common = {"data": data, "x": "model", "y": column, "hue": "label", "hue_order": hue_order}
        sns.boxplot(**common, palette=["0.85", "0.55"], showfliers=False, linewidth=0.8, ax=ax)
        sns.stripplot(**common, dodge=True, palette="dark:black", size=2.4, alpha=0.6, legend=False, ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel("")
    axes[1].set_ylim(-0.03, 1.03)
    axes[0].get_legend().remove()
    axes[1].legend(title="", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"Paper 004: iterative FGSM, {steps} steps of {step_grey:g}/255, against the predicted label", fontsize=9)
    fig.tight_layout()
    return fig
