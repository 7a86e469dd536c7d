"""Notebook 01, classifier training: every classifier the profile asks for (paper 001's network per recipe, paper
004's multi-task network), its test metrics with DeLong intervals, the paired DeLong tests against the reference
classifier, and the headline numbers.

The domain work lives in :mod:`medadv.train` (:func:`medadv.train.loop.fit` trains and resumes one network,
:mod:`medadv.train.evaluate` scores and draws); this module builds the profile's runs (:func:`train_profile_models`)
and is what the notebook calls.

Under ``torchrun`` (``python -m``) it trains the profile's classifiers of a run folder with every process that
``torchrun`` started, e.g.
``torchrun --nproc-per-node 4 -m medadv.stages.classifier_training --run-dir results/full --profile full``: rank 0
opens (and, if new, writes) the run folder first; then every process trains its share of each global batch
(:mod:`medadv.train.distributed`). The checkpoints land where notebook 01 looks for them, so notebook 01 then resumes
from them (evaluates without retraining). See ``docs/training.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from medadv.config import pick_device
from medadv.data.images import SplitArrays, load_split
from medadv.layout import RunLayout
from medadv.models.checkpoint import checkpoint_paths
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MULTITASK_NAME, MultiTaskConfig, MultiTaskResNet
from medadv.report import RunContext
from medadv.stages.competence import Competence, competence_of
from medadv.train.distributed import DistContext, barrier, init_from_env, local_device
from medadv.train.evaluate import competence_columns
from medadv.train.loop import (
    ClassifierConfig,
    TrainedClassifier,
    TrainResult,
    TrainSpec,
    delong_table,
    evaluate_trained,
    fit,
    vgg_runs,
    vgg_spec,
)
from medadv.train.recipes import MultiTaskObjective, Objective, PaperObjective, Recipe

NOTEBOOK = "01_classifier_training"

__all__ = [
    "NOTEBOOK",
    "ClassifierEvaluation",
    "ClassifierTrainingConfig",
    "checkpoint_files",
    "evaluate_classifiers",
    "competence",
    "headline",
    "initialisation",
    "main",
    "test_metrics",
    "train_classifiers",
    "train_profile_models",
    "training_histories",
]

#: How each start of a classifier reads in notebook 01.
STARTS = {
    "imagenet": "Vnet from torchvision's ImageNet VGG11 (paper 001); Fnet at random",
    "kit": "Vnet from the kit's pretrained Vnet (phantom corpus, `medadv pretrain`); Fnet at random",
    "random": "everything at random (torchvision's VGG initialisation), the schedule made for random weights",
}


@dataclasses.dataclass(frozen=True)
class ClassifierTrainingConfig(ClassifierConfig):
    """The profile's ``classifier`` section (:class:`medadv.train.loop.ClassifierConfig`)."""


def _multitask_model_and_spec(cfg: ClassifierConfig, common: dict[str, Any]) -> tuple[MultiTaskResNet, TrainSpec]:
    """Paper 004's multi-task network (ImageNet encoder when ``classifier.init`` is ``imagenet``) and its training
    settings (no warm-up, one learning rate, clean images).

    Returns:
        (the untrained network, its :class:`TrainSpec`).
    """
    imagenet = cfg.init == "imagenet"
    model = MultiTaskResNet(
        MultiTaskConfig(cfg.multitask_encoder, cfg.multitask_width, cfg.multitask_decoder_width, imagenet=imagenet)
    )
    spec = TrainSpec(
        name=MULTITASK_NAME,
        recipe="erm_noaug",
        epochs=cfg.multitask_epochs or cfg.epochs,
        warmup_epochs=0,
        lr_head=cfg.multitask_lr,
        lr_features=cfg.multitask_lr,
        init="imagenet" if imagenet else "random",
        **common,
    )
    return model, spec


