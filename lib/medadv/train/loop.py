"""The one training loop: class-balanced batches, a recipe per step, validation AUC per epoch, checkpoints, resume.

Paper 001 ("AI-CAD classifier") and its authors' ``trainClas1728pal134.py``: each batch holds ``N`` positive and
``N`` negative images (eq. 1; N = 4), Adam with beta1 = 0.5 and beta2 = 0.9, learning rate 1e-4 for Fnet and a tenth
of it for Vnet, in three phases: the last layer alone (``last_layer_epochs``; the authors' code has this phase and
runs it for 0 epochs), then Fnet with Vnet frozen (``warmup_epochs``; 41 in the paper), then everything. A frozen
part's gradients are dropped before each Adam step, so its weights stay bit-identical. All of these come from the
profile's ``classifier`` section (:class:`ClassifierConfig`).

Every epoch the loop

* seeds everything it draws from ``(seed, epoch)``: the batches, dropout, augmentation and attack random starts, so
  that a run resumed after a kill retraces the uninterrupted run exactly on the CPU;
* evaluates the validation AUC;
* writes the training state (weights and Adam state as safetensors, history and progress in the JSON sidecar) to
  ``checkpoints/training/<name>_last``, and, when the validation AUC improves, the model itself to
  ``checkpoints/<name>`` (what :func:`medadv.models.registry.load_trained` reads).

A run whose training state matches the model, recipe, configuration, data and (for a fine-tuned recipe) start
weights (a fingerprint in the sidecar) resumes from it; a state of another configuration is ignored and overwritten.
In a run folder the state and the kept model are registered after every epoch, and resumed from only while their
bytes are those the folder recorded: a damaged file, or one copied from another run, is never resumed from (a
warning says so, and training starts again), so the model that comes out is always one this run trained. Mixed precision
(bfloat16 autocast) is used on CUDA only. Under ``torchrun`` every process takes its share of each global batch and
gradients are averaged (:mod:`medadv.train.distributed`); rank 0 writes the files.
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

from medadv.attacks.gradient import check_linf_budgets
from medadv.config import ProfileSection, check_ranges, torch_generator
from medadv.core import git_commit, in_notebook_progress
from medadv.data.images import SplitArrays
from medadv.errors import CheckpointError, ConfigError
from medadv.layout import training_state
from medadv.models.checkpoint import (
    CheckpointLedger,
    checkpoint_paths,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    resume_problem,
    save_checkpoint,
    split_prefix,
)
from medadv.models.classifier import VGGConfig
from medadv.models.inference import positive_scores
from medadv.models.multitask import MULTITASK_NAME, MultiTaskConfig
from medadv.models.pretrained import INITS, check_init
from medadv.models.registry import TRAINED_ROLE
from medadv.stats.auc import roc_auc
from medadv.train.distributed import DistContext, average_gradients, barrier, broadcast_parameters, shard
from medadv.train.evaluate import compare_classifiers, evaluate_scores, metrics_rows
from medadv.train.losses import CLASSIFIER_GP_READINGS, check_gp_at
from medadv.train.recipes import RECIPES, Batch, Objective, Recipe, RecipeParams

LOG = logging.getLogger(__name__)

STATE_ROLE = "training_state"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(RecipeParams, ProfileSection, section="classifier"):
    """The profile's ``classifier`` section: the recipes' hyper-parameters (inherited from :class:`RecipeParams`)
    and everything else about the classifiers. Budgets (``eps``, ``alpha``, ``l2_*``) are in [0, 1] pixel units.

    Attributes:
        width, dropout: paper 001's network (:class:`medadv.models.classifier.VGGConfig`).
        init: where its Vnet starts (:data:`medadv.models.pretrained.INITS`): ``imagenet`` (paper 001; width 1.0),
            ``kit`` (the kit's pretrained Vnet of the CPU widths) or ``random``. Paper 001's schedule (below) is
            made for a pretrained Vnet; a ``random`` start trains with the schedule made for random weights instead:
            no frozen warm-up and Vnet at Fnet's learning rate (``docs/fidelity.md``). Paper 004's multi-task network
            starts from ImageNet with ``imagenet`` and at random otherwise (the kit ships no ResNet of its own).
        erm_also_init: other starts to train ``erm`` from as well, as ``vgg_erm_init_<init>`` (same recipe, each
            with its start's schedule): notebook 01 shows how much of the study rests on the start.
        random_epochs: epochs of a classifier whose Vnet starts at random (0 = ``epochs``): a random start needs
            many more epochs than a pretrained one to learn, and gets its own, from its own learning curve.
        min_val_auc: the competence gate: a reference classifier whose best validation AUC is below it is flagged in
            every notebook that reads it, and the effects that read it are marked not interpretable (null: no
            gate; paper 001's classifier had a test AUC of 0.82).
        epochs: training epochs of each VGG recipe trained from the initial weights; the first
            ``last_layer_epochs`` train only Fnet's last layer, the next ``warmup_epochs`` Fnet (paper 001: 0, 41).
            The model kept is the epoch of best validation AUC (its epoch is in the checkpoint's sidecar).
        batch_per_class: ``N`` of eq. 1, positives (and negatives) per batch (paper 001: 4).
        steps_per_epoch: batches per epoch; 0 = training images // (2 N).
        lr_head, lr_features, betas: Adam settings (paper 001: 1e-4, 1e-5, (0.5, 0.9)).
        focal_gamma, gp_k, gp_power: eqs. 2-3 (paper 001: 2, 10, 4).
        gp_at: where eq. 3 takes its gradient: ``image`` (the authors') or ``features`` (:mod:`medadv.train.losses`);
            ``none`` drops the penalty (``erm_also_gp_at: [none]`` trains the control ``vgg_erm_gp_none``).
        erm_also_gp_at: other readings to train ``erm`` with as well, as ``vgg_erm_gp_<reading>`` (same recipe,
            epochs and start), so that notebook 03 shows how much of ERM's robustness comes from the penalty.
        recipes: the VGG recipes to train (names from :data:`medadv.train.recipes.RECIPES`).
        finetune_from_erm: start every other recipe from the trained ``vgg_erm`` weights instead of the initial ones
            (adversarial fine-tuning, Jeddi et al., "A simple fine-tuning is all you need", 2020): far fewer epochs
            reach a robust model, which is what makes the CPU profiles' robust recipes work within minutes.
        finetune_epochs: epochs of those fine-tuning runs (0 = ``epochs``); recipe ``erm_matched`` trains vgg_erm on
            for as many epochs from the same start, the matched-budget reference for their effects.
        multitask: also train paper 004's multi-task network (recipe ``erm``) as ``multitask_erm``.
        reference_model: the standard model of the study, one of :meth:`model_names`: notebook 01 compares every
            classifier's AUC with it (DeLong), the GAN of notebook 02 attacks it (and its discriminators start from
            it), notebook 03 shows the attacks' examples on it.
        multitask_encoder, multitask_width, multitask_decoder_width, multitask_epochs (0 = ``epochs``),
        multitask_seg_weight, multitask_lr: paper 004's network and its training (Adam, one learning rate, no warm-up).
        eps, alpha, steps: L-inf budget, step and steps of the kit's training attacks (pgd_at, trades,
            rtda_focal_linf; eps for fast_at).
        l2_eps, l2_alpha: the same for ``pgd_at_l2``.
        rtda_eps, rtda_alpha, rtda_steps: paper 002's L2-PGD (rtda, adversarial_l2; its authors: 2/255, 0.5/255, 7).
        trades_beta, fast_alpha_ratio, jsd_weight, augmix_*: TRADES' beta, fast_at's step / eps, the AugMix / RTDA
            Jensen-Shannon weight and AugMix's severity, width, depth.
        eval_batch: batch size for prediction.

    Defaults: papers 001, 002 and 004's values where they give one (``docs/fidelity.md``); the others, marked ``kit``,
    are the kit's choices.
    """

    width: float = 1.0
    dropout: float = 0.2
    init: str = "imagenet"
    erm_also_init: tuple[str, ...] = ()  # kit
    random_epochs: int = 0  # kit
    min_val_auc: float | None = 0.8  # kit: paper 001's test AUC, 0.82, rounded down
    epochs: int = 300
    last_layer_epochs: int = 0
    warmup_epochs: int = 41
    batch_per_class: int = 4
    steps_per_epoch: int = 0  # kit: every training image once per epoch
    lr_head: float = 1e-4
    lr_features: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.9)
    focal_gamma: float = 2.0
    gp_k: float = 10.0
    gp_power: float = 4.0
    gp_at: str = "image"
    erm_also_gp_at: tuple[str, ...] = ()  # kit
    recipes: tuple[str, ...] = ("erm", "pgd_at", "rtda")  # kit: the standard, adversarial and RTDA training
    finetune_from_erm: bool = False  # the papers train every recipe from the initial weights
    finetune_epochs: int = 0  # kit
    multitask: bool = True  # kit
    multitask_encoder: str = "resnet50"
    multitask_width: float = 1.0
    multitask_decoder_width: int = 256  # kit: paper 004's first decoder sub-box has 1024 (the full profile)
    multitask_epochs: int = 0  # kit: as many as epochs
    multitask_seg_weight: float = 1.0  # kit
    multitask_lr: float = 1e-4  # kit: paper 001's head learning rate
    eval_batch: int = 128  # kit: prediction only, no effect on results
    reference_model: str = "vgg_erm"  # the kit's choice: paper 001's network trained by ERM, the papers' baseline

    def __post_init__(self) -> None:
        unknown = sorted(set(self.recipes) - set(RECIPES))
        if unknown:
            raise ConfigError(f"classifier.recipes has unknown recipes {unknown}; choose from {RECIPES}.")
        if self.epochs < 1 or self.batch_per_class < 1 or self.random_epochs < 0:
            raise ConfigError(
                f"classifier.epochs={self.epochs}, batch_per_class={self.batch_per_class}, random_epochs="
                f"{self.random_epochs}; the first two must be >= 1, random_epochs >= 0 (0: epochs)."
            )
        if (
            min(self.last_layer_epochs, self.warmup_epochs) < 0
            or self.last_layer_epochs + self.warmup_epochs > self.epochs
        ):
            raise ConfigError(
                f"classifier.last_layer_epochs ({self.last_layer_epochs}) + warmup_epochs "
                f"({self.warmup_epochs}) must be non-negative and at most epochs ({self.epochs})."
            )
        if self.finetune_from_erm and "erm" not in self.recipes:
            raise ConfigError(
                "classifier.finetune_from_erm needs 'erm' in classifier.recipes (its weights are the start)."
            )
        if "erm_matched" in self.recipes and not self.finetune_from_erm:
            raise ConfigError(
                "classifier.recipes has erm_matched, which continues vgg_erm for finetune_epochs; it needs "
                "finetune_from_erm: true."
            )
        for reading in (self.gp_at, *self.erm_also_gp_at):
            check_gp_at(reading, CLASSIFIER_GP_READINGS)
        for start in (self.init, *self.erm_also_init):
            if start not in INITS:
                raise ConfigError(f"classifier.init / erm_also_init has {start!r}; expected one of {INITS}.")
        if self.min_val_auc is not None and not 0.5 <= self.min_val_auc < 1.0:
            raise ConfigError(
                f"classifier.min_val_auc is {self.min_val_auc}; expected a validation AUC in [0.5, 1) "
                "(or null for no competence gate)."
            )
        self._check_budgets_and_networks()
        if self.reference_model not in self.model_names():
            raise ConfigError(
                f"classifier.reference_model is {self.reference_model!r}, which this section does not "
                f"train; it trains {self.model_names()}. Set reference_model to one of them (the model "
                "notebooks 01-03 compare with and attack), or add its recipe to classifier.recipes."
            )

    def _check_budgets_and_networks(self) -> None:
        """Refuse training budgets outside their ranges and a network a run of this section could not build (a
        width of 0, a width the GroupNorm groups do not divide, a start the width cannot take), before any training."""
        check_linf_budgets({"classifier.eps": self.eps, "classifier.alpha": self.alpha})
        check_ranges(
            "classifier",
            self,
            at_least={
                "steps_per_epoch": 0,
                "finetune_epochs": 0,
                "multitask_epochs": 0,
                "eval_batch": 1,
                "multitask_decoder_width": 1,
                "focal_gamma": 0,
                "gp_k": 0,
                "multitask_seg_weight": 0,
                "steps": 1,
                "rtda_steps": 1,
                "trades_beta": 0,
                "jsd_weight": 0,
                "augmix_severity": 1,
                "augmix_width": 1,
            },
            above={"lr_head": 0, "lr_features": 0, "multitask_lr": 0, "gp_power": 0, "fast_alpha_ratio": 0},
        )
        for key in ("l2_eps", "l2_alpha", "rtda_eps", "rtda_alpha"):
            if not getattr(self, key) > 0:
                raise ConfigError(
                    f"classifier.{key} is {getattr(self, key)}; expected a positive L2 budget or step "
                    "(per image, in [0, 1] pixel units)."
                )
        for run in vgg_runs(self):
            VGGConfig(width=self.width, dropout=self.dropout, init="random" if run.from_erm else run.init)
        for start in (self.init, *self.erm_also_init):
            check_init(start, self.width)  # a width the weights do not fit: before notebook 00, not in notebook 01
        if self.multitask:
            MultiTaskConfig(
                self.multitask_encoder,
                self.multitask_width,
                self.multitask_decoder_width,
                imagenet=self.init == "imagenet",
            )

    def imagenet_archs(self) -> list[str]:
        """The torchvision networks whose ImageNet weights this section's training reads: ``vgg11`` when a VGG run
        starts from ImageNet (``init`` or ``erm_also_init``), the multi-task encoder when ``init`` is ``imagenet``.

        Returns:
            The architecture names (empty without an ImageNet start).
        """
        archs = ["vgg11"] if "imagenet" in (self.init, *self.erm_also_init) else []
        return archs + ([self.multitask_encoder] if self.multitask and self.init == "imagenet" else [])

    def model_names(self) -> list[str]:
        """The checkpoint names this section trains: :func:`vgg_runs`' names, then ``multitask_erm`` with ``multitask``.

        Returns:
            The names in training order.
        """
        return [run.name for run in vgg_runs(self)] + ([MULTITASK_NAME] if self.multitask else [])

    def recipe_params(self) -> RecipeParams:
        """The recipes' hyper-parameters.

        Returns:
            The :class:`RecipeParams` of this section.
        """
        names = {f.name for f in dataclasses.fields(RecipeParams)}
        return RecipeParams(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """What one call of :func:`fit` trains: checkpoint name, recipe, epochs and optimiser settings, and where the
    weights start (``init``: the network's own start, or the checkpoint they were taken from). Phases: the first
    ``last_layer_epochs`` train only the model's ``last`` parameter group, the next ``warmup_epochs`` everything but
    ``features``, the rest everything."""

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
    init: str = "random"
    last_layer_epochs: int = 0


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
    """Adam over the model's ``features`` group at ``lr_features`` and every other group at ``lr_head`` (paper 001).

    Returns:
        the optimiser, its parameter groups in the order of ``model.param_groups()``.
    """
    return torch.optim.Adam(
        [
            {"params": params, "lr": spec.lr_features if name == "features" else spec.lr_head}
            for name, params in model.param_groups().items()
        ],
        betas=spec.betas,
    )


def frozen_parameters(model: nn.Module, spec: TrainSpec, epoch: int) -> list[nn.Parameter]:
    """The parameters paper 001's phase of 0-based ``epoch`` keeps fixed: all but the ``last`` group in the first
    ``last_layer_epochs``, the ``features`` group (Vnet) in the next ``warmup_epochs``, none afterwards.

    Returns:
        The frozen parameters (empty after the two phases).

    Raises:
        ConfigError: a last-layer phase for a model without a ``last`` parameter group.
    """
    groups = model.param_groups()
    if epoch < spec.last_layer_epochs:
        if "last" not in groups:
            raise ConfigError(
                f"{spec.name}: last_layer_epochs needs a model with a 'last' parameter group "
                f"(paper 001's VGGClassifier); {type(model).__name__} has {sorted(groups)}."
            )
        return [p for name, params in groups.items() if name != "last" for p in params]
    if epoch < spec.last_layer_epochs + spec.warmup_epochs:
        return list(groups["features"])
    return []


def _fingerprint(
    model: nn.Module, spec: TrainSpec, objective: Objective, recipe: Recipe, seed: int, train: SplitArrays
) -> str:
    payload = {
        "model": model.spec(),
        "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k != "epochs"},
        "objective": repr(objective),
        "recipe": dataclasses.asdict(recipe.params),
        "seed": seed,
        "train_ids": hashlib.sha256("\n".join(map(str, train.rows["image_id"])).encode()).hexdigest(),
    }
    if spec.init not in INITS:  # started from another model's weights: a retrained start is another run
        start = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            start.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        payload["start"] = start.hexdigest()
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
    ledger: CheckpointLedger | None = None,
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
        ledger: the run folder's record of its checkpoints (the notebook's :class:`medadv.report.RunContext`): the
            training state and the model are resumed from only when their bytes are those it recorded, and they are
            registered in it after every epoch (so a run killed mid-training resumes). Without one, a state is
            resumed from when it loads.

    Returns:
        the per-epoch history (epoch, loss, train_accuracy, val_auc, seconds) and the best epoch.
    """
    ckpt_dir = Path(checkpoints_dir)
    state_stem = training_state(ckpt_dir, spec.name)
    best_stem = ckpt_dir / spec.name
    optimizer = make_optimizer(model, spec)
    fingerprint = _fingerprint(model, spec, objective, recipe, seed, train)
    steps = spec.steps_per_epoch or max(1, len(train.labels) // (2 * spec.batch_per_class))
    progress = _resumed(model, optimizer, spec, (state_stem, best_stem), fingerprint, ledger) if resume else _Progress()
    broadcast_parameters(model, dist_ctx)
    val_x = torch.from_numpy(val.images)
    dtype = model.param_groups()["features"][0].dtype  # images are fed in the model's precision
    bar = tqdm(
        total=(spec.epochs - progress.epoch) * steps,
        desc=spec.name,
        disable=not in_notebook_progress() or not dist_ctx.is_main,
    )
    for epoch in range(progress.epoch, spec.epochs):
        t0 = time.perf_counter()
        loss, accuracy = _train_epoch(
            model, optimizer, spec, objective, recipe, train, seed, epoch, steps, device, dtype, dist_ctx, bar
        )
        val_auc = float(roc_auc(val.labels, positive_scores(model, val_x, device, spec.eval_batch)))
        improved = progress.record(loss, accuracy, val_auc, time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss:.3f}", val_auc=f"{val_auc:.3f}")
        if dist_ctx.is_main:
            sidecar = _sidecar(model, spec, recipe, seed, epoch + 1, val_auc, extra_meta) if improved else None
            _save_epoch((state_stem, best_stem), model, optimizer, spec, fingerprint, seed, progress, sidecar, ledger)
        barrier(dist_ctx)
    bar.close()
    tensors, _ = load_checkpoint(best_stem)
    model.load_state_dict(split_prefix(tensors, "model"))
    model.eval()
    frame = pd.DataFrame(progress.history, columns=["epoch", "loss", "train_accuracy", "val_auc", "seconds"])
    return TrainResult(
        spec.name, spec.recipe, frame, progress.best_epoch, progress.best_auc, float(frame["seconds"].sum())
    )


def _sidecar(
    model: nn.Module,
    spec: TrainSpec,
    recipe: Recipe,
    seed: int,
    epoch: int,
    val_auc: float,
    extra_meta: dict[str, Any] | None,
) -> dict[str, Any]:
    """The sidecar of a best-validation checkpoint: what was trained, how, at which epoch, with which AUC.

    Returns:
        a JSON-able dict (role, name, model spec, recipe and its parameters, seed, epoch, metrics, code version, ...).
    """
    return {
        "role": TRAINED_ROLE,
        "name": spec.name,
        "model": model.spec(),
        "recipe": spec.recipe,
        "seed": seed,
        "epoch": epoch,
        "metrics": {"val_auc": val_auc},
        "pretrained": bool(getattr(model, "pretrained", False)),
        "code_version": git_commit(),
        "train": dataclasses.asdict(spec),
        "recipe_params": dataclasses.asdict(recipe.params),
        **(extra_meta or {}),
    }


def _save_epoch(
    stems: tuple[Path, Path],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: TrainSpec,
    fingerprint: str,
    seed: int,
    progress: _Progress,
    best_sidecar: dict[str, Any] | None,
    ledger: CheckpointLedger | None,
) -> None:
    """After an epoch: the best weights (when ``best_sidecar`` is given, i.e. validation AUC improved), the training
    state to resume from, and both registered in the ``ledger``.

    Returns:
        None; writes ``stems`` = (training state stem, best-weights stem).
    """
    state_stem, best_stem = stems
    if best_sidecar is not None:
        save_checkpoint(best_stem, _tensors(model), best_sidecar)
    _save_state(state_stem, model, optimizer, spec, fingerprint, seed, progress)
    if ledger is not None:
        best = checkpoint_paths(best_stem) if best_sidecar is not None else ()
        ledger.register_many([*checkpoint_paths(state_stem), *best])


@dataclasses.dataclass
class _Progress:
    """How far :func:`fit` got: the epochs done, their history rows, and the best validation AUC and its epoch."""

    epoch: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_auc: float = -1.0
    best_epoch: int = 0

    def record(self, loss: float, accuracy: float, val_auc: float, seconds: float) -> bool:
        """One more epoch done: its history row, and the best AUC and epoch when ``val_auc`` beats the best so far.

        Returns:
            whether this epoch's validation AUC is the best so far (its weights are then kept).
        """
        self.epoch += 1
        row = {"epoch": self.epoch, "loss": loss, "train_accuracy": accuracy, "val_auc": val_auc, "seconds": seconds}
        self.history.append(row)
        improved = val_auc > self.best_auc
        if improved:
            self.best_auc, self.best_epoch = val_auc, self.epoch
        return improved


def _resumed(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: TrainSpec,
    stems: tuple[Path, Path],
    fingerprint: str,
    ledger: CheckpointLedger | None,
) -> _Progress:
    """Load the training state at ``stems[0]`` into ``model`` and ``optimizer`` when it has this ``fingerprint`` and
    it and the kept model (``stems[1]``) may be resumed from (:func:`medadv.models.checkpoint.resume_problem`).

    Returns:
        The progress it records, or a fresh one when there is no state, it belongs to another configuration, or it
        or the kept model is damaged or foreign (a warning says which; training starts from the beginning).
    """
    if not checkpoint_paths(stems[0])[1].is_file():
        return _Progress()
    problem = resume_problem(stems, ledger)
    if problem is None:
        try:
            tensors, meta = load_checkpoint(stems[0])
        except CheckpointError as exc:
            problem = str(exc)
    if problem is not None:
        LOG.warning("%s: training state not resumed (%s); training from the start", spec.name, problem)
        return _Progress()
    if meta.get("fingerprint") != fingerprint or meta.get("role") != STATE_ROLE:
        LOG.info("%s: training state of another configuration ignored", spec.name)
        return _Progress()
    model.load_state_dict(split_prefix(tensors, "model"))
    optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    LOG.info("%s: resuming after epoch %d of %d", spec.name, meta["epoch"], spec.epochs)
    return _Progress(meta["epoch"], meta["history"], meta["best_val_auc"], meta["best_epoch"])


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: TrainSpec,
    objective: Objective,
    recipe: Recipe,
    train: SplitArrays,
    seed: int,
    epoch: int,
    steps: int,
    device: torch.device,
    dtype: torch.dtype,
    dist_ctx: DistContext,
    bar: tqdm,
) -> tuple[float, float]:
    """One epoch of ``steps`` class-balanced batches, seeded by ``seed`` and ``epoch`` (and the rank, for attacks).

    Returns:
        The epoch's mean loss and its training accuracy (on the recipe's logits).
    """
    epoch_seed = seed * 100_003 + epoch
    torch.manual_seed(epoch_seed)  # dropout and AugMix
    batch_gen = torch_generator(epoch_seed)
    attack_gen = torch_generator(epoch_seed + 50_021 * (dist_ctx.rank + 1))
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.train()
    frozen = frozen_parameters(model, spec, epoch)
    losses, correct, seen = [], 0, 0
    for idx in BalancedBatches(train.labels, spec.batch_per_class, steps, batch_gen):
        batch = _to_device(train, _shard_balanced(idx, spec.batch_per_class, dist_ctx), device, dtype)
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss, logits = recipe(model, objective, batch, attack_gen)
        loss.backward()
        average_gradients(model, dist_ctx)
        for p in frozen:
            p.grad = None
        optimizer.step()
        losses.append(float(loss.detach()))
        correct += int((logits.detach().argmax(1) == batch.y).sum())
        seen += len(batch.y)
        bar.update(1)
    return float(np.mean(losses)), correct / max(seen, 1)


def _save_state(
    state_stem: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: TrainSpec,
    fingerprint: str,
    seed: int,
    progress: _Progress,
) -> None:
    """Write the training state after an epoch (weights, optimiser, history) so that :func:`fit` can resume."""
    opt_tensors, opt_meta = optimizer_to_flat(optimizer)
    save_checkpoint(
        state_stem,
        {**_tensors(model), **opt_tensors},
        {
            "role": STATE_ROLE,
            "name": spec.name,
            "fingerprint": fingerprint,
            "epoch": progress.epoch,
            "history": progress.history,
            "best_val_auc": progress.best_auc,
            "best_epoch": progress.best_epoch,
            "optimizer": opt_meta,
            "rng": {"epoch_seed": "seed * 100003 + epoch", "seed": seed},
        },
    )


@dataclasses.dataclass
class TrainedClassifier:
    """A classifier trained by :func:`medadv.stages.classifier_training.train_profile_models`: checkpoint name, recipe,
    network, training outcome and its training (:class:`TrainSpec`, whose ``init`` says where its weights started:
    ``kit``, ``imagenet``, ``random`` or the checkpoint it was fine-tuned from)."""

    name: str
    recipe: str
    model: nn.Module
    result: TrainResult
    spec: TrainSpec

    @property
    def init(self) -> str:
        """Where the weights started (:attr:`TrainSpec.init`)."""
        return self.spec.init


@dataclasses.dataclass(frozen=True)
class VGGRun:
    """One VGG classifier :func:`medadv.stages.classifier_training.train_profile_models` trains: checkpoint name,
    recipe, gradient-penalty reading, whether it starts from the trained ``vgg_erm``, and else where its Vnet starts."""

    name: str
    recipe: str
    gp_at: str
    from_erm: bool
    init: str


def vgg_runs(cfg: ClassifierConfig) -> list[VGGRun]:
    """The VGG classifiers of a ``classifier`` section, ``vgg_erm`` first (the others may start from it).

    ``vgg_<recipe>`` for each of ``recipes`` (fine-tuned from vgg_erm under ``finetune_from_erm``, ``erm_matched``
    always), ``vgg_erm_gp_<reading>`` for each of ``erm_also_gp_at`` and ``vgg_erm_init_<start>`` for each of
    ``erm_also_init`` (trained as vgg_erm is, with that one setting changed).

    Returns:
        the runs in training order.
    """
    runs = [VGGRun("vgg_erm", "erm", cfg.gp_at, False, cfg.init)] if "erm" in cfg.recipes else []
    runs += [VGGRun(f"vgg_erm_gp_{reading}", "erm", reading, False, cfg.init) for reading in cfg.erm_also_gp_at]
    runs += [VGGRun(f"vgg_erm_init_{start}", "erm", cfg.gp_at, False, start) for start in cfg.erm_also_init]
    runs += [
        VGGRun(f"vgg_{recipe}", recipe, cfg.gp_at, cfg.finetune_from_erm, cfg.init)
        for recipe in cfg.recipes
        if recipe != "erm"
    ]
    return runs


def vgg_spec(cfg: ClassifierConfig, run: VGGRun, common: dict[str, Any]) -> TrainSpec:
    """The training of one VGG run: fine-tuning from vgg_erm, paper 001's phases from a pretrained Vnet, or the
    schedule made for random weights (no frozen warm-up, Vnet at Fnet's learning rate).

    Returns:
        The run's :class:`TrainSpec`; ``common`` holds the settings every run shares (betas, batch, steps, eval batch).
    """
    if run.from_erm:
        return TrainSpec(
            name=run.name,
            recipe=run.recipe,
            epochs=cfg.finetune_epochs or cfg.epochs,
            warmup_epochs=0,
            lr_head=cfg.lr_head,
            lr_features=cfg.lr_features,
            init="vgg_erm",
            **common,
        )
    if run.init == "random":
        return TrainSpec(
            name=run.name,
            recipe=run.recipe,
            epochs=cfg.random_epochs or cfg.epochs,
            warmup_epochs=0,
            lr_head=cfg.lr_head,
            lr_features=cfg.lr_head,
            init=run.init,
            **common,
        )
    return TrainSpec(
        name=run.name,
        recipe=run.recipe,
        epochs=cfg.epochs,
        warmup_epochs=cfg.warmup_epochs,
        last_layer_epochs=cfg.last_layer_epochs,
        lr_head=cfg.lr_head,
        lr_features=cfg.lr_features,
        init=run.init,
        **common,
    )


def evaluate_trained(
    trained: list[TrainedClassifier], val: SplitArrays, test: SplitArrays, device: torch.device, batch_size: int = 128
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``classifier_metrics`` rows (validation and test; threshold chosen on validation) and each model's test scores.

    Returns:
        The metrics table and ``{name: test scores}``.
    """
    rows: list[dict[str, object]] = []
    test_scores: dict[str, np.ndarray] = {}
    for item in trained:
        s_val = positive_scores(item.model, val.images, device, batch_size)
        s_test = positive_scores(item.model, test.images, device, batch_size)
        rows += metrics_rows(
            item.name, item.recipe, evaluate_scores(val.labels, s_val, test.labels, s_test), item.result.train_seconds
        )
        test_scores[item.name] = s_test
    return pd.DataFrame(rows), test_scores


def delong_table(y: np.ndarray, scores: dict[str, np.ndarray], reference: str) -> pd.DataFrame:
    """DeLong's paired test of ``reference`` against every other classifier on the same test cases.

    Returns:
        One row per other classifier: model_a, model_b, auc_difference, z, p_value.
    """
    rows = [
        {"model_a": name, "model_b": reference, **compare_classifiers(y, score, scores[reference])}
        for name, score in scores.items()
        if name != reference
    ]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "auc_difference", "z", "p_value"])
