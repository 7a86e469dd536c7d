"""Figures of the reader study: accuracy by session and reader (paper 001, Table 3) and time per session (Table 4).

Drawn in the kit's print style (:mod:`medadv.style`): readers are told apart by marker and line style, not colour, so
the figures read in greyscale print. Titles name whether the reads are simulated. A read counts as correct when its
answer names the image's truth (``real`` for a real image, ``not_real`` for a fake); ``unsure`` counts as wrong.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from medadv.style import paper_figure, paper_style

__all__ = ["accuracy_figure", "reading_time_figure"]

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
TRUTH_PANELS = (("real", "real images"), ("fake", "fake images"), ("all", "all images"))
ACCURACY_LABEL = "accuracy, 95% exact CI\n(answer = truth; unsure = wrong)"


def _styles(readers: list[str]) -> dict[str, dict[str, str]]:
    return {
        r: {"linestyle": LINESTYLES[k % len(LINESTYLES)], "marker": MARKERS[k % len(MARKERS)]}
        for k, r in enumerate(readers)
    }


@paper_style
def accuracy_figure(accuracy: pd.DataFrame, label: str) -> Figure:
    """Accuracy (with exact 95% intervals) per reader across the reading sessions, one panel per kind of image, at
    the text width.

    Args:
        accuracy: :func:`medadv.stats.reader.accuracy_table` output.
        label: ``simulated`` or ``real`` (written into the title).

    Returns:
        The figure.
    """
    table = accuracy[accuracy["label"] == "all"]
    readers = sorted(table["reader"].astype(str).unique())
    styles = _styles(readers)
    sessions = sorted(table["session"].unique())
    fig, axes = paper_figure("text", 2.9 + 0.14 * -(-len(readers) // 4), 1, len(TRUTH_PANELS), sharey=True)
    for ax, (truth, name) in zip(axes, TRUTH_PANELS, strict=True):
        sub = table[table["truth"] == truth]
        for k, reader in enumerate(readers):
            rows = sub[sub["reader"].astype(str) == reader].sort_values("session")
            x = rows["session"].map(sessions.index) + (k - (len(readers) - 1) / 2) * 0.08
            ax.errorbar(
                x,
                rows["accuracy"],
                yerr=[rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]],
                color="black",
                capsize=2,
                linewidth=1,
                label=reader,
                **styles[reader],
            )
        ax.set_xticks(range(len(sessions)), [f"Session {s}" for s in sessions])
        ax.set_title(name)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", color="0.85")
    axes[0].set_ylabel(ACCURACY_LABEL)
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, title="reader", loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    fig.suptitle(f"Identifying real and fake images by session and reader ({label} readers)")
    return fig


@paper_style
def reading_time_figure(times: pd.DataFrame, label: str) -> Figure:
    """Minutes each reader spent per session (paper 001, Table 4) as grouped bars with hatches per reader, at the
    column width.

    Args:
        times: :func:`medadv.stats.reader.reading_times` output.
        label: ``simulated`` or ``real`` (written into the title).

    Returns:
        The figure.
    """
    pivot = times.pivot(index="session", columns="reader", values="total_minutes").sort_index()
    hatches = ("", "//", "..", "xx", "\\\\", "--", "++", "oo")
    fig, ax = paper_figure("column", 2.9 + 0.14 * -(-pivot.shape[1] // 3))
    width = 0.8 / max(1, pivot.shape[1])
    for k, reader in enumerate(pivot.columns):
        x = [i + (k - (pivot.shape[1] - 1) / 2) * width for i in range(len(pivot))]
        ax.bar(
            x,
            pivot[reader],
            width,
            color=str(0.25 + 0.6 * k / max(1, pivot.shape[1] - 1)),
            edgecolor="black",
            linewidth=0.6,
            hatch=hatches[k % len(hatches)],
            label=str(reader),
        )
    ax.set_xticks(range(len(pivot)), [f"Session {s}" for s in pivot.index])
    ax.set_ylabel("minutes")
    ax.set_title(f"Time spent per session ({label} readers)")
    fig.legend(title="reader", loc="outside lower center", ncols=min(pivot.shape[1], 3), frameon=False)
    return fig