def _fit_in_run(
    ctx: RunContext,
    model: nn.Module,
    spec: TrainSpec,
    objective: Objective,
    recipe: Recipe,
    splits: tuple[SplitArrays, SplitArrays],
    device: torch.device,
    dist_ctx: DistContext,
    extra_meta: dict[str, Any],
) -> TrainResult:
    """:func:`medadv.train.loop.fit` on the run's train and validation ``splits``, with the run's checkpoints folder,
    seed and checkpoint ledger (so a finished or interrupted training resumes from the run folder).

    Returns:
        the training result; ``model`` holds its best-validation weights.
    """
    train, val = splits
    return fit(
        model.to(device),
        spec,
        objective,
        recipe,
        train,
        val,
        ctx.layout.checkpoints,
        ctx.profile.seed,
        device,
        dist_ctx,
        extra_meta=extra_meta,
        ledger=ctx,
    )


def train_profile_models(
    ctx: RunContext, device: torch.device, dist_ctx: DistContext = DistContext()
) -> list[TrainedClassifier]:
    """Train the classifiers a run's profile asks for: paper 001's network for each of :func:`vgg_runs` and, with
    ``classifier.multitask``, paper 004's network (``multitask_erm``, on clean images so that its masks align).

    Each run is :func:`medadv.train.loop.fit` with explicit paths: checkpoints go to the run's ``checkpoints`` folder
    (``ctx.layout.checkpoints``) and a finished or interrupted training resumes from there.

    Returns:
        the trained classifiers, in training order.
    """
    cfg = ClassifierConfig.from_profile(ctx.profile)
    cohort, size = ctx.cohort(), ctx.profile.data.image_size
    train = load_split(cohort, ctx.image_root, size, "train")
    val = load_split(cohort, ctx.image_root, size, "val")
    meta = {"profile": ctx.profile.name}
    params = cfg.recipe_params()
    out: list[TrainedClassifier] = []
    common = {
        "betas": cfg.betas,
        "batch_per_class": cfg.batch_per_class,
        "steps_per_epoch": cfg.steps_per_epoch,
        "eval_batch": cfg.eval_batch,
    }
    erm_weights: dict[str, torch.Tensor] | None = None
    for run in vgg_runs(cfg):
        torch.manual_seed(ctx.profile.seed)
        model = VGGClassifier(
            VGGConfig(width=cfg.width, dropout=cfg.dropout, init="random" if run.from_erm else run.init)
        )
        if run.from_erm:
            model.load_state_dict(erm_weights)
        spec = vgg_spec(cfg, run, common)
        objective = PaperObjective(cfg.focal_gamma, cfg.gp_k, cfg.gp_power, run.gp_at)
        recipe = Recipe(run.recipe, params)
        result = _fit_in_run(
            ctx, model, spec, objective, recipe, (train, val), device, dist_ctx, {**meta, "gp_at": run.gp_at}
        )
        if run.name == "vgg_erm":
            erm_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        out.append(TrainedClassifier(spec.name, run.recipe, model, result, spec))
    if cfg.multitask:
        torch.manual_seed(ctx.profile.seed)
        model, spec = _multitask_model_and_spec(cfg, common)
        objective, recipe = MultiTaskObjective(cfg.multitask_seg_weight), Recipe("erm_noaug", params)
        result = _fit_in_run(ctx, model, spec, objective, recipe, (train, val), device, dist_ctx, meta)
        out.append(TrainedClassifier(spec.name, "erm_noaug", model, result, spec))
    return out


def checkpoint_files(layout: RunLayout, trained: Sequence[TrainedClassifier]) -> list[Path]:
    """Every checkpoint file of the trained classifiers: the kept model and the last training state of each.

    Returns:
        the ``.safetensors`` and ``.json`` paths, model by model in training order.
    """
    stems = [stem for t in trained for stem in (layout.checkpoint(t.name), layout.training_state(t.name))]
    return [path for stem in stems for path in checkpoint_paths(stem)]


def train_classifiers(ctx: RunContext) -> list[TrainedClassifier]:
    """Train (or resume) every classifier of the run's profile and register their checkpoints in the run's manifest.

    Returns:
        the trained classifiers, in training order.
    """
    trained = train_profile_models(ctx, ctx.device)
    ctx.register_many(checkpoint_files(ctx.layout, trained))
    return trained


