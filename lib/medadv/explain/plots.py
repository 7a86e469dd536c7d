"""Figures of notebook 04: alignment scores per model and method, a gallery of maps with the lesion outlined, and the
before / after panels of the Grad-CAM manipulation (after paper 004 Figs. 2-4).

Every figure is drawn at the text width in the kit's print style (:mod:`medadv.style`) and reads in greyscale: a map
is drawn on its own (not blended into its image, whose grey would mix with the map's lightness) in ``magma``, which
is monotone in lightness, beside its image, with a colourbar; only a map's positive part is shown (scaled to the
map's maximum, so one sequential scale from 0 to 1 serves every map and no diverging map is needed). Models are told
apart by grey levels and position, and the lesion outline is drawn twice (:func:`medadv.style.outline`) so it shows
on any map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from medadv.style import MAP_CMAP, colorbar, outline, paper_figure, paper_style, row_label, wrap

CLASS_NAMES = {0: "negative", 1: "positive"}
MAP_LABEL = "map / its maximum (positive part)"
IMAGE_WIDTH = 5.4
"""Inches of the text width left to a row of image panels once the row labels (0.9 in) and the colourbar are drawn."""
IMAGE_HEIGHT = 8.2
"""Inches of the page height left to a column of image panels once the titles are drawn."""


def _image(ax: Axes, image: np.ndarray, mask: np.ndarray | None = None) -> None:
    """``image`` in grey on ``ax`` without ticks, the lesion outlined when ``mask`` is given."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if mask is not None:
        outline(ax, mask)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_map(ax: Axes, sal: np.ndarray, mask: np.ndarray) -> AxesImage:
    """The positive part of ``sal`` scaled to its maximum (all zeros when it has none), in ``magma`` on [0, 1], with
    the lesion outlined; returns the drawn image (for the colourbar)."""
    peak = np.abs(sal).max()
    shown = ax.imshow(np.clip(sal / peak, 0, 1) if peak > 0 else np.zeros_like(sal), cmap=MAP_CMAP, vmin=0, vmax=1)
    outline(ax, mask)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _panel_side(rows: int, cols: int) -> float:
    """Inches per square image panel in a ``rows`` x ``cols`` grid at the text width."""
    return min(IMAGE_WIDTH / cols, IMAGE_HEIGHT / max(rows, 1))


