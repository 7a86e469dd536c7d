"""Notebook 90 (replication): every declared effect over the seeds of a sweep, with a bootstrap CI over seeds.

A sweep (:mod:`medadv.sweep`) leaves one run folder per seed, each with its ``tables/effects.csv`` (written by
notebook 04 from the effects the profile declares, :mod:`medadv.effects`). Here, for each effect (and grid setting):
the per-seed values, their mean, a 95% percentile bootstrap interval of the mean over seeds (scipy's bootstrap, as in
:func:`medadv.effects.bootstrap_ci`; with two seeds it spans the two values, with one it is undefined), and the share
of seeds where the effect holds; and a forest plot with the paper's value beside each effect. Runs that did not
complete are counted and left out, never filled in.

Each effect is aggregated twice (column ``seeds``): over ``all`` complete seeds, and over the ``interpretable`` ones,
the seeds whose run marked the effect interpretable (every classifier it reads passed notebook 01's competence gate
and is not degenerate; :mod:`medadv.effects`). How many seeds' reference classifier passed the gate is
:func:`per_seed_competence`'s table.
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
from medadv.layout import SWEEP_FILE, RunLayout
from medadv.style import paper_figure, paper_style

REPLICATION_COLUMNS = (
    "effect",
    "seeds",
    "n_seeds",
    "mean",
    "ci_low",
    "ci_high",
    "share_holding",
    "paper_value",
    "setting",
    "expected",
    "n_runs_failed",
)
COMPETENCE_COLUMNS = ("seed", "setting", "model", "val_auc", "min_val_auc", "passes_gate", "degenerate", "competent")


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


def _per_seed_table(sweep_dir: str | Path, table: str) -> tuple[pd.DataFrame, int]:
    """Every complete run's ``tables/<table>.csv`` with its seed and grid setting, from the sweep's ``sweep.json``.

    Returns:
        (the stacked rows with columns ``seed``, ``setting`` first; the number of runs that did not complete).
    """
    sweep_dir = Path(sweep_dir)
    record = read_json(sweep_dir / SWEEP_FILE)
    if record is None:
        raise RunError(f"{sweep_dir / SWEEP_FILE} is missing; {sweep_dir} is not a sweep folder (run a sweep into it).")
    frames, failed = [], 0
    for name, entry in sorted(record["runs"].items()):
        path = RunLayout(sweep_dir / name).table(table)
        if entry.get("status") != "complete" or not path.is_file():
            failed += 1
            continue
        rows = pd.read_csv(path, keep_default_na=False, na_values=[""])
        frames.append(rows.assign(seed=int(entry["seed"]), setting=entry.get("setting", "") or ""))
    if not frames:
        raise RunError(f"no complete run with tables/{table}.csv in {sweep_dir}; see {sweep_dir / SWEEP_FILE}.")
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", "setting"] + [c for c in out.columns if c not in ("seed", "setting")]], failed


def per_seed_effects(sweep_dir: str | Path) -> tuple[pd.DataFrame, int]:
    """Every complete run's ``effects.csv`` with its seed and grid setting.

    Returns:
        (the stacked effects rows with columns ``seed``, ``setting`` first; the number of runs that did not complete).
    """
    return _per_seed_table(sweep_dir, "effects")


def per_seed_competence(sweep_dir: str | Path) -> pd.DataFrame:
    """Each complete run's reference classifier and its competence (notebook 01's ``classifier_metrics.csv``).

    Returns:
        One row per seed and setting: :data:`COMPETENCE_COLUMNS`.
    """
    metrics, _ = _per_seed_table(sweep_dir, "classifier_metrics")
    test = metrics[(metrics["split"] == "test") & metrics["reference"].astype(str).str.lower().eq("true")]
    out = test.rename(columns={"best_val_auc": "val_auc"})[list(COMPETENCE_COLUMNS)]
    return out.reset_index(drop=True)


def _over_seeds(
    effect: str, seeds: str, group: pd.DataFrame, config: ReplicationConfig, n_failed: int
) -> dict[str, Any]:
    """One row of :func:`aggregate`: the effect over the seeds in ``group``."""
    values = group["value"].astype(float).dropna().to_numpy()
    holds = group["holds"].dropna().astype(str).str.lower().eq("true")
    low, high = bootstrap_ci(values, np.mean, config.seed)
    return {
        "effect": effect,
        "seeds": seeds,
        "n_seeds": len(values),
        "mean": float(values.mean()) if len(values) else math.nan,
        "ci_low": low,
        "ci_high": high,
        "share_holding": float(holds.mean()) if len(holds) else math.nan,
        "paper_value": group["paper_value"].iloc[0],
        "expected": group["expected"].iloc[0],
        "n_runs_failed": n_failed,
    }


def aggregate(per_seed: pd.DataFrame, config: ReplicationConfig, n_failed: int = 0) -> pd.DataFrame:
    """Per effect and setting, over all seeds and over the seeds where the effect is interpretable: seeds with a
    value, mean, 95% bootstrap CI of the mean over seeds, share holding.

    Returns:
        ``replication_effects.csv``'s table (columns :data:`REPLICATION_COLUMNS`), effects in their first-seen order,
        ``all`` before ``interpretable``.
    """
    rows = []
    order = list(dict.fromkeys(per_seed["effect"]))
    interpretable = per_seed["interpretable"].astype(str).str.lower().eq("true")
    for (setting, effect), group in per_seed.groupby(["setting", "effect"], sort=False):
        for seeds, part in (("all", group), ("interpretable", group[interpretable[group.index]])):
            row = (
                _over_seeds(effect, seeds, part, config, n_failed)
                if len(part)
                else {
                    "effect": effect,
                    "seeds": seeds,
                    "n_seeds": 0,
                    "paper_value": group["paper_value"].iloc[0],
                    "expected": group["expected"].iloc[0],
                    "n_runs_failed": n_failed,
                }
            )
            rows.append(row | {"setting": setting})
    out = pd.DataFrame(rows, columns=list(REPLICATION_COLUMNS))
    out["_order"] = out["effect"].map(order.index)
    return out.sort_values(["setting", "_order", "seeds"], kind="stable").drop(columns="_order").reset_index(drop=True)


@paper_style
def forest_figure(per_seed: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Forest plot at the text width: per effect (and setting) a row with the seeds' values (grey dots, crosses where
    the run marked the effect not interpretable), the mean and its 95% CI over all seeds (black dot and line), the
    mean over the interpretable seeds (open square), the threshold the effect is held to (grey bar) and the paper's
    value (open diamond) where it has one; a legend names the marks, so the plot reads in greyscale.

    Returns:
        The figure.
    """
    rows = summary[summary["seeds"] == "all"].reset_index(drop=True)
    kept = summary[summary["seeds"] == "interpretable"].set_index(["setting", "effect"])
    fig, ax = paper_figure("text", 1.3 + 0.2 * len(rows))
    for i, row in enumerate(rows.itertuples()):
        y = len(rows) - 1 - i
        seeds = per_seed[(per_seed["effect"] == row.effect) & (per_seed["setting"] == row.setting)]
        ok = seeds["interpretable"].astype(str).str.lower().eq("true")
        ax.scatter(
            seeds.loc[ok, "value"].astype(float), np.full(int(ok.sum()), y), s=10, color="0.6", zorder=2, label="seed"
        )
        ax.scatter(
            seeds.loc[~ok, "value"].astype(float),
            np.full(int((~ok).sum()), y),
            s=12,
            marker="x",
            color="0.6",
            linewidths=0.8,
            zorder=2,
            label="seed, not interpretable",
        )
        if math.isfinite(row.ci_low):
            ax.plot([row.ci_low, row.ci_high], [y, y], color="black", lw=1.5, zorder=3, label="95% bootstrap CI")
        ax.scatter([row.mean], [y], s=28, color="black", zorder=4, label="mean over seeds")
        gated = kept.loc[(row.setting, row.effect)]
        if gated["n_seeds"] > 0:
            ax.scatter(
                [gated["mean"]],
                [y],
                s=30,
                marker="s",
                facecolors="none",
                edgecolors="black",
                zorder=4,
                label="mean over interpretable seeds",
            )
        threshold = float(str(row.expected).split()[-1])
        ax.plot([threshold, threshold], [y - 0.3, y + 0.3], color="0.4", lw=1.2, zorder=1, label="threshold")
        if pd.notna(row.paper_value):
            ax.scatter(
                [row.paper_value], [y], marker="D", s=30, facecolors="none", edgecolors="black", zorder=5, label="paper"
            )
    labels = [
        f"{r.effect}{' [' + r.setting + ']' if r.setting else ''} ({r.share_holding:.0%} hold; "
        f"{int(kept.loc[(r.setting, r.effect), 'n_seeds'])}/{r.n_seeds} interpretable)"
        for r in rows.itertuples()
    ]
    ax.set_yticks(range(len(rows)), labels[::-1])
    ax.set_xlabel("effect value (rate, AUC, difference or rank-biserial r)")
    ax.grid(axis="x", color="0.9")
    ax.set_title("Effects over seeds")
    handles, names = ax.get_legend_handles_labels()
    first = dict(zip(names, handles, strict=True))  # one entry per kind of mark
    fig.legend(first.values(), first.keys(), loc="outside lower center", ncols=min(len(first), 4), frameon=False)
    return fig