def initialisation(trained: Iterable[TrainedClassifier]) -> pd.DataFrame:
    """How each classifier started and was scheduled.

    Returns:
        One row per model (index): ``start`` (in words), and its epochs, frozen-Vnet warm-up epochs and Vnet / Fnet
        learning rates.
    """
    rows = {}
    for t in trained:
        spec = t.spec
        start = STARTS.get(t.init, f"fine-tuned from {t.init}")
        rows[t.name] = {
            "start": start,
            "epochs": spec.epochs,
            "warmup_epochs": spec.warmup_epochs,
            "lr_features": spec.lr_features,
            "lr_head": spec.lr_head,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclasses.dataclass(frozen=True)
class ClassifierEvaluation:
    """The classifiers on the validation and test splits.

    Attributes:
        metrics: ``classifier_metrics.csv``: per model and split, AUC with DeLong CI, sensitivity and specificity at
            the validation Youden threshold, accuracy and balanced accuracy at the model's own decision, the constant
            classifier's accuracy, the degenerate flag and the competence columns
            (:func:`medadv.train.evaluate.competence_columns`).
        test_labels: the test images' labels; test_scores: each model's positive-class probability on them.
        reference: the classifier of the paired tests (the profile's ``classifier.reference_model``).
        comparisons: ``classifier_delong_tests.csv``: DeLong's paired test of every other model against it.
    """

    metrics: pd.DataFrame
    test_labels: np.ndarray
    test_scores: dict[str, np.ndarray]
    reference: str
    comparisons: pd.DataFrame


def evaluate_classifiers(
    ctx: RunContext, trained: Sequence[TrainedClassifier], config: ClassifierConfig
) -> ClassifierEvaluation:
    """Score every trained classifier on the run's validation and test splits and compare each with the reference.

    Returns:
        :class:`ClassifierEvaluation`.
    """
    cohort = ctx.cohort()
    val = load_split(cohort, ctx.image_root, ctx.profile.data.image_size, "val")
    test = load_split(cohort, ctx.image_root, ctx.profile.data.image_size, "test")
    metrics, test_scores = evaluate_trained(list(trained), val, test, ctx.device, config.eval_batch)
    reference = config.reference_model
    metrics = competence_columns(metrics, config.min_val_auc, reference)
    return ClassifierEvaluation(
        metrics, test.labels, test_scores, reference, delong_table(test.labels, test_scores, reference)
    )


def training_histories(trained: Iterable[TrainedClassifier]) -> dict[str, pd.DataFrame]:
    """Each classifier's per-epoch training history (loss, validation AUC), by model name.

    Returns:
        model name -> history table, the argument of :func:`training_curves_figure`.
    """
    return {t.name: t.result.history for t in trained}


def test_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """The test rows of ``classifier_metrics``, indexed by model.

    Returns:
        one row per model: auc, its CI, sensitivity, specificity and the other metric columns.
    """
    return metrics[metrics["split"] == "test"].set_index("model")


def competence(evaluation: ClassifierEvaluation) -> Competence:
    """Whether the reference classifier is competent enough to study (the gate and the degenerate flag).

    Returns:
        :class:`medadv.stages.competence.Competence`; its ``banner()`` is the notebook's warning when it is not.
    """
    return competence_of(evaluation.metrics, evaluation.reference)


def headline(trained: Sequence[TrainedClassifier], metrics: pd.DataFrame, reference: str) -> dict[str, object]:
    """Notebook 01's numbers for ``summary.json``.

    Returns:
        ``test_auc`` and ``test_auc_ci`` per model (4 decimals), ``test_balanced_accuracy``, ``best_epoch``, ``init``
        (where each started) and ``competent`` per model, and ``competence``: the reference classifier's gate.
    """
    rows = test_metrics(metrics)
    return {
        "test_auc": rows["auc"].round(4).to_dict(),
        "test_auc_ci": {m: [round(r.auc_ci_low, 4), round(r.auc_ci_high, 4)] for m, r in rows.iterrows()},
        "test_balanced_accuracy": rows["balanced_accuracy"].round(4).to_dict(),
        "best_epoch": {t.name: t.result.best_epoch for t in trained},
        "init": {t.name: t.init for t in trained},
        "competent": rows["competent"].astype(bool).to_dict(),
        "competence": competence_of(metrics, reference).summary(),
    }


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
