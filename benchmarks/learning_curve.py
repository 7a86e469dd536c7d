"""Learning curve of a profile's network: validation AUC after each epoch, over seeds.

A profile's training length should come from such a curve, not from whether the study's effects then hold. Two
networks have one (``--network``):

* ``classifier``: the reference classifier of notebook 01. For each seed this runs notebooks 00 and 01
  (``medadv run --only 00 01``) with ``classifier.epochs=E`` (and ``random_epochs=E``, for a curve of a random start:
  ``--set classifier.init=random``), ERM only and no multi-task network, and reads the reference classifier's history
  (``checkpoints/training/NAME_last.json``).
* ``real_fake``: notebook 06's real-vs-fake classifier (paper 001's network started from the trained reference
  classifier, real against GAN-made images). For each seed this runs notebooks 00-03, 05 and 06 (06 reads 03's
  adversarial examples and 05's reader study) with the profile's classifier and GAN (ERM only, no multi-task network:
  neither feeds notebook 06) and ``detect.fake_epochs=E``, and reads its history
  (``checkpoints/detect/training/real_fake_classifier_last.json``).

Each seed runs in a fresh run folder with ``seed=S`` (a new cohort and a new initialisation). The script prints the
validation AUC per epoch and seed, their mean, and the rule declared before the curve is looked at: the fewest epochs
whose mean validation AUC is within ``--tolerance`` of the curve's maximum mean, together with the training seconds
per epoch, so that the profile's time budget can be checked against it.

Run: ``python benchmarks/learning_curve.py --profile workshop --network classifier --seeds 3 --epochs 24 --out
/tmp/curve [--set classifier.width=0.125]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from medadv.detect.training import REAL_FAKE_NAME
from medadv.layout import RunLayout, training_state

#: ERM only and no multi-task network: the curves need neither.
#: The reference classifier alone (the other classifiers left out, and the notebooks that would read them told so:
#: ``medadv run`` checks the whole profile before notebook 00, also under ``--only``).
REFERENCE_ONLY = [
    "classifier.recipes=[erm]",
    "classifier.multitask=false",
    "classifier.erm_also_gp_at=[]",
    "classifier.erm_also_init=[]",
    "explain.models=[vgg_erm]",
    "explain.fgsm_models=[vgg_erm]",
    "explain.attack_models=[vgg_erm]",
    "attacks.transfer_from=[vgg_erm]",
]


def network_settings(network: str, epochs: int, warmup: int) -> tuple[list[str], list[str]]:
    """The notebooks to run and the profile overrides for a curve of ``network`` over ``epochs``.

    Returns:
        (notebook prefixes for ``medadv run --only``, ``SECTION.KEY=VALUE`` overrides).
    """
    if network == "classifier":
        return ["00", "01"], [
            f"classifier.epochs={epochs}",
            f"classifier.random_epochs={epochs}",
            f"classifier.warmup_epochs={warmup}",
            *REFERENCE_ONLY,
        ]
    return ["00", "01", "02", "03", "05", "06"], [f"detect.fake_epochs={epochs}", *REFERENCE_ONLY]


def history_file(run_dir: Path, network: str) -> Path:
    """Where the run in ``run_dir`` keeps the training state of ``network``.

    Returns:
        the path of the ``*_last.json`` training state.
    """
    if network == "classifier":
        config = json.loads((run_dir / "config.json").read_text())
        reference = config["profile"]["classifier"]["reference_model"]
        return RunLayout(run_dir).training_state(reference).with_suffix(".json")
    return training_state(RunLayout(run_dir).detect_checkpoints, REAL_FAKE_NAME).with_suffix(".json")


def run_seed(
    profile: str, network: str, seed: int, epochs: int, warmup: int, overrides: list[str], out: Path
) -> pd.DataFrame:
    """The notebooks of ``network``'s curve with ``seed`` and ``overrides`` (``SECTION.KEY=VALUE``, as
    ``medadv run --set``), in ``out/seed<seed>``.

    Returns:
        the network's history: epoch, loss, train_accuracy, val_auc, seconds (and the seed).
    """
    run_dir = out / f"seed{seed}"
    notebooks, settings = network_settings(network, epochs, warmup)
    cmd = [sys.executable, "-m", "medadv", "run", "--profile", profile, "--run-dir", str(run_dir), "--only", *notebooks]
    cmd += [arg for override in [f"seed={seed}", *settings, *overrides] for arg in ("--set", override)]
    subprocess.run(cmd, check=True)
    state = json.loads(history_file(run_dir, network).read_text())
    return pd.DataFrame(state["history"]).assign(seed=seed)


def main() -> None:
    """Run the curve and print it; returns nothing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="workshop")
    parser.add_argument("--network", choices=["classifier", "real_fake"], default="classifier")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=1, help="classifier.warmup_epochs (Fnet alone; classifier only)")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="another profile override for every seed (e.g. classifier.width=0.125)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    histories = pd.concat(
        [
            run_seed(args.profile, args.network, s, args.epochs, args.warmup, args.overrides, args.out)
            for s in range(1, args.seeds + 1)
        ]
    )
    histories.to_csv(args.out / "learning_curve.csv", index=False)
    curve = histories.pivot_table(index="epoch", columns="seed", values="val_auc")
    curve["mean"] = curve.mean(axis=1)
    print(curve.round(3).to_string())
    best = curve["mean"].max()
    chosen = int(curve.index[curve["mean"] >= best - args.tolerance][0])
    seconds = histories.groupby("seed")["seconds"].mean().mean()
    print(
        f"max mean val AUC {best:.3f} at epoch {int(curve['mean'].idxmax())}; fewest epochs within "
        f"{args.tolerance}: {chosen} (mean val AUC {curve.loc[chosen, 'mean']:.3f}); {seconds:.2f} s per epoch"
    )


if __name__ == "__main__":
    main()
