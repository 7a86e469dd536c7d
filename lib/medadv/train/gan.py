"""Training the lesion insertion / removal GAN of paper 001 (Zhou et al., Nat Commun 2021, Eqs. 4-8 and the staged
schedule of "GAN model generator and discriminator").

Losses (for removal, x = real negative images, y = real positive images, y_fn = Gnet(y); insertion swaps them):

    Loss_dis  = -Dis(x) + Dis(y_fn) + |Dis(x) - 1| + GP(x)               (Eq. 4)
    Dis(g)    = -ln(1 + exp(-Dnet(Vnet(g))))                             (Eq. 5, :func:`medadv.models.gan_networks.dis`)
    GP(x)     = k/2 * ||grad Dnet(Vnet(x))||_2^o,  k = 10, o = 4         (Eq. 6, gradient w.r.t. the image x)
    Loss_gen1 = ||y_fn - y||_2^2 / ||y||_2^2                             (Eq. 7, identity loss)
    Loss_gen2 = -Dis(y_fn) + Loss_gen1                                   (Eq. 8)

Schedule (Adam, betas (0.5, 0.9) throughout):

1. ``identity``: Gnet alone with Loss_gen1, lr 1e-4, until the epoch's mean Loss_gen1 < 0.002 or ``identity_epochs``
   (paper: 11).
2. ``warmup``: only the last (fresh) layer of Dnet with Loss_dis, lr 1e-4, Gnet and the rest of Dnet frozen, until
   the epoch's mean Dis(x) - Dis(y_fn) > 0.2 or ``warmup_epochs`` (paper: 10).
3. ``joint``: Dnet with Loss_dis every batch (lr 1e-4 for Fnet / Dnet, 1e-5 for Vnet) and Gnet once every 5 batches
   with Loss_gen2 (lr 1e-5), until the epoch's mean Dis(x) - Dis(y_fn) < 0.01 or ``joint_epochs``.

An epoch is one pass over the training images the generator edits (y), in shuffled batches of ``batch_size``, each
paired with a batch of images of the other class (x) drawn from a shuffled cycle; the order of every epoch comes from
a generator seeded by (seed, stage, epoch), so a resumed run repeats exactly what an uninterrupted one does.

Deviations from the paper, all set in the profile's ``gan`` section (the ``full`` profile keeps the paper's values):

* Epoch limits per stage; the paper trained at 1728 x 1408 for thousands of iterations and gives no limit for the
  joint stage.
* ``identity_skip``: Gnet = sigmoid(logit(x) + U(x)) with U's last layer zero-initialised, so Gnet starts as the
  identity and stage 1 ends after its first epoch, where the paper's sigmoid(U(x)) needs hundreds of updates to
  learn the identity (see :class:`medadv.models.gan_networks.Gnet`).
* ``dnet_init`` ``classifier``: Dnet's one-output layer starts as the classifier's log-odds of the target class
  instead of random weights. Under Eq. 4 a random last layer first raises every score (the real term weighs twice,
  through |Dis(x) - 1|), and on a short run it saturates, with both Dis values near 0, before it separates the
  classes; started from the classifier, the warm-up (at the paper's 1e-4) begins with the classes apart and the
  joint stage trains Gnet against a discriminator that still judges like the classifier.
* ``generator_every`` 1 instead of 5 and ``lr_generator`` 1e-3 instead of 1e-5 in the joint stage, and
  ``lr_identity`` 1e-3 instead of 1e-4: the edit then happens within the few hundred updates a CPU run affords.
* Batches of 8 per class instead of 4.

Augmentation (``augment``, on by default): both images of every pair are flipped vertically (p = 1/2), rotated and
sheared (each within +-45 degrees; bilinear, zero fill), as the authors' ``trainV1728negPal41.py`` does; drawn from
the batch order's seeded generator, so a resumed run repeats them.

Choices the paper leaves open: every loss is averaged over the batch; Eq. 6's gradient (``gp_at``) is taken, as the
authors' code takes eq. 3's, at the image Vnet receives (``image``), or at the feature map Vnet(x) (``features``, the
kit's earlier reading; :mod:`medadv.train.losses` explains both); the stopping rules read the
epoch's mean Loss_gen1 or margin. The discriminator needs the classifier's features to separate the classes: with a
classifier near chance the warm-up cannot reach its margin and the joint stage stops at once (its rule, margin <
0.01, then holds from the start), leaving the images almost unchanged.

Checkpoints: after every epoch the whole training state (both networks, the stage's Adam states, the stage, epoch
and history) is written through :mod:`medadv.models.checkpoint` to ``<prefix>.safetensors`` + ``<prefix>.json``;
:func:`train_gan` resumes from it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from medadv.config import ProfileSection, torch_generator
from medadv.core import in_notebook_progress
from medadv.errors import CheckpointError, ConfigError, DataError
from medadv.models import checkpoint as ckpt
from medadv.models.gan_networks import DIRECTIONS, Discriminator, Gnet, dis
from medadv.train.augment import gan_augment
from medadv.train.losses import check_gp_at, differentiable, feature_gradient_norms

logger = logging.getLogger(__name__)

STAGES = ("identity", "warmup", "joint")
HISTORY_COLUMNS = (
    "direction",
    "stage",
    "epoch",
    "batches",
    "generator_updates",
    "loss_gen1",
    "loss_dis",
    "dis_real",
    "dis_fake",
    "margin",
    "stop",
    "epoch_seconds",
)


@dataclass(frozen=True)
class GanConfig(ProfileSection, section="gan"):
    """The profile's ``gan`` section (paper 001's values as defaults where it gives one; the others, marked ``kit``,
    are the kit's choices).

    Attributes:
        width, depth: Gnet's first-level channels and number of down-sampling steps.
        identity_skip: Gnet = sigmoid(logit(x) + U(x)) instead of the paper's sigmoid(U(x)) (see
            :class:`medadv.models.gan_networks.Gnet`).
        dnet_init: ``random`` (the paper) or ``classifier``: Dnet's one-output layer starts as the classifier's
            log-odds of the generator's target class (see :class:`medadv.models.gan_networks.Discriminator`).
        batch_size: images per batch of each class (paper: N = 4).
        identity_epochs, identity_threshold: stage 1 limit and its Loss_gen1 stopping threshold (paper: 11, 0.002).
        warmup_epochs, warmup_margin: stage 2 limit and its Dis(x) - Dis(y_fn) target (paper: 10, 0.2).
        joint_epochs, stop_margin: stage 3 limit and the margin below which it stops (paper: none, 0.01).
        lr_identity, lr_warmup: stage 1 and 2 learning rates (paper: 1e-4 each).
        lr_generator: Gnet's learning rate in stage 3 (paper: 1e-5).
        lr_dis_head, lr_dis_features: Dnet / Fnet and Vnet learning rates in stage 3 (paper: 1e-4, 1e-5).
        betas: Adam's exponential decay rates (paper: 0.5, 0.9).
        generator_every: Gnet is updated once every this many batches in stage 3 (paper: 5).
        gp_k, gp_power: gradient-penalty coefficient and power of Eq. 6 (paper: 10, 4).
        gp_at: ``image`` (the authors') or ``features``: where Eq. 6 takes its gradient.
        augment: the authors' GAN augmentation (vertical flip, rotation and shear within +-45 degrees).
        education_triplets: real / fake / difference triplets of training images for the reader study's education
            session, per generator (paper: 100 in all).
    """

    width: int = 16  # kit: not given in paper 001's text
    depth: int = 3  # kit: not given in paper 001's text
    identity_skip: bool = False
    dnet_init: str = "random"
    batch_size: int = 4
    identity_epochs: int = 11
    identity_threshold: float = 0.002
    warmup_epochs: int = 10
    warmup_margin: float = 0.2
    joint_epochs: int = 10  # kit: paper 001 gives no limit (it stops at stop_margin)
    stop_margin: float = 0.01
    lr_identity: float = 1e-4
    lr_warmup: float = 1e-4
    lr_generator: float = 1e-5
    lr_dis_head: float = 1e-4
    lr_dis_features: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.9)
    generator_every: int = 5
    gp_k: float = 10.0
    gp_power: float = 4.0
    gp_at: str = "image"
    augment: bool = True
    education_triplets: int = 50

    def __post_init__(self) -> None:
        positive_ints = ("width", "depth", "batch_size", "generator_every")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ConfigError(f"gan.{name} is {getattr(self, name)}; expected an integer of at least 1.")
        for name in ("identity_epochs", "warmup_epochs", "joint_epochs", "education_triplets"):
            if getattr(self, name) < 0:
                raise ConfigError(f"gan.{name} is {getattr(self, name)}; expected a non-negative integer.")
        for name in ("lr_identity", "lr_warmup", "lr_generator", "lr_dis_head", "lr_dis_features", "gp_k", "gp_power"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"gan.{name} is {getattr(self, name)}; expected a positive number.")
        check_gp_at(self.gp_at)
        if self.dnet_init not in ("random", "classifier"):
            raise ConfigError(f"gan.dnet_init is {self.dnet_init!r}; expected 'random' (paper 001) or 'classifier'.")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"gan.betas is {self.betas}; expected two numbers in [0, 1), e.g. [0.5, 0.9].")


# ---- losses (Eqs. 4-8) ----------------------------------------------------------------------------------------------
def gradient_penalty(
    discriminator: nn.Module, x: torch.Tensor, k: float = 10.0, power: float = 4.0, gp_at: str = "image"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6: k/2 * ||grad Dnet(Vnet(x))||_2^o per real image, averaged over the batch.

    ``gp_at`` ``image`` takes the gradient with respect to the normalised image Vnet receives (the authors' code);
    ``features`` with respect to the feature map Vnet(x) (``discriminator.vnet`` / ``discriminator.dnet``).

    Returns:
        ``(penalty, score)`` where ``score`` = Dnet(Vnet(x)) (N,) is reused by Eq. 4. The penalty keeps its graph
        (``create_graph``) so that it trains the discriminator.
    """
    check_gp_at(gp_at)
    z = discriminator.prepare(x)
    if gp_at == "image":
        z = differentiable(z)
        score = discriminator.classify(z)
        norms = feature_gradient_norms(z, score)
    else:
        feats = differentiable(discriminator.vnet(z))
        score = discriminator.dnet(feats)
        norms = feature_gradient_norms(feats, score)
    return k / 2.0 * norms.pow(power).mean(), score


def discriminator_loss(
    score_real: torch.Tensor, score_fake: torch.Tensor, penalty: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Eq. 4: mean over the batch of -Dis(x) + Dis(y_fn) + |Dis(x) - 1|, plus the gradient penalty GP(x).

    Returns:
        The loss, a scalar tensor.
    """
    d_real, d_fake = dis(score_real), dis(score_fake)
    return (-d_real + d_fake + (d_real - 1.0).abs()).mean() + penalty


def identity_loss(fake: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ||y_fn - y||^2 / ||y||^2 per image (an all-black y counts as ||y||^2 = 1e-12), averaged over the batch.

    Returns:
        The loss, a scalar tensor.
    """
    num = (fake - source).flatten(1).pow(2).sum(dim=1)
    den = source.flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)
    return (num / den).mean()


def generator_loss(score_fake: torch.Tensor, fake: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Eq. 8: mean over the batch of -Dis(y_fn), plus Loss_gen1 (Eq. 7).

    Returns:
        The loss, a scalar tensor.
    """
    return (-dis(score_fake)).mean() + identity_loss(fake, source)


# ---- training --------------------------------------------------------------------------------------------------------
@dataclass
class GanResult:
    """A trained (or resumed) GAN: the generator, its discriminator and one history row per epoch."""

    direction: str
    generator: Gnet
    discriminator: Discriminator
    history: pd.DataFrame


@dataclass
class _State:
    stage: int = 0  # index into STAGES; len(STAGES) when training is over
    epoch: int = 0  # completed epochs of the current stage
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _adam(params: list[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=betas)


class _Trainer:
    def __init__(
        self,
        direction: str,
        generator: Gnet,
        discriminator: Discriminator,
        source: torch.Tensor,
        target: torch.Tensor,
        config: GanConfig,
        seed: int,
        device: torch.device,
        progress: bool,
    ) -> None:
        self.direction, self.g, self.d = direction, generator, discriminator
        self.source, self.target = source, target
        self.cfg, self.seed, self.device, self.progress = config, seed, device, progress
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # optimizers of a stage: fresh at the start of the stage, restored from a checkpoint within it
    def stage_optimizers(self, stage: str) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        if stage == "identity":
            return {"generator": _adam(list(self.g.parameters()), c.lr_identity, c.betas)}
        if stage == "warmup":
            return {"discriminator": _adam(list(self.d.last_layer.parameters()), c.lr_warmup, c.betas)}
        d_opt = torch.optim.Adam(
            [
                {"params": self.d.head_parameters(), "lr": c.lr_dis_head},
                {"params": self.d.feature_parameters(), "lr": c.lr_dis_features},
            ],
            betas=c.betas,
        )
        return {"generator": _adam(list(self.g.parameters()), c.lr_generator, c.betas), "discriminator": d_opt}

    def batches(self, stage: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch_generator(self.seed * 7919 + stage * 1009 + epoch)
        torch.manual_seed(self.seed * 7919 + stage * 1009 + epoch)  # dropout inside the discriminator
        bs = self.cfg.batch_size
        order = torch.randperm(len(self.source), generator=gen)
        n_batches = len(order) // bs if len(order) >= bs else 1
        need = n_batches * bs
        reps = -(-need // len(self.target))
        tgt = torch.cat([torch.randperm(len(self.target), generator=gen) for _ in range(reps)])
        for b in range(n_batches):
            x, y = self.target[tgt[b * bs : (b + 1) * bs]], self.source[order[b * bs : (b + 1) * bs]]
            if self.cfg.augment:
                x, y = gan_augment(x, gen), gan_augment(y, gen)
            yield x.to(self.device), y.to(self.device)

    def run_epoch(self, state: _State) -> dict[str, Any]:
        stage = STAGES[state.stage]
        sums = {"loss_gen1": 0.0, "loss_dis": 0.0, "dis_real": 0.0, "dis_fake": 0.0}
        counts = {"gen": 0, "dis": 0}
        updates = 0
        batches = list(self.batches(state.stage, state.epoch))
        start = time.perf_counter()
        bar = tqdm(
            batches,
            desc=f"gan {self.direction} {stage} {state.epoch + 1}",
            leave=False,
            disable=not (self.progress and in_notebook_progress()),
        )
        for b, (x, y) in enumerate(bar):
            if stage == "identity":
                self.g.train()
                loss = identity_loss(self.g(y), y)
                self._step("generator", loss)
                sums["loss_gen1"] += loss.item()
                counts["gen"] += 1
                updates += 1
                continue
            self.d.train()
            with torch.no_grad():
                fake = self.g(y)
            penalty, s_real = gradient_penalty(self.d, x, self.cfg.gp_k, self.cfg.gp_power, self.cfg.gp_at)
            s_fake = self.d(fake)
            loss_d = discriminator_loss(s_real, s_fake, penalty)
            self._step("discriminator", loss_d)
            sums["loss_dis"] += loss_d.item()
            sums["dis_real"] += dis(s_real).mean().item()
            sums["dis_fake"] += dis(s_fake).mean().item()
            counts["dis"] += 1
            if stage == "joint" and (b + 1) % self.cfg.generator_every == 0:
                self.d.requires_grad_(False)
                fake = self.g(y)
                loss_g = generator_loss(self.d(fake), fake, y)
                self._step("generator", loss_g)
                self.d.requires_grad_(True)
                sums["loss_gen1"] += identity_loss(fake.detach(), y).item()
                counts["gen"] += 1
                updates += 1
        row: dict[str, Any] = {
            "direction": self.direction,
            "stage": stage,
            "epoch": state.epoch + 1,
            "batches": len(batches),
            "generator_updates": updates,
        }
        row["loss_gen1"] = sums["loss_gen1"] / counts["gen"] if counts["gen"] else np.nan
        for key in ("loss_dis", "dis_real", "dis_fake"):
            row[key] = sums[key] / counts["dis"] if counts["dis"] else np.nan
        row["margin"] = row["dis_real"] - row["dis_fake"]
        row["stop"] = self.stop_rule(stage, row)
        row["epoch_seconds"] = time.perf_counter() - start
        return row

    def stop_rule(self, stage: str, row: dict[str, Any]) -> bool:
        """The paper's stopping rule of each stage, on the epoch's mean values."""
        if stage == "identity":
            return bool(row["loss_gen1"] < self.cfg.identity_threshold)
        if stage == "warmup":
            return bool(row["margin"] > self.cfg.warmup_margin)
        return bool(row["margin"] < self.cfg.stop_margin)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def epoch_limit(self, stage: int) -> int:
        return (self.cfg.identity_epochs, self.cfg.warmup_epochs, self.cfg.joint_epochs)[stage]


def stage_frozen_parameters(discriminator: Discriminator, generator: Gnet, stage: str) -> None:
    """Set ``requires_grad`` for a stage: identity trains Gnet only, warmup Dnet's last layer only, joint both."""
    generator.requires_grad_(stage in ("identity", "joint"))
    discriminator.requires_grad_(stage == "joint")
    if stage == "warmup":
        discriminator.last_layer.requires_grad_(True)


def _source_and_target(direction: str, images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The images a ``direction``'s generator edits (source) and those its discriminator takes as real (target).

    Returns:
        (source, target) float32 tensors (n, 1, H, W); a ConfigError for an unknown direction, a DataError for images
        that are not (N, 1, H, W) with N labels or that lack one of the two classes.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(f"GAN direction {direction!r}; expected one of {sorted(DIRECTIONS)}.")
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[1] != 1 or len(images) != len(labels):
        raise DataError(
            f"GAN training images of shape {images.shape} with {len(labels)} labels; "
            "expected (N, 1, H, W) and N labels."
        )
    src_label, tgt_label = DIRECTIONS[direction]
    source = torch.from_numpy(images[labels == src_label])
    target = torch.from_numpy(images[labels == tgt_label])
    if len(source) == 0 or len(target) == 0:
        raise DataError(
            f"GAN {direction}: the training images hold {len(source)} of label {src_label} and {len(target)} of label "
            f"{tgt_label}; both classes are needed."
        )
    return source, target


def train_gan(
    direction: str,
    classifier: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    config: GanConfig,
    seed: int,
    device: torch.device,
    checkpoint_prefix: str | Path | None = None,
    progress: bool = True,
    max_epochs: int | None = None,
    ledger: ckpt.CheckpointLedger | None = None,
) -> GanResult:
    """Train one generator of paper 001 (``remove`` or ``insert``) with its discriminator, resuming when possible.

    Args:
        direction: ``remove`` (edits positives to look negative) or ``insert`` (negatives to look positive).
        classifier: the trained AI-CAD classifier the discriminator is initialised from (left untouched).
        images, labels: training images (N, 1, H, W) in [0, 1] and their 0/1 labels.
        config: the profile's ``gan`` section.
        seed: seeds the networks' initialisation and every epoch's order.
        device: where to train.
        checkpoint_prefix: ``checkpoints/gan_<direction>`` without suffix; the state is saved there after every epoch
            and training resumes from it (a finished checkpoint is only loaded).
        progress: show tqdm bars (also off when ``MEDADV_NO_PROGRESS=1``).
        max_epochs: stop after this many epochs in this call (all stages together), e.g. to test resuming.
        ledger: the run folder's record of its checkpoints (the notebook's :class:`medadv.report.RunContext`): the
            state is resumed from only when its bytes are those recorded, and it is registered after every epoch.

    Returns:
        :class:`GanResult` with the generator and discriminator in eval mode and the history (one row per epoch).
    """
    source, target = _source_and_target(direction, images, labels)
    torch.manual_seed(seed)
    generator = Gnet(config.width, config.depth, config.identity_skip).to(device)
    discriminator = Discriminator(
        classifier, DIRECTIONS[direction][1] if config.dnet_init == "classifier" else None
    ).to(device)
    trainer = _Trainer(direction, generator, discriminator, source, target, config, seed, device, progress)
    training = {k: v for k, v in dataclasses.asdict(config).items() if k != "education_triplets"}
    meta = {"direction": direction, "seed": seed, "config": training}
    state = _resumed(checkpoint_prefix, trainer, meta, ledger)
    done_now = 0
    while state.stage < len(STAGES) and (max_epochs is None or done_now < max_epochs):
        stage = STAGES[state.stage]
        stage_frozen_parameters(discriminator, generator, stage)
        if state.epoch >= trainer.epoch_limit(state.stage):
            _next_stage(trainer, state)
            continue
        if not trainer.optimizers:
            trainer.optimizers = trainer.stage_optimizers(stage)
        row = trainer.run_epoch(state)
        done_now += 1
        state.history.append(row)
        state.epoch += 1
        logger.info(
            "gan %s %s epoch %d: gen1 %.4g margin %.4g", direction, stage, state.epoch, row["loss_gen1"], row["margin"]
        )
        if row["stop"] or state.epoch >= trainer.epoch_limit(state.stage):
            _next_stage(trainer, state)
        if checkpoint_prefix is not None:
            _save(checkpoint_prefix, trainer, state, meta)
            if ledger is not None:
                ledger.register_many(list(ckpt.checkpoint_paths(checkpoint_prefix)))
    generator.eval()
    discriminator.eval()
    generator.requires_grad_(False)
    discriminator.requires_grad_(False)
    history = pd.DataFrame(state.history, columns=list(HISTORY_COLUMNS))
    return GanResult(direction, generator, discriminator, history)


def _resumed(
    prefix: str | Path | None, trainer: _Trainer, meta: dict[str, Any], ledger: ckpt.CheckpointLedger | None
) -> _State:
    """The state to start from: the checkpoint at ``prefix`` when there is one that may be resumed from
    (:func:`medadv.models.checkpoint.resume_problem`: present, the bytes the run folder recorded, loadable); a fresh
    state otherwise (a damaged or foreign checkpoint with a warning)."""
    if prefix is None or not all(p.is_file() for p in ckpt.checkpoint_paths(prefix)):
        return _State()
    problem = ckpt.resume_problem([prefix], ledger)
    if problem is not None:
        logger.warning("gan %s: training state not resumed (%s); training from the start", meta["direction"], problem)
        return _State()
    tensors, saved = ckpt.load_checkpoint(prefix)
    other = [key for key in ("direction", "seed", "config") if saved.get(key) != _json_plain(meta[key])]
    if other:  # a folder rerun with other settings (--force): this run's GAN trains from the start, as notebook 01's
        logger.info("gan %s: training state of another %s ignored; training from the start", meta["direction"], other)
        return _State()
    return _restore(prefix, trainer, tensors, saved)


def _next_stage(trainer: _Trainer, state: _State) -> None:
    state.stage += 1
    state.epoch = 0
    trainer.optimizers = {}


def _save(prefix: str | Path, trainer: _Trainer, state: _State, meta: dict[str, Any]) -> None:
    tensors = {f"generator.{k}": v for k, v in trainer.g.state_dict().items()}
    tensors.update({f"discriminator.{k}": v for k, v in trainer.d.state_dict().items()})
    opt_meta = {}
    for name, opt in trainer.optimizers.items():
        flat, opt_meta[name] = ckpt.optimizer_to_flat(opt)
        tensors.update({f"{name}_{k}": v for k, v in flat.items()})
    payload = dict(
        meta,
        stage=state.stage,
        epoch=state.epoch,
        history=state.history,
        optimizers=opt_meta,
        finished=state.stage >= len(STAGES),
    )
    ckpt.save_checkpoint(prefix, tensors, payload)


def _restore(prefix: str | Path, trainer: _Trainer, tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> _State:
    _load_module(trainer.g, tensors, "generator.", prefix)
    _load_module(trainer.d, tensors, "discriminator.", prefix)
    state = _State(stage=int(saved["stage"]), epoch=int(saved["epoch"]), history=list(saved["history"]))
    if state.stage < len(STAGES) and saved.get("optimizers"):
        stage_frozen_parameters(trainer.d, trainer.g, STAGES[state.stage])
        trainer.optimizers = trainer.stage_optimizers(STAGES[state.stage])
        for name, opt in trainer.optimizers.items():
            flat = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}_optimizer.")}
            ckpt.optimizer_from_flat(opt, flat, saved["optimizers"][name])
    logger.info("gan %s: resumed from %s at stage %d epoch %d", saved["direction"], prefix, state.stage, state.epoch)
    return state


def _json_plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    if isinstance(value, dict):
        return {k: _json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_plain(v) for v in value]
    return value


def _load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where: str | Path) -> None:
    state = ckpt.split_prefix(tensors, prefix.rstrip("."))
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: the {prefix[:-1]} weights do not fit this network ({exc}).") from exc


def load_generator(prefix: str | Path, device: torch.device) -> Gnet:
    """The trained generator of a GAN checkpoint (``checkpoints/gan_remove`` or ``gan_insert``), in eval mode.

    Returns:
        The generator, in eval mode on ``device``, its parameters frozen.
    """
    tensors, saved = ckpt.load_checkpoint(prefix)
    cfg = GanConfig.from_section(saved.get("config", {}), f"{prefix} config")
    generator = Gnet(cfg.width, cfg.depth, cfg.identity_skip)
    _load_module(generator, tensors, "generator.", prefix)
    return generator.to(device).eval().requires_grad_(False)


__all__ = [
    "GanConfig",
    "GanResult",
    "HISTORY_COLUMNS",
    "STAGES",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "identity_loss",
    "load_generator",
    "stage_frozen_parameters",
    "train_gan",
]


def stage_warnings(history: pd.DataFrame, config: GanConfig) -> list[str]:
    """Warnings for every stage of every direction that ended at its epoch limit without its stopping target.

    A stage whose last epoch did not meet the paper's rule (:meth:`_Trainer.stop_rule`) stopped because it ran out of
    epochs, so the generator the later notebooks use was trained less far than the schedule intends; notebook 02
    prints these and writes them into ``summary.json`` (``gan_warnings``).

    Args:
        history: the concatenated training histories (:data:`HISTORY_COLUMNS`, one row per epoch).
        config: the ``gan`` section the histories were trained with (for the targets and limits quoted).

    Returns:
        one sentence per such stage, in history order; empty when every stage that ran reached its target.
    """
    targets = {
        "identity": ("loss_gen1", "below identity_threshold", config.identity_threshold, config.identity_epochs),
        "warmup": ("margin", "above warmup_margin", config.warmup_margin, config.warmup_epochs),
        "joint": ("margin", "below stop_margin", config.stop_margin, config.joint_epochs),
    }
    out = []
    for (direction, stage), rows in history.groupby(["direction", "stage"], sort=False):
        last = rows.iloc[-1]
        if bool(last["stop"]):
            continue
        column, rule, target, limit = targets[stage]
        out.append(
            f"GAN {direction}: the {stage} stage ended at its limit of {limit} epochs without its target "
            f"({column} {float(last[column]):.4g}, expected {rule} {target:g}); raise gan.{stage}_epochs or "
            "read the fakes as made by an under-trained generator."
        )
    return out
