"""Figures of the attack evaluation (matplotlib / seaborn, readable in greyscale: markers and line styles, not colour,
tell the series apart), sized for print by :mod:`medadv.style`. Accuracy is that of the predicted class, which for
the kit's two-class models is P(positive) >= 0.5 (:data:`THRESHOLD`); every accuracy axis says so.

* :func:`attack_examples_figure`: original / perturbation (amplified) / adversarial image with the model's
  predictions, as in paper 004's Figs. 3-4;
* :func:`robustness_curves_figure`: accuracy against the attack budget, one line per recipe (paper 002);
* :func:`corruption_curves_figure`: accuracy against corruption severity, one panel per corruption;
* :func:`corruption_examples_figure`: one image under every corruption and severity;
* :func:`gan_scores_figure`: the classifier's score on each real image against its fake's (paper 001, Table 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from medadv.attacks.corruptions import corrupt
from medadv.style import paper_figure, paper_style, series_style

THRESHOLD = 0.5
ACCURACY_LABEL = f"balanced accuracy (threshold {THRESHOLD:g})"

TEXT_WIDTH_PANEL = 6.6
"""Inches of the text width left to a row of image panels once the row labels are drawn."""


def _label(p: float) -> str:
    return f"{'positive' if p >= THRESHOLD else 'negative'} (p={p:.2f})"


@paper_style
def attack_examples_figure(
    x: np.ndarray, x_adv: np.ndarray, p_clean: np.ndarray, p_adv: np.ndarray, labels: np.ndarray, attack: str
) -> Figure:
    """Paper 004, Figs. 3-4: per row one image, its perturbation and the adversarial image, with predictions.

    The perturbation ``x_adv - x`` is shown stretched to the row's largest change (mid-grey = unchanged; the
    stretch factor is printed), since at an imperceptible budget it is invisible at the image's own scale.

    Args:
        x, x_adv: (K, 1, H, W) images in [0, 1].
        p_clean, p_adv: probability of the positive class on each.
        labels: true labels.
        attack: name for the title (e.g. ``"PGD L-inf, eps = 2/255"``).

    Returns:
        The figure.
    """
    k = len(x)
    fig, axes = paper_figure("text", 2.0 * k + 0.35, k, 3, squeeze=False)
    for i in range(k):
        delta = x_adv[i, 0] - x[i, 0]
        peak = float(np.abs(delta).max()) or 1.0
        panels = [
            (x[i, 0], f"original, label {'positive' if labels[i] else 'negative'}\npredicted {_label(p_clean[i])}"),
            (0.5 + 0.5 * delta / peak, f"perturbation x{0.5 / peak:.0f}\nmax |change| {peak * 255:.2f}/255"),
            (x_adv[i, 0], f"adversarial\npredicted {_label(p_adv[i])}"),
        ]
        for ax, (img, title) in zip(axes[i], panels, strict=True):
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(title)
            ax.set_axis_off()
    fig.suptitle(attack)
    return fig


@paper_style
def robustness_curves_figure(curves: pd.DataFrame) -> Figure:
    """Balanced accuracy (at threshold 0.5) against the budget for PGD in L-inf (in units of 1/255) and L2, one line
    per model; eps 0 is the clean balanced accuracy, and a dotted line marks what a constant classifier scores (0.5).
    ``curves`` has the columns of :data:`medadv.attacks.robustness.CURVE_COLUMNS`.

    Returns:
        The figure.
    """
    fig, axes = paper_figure("text", 2.9, 1, 2)
    clean = curves[curves["attack"] == "clean"].set_index("model")["balanced_accuracy"]
    for ax, norm, unit in ((axes[0], "linf", 255.0), (axes[1], "l2", 1.0)):
        for i, (model, group) in enumerate(
            curves[(curves["attack"] == "pgd") & (curves["norm"] == norm)].groupby("model", sort=True)
        ):
            eps = np.r_[0.0, group["eps"].to_numpy() * unit]
            acc = np.r_[clean[model], group["balanced_accuracy"].to_numpy()]
            ax.plot(eps, acc, label=model, **series_style(i))
        ax.axhline(0.5, color="0.6", linestyle=":", linewidth=0.8, label="constant classifier")
        ax.set_xlabel("eps (x 1/255)" if norm == "linf" else "eps (L2 norm per image)")
        ax.set_ylabel(ACCURACY_LABEL)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"PGD, {'L-inf' if norm == 'linf' else 'L2'}")
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()  # under the panels: inside, it would cover a curve
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    return fig


@paper_style
def corruption_curves_figure(corruptions: pd.DataFrame) -> Figure:
    """Balanced accuracy (at threshold 0.5) against severity, one panel per corruption, one line per model; a dotted
    line marks the constant classifier's 0.5.

    Returns:
        The figure.
    """
    names = list(dict.fromkeys(corruptions["corruption"]))
    cols = 3
    rows = -(-len(names) // cols)
    fig, axes = paper_figure("text", 1.75 * rows + 0.5, rows, cols, squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        part = corruptions[corruptions["corruption"] == name]
        for i, (model, group) in enumerate(part.groupby("model", sort=True)):
            ax.plot(group["severity"], group["balanced_accuracy"], label=model, **series_style(i))
        ax.axhline(0.5, color="0.6", linestyle=":", linewidth=0.8, label="constant classifier")
        ax.set_title(name)
        ax.set_xticks(sorted(part["severity"].unique()))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel(ACCURACY_LABEL)
    handles, labels = axes.flat[0].get_legend_handles_labels()  # above the panels, clear of the x label below
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 4), frameon=False)
    fig.supxlabel("severity")
    return fig


@paper_style
def corruption_examples_figure(
    image: np.ndarray, names: tuple[str, ...], severities: tuple[int, ...], seed: int = 0
) -> Figure:
    """One (H, W) image in [0, 1] under every corruption (rows) and severity (columns).

    Returns:
        The figure.
    """
    cols = len(severities) + 1
    side = min(TEXT_WIDTH_PANEL / cols, 8.6 / max(1, len(names)))
    fig, axes = paper_figure("text", side * len(names) + 0.3, len(names), cols, squeeze=False)
    for r, name in enumerate(names):
        row = [(image, "clean")] + [(corrupt(image, name, s, seed=seed), f"severity {s}") for s in severities]
        for c, (img, title) in enumerate(row):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
        axes[r, 0].set_ylabel(name.replace("_", " "))
    return fig


@paper_style
def gan_scores_figure(
    labels: np.ndarray, real_scores: np.ndarray, fake_scores: np.ndarray, threshold: float = THRESHOLD
) -> Figure:
    """Each real image's positive-class score against its fake's; the quadrants at the threshold show who is fooled
    (a correctly called positive whose fake falls below the threshold, a correctly called negative whose fake rises
    above it).

    Returns:
        The figure.
    """
    fig, ax = paper_figure("column", 4.1)
    for cls, marker, name in (
        (1, "o", "positive (fake: lesion removed)"),
        (0, "^", "negative (fake: lesion inserted)"),
    ):
        sel = np.asarray(labels) == cls
        ax.scatter(
            np.asarray(real_scores)[sel],
            np.asarray(fake_scores)[sel],
            marker=marker,
            s=22,
            facecolors="none" if cls else "0.35",
            edgecolors="0.1",
            linewidths=0.8,
            label=name,
        )
    ax.axvline(threshold, color="0.5", linestyle="--", linewidth=0.8, label=f"decision threshold {threshold:g}")
    ax.axhline(threshold, color="0.5", linestyle="--", linewidth=0.8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.text(0.99, 0.01, "positives fooled", ha="right", va="bottom", fontsize=7, color="0.3", transform=ax.transAxes)
    ax.text(0.01, 0.99, "negatives fooled", ha="left", va="top", fontsize=7, color="0.3", transform=ax.transAxes)
    ax.set_xlabel("P(positive), real image")
    ax.set_ylabel("P(positive), its GAN fake")
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    sns.despine(fig)
    return fig
