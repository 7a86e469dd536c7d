"""The figure of notebook 06: each detector's AUC with its DeLong 95% CI, per attack and budget.

Drawn in the kit's print style (:mod:`medadv.style`): detectors are told apart by marker and grey level, the chance
level (AUC 0.5) is a dashed line, and the attack's budget is written on the axis in grey levels of 255.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medadv.style import paper_figure, paper_style, series_style

__all__ = ["detection_auc_figure"]


@paper_style
def detection_auc_figure(table: pd.DataFrame) -> Figure:
    """Detection AUC (DeLong 95% CI) of every detector on every manipulated set of ``detection.csv``.

    Args:
        table: rows of :func:`medadv.detect.evaluation.detection_study` (detector, attack, eps, auc,
            auc_ci_low, auc_ci_high).

    Returns:
        The figure: one row of points per attack and budget, one marker per detector.
    """
    sets = table[["attack", "eps"]].drop_duplicates().reset_index(drop=True)
    labels = [a if e == 0 else f"{a} {255 * e:.3g}/255" for a, e in zip(sets["attack"], sets["eps"], strict=True)]
    detectors = list(dict.fromkeys(table["detector"]))
    fig, ax = paper_figure("column", 0.9 + 0.28 * len(sets) * max(1, len(detectors)) ** 0.5)
    offsets = np.linspace(-0.3, 0.3, len(detectors)) if len(detectors) > 1 else np.zeros(1)
    for k, det in enumerate(detectors):
        rows = table[table["detector"] == det].merge(sets.reset_index(), on=["attack", "eps"])
        y = rows["index"].to_numpy() + offsets[k]
        err = np.vstack([rows["auc"] - rows["auc_ci_low"], rows["auc_ci_high"] - rows["auc"]])
        style = series_style(k)
        ax.errorbar(
            rows["auc"], y, xerr=err, fmt=style["marker"], color=style["color"], capsize=1.5, elinewidth=0.7, label=det
        )
    ax.axvline(0.5, color="0.5", linestyle="--", linewidth=0.7)
    ax.set_yticks(range(len(sets)), labels)
    ax.invert_yaxis()
    ax.set_xlim(-0.04, 1.04)  # a margin, so a marker at AUC 0 or 1 is drawn whole
    ax.set_xlabel("detection AUC (95% CI, DeLong)\n0.5 = chance")
    handles, names = ax.get_legend_handles_labels()  # under the axes: inside, it would cover some set's points
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 2), frameon=False)
    return fig
