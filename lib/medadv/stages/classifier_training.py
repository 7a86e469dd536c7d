"""Notebook 01 (classifier training) under ``torchrun``: train the profile's classifiers of a run folder with every
process that ``torchrun`` started, e.g.
``torchrun --nproc-per-node 4 -m medadv.stages.classifier_training --run-dir results/full --profile full``.

Rank 0 opens (and, if new, writes) the run folder first; then every process trains its share of each global batch
(:mod:`medadv.train.distributed`). The checkpoints land where notebook 01 looks for them, so notebook 01 then resumes
from them (evaluates without retraining). See ``docs/training.md``.
"""
from __future__ import annotations

import argparse
import logging

import torch.distributed as dist

from medadv.config import pick_device
from medadv.report import RunContext
from medadv.train.distributed import barrier, init_from_env, local_device
from medadv.train.loop import train_profile_models

NOTEBOOK = "01_classifier_training"

__all__ = ["NOTEBOOK", "main"]


def main(argv: list[str] | None = None) -> None:
    """Train the profile's classifiers of a run folder with every process ``torchrun`` started; returns nothing.

    The run folder must hold notebook 00's cohort. Checkpoints land where notebook 01 looks for them; notebook 01 then
    resumes from them (evaluates without retraining).
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    dist_ctx = init_from_env(pick_device(args.device))
    try:
        if not dist_ctx.is_main:
            barrier(dist_ctx)  # rank 0 opens (and, if new, writes) the run folder first
        ctx = RunContext.open(args.run_dir, NOTEBOOK, profile=args.profile, device=args.device)
        if dist_ctx.is_main:
            barrier(dist_ctx)
        train_profile_models(ctx, local_device(ctx.device), dist_ctx)
    finally:
        if dist_ctx.active:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
