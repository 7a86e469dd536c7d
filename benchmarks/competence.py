"""The reference classifier's competence over many seeds, at a profile's own settings, without the rest of the study.

For each seed this runs notebooks 00 and 01 (``medadv run --only 00 01 --set seed=S``) with the reference classifier
alone (ERM, no multi-task network, no second gradient-penalty reading, no other start), which trains it exactly as a
whole run of that seed does: every network's initialisation and batches follow its own name and the seed, so the
other recipes left out change nothing in it (``--check RUN`` compares with a whole run's ``classifier_metrics.csv``).
It then reads notebook 01's ``tables/classifier_metrics.csv`` and prints, per seed, the best validation AUC and its
epoch, the test AUC with its DeLong CI, balanced accuracy, the share of test images called positive, whether the gate
passed and whether the model is degenerate; then the mean, the lowest and the highest test AUC, and the issue's
targets beside them when ``--target-mean`` / ``--target-min`` / ``--target-max`` are given. Usage::

    .venv/bin/python benchmarks/competence.py --profile default --seeds 10 --out /tmp/competence-default

Written to ``OUT/competence.csv``. Seeds whose folder in ``OUT`` already holds notebook 01's table are read, not run
again, so a stopped call resumes. A whole sweep (``medadv sweep``) gives the same figures in notebook 90's
``replication_competence.csv``; this script is the quick way to them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from learning_curve import REFERENCE_ONLY  # the sibling benchmark's: the reference classifier alone
from medadv.layout import RunLayout

COLUMNS = [
    "seed",
    "best_val_auc",
    "best_epoch",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "accuracy",
    "balanced_accuracy",
    "predicted_positive_rate",
    "passes_gate",
    "degenerate",
    "train_seconds",
]


def reference_row(run_dir: Path) -> dict[str, object]:
    """The reference classifier's test row of a run folder's ``classifier_metrics.csv``, with its best epoch.

    Returns:
        One row: :data:`COLUMNS` but the seed.
    """
    metrics = pd.read_csv(RunLayout(run_dir).table("classifier_metrics"))
    row = metrics[(metrics["split"] == "test") & metrics["reference"].astype(str).eq("True")].iloc[0]
    sidecar = json.loads((RunLayout(run_dir).checkpoint(row["model"]).with_suffix(".json")).read_text())
    return {key: row[key] for key in COLUMNS[3:] if key in row} | {
        "best_val_auc": row["best_val_auc"],
        "best_epoch": sidecar.get("epoch", sidecar.get("best_epoch")),
    }


def run_seed(profile: str, seed: int, overrides: list[str], out: Path) -> dict[str, object]:
    """Notebooks 00 and 01 of ``profile`` with ``seed``, the reference classifier alone, in ``out/seed<seed>``.

    Returns:
        The seed's row (:data:`COLUMNS`).
    """
    run_dir = out / f"seed{seed}"
    if RunLayout(run_dir).table("classifier_metrics").exists():  # an earlier call of this script finished it
        return {"seed": seed} | reference_row(run_dir)
    cmd = [sys.executable, "-m", "medadv", "run", "--profile", profile, "--run-dir", str(run_dir), "--only", "00", "01"]
    cmd += [arg for override in [f"seed={seed}", *REFERENCE_ONLY, *overrides] for arg in ("--set", override)]
    subprocess.run(cmd, check=True)
    return {"seed": seed} | reference_row(run_dir)


def main() -> int:
    """Run the seeds and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (a sweep's seeds)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--check",
        type=Path,
        help="a whole run folder (any seed): its reference row must match this script's for the same seed",
    )
    parser.add_argument("--target-mean", type=float)
    parser.add_argument("--target-min", type=float)
    parser.add_argument("--target-max", type=float)
    args = parser.parse_args()
    table = pd.DataFrame(
        [run_seed(args.profile, s, args.overrides, args.out) for s in range(args.seeds)], columns=COLUMNS
    )
    table.to_csv(args.out / "competence.csv", index=False)
    print(table.round(3).to_string(index=False))
    auc = table["auc"]
    print(
        f"test AUC over {len(table)} seeds: mean {auc.mean():.3f}, lowest {auc.min():.3f}, highest {auc.max():.3f}; "
        f"gate passed on {int(table['passes_gate'].astype(str).eq('True').sum())}, degenerate on "
        f"{int(table['degenerate'].astype(str).eq('True').sum())}"
    )
    for name, value, holds in (
        ("mean >=", args.target_mean, lambda t: auc.mean() >= t),
        ("every seed >=", args.target_min, lambda t: auc.min() >= t),
        ("every seed <=", args.target_max, lambda t: auc.max() <= t),
    ):
        if value is not None:
            print(f"target: test AUC {name} {value}: {'holds' if holds(value) else 'does not hold'}")
    if args.check:
        whole = reference_row(args.check)
        seed = int(json.loads((args.check / "config.json").read_text())["seed"])
        rows = table.set_index("seed")
        mine = (
            rows.loc[seed] if seed in rows.index else pd.Series(run_seed(args.profile, seed, args.overrides, args.out))
        )
        same = all(abs(float(mine[k]) - float(whole[k])) < 1e-9 for k in ("auc", "best_val_auc", "balanced_accuracy"))
        print(
            f"whole run {args.check} (seed {seed}): test AUC {whole['auc']:.6f} vs {mine['auc']:.6f}: "
            f"{'the same' if same else 'DIFFERENT'}"
        )
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
