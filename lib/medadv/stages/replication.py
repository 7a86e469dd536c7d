"""Notebook 90 (replication): every declared effect over the seeds of a sweep, with a bootstrap CI over seeds.

A sweep (:mod:`medadv.sweep`) leaves one run folder per seed, each with its ``tables/effects.csv`` (written by
notebook 04 from the effects the profile declares, :mod:`medadv.effects`). Here, for each effect (and grid setting):
the per-seed values, their mean, a 95% percentile bootstrap interval of the mean over seeds (scipy's bootstrap, as in
:func:`medadv.effects.bootstrap_ci`; with two seeds it spans the two values, with one it is undefined), and the share
of seeds where the effect holds; and a forest plot with the paper's value beside each effect. Runs that did not
complete are counted and left out, never filled in.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medadv.core import read_json
from medadv.effects import bootstrap_ci
from medadv.errors import RunError
from medadv.style import paper_figure, paper_style

SWEEP_FILE = "sweep.json"
REPLICATION_COLUMNS = ("effect", "n_seeds", "mean", "ci_low", "ci_high", "share_holding", "paper_value", "setting",
                       "expected", "n_runs_failed")


@dataclasses.dataclass(frozen=True)
class ReplicationConfig:
    """How the seeds are aggregated.

    Attributes:
        seed: seeds the bootstrap over seeds (two aggregations of the same sweep give the same table).
    """

    seed: int = 0

    @classmethod
    def from_profile(cls, profile: Any) -> ReplicationConfig:
        """The aggregation of a sweep run with ``profile``: profiles hold no section for it, so the bootstrap seed
        stays fixed and two aggregations of the same sweep agree whatever profile the sweep ran.

        Returns:
            ``ReplicationConfig()``.
        """
        return cls()


def per_seed_effects(sweep_dir: str | Path) -> tuple[pd.DataFrame, int]:
    """Every complete run's ``effects.csv`` with its seed and grid setting, from the sweep's ``sweep.json``.

    Returns:
        (the stacked effects rows with columns ``seed``, ``setting`` first; the number of runs that did not complete).
    """
    sweep_dir = Path(sweep_dir)
    record = read_json(sweep_dir / SWEEP_FILE)
    if record is None:
        raise RunError(f"{sweep_dir / SWEEP_FILE} is missing; {sweep_dir} is not a sweep folder (run a sweep into it).")
    frames, failed = [], 0
    for name, entry in sorted(record["runs"].items()):
        path = sweep_dir / name / "tables" / "effects.csv"
        if entry.get("status") != "complete" or not path.is_file():
            failed += 1
            continue
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
        frames.append(table.assign(seed=int(entry["seed"]), setting=entry.get("setting", "") or ""))
    if not frames:
        raise RunError(f"no complete run with tables/effects.csv in {sweep_dir}; see {sweep_dir / SWEEP_FILE}.")
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", "setting"] + [c for c in out.columns if c not in ("seed", "setting")]], failed


def aggregate(per_seed: pd.DataFrame, config: ReplicationConfig, n_failed: int = 0) -> pd.DataFrame:
    """Per effect and setting: seeds with a value, mean, 95% bootstrap CI of the mean over seeds, share holding.

    Returns:
        ``replication_effects.csv``'s table (columns :data:`REPLICATION_COLUMNS`), effects in their first-seen order.
    """
    rows = []
    order = list(dict.fromkeys(per_seed["effect"]))
    for (setting, effect), group in per_seed.groupby(["setting", "effect"], sort=False):
        values = group["value"].astype(float).dropna().to_numpy()
        holds = group["holds"].dropna().astype(str).str.lower().eq("true")
        low, high = bootstrap_ci(values, np.mean, config.seed)
        rows.append({
            "effect": effect, "n_seeds": len(values), "mean": float(values.mean()) if len(values) else math.nan,
            "ci_low": low, "ci_high": high, "share_holding": float(holds.mean()) if len(holds) else math.nan,
            "paper_value": group["paper_value"].iloc[0], "setting": setting, "expected": group["expected"].iloc[0],
            "n_runs_failed": n_failed,
        })
    out = pd.DataFrame(rows, columns=list(REPLICATION_COLUMNS))
    out["_order"] = out["effect"].map(order.index)
    return out.sort_values(["setting", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


@paper_style
def forest_figure(per_seed: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Forest plot at the text width: per effect (and setting) a row with the seeds' values (small grey dots), the
    mean and its 95% CI over seeds (black dot and line), the threshold the effect is held to (grey bar) and the
    paper's value (open diamond) where it has one; a legend names the marks, so the plot reads in greyscale.

    Returns:
        The figure.
    """
    fig, ax = paper_figure("text", 1.3 + 0.2 * len(summary))
    for i, row in enumerate(summary.itertuples()):
        y = len(summary) - 1 - i
        seeds = per_seed[(per_seed["effect"] == row.effect) & (per_seed["setting"] == row.setting)]["value"]
        ax.scatter(seeds.astype(float), np.full(len(seeds), y), s=10, color="0.6", zorder=2, label="seed")
        if math.isfinite(row.ci_low):
            ax.plot([row.ci_low, row.ci_high], [y, y], color="black", lw=1.5, zorder=3, label="95% bootstrap CI")
        ax.scatter([row.mean], [y], s=28, color="black", zorder=4, label="mean over seeds")
        threshold = float(str(row.expected).split()[-1])
        ax.plot([threshold, threshold], [y - 0.3, y + 0.3], color="0.4", lw=1.2, zorder=1, label="threshold")
        if pd.notna(row.paper_value):
            ax.scatter([row.paper_value], [y], marker="D", s=30, facecolors="none", edgecolors="black", zorder=5,
                       label="paper")
    labels = [f"{r.effect}{' [' + r.setting + ']' if r.setting else ''} ({r.share_holding:.0%} hold)"
              for r in summary.itertuples()]
    ax.set_yticks(range(len(summary)), labels[::-1])
    ax.set_xlabel("effect value (rate, AUC, difference or rank-biserial r)")
    ax.grid(axis="x", color="0.9")
    ax.set_title("Effects over seeds")
    handles, names = ax.get_legend_handles_labels()
    first = dict(zip(names, handles, strict=True))  # one entry per kind of mark
    fig.legend(first.values(), first.keys(), loc="outside lower center", ncols=len(first), frameon=False)
    return fig
