"""Learning curve of a profile's reference classifier: validation AUC after each epoch, over seeds.

A profile's training length should come from such a curve, not from whether the study's effects then hold. For each
seed this runs notebooks 00 and 01 of the profile (``medadv run --only 00 01``) in a fresh run folder with
``seed=S`` (a new cohort and a new initialisation), ``classifier.epochs=E``, ERM only and no multi-task network, and
reads the reference classifier's per-epoch history from its training state (``checkpoints/training/NAME_last.json``).

It prints the validation AUC per epoch and seed, their mean, and the rule declared before the curve is looked at:
the fewest epochs whose mean validation AUC is within ``--tolerance`` of the curve's maximum mean, together with the
training seconds per epoch, so that the profile's time budget can be checked against it.

Run: ``python benchmarks/learning_curve.py --profile workshop --seeds 3 --epochs 24 --out /tmp/curve
[--set classifier.width=0.125]``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd


def run_seed(profile: str, seed: int, epochs: int, warmup: int, overrides: list[str], out: Path) -> pd.DataFrame:
    """Notebooks 00 and 01 of ``profile`` with ``seed``, ``epochs``, ERM only and ``overrides`` (``SECTION.KEY=VALUE``,
    as ``medadv run --set``), in ``out/seed<seed>``.

    Returns:
        the reference classifier's history: epoch, loss, train_accuracy, val_auc, seconds (and the seed).
    """
    run_dir = out / f"seed{seed}"
    cmd = [sys.executable, "-m", "medadv", "run", "--profile", profile, "--run-dir", str(run_dir), "--only", "00",
           "01", "--set", f"seed={seed}", "--set", f"classifier.epochs={epochs}", "--set",
           f"classifier.warmup_epochs={warmup}", "--set", "classifier.recipes=[erm]", "--set",
           "classifier.multitask=false", "--set", "classifier.erm_also_gp_at=[]"]
    cmd += [arg for override in overrides for arg in ("--set", override)]
    subprocess.run(cmd, check=True)
    config = json.loads((run_dir / "config.json").read_text())
    reference = config["profile"]["classifier"]["reference_model"]
    state = json.loads((run_dir / "checkpoints" / "training" / f"{reference}_last.json").read_text())
    return pd.DataFrame(state["history"]).assign(seed=seed)


def main() -> None:
    """Run the curve and print it; returns nothing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="workshop")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=1, help="classifier.warmup_epochs (Fnet alone)")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="another profile override for every seed (e.g. classifier.width=0.125)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    histories = pd.concat([run_seed(args.profile, s, args.epochs, args.warmup, args.overrides, args.out)
                           for s in range(1, args.seeds + 1)])
    histories.to_csv(args.out / "learning_curve.csv", index=False)
    curve = histories.pivot_table(index="epoch", columns="seed", values="val_auc")
    curve["mean"] = curve.mean(axis=1)
    print(curve.round(3).to_string())
    best = curve["mean"].max()
    chosen = int(curve.index[curve["mean"] >= best - args.tolerance][0])
    seconds = histories.groupby("seed")["seconds"].mean().mean()
    print(f"max mean val AUC {best:.3f} at epoch {int(curve['mean'].idxmax())}; fewest epochs within "
          f"{args.tolerance}: {chosen} (mean val AUC {curve.loc[chosen, 'mean']:.3f}); {seconds:.2f} s per epoch")


if __name__ == "__main__":
    main()