def _legend_below(fig: Figure, ax: Axes, title: str) -> None:
    """Move ``ax``'s legend under the figure (one row), where it covers no data."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    fig.legend(handles, labels, title=title, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)


@paper_style
def alignment_boxplot(scores: pd.DataFrame, metric: str, models: Sequence[str], methods: Sequence[str]) -> Figure:
    """Box plot with the single images as points: ``metric`` per attribution method (x) and model (grey level); a
    sentence in its place when no score is finite (a data set without lesion masks).

    Returns:
        The figure (text width).
    """
    data = scores[(scores["metric"] == metric) & np.isfinite(scores["score"])]
    fig, ax = paper_figure("text", 3.2)
    if data.empty:  # a data set without lesion masks: nothing is scored against a lesion
        ax.text(0.5, 0.5, "no lesion masks in this data set:\nno map is scored against a lesion", ha="center")
        ax.set_axis_off()
        return fig
    palette = sns.color_palette("Greys", n_colors=len(models) + 1)[1:]
    common = {
        "data": data,
        "x": "method",
        "y": "score",
        "hue": "model",
        "order": list(methods),
        "hue_order": list(models),
    }
    sns.boxplot(**common, palette=palette, showfliers=False, linewidth=0.8, ax=ax)
    sns.stripplot(**common, dodge=True, palette="dark:black", size=2.0, alpha=0.6, legend=False, ax=ax)
    ax.set_xlabel("attribution method")
    ax.set_ylabel(f"{metric}\n(higher = on the lesion)")
    ax.set_ylim(-0.03, 1.03)
    ax.tick_params(axis="x", labelrotation=15)
    _legend_below(fig, ax, "model")
    return fig


@paper_style
def map_gallery(
    images: np.ndarray, masks: np.ndarray, maps: Mapping[str, np.ndarray], image_ids: Sequence[str], rows: Sequence[int]
) -> Figure:
    """Grid of maps beside their images: one row per image index in ``rows``, the image with its lesion outlined
    first, then one column per entry of ``maps`` (title -> (N, H, W)); each map is scaled to its own maximum, its
    positive part shown, on the one scale of the colourbar.

    Returns:
        The figure (text width).
    """
    cols = len(maps) + 1
    side = _panel_side(len(rows), cols)
    fig, axes = paper_figure("text", side * len(rows) + 0.45, len(rows), cols, squeeze=False)
    shown = None
    for r, i in enumerate(rows):
        _image(axes[r, 0], images[i].squeeze(), masks[i].squeeze())
        row_label(axes[r, 0], image_ids[i])
        for c, (title, sal) in enumerate(maps.items(), start=1):
            shown = _show_map(axes[r, c], sal[i], masks[i].squeeze())
            if r == 0:
                axes[r, c].set_title(wrap(title, side))  # a model's name as every table writes it
    axes[0, 0].set_title(wrap("image + lesion", side))
    if shown is not None:
        colorbar(fig, shown, axes, MAP_LABEL)
    return fig


@paper_style
def manipulation_panels(
    examples: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]],
) -> Figure:
    """Paper 004 Figs. 2-4 in one grid: per row (title, image, perturbed image, map before, map after, mask,
    label before, label after), the columns image, its Grad-CAM, perturbed image, its Grad-CAM, and the perturbation
    (grey, scaled to its own maximum, value printed). Both Grad-CAM columns share the colourbar's scale.

    Returns:
        The figure (text width).
    """
    side = _panel_side(len(examples), 5)
    fig, axes = paper_figure("text", side * len(examples) + 0.5, len(examples), 5, squeeze=False)
    heads = ["image", "Grad-CAM", "perturbed", "Grad-CAM after", "|perturbation|"]
    shown = None
    for r, (title, image, adv, before, after, mask, lab0, lab1) in enumerate(examples):
        image, adv, mask = image.squeeze(), adv.squeeze(), mask.squeeze()
        _image(axes[r, 0], image)
        shown = _show_map(axes[r, 1], before, mask)
        _image(axes[r, 2], adv)
        _show_map(axes[r, 3], after, mask)
        diff = np.abs(adv - image)
        axes[r, 4].imshow(diff, cmap="gray", vmin=0, vmax=max(float(diff.max()), 1e-8))
        axes[r, 4].set_xticks([])
        axes[r, 4].set_yticks([])
        row_label(axes[r, 0], title)
        axes[r, 1].set_xlabel(wrap(f"predicted {CLASS_NAMES.get(lab0, lab0)}", side))
        axes[r, 3].set_xlabel(wrap(f"predicted {CLASS_NAMES.get(lab1, lab1)}", side))
        axes[r, 4].set_xlabel(f"max {diff.max():.3f}")
    for c, head in enumerate(heads):
        axes[0, c].set_title(wrap(head, side))
    if shown is not None:
        colorbar(fig, shown, axes, f"Grad-CAM: {MAP_LABEL}")
    return fig


@paper_style
def fgsm_shift_figure(table: pd.DataFrame, steps: int, step_grey: float) -> Figure:
    """Paper 004's experiment (``steps`` steps of ``step_grey`` grey levels) in two panels: the peak shift (pixels)
    and the top-k overlap of each image's Grad-CAM map, per model (x), split by whether the label changed (grey
    level), with the single images as points.

    Returns:
        The figure (text width).
    """
    data = table.assign(label=np.where(table["label_changed"], "label changed", "label kept"))
    hue_order = ["label kept", "label changed"]
    fig, axes = paper_figure("text", 3.0, 1, 2)
    for ax, column, label in (
        (axes[0], "peak_shift_px", "peak shift of the map (pixels)"),
        (axes[1], "topk_overlap", "top-k overlap after / before"),
    ):
        common = {"data": data, "x": "model", "y": column, "hue": "label", "hue_order": hue_order}
        sns.boxplot(**common, palette=["0.85", "0.55"], showfliers=False, linewidth=0.8, ax=ax)
        sns.stripplot(**common, dodge=True, palette="dark:black", size=2.2, alpha=0.6, legend=False, ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel("")
    axes[1].set_ylim(-0.03, 1.03)
    axes[0].get_legend().remove()
    _legend_below(fig, axes[1], "")
    fig.suptitle(f"Paper 004: iterative FGSM, {steps} steps of {step_grey:g}/255, against the predicted label")
    return fig
