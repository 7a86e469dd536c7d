"""The one training loop: class-balanced batches, a recipe per step, validation AUC per epoch, checkpoints, resume.

Paper 001 ("AI-CAD classifier"): each batch holds ``N`` positive and ``N`` negative images (eq. 1; N = 4), Adam with
beta1 = 0.5 and beta2 = 0.9, learning rate 1e-4 for the head (Fnet) and 1e-5 for the features (Vnet), and a warm-up
in which only the head is trained (41 epochs in the paper). All of these come from the profile's ``classifier``
section (:class:`ClassifierConfig`); a network starting from random weights (no cached ImageNet weights) needs larger
feature learning rates and no warm-up, which the CPU profiles set.

Every epoch the loop

* seeds everything it draws from ``(seed, epoch)``: the batches, dropout, augmentation and attack random starts, so
  that a run resumed after a kill retraces the uninterrupted run exactly on the CPU;
* evaluates the validation AUC;
* writes the training state (weights and Adam state as safetensors, history and progress in the JSON sidecar) to
  ``checkpoints/training/<name>_last``, and, when the validation AUC improves, the model itself to
  ``checkpoints/<name>`` (what :func:`medadv.models.registry.load_trained` reads).

A run whose training state matches the model, recipe, configuration and data (a fingerprint in the sidecar) resumes
from it; a state of another configuration is ignored and overwritten. Mixed precision (bfloat16 autocast) is used on
CUDA only. Under ``torchrun`` every process takes its share of each global batch and gradients are averaged
(:mod:`medadv.train.distributed`); rank 0 writes the files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from medadv.config import torch_generator
from medadv.data.images import SplitArrays
from medadv.errors import ConfigError
from medadv.models.registry import TRAINED_ROLE
from medadv.report import git_commit, in_notebook_progress
from medadv.stats.auc import roc_auc
from medadv.train.checkpoint import (
    checkpoint_paths,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
    split_prefix,
)
from medadv.train.distributed import DistContext, average_gradients, barrier, broadcast_parameters, shard
from medadv.train.evaluate import predict_proba
from medadv.train.recipes import RECIPES, Batch, Objective, Recipe, RecipeParams

LOG = logging.getLogger(__name__)

STATE_ROLE = "training_state"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(RecipeParams):
    """The profile's ``classifier`` section: the recipes' hyper-parameters (inherited from :class:`RecipeParams`)
    and everything else about the classifiers. Budgets (``eps``, ``alpha``, ``l2_*``) are in [0, 1] pixel units.

    Attributes:
        width, hidden, dropout, imagenet: paper 001's network (:class:`medadv.models.classifier.VGGConfig`).
        epochs: training epochs of each VGG recipe; ``warmup_epochs`` of them train the head only (paper 001: 41).
        batch_per_class: ``N`` of eq. 1, positives (and negatives) per batch (paper 001: 4).
        steps_per_epoch: batches per epoch; 0 = training images // (2 N).
        lr_head, lr_features, betas: Adam settings (paper 001: 1e-4, 1e-5, (0.5, 0.9)).
        focal_gamma, gp_k, gp_power: eqs. 2-3 (paper 001: 2, 10, 4).
        recipes: the VGG recipes to train (names from :data:`medadv.train.recipes.RECIPES`).
        finetune_from_erm: start every other recipe from the trained ``vgg_erm`` weights instead of the initial ones
            (adversarial fine-tuning, Jeddi et al., "A simple fine-tuning is all you need", 2020): far fewer epochs
            reach a robust model, which is what makes the CPU profiles' robust recipes work within minutes.
        finetune_epochs: epochs of those fine-tuning runs (0 = ``epochs``).
        multitask: also train paper 004's multi-task network (recipe ``erm``) as ``multitask_erm``.
        multitask_encoder, multitask_width, multitask_decoder_width, multitask_epochs (0 = ``epochs``), multitask_seg_weight,
        multitask_lr: paper 004's network and its training (Adam, one learning rate, no warm-up).
        eps, alpha, steps: L-inf budget, step and steps of the training attacks (PGD-AT, TRADES, RTDA; eps for fast_at).
        l2_eps, l2_alpha: the same for ``pgd_at_l2``.
        trades_beta, fast_alpha_ratio, jsd_weight, augmix_*: TRADES' beta, fast_at's step / eps, the AugMix / RTDA
            Jensen-Shannon weight and AugMix's severity, width, depth.
        eval_batch: batch size for prediction.
    """

    width: float = 1.0
    hidden: int = 256
    dropout: float = 0.2
    imagenet: bool = True
    epochs: int = 100
    warmup_epochs: int = 41
    batch_per_class: int = 4
    steps_per_epoch: int = 0
    lr_head: float = 1e-4
    lr_features: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.9)
    focal_gamma: float = 2.0
    gp_k: float = 10.0
    gp_power: float = 4.0
    recipes: tuple[str, ...] = ("erm", "pgd_at", "rtda")
    finetune_from_erm: bool = False
    finetune_epochs: int = 0
    multitask: bool = True
    multitask_encoder: str = "resnet50"
    multitask_width: float = 1.0
    multitask_decoder_width: int = 256
    multitask_epochs: int = 0
    multitask_seg_weight: float = 1.0
    multitask_lr: float = 1e-4
    eval_batch: int = 128

    def __post_init__(self) -> None:
        unknown = sorted(set(self.recipes) - set(RECIPES))
        if unknown:
            raise ConfigError(f"classifier.recipes has unknown recipes {unknown}; choose from {RECIPES}.")
        if self.epochs < 1 or self.batch_per_class < 1:
            raise ConfigError(f"classifier.epochs={self.epochs}, batch_per_class={self.batch_per_class}; both must be >= 1.")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"classifier.warmup_epochs is {self.warmup_epochs}; expected 0..epochs ({self.epochs}).")
        if self.finetune_from_erm and "erm" not in self.recipes:
            raise ConfigError("classifier.finetune_from_erm needs 'erm' in classifier.recipes (its weights are the start).")
        if not (0 <= self.eps <= 1 and 0 <= self.alpha <= 1):
            raise ConfigError(f"classifier.eps={self.eps}, alpha={self.alpha}; budgets are in [0, 1] pixel units.")

    def recipe_params(self) -> RecipeParams:
        """The recipes' hyper-parameters."""
        names = {f.name for f in dataclasses.fields(RecipeParams)}
        return RecipeParams(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """What one call of :func:`fit` trains: checkpoint name, recipe, epochs and optimiser settings, and where the
    weights start (``init``: ``"initial weights"`` or the checkpoint they were taken from)."""

    name: str
    recipe: str
    epochs: int
    warmup_epochs: int
    lr_head: float
    lr_features: float
    betas: tuple[float, float]
    batch_per_class: int
    steps_per_epoch: int = 0
    eval_batch: int = 128
    init: str = "initial weights"


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`fit`: per-epoch history, best epoch (1-based) and its validation AUC, training seconds."""

    name: str
    recipe: str
    history: pd.DataFrame
    best_epoch: int
    best_val_auc: float
    train_seconds: float


class BalancedBatches:
    """Paper 001's class-balanced batches (eq. 1): each holds ``per_class`` positives and ``per_class`` negatives.

    Each class is drawn without replacement from a fresh permutation, re-permuted when exhausted, so the minority
    class is oversampled. Batches list positives first, then negatives.
    """

    def __init__(self, labels: np.ndarray, per_class: int, steps: int, generator: torch.Generator) -> None:
        self.pools = [torch.as_tensor(np.flatnonzero(labels == c)) for c in (1, 0)]
        if any(len(p) == 0 for p in self.pools):
            raise ConfigError("the training split needs both positive and negative images for class-balanced batches.")
        self.per_class, self.steps, self.gen = per_class, steps, generator

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        queues: list[list[int]] = [[], []]
        for _ in range(self.steps):
            parts = []
            for c, pool in enumerate(self.pools):
                while len(queues[c]) < self.per_class:
                    queues[c] += pool[torch.randperm(len(pool), generator=self.gen)].tolist()
                parts.append(queues[c][: self.per_class])
                queues[c] = queues[c][self.per_class :]
            yield torch.tensor(parts[0] + parts[1], dtype=torch.long)


def _shard_balanced(indices: torch.Tensor, per_class: int, ctx: DistContext) -> torch.Tensor:
    return torch.cat([shard(indices[:per_class], ctx), shard(indices[per_class:], ctx)])


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Adam:
    """Adam over the model's ``features`` and ``head`` groups with their learning rates (paper 001)."""
    groups = model.param_groups()
    return torch.optim.Adam(
        [{"params": groups["features"], "lr": spec.lr_features}, {"params": groups["head"], "lr": spec.lr_head}],
        betas=spec.betas,
    )


def _fingerprint(model: nn.Module, spec: TrainSpec, objective: Objective, recipe: Recipe, seed: int, train: SplitArrays) -> str:
    payload = {
        "model": model.spec(),
        "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k != "epochs"},
        "objective": repr(objective),
        "recipe": dataclasses.asdict(recipe.params),
        "seed": seed,
        "train_ids": hashlib.sha256("\n".join(map(str, train.rows["image_id"])).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def _to_device(train: SplitArrays, idx: torch.Tensor, device: torch.device, dtype: torch.dtype) -> Batch:
    i = idx.numpy()
    return Batch(
        x=torch.from_numpy(train.images[i]).to(device, dtype),
        y=torch.from_numpy(train.labels[i]).to(device),
        masks=torch.from_numpy(train.masks[i]).to(device),
        has_mask=torch.from_numpy(train.has_mask[i]).to(device),
    )


def fit(
    model: nn.Module,
    spec: TrainSpec,
    objective: Objective,
    recipe: Recipe,
    train: SplitArrays,
    val: SplitArrays,
    checkpoints_dir: str | Path,
    seed: int,
    device: torch.device,
    dist_ctx: DistContext = DistContext(),
    resume: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` with ``recipe`` and ``objective``; keep the best validation-AUC weights in ``model``.

    Args:
        model: a kit classifier (``prepare``/``classify``/``param_groups``/``spec``), on ``device``.
        spec: name, recipe, epochs and optimiser settings.
        objective: the loss a recipe applies to its view(s) (:class:`medadv.train.recipes.PaperObjective`, ...).
        recipe: the recipe (:class:`medadv.train.recipes.Recipe`).
        train, val: the splits (:func:`medadv.data.images.load_split`).
        checkpoints_dir: the run folder's ``checkpoints``.
        seed: the profile's seed.
        device: where to compute; bfloat16 autocast when CUDA.
        dist_ctx: this process's rank under ``torchrun``.
        resume: continue from a matching training state when there is one.
        extra_meta: more JSON-able entries for the model's sidecar (profile name, ...).

    Returns:
        the per-epoch history (epoch, loss, train_accuracy, val_auc, seconds) and the best epoch.
    """
    ckpt_dir = Path(checkpoints_dir)
    state_stem = ckpt_dir / "training" / f"{spec.name}_last"
    best_stem = ckpt_dir / spec.name
    optimizer = make_optimizer(model, spec)
    fingerprint = _fingerprint(model, spec, objective, recipe, seed, train)
    steps = spec.steps_per_epoch or max(1, len(train.labels) // (2 * spec.batch_per_class))
    history: list[dict[str, Any]] = []
    best_auc, best_epoch, start = -1.0, 0, 0
    if resume and checkpoint_paths(state_stem)[1].is_file():
        tensors, meta = load_checkpoint(state_stem)
        if meta.get("fingerprint") == fingerprint and meta.get("role") == STATE_ROLE:
            model.load_state_dict(split_prefix(tensors, "model"))
            optimizer_from_flat(optimizer, tensors, meta["optimizer"])
            history, best_auc, best_epoch, start = meta["history"], meta["best_val_auc"], meta["best_epoch"], meta["epoch"]
            LOG.info("%s: resuming after epoch %d of %d", spec.name, start, spec.epochs)
        else:
            LOG.info("%s: training state of another configuration ignored", spec.name)
    broadcast_parameters(model, dist_ctx)
    val_x = torch.from_numpy(val.images)
    features = model.param_groups()["features"]
    dtype = features[0].dtype  # images are fed in the model's precision
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    bar = tqdm(total=(spec.epochs - start) * steps, desc=spec.name, disable=not in_notebook_progress() or not dist_ctx.is_main)
    for epoch in range(start, spec.epochs):
        t0 = time.perf_counter()
        epoch_seed = seed * 100_003 + epoch
        torch.manual_seed(epoch_seed)  # dropout and AugMix
        batch_gen = torch_generator(epoch_seed)
        attack_gen = torch_generator(epoch_seed + 50_021 * (dist_ctx.rank + 1))
        model.train()
        losses, correct, seen = [], 0, 0
        for idx in BalancedBatches(train.labels, spec.batch_per_class, steps, batch_gen):
            batch = _to_device(train, _shard_balanced(idx, spec.batch_per_class, dist_ctx), device, dtype)
            optimizer.zero_grad(set_to_none=True)
            with amp:
                loss, logits = recipe(model, objective, batch, attack_gen)
            loss.backward()
            average_gradients(model, dist_ctx)
            if epoch < spec.warmup_epochs:
                for p in features:
                    p.grad = None
            optimizer.step()
            losses.append(float(loss.detach()))
            correct += int((logits.detach().argmax(1) == batch.y).sum())
            seen += len(batch.y)
            bar.update(1)
        val_auc = roc_auc(val.labels, predict_proba(model, val_x, device, spec.eval_batch))
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "train_accuracy": correct / max(seen, 1),
            "val_auc": float(val_auc),
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val_auc=f"{val_auc:.3f}")
        improved = val_auc > best_auc
        if improved:
            best_auc, best_epoch = float(val_auc), epoch + 1
        if dist_ctx.is_main:
            if improved:
                save_checkpoint(best_stem, _tensors(model), {
                    "role": TRAINED_ROLE, "name": spec.name, "model": model.spec(), "recipe": spec.recipe,
                    "seed": seed, "epoch": epoch + 1, "metrics": {"val_auc": float(val_auc)},
                    "pretrained": bool(getattr(model, "pretrained", False)), "code_version": git_commit(),
                    "train": dataclasses.asdict(spec), "recipe_params": dataclasses.asdict(recipe.params),
                    **(extra_meta or {}),
                })
            opt_tensors, opt_meta = optimizer_to_flat(optimizer)
            save_checkpoint(state_stem, {**_tensors(model), **opt_tensors}, {
                "role": STATE_ROLE, "name": spec.name, "fingerprint": fingerprint, "epoch": epoch + 1,
                "history": history, "best_val_auc": best_auc, "best_epoch": best_epoch, "optimizer": opt_meta,
                "rng": {"epoch_seed": "seed * 100003 + epoch", "seed": seed},
            })
        barrier(dist_ctx)
    bar.close()
    tensors, _ = load_checkpoint(best_stem)
    model.load_state_dict(split_prefix(tensors, "model"))
    model.eval()
    frame = pd.DataFrame(history, columns=["epoch", "loss", "train_accuracy", "val_auc", "seconds"])
    return TrainResult(spec.name, spec.recipe, frame, best_epoch, best_auc, float(frame["seconds"].sum()))


@dataclasses.dataclass
class TrainedClassifier:
    """A classifier trained by :func:`train_profile_models`: checkpoint name, recipe, network, training outcome."""

    name: str
    recipe: str
    model: nn.Module
    result: TrainResult


def classifier_config(profile_section: Any) -> ClassifierConfig:
    """The profile's ``classifier`` section as a :class:`ClassifierConfig`."""
    from medadv.config import section_config

    return section_config(ClassifierConfig, profile_section, "classifier")


def train_profile_models(ctx: Any, device: torch.device, dist_ctx: DistContext = DistContext()) -> list[TrainedClassifier]:
    """Train the classifiers a run's profile asks for: paper 001's network with each of ``classifier.recipes``
    (``vgg_<recipe>``) and, with ``classifier.multitask``, paper 004's network (``multitask_erm``).

    ``ctx`` is the notebook's :class:`medadv.report.RunContext`; checkpoints go to its ``checkpoints`` folder and a
    finished or interrupted training resumes from there.
    """
    from medadv.data.images import load_split
    from medadv.models.classifier import VGGClassifier, VGGConfig
    from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
    from medadv.train.recipes import MultiTaskObjective, PaperObjective

    cfg = classifier_config(ctx.profile.section("classifier"))
    cohort, size = ctx.cohort(), ctx.profile.data.image_size
    train = load_split(cohort, ctx.image_root, size, "train")
    val = load_split(cohort, ctx.image_root, size, "val")
    meta = {"profile": ctx.profile.name}
    params = cfg.recipe_params()
    out: list[TrainedClassifier] = []
    common = {"betas": cfg.betas, "batch_per_class": cfg.batch_per_class, "steps_per_epoch": cfg.steps_per_epoch,
              "eval_batch": cfg.eval_batch}
    erm_weights: dict[str, torch.Tensor] | None = None
    for recipe in sorted(cfg.recipes, key=lambda r: r != "erm"):  # erm first: the others may start from it
        torch.manual_seed(ctx.profile.seed)
        model = VGGClassifier(VGGConfig(width=cfg.width, hidden=cfg.hidden, dropout=cfg.dropout, imagenet=cfg.imagenet))
        finetune = cfg.finetune_from_erm and recipe != "erm"
        if finetune:
            model.load_state_dict(erm_weights)
        spec = TrainSpec(name=f"vgg_{recipe}", recipe=recipe, epochs=(cfg.finetune_epochs or cfg.epochs) if finetune else cfg.epochs,
                         warmup_epochs=0 if finetune else cfg.warmup_epochs, lr_head=cfg.lr_head,
                         lr_features=cfg.lr_features, init="vgg_erm" if finetune else "initial weights", **common)
        objective = PaperObjective(cfg.focal_gamma, cfg.gp_k, cfg.gp_power)
        result = fit(model.to(device), spec, objective, Recipe(recipe, params), train, val, ctx.checkpoints_dir,
                     ctx.profile.seed, device, dist_ctx, extra_meta=meta)
        if recipe == "erm":
            erm_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        out.append(TrainedClassifier(spec.name, recipe, model, result))
    if cfg.multitask:
        torch.manual_seed(ctx.profile.seed)
        model = MultiTaskResNet(MultiTaskConfig(cfg.multitask_encoder, cfg.multitask_width, cfg.multitask_decoder_width,
                                                imagenet=cfg.imagenet))
        spec = TrainSpec(name="multitask_erm", recipe="erm", epochs=cfg.multitask_epochs or cfg.epochs, warmup_epochs=0,
                         lr_head=cfg.multitask_lr, lr_features=cfg.multitask_lr, **common)
        result = fit(model.to(device), spec, MultiTaskObjective(cfg.multitask_seg_weight), Recipe("erm", params), train,
                     val, ctx.checkpoints_dir, ctx.profile.seed, device, dist_ctx, extra_meta=meta)
        out.append(TrainedClassifier(spec.name, "erm", model, result))
    return out


def evaluate_trained(
    trained: list[TrainedClassifier], val: SplitArrays, test: SplitArrays, device: torch.device, batch_size: int = 128
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``classifier_metrics`` rows (validation and test; threshold chosen on validation) and each model's test scores."""
    from medadv.train.evaluate import evaluate_scores, metrics_rows

    rows: list[dict[str, object]] = []
    test_scores: dict[str, np.ndarray] = {}
    for item in trained:
        s_val = predict_proba(item.model, torch.from_numpy(val.images), device, batch_size)
        s_test = predict_proba(item.model, torch.from_numpy(test.images), device, batch_size)
        rows += metrics_rows(item.name, item.recipe, evaluate_scores(val.labels, s_val, test.labels, s_test),
                             item.result.train_seconds)
        test_scores[item.name] = s_test
    return pd.DataFrame(rows), test_scores


def delong_table(y: np.ndarray, scores: dict[str, np.ndarray], reference: str) -> pd.DataFrame:
    """DeLong's paired test of ``reference`` against every other classifier on the same test cases."""
    from medadv.train.evaluate import compare_classifiers

    rows = [{"model_a": name, "model_b": reference, **compare_classifiers(y, score, scores[reference])}
            for name, score in scores.items() if name != reference]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "auc_difference", "z", "p_value"])
