"""``medadv pretrain``: the kit's own pretrained Vnet, the stand-in for paper 001's ImageNet start at the CPU widths.

Paper 001 starts Vnet (torchvision's VGG11 ``features``) from ImageNet weights, trains Fnet alone for 41 epochs "to
maintain the initialized weights in Vnet", then everything with Vnet at a tenth of Fnet's learning rate. ImageNet
weights exist only at the paper's full width; at the CPU profiles' widths (1/8, 1/16) Vnet started at random and did
not learn within a CPU budget. This module makes the missing start, the way ImageNet pretraining does it for the
paper: supervised training of Vnet on a large labelled corpus that no study ever sees, then only ``features`` kept.

* **Corpus**: the kit's phantom generator (:mod:`medadv.data.phantom`) in all three modalities (mammography,
  ultrasound, X-ray), half of the patients with a lesion, at ``lesion_contrast`` 1.0 (the phantom's reference regime;
  each patient's conspicuity still spans 0.4-2.5), drawn with seeds from
  :data:`medadv.config.PRETRAIN_SEEDS`, a range that no profile or sweep may use (:func:`medadv.config.check_seed`),
  so no study image is ever a pretraining image. Training, validation and check sets have their own seeds.
* **Pretext task**: lesion presence (cross-entropy of a linear layer on the global max pool of Vnet's last map, the
  pooling paper 001's Fnet uses) plus lesion localisation (binary cross-entropy of a 1 x 1 convolution on Vnet's
  1/8 and 1/32 maps against the lesion mask max-pooled to those grids: "is there lesion in this cell"). Localisation
  gives every layer a dense signal, so Vnet learns where lesion-like structure is rather than a shortcut; the
  phantom's exact masks make it free. Unlike ImageNet, the corpus is of the study's own domain and task family: the
  kit's Vnet starts closer to the study's task than paper 001's did (``docs/fidelity.md`` says so).
* **Training**: the kit's one training loop (:func:`medadv.train.loop.fit`: class-balanced batches, seeded per
  epoch, deterministic on the CPU), Adam at ``lr`` for every part, a fixed number of epochs sized to the time budget
  (under 30 minutes on 2 CPU cores for every shipped width: ``docs/training.md`` has the times), keeping the epoch
  with the best validation presence AUC: the rule is declared here, before any curve is read, and reads the pretext's
  own validation set only.
* **Output**: ``vnet_w<width>.safetensors`` (``features.*``, Vnet, and ``pretext.*``, the pretext heads that the
  card's check needs) and its model card ``vnet_w<width>.json`` (corpus, pretext task, seeds, validation metrics,
  code version, sha256, intended use) plus a readable ``vnet_w<width>.md``.

The shipped files (``medadv/models/weights``, read by :mod:`medadv.models.pretrained`) were made by the pinned
command below, each twice with the same bytes (width 1/8 on two fresh machines, width 1/16 in two sessions, all on
the same kind of CPU); the command compares the new file's sha256 with the shipped one and says whether they are the
same. :data:`SHIPPED` describes what it makes.

**The same bits on any x86-64 CPU** (the aim; shown so far on one kind of CPU, a 2-core AMD EPYC). By default torch
picks its kernels by the CPU: oneDNN's convolutions by the instruction set and cache sizes, MKL's matrix products by
its own dispatch, ATen's vector kernels by the widest instruction set (AVX-512 where there is one), and each rounds
differently from the first step on (on a 2-core AMD EPYC with AVX-512 the code of the 1/16 file shipped before the
pinning gave a first-epoch loss of 1.044348 against that card's 1.042884). The command therefore runs the training in
a pinned numerical environment (:data:`PORTABLE_ENV`, :func:`pinned`): oneDNN off (convolutions through ATen's
matrix-product path), MKL in its conditional numerical reproducibility mode on the ``COMPATIBLE`` branch
(``MKL_CBWR``: Intel documents it as giving the same results on Intel and Intel-compatible processors for a fixed
thread count, with ``MKL_DYNAMIC`` and ``OMP_DYNAMIC`` off), ATen's AVX2 kernels (``ATEN_CPU_CAPABILITY``; most x86-64
CPUs of the last decade have AVX2, some low-end ones did not until about 2020) and a fixed thread count
(:attr:`PretrainConfig.threads`, 2, whatever the machine's cores). The variables are read when torch starts, so
``medadv pretrain`` runs itself again with them set when they are not (:func:`rerun_pinned`). On the machine above an
epoch at width 1/16 took 44-47 s pinned on 2 threads in one session (64 s in another) against 42 s unpinned on 1. The
card records the environment as read during the training (``training.numerics``), and the command warns when it could
not be pinned. Not covered: CPUs without AVX2 (ATen then falls back to narrower kernels), other torch builds, ARM (no
MKL).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from medadv.allocator import keep_freed_memory
from medadv.config import MIN_PATIENTS, MODALITIES, PRETRAIN_SEEDS, DataConfig
from medadv.core import git_commit, kit_root, read_json, sha256_file, write_json
from medadv.data.images import SplitArrays
from medadv.data.phantom import render_arrays
from medadv.errors import ConfigError
from medadv.models.checkpoint import checkpoint_paths, save_checkpoint
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.inference import positive_scores
from medadv.models.pretrained import ROLE, kit_card, kit_stem, shipped_widths, width_tag
from medadv.stats.auc import roc_auc
from medadv.train.loop import TrainSpec, fit
from medadv.train.recipes import Batch, Recipe, RecipeParams

LOG = logging.getLogger(__name__)

#: The variables of the pinned numerical environment, read when torch starts (module docstring): ATen's AVX2 kernels,
#: MKL's reproducible ``COMPATIBLE`` branch, and no thread count adjusted at run time (Intel's reproducibility
#: conditions for MKL under OpenMP).
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}
#: Offsets into :data:`PRETRAIN_SEEDS` of each set's seeds (one seed per modality).
SET_OFFSETS = {"train": 0, "validation": 100, "check": 200}
INTENDED_USE = (
    "The starting weights of paper 001's Vnet at this width in the kit's studies (classifier.init: kit), "
    "standing in for ImageNet weights where none exist. Research and teaching only; not for clinical use. "
    "Trained on synthetic phantom images only: it has never seen a real image, and its features are not "
    "a lesion detector for real data."
)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """One kit Vnet: its width, the corpus and the training.

    Attributes:
        width: paper 001's network width (the CPU profiles' 1/8 or 1/16).
        image_size: side of the corpus's square images (the size the profiles that use this width train at).
        patients: patients per modality in the training set (two views each); ``val_patients`` and
            ``check_patients`` in the validation and check sets.
        lesion_contrast: the phantom's difficulty knob for the corpus.
        epochs, batch_size, lr: the training; the best validation epoch is kept.
        threads: torch's CPU threads, fixed whatever the machine's cores (the result depends on the count: two give
            the same bits on one core or sixteen).
        seed: seeds the initial weights and the training's draws.
    """

    width: float
    image_size: int
    patients: int = 1000
    val_patients: int = 125
    check_patients: int = 20
    lesion_contrast: float = 1.0
    epochs: int = 24
    batch_size: int = 64
    lr: float = 1e-3
    threads: int = 2
    seed: int = 0

    def set_config(self, modality: str, n_patients: int) -> DataConfig:
        """The phantom settings of one modality's share of a set.

        Returns:
            The :class:`medadv.config.DataConfig`.
        """
        return DataConfig(
            modality=modality,
            n_patients=n_patients,
            positive_fraction=0.5,
            image_size=(self.image_size, self.image_size),
            lesion_contrast=self.lesion_contrast,
        )

    def seeds(self, which: str) -> list[int]:
        """The corpus seeds of set ``which`` (``train``, ``validation``, ``check``), one per modality.

        Returns:
            The seeds, in :data:`medadv.config.MODALITIES` order.
        """
        return [PRETRAIN_SEEDS[SET_OFFSETS[which] + j] for j in range(len(MODALITIES))]


#: The kit Vnets the package ships, as ``medadv pretrain`` makes them now (pinned: module docstring): width 1/8 at the
#: default profile's 96 x 96, width 1/16 at the workshop profile's 256 x 256 (the smoke profile also uses 1/16, at
#: 96 x 96); the larger images get fewer patients, so that each fits in 30 minutes on 2 CPU cores (docs/training.md).
SHIPPED = {
    0.125: PretrainConfig(width=0.125, image_size=96),
    0.0625: PretrainConfig(width=0.0625, image_size=256, patients=600, val_patients=75),
}


def corpus_set(config: PretrainConfig, which: str) -> SplitArrays:
    """One set of the pretraining corpus: every modality's phantom patients of that set's seeds.

    Returns:
        The set as :class:`medadv.data.images.SplitArrays` (``rows`` holds modality, seed and patient index).
    """
    n = {"train": config.patients, "validation": config.val_patients, "check": config.check_patients}[which]
    parts = [
        render_arrays(config.set_config(modality, n), seed)
        for modality, seed in zip(MODALITIES, config.seeds(which), strict=True)
    ]
    images, masks, labels = (np.concatenate([p[k] for p in parts]) for k in range(3))
    rows = pd.DataFrame(
        [
            {"image_id": f"{modality}-{seed}-{i}", "modality": modality}
            for modality, seed, part in zip(MODALITIES, config.seeds(which), parts, strict=True)
            for i in range(len(part[2]))
        ]
    )
    return SplitArrays(images, labels, masks, labels.astype(bool), rows)


class PretextNet(nn.Module):
    """Paper 001's Vnet (:attr:`VGGClassifier.features`, with its input preparation) and the pretext heads: lesion
    presence from the global max pool of the last map, lesion cells at 1/8 and 1/32 of the image side."""

    def __init__(self, width: float) -> None:
        super().__init__()
        vgg = VGGClassifier(VGGConfig(width=width, init="random"))
        self.width = width
        self.prepare, self.features = vgg.prepare, vgg.features
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self.cut = pools[2] + 1  # after the third max pooling: 1/8 of the side
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        fine = [m for m in list(self.features)[: self.cut] if isinstance(m, nn.Conv2d)][-1].out_channels
        coarse = convs[-1].out_channels
        self.pretext = nn.ModuleDict(
            {
                "presence": nn.Linear(coarse, 2),
                "cells_fine": nn.Conv2d(fine, 1, 1),
                "cells_coarse": nn.Conv2d(coarse, 1, 1),
            }
        )

    def outputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three pretext outputs of grey images ``x`` (N, 1, H, W) in [0, 1].

        Returns:
            (presence logits (N, 2), fine cell logits (N, 1, H/8, W/8), coarse cell logits (N, 1, H/32, W/32)).
        """
        fine = self.features[: self.cut](self.prepare(x))
        coarse = self.features[self.cut :](fine)
        return (
            self.pretext["presence"](coarse.amax((2, 3))),
            self.pretext["cells_fine"](fine),
            self.pretext["cells_coarse"](coarse),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Lesion presence logits (N, 2), the output :func:`medadv.train.loop.fit` validates on.

        Returns:
            The logits.
        """
        return self.outputs(x)[0]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Vnet and the pretext heads, for the training loop's optimiser (one learning rate for both here).

        Returns:
            ``{"features": [...], "head": [...]}``.
        """
        return {"features": list(self.features.parameters()), "head": list(self.pretext.parameters())}

    def spec(self) -> dict[str, Any]:
        """What the training loop records of this network.

        Returns:
            ``{"kind": "vnet_pretext", "width": ...}``.
        """
        return {"kind": "vnet_pretext", "width": self.width}


def cell_targets(masks: Tensor, logits: Tensor) -> Tensor:
    """The lesion mask max-pooled to the grid of ``logits``: 1 where a cell holds any lesion pixel.

    Returns:
        The targets, shaped as ``logits``.
    """
    return F.adaptive_max_pool2d(masks.float(), logits.shape[-2:])


@dataclasses.dataclass(frozen=True)
class PretextObjective:
    """The pretext loss: cross-entropy of lesion presence plus the binary cross-entropy of the lesion cells at both
    grids (each term a mean over its images or cells)."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, batch: Batch | None = None) -> tuple[Tensor, Tensor]:
        if batch is None:
            raise ConfigError("the pretext objective needs the batch's lesion masks (recipe erm_noaug).")
        presence, fine, coarse = model.outputs(x)
        loss = (
            F.cross_entropy(presence, y)
            + F.binary_cross_entropy_with_logits(fine, cell_targets(batch.masks, fine))
            + F.binary_cross_entropy_with_logits(coarse, cell_targets(batch.masks, coarse))
        )
        return loss, presence


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[None]:
    """The in-process part of the pinned numerical environment: oneDNN off and ``threads`` torch threads (both put
    back on leaving); :data:`PORTABLE_ENV` is the part set before torch starts (:func:`rerun_pinned`).

    Yields:
        Nothing; the block runs pinned.
    """
    before = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.backends.mkldnn.enabled = before[1]


def environment_pinned() -> bool:
    """Whether this process's environment holds every variable of :data:`PORTABLE_ENV`.

    Returns:
        True when it does.
    """
    return all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items())


def numerics() -> dict[str, Any]:
    """What decides the bits of torch's CPU arithmetic in this process now (the card's ``training.numerics``, read
    inside :func:`pinned`).

    Returns:
        ATen's CPU capability, ``MKL_CBWR`` (None when unset), whether oneDNN is on, torch's thread count, and
        ``pinned``: whether ATen runs the capability and the environment holds the variables of :data:`PORTABLE_ENV`
        and oneDNN is off.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    onednn = bool(torch.backends.mkldnn.enabled)
    return {
        "aten_cpu_capability": capability,
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "onednn": onednn,
        "threads": torch.get_num_threads(),
        "pinned": environment_pinned() and capability == PORTABLE_ENV["ATEN_CPU_CAPABILITY"].upper() and not onednn,
    }


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A finished pretraining: the network (best validation epoch), its history, the check set's presence AUC, the
    training seconds and the numerical environment it ran in (:func:`numerics`)."""

    net: PretextNet
    history: pd.DataFrame
    best_epoch: int
    val_auc: float
    check_auc: float
    seconds: float
    numerics: dict[str, Any]


def pretrain(config: PretrainConfig, device: torch.device = torch.device("cpu")) -> Pretrained:
    """Train the kit's Vnet of ``config.width`` on the pretext task (module docstring), oneDNN off and with
    ``config.threads`` threads (:func:`pinned`).

    Returns:
        :class:`Pretrained`.
    """
    train, val, check = (corpus_set(config, which) for which in ("train", "validation", "check"))
    LOG.info(
        "pretraining corpus: %d training, %d validation, %d check images at %d x %d",
        len(train.labels),
        len(val.labels),
        len(check.labels),
        config.image_size,
        config.image_size,
    )
    torch.manual_seed(config.seed)
    net = PretextNet(config.width).to(device)
    spec = TrainSpec(
        name=f"vnet_w{width_tag(config.width)}",
        recipe="erm_noaug",
        epochs=config.epochs,
        warmup_epochs=0,
        lr_head=config.lr,
        lr_features=config.lr,
        betas=(0.9, 0.999),
        batch_per_class=config.batch_size // 2,
        eval_batch=256,
    )
    with tempfile.TemporaryDirectory(prefix="medadv-pretrain-") as scratch, pinned(config.threads):
        result = fit(
            net,
            spec,
            PretextObjective(),
            Recipe("erm_noaug", RecipeParams()),
            train,
            val,
            scratch,
            config.seed,
            device,
            resume=False,
        )
        check_auc = float(roc_auc(check.labels, positive_scores(net, check.images, device, 256)))
        numbers = numerics()
    return Pretrained(
        net, result.history, result.best_epoch, result.best_val_auc, check_auc, result.train_seconds, numbers
    )


def command(config: PretrainConfig) -> str:
    """The ``medadv pretrain`` command that makes ``config`` (with the quick-look options where it differs from the
    shipped width's).

    Returns:
        The command line.
    """
    shipped = SHIPPED[config.width]
    quick = [f"--{k} {getattr(config, k)}" for k in ("epochs", "patients") if getattr(config, k) != getattr(shipped, k)]
    return " ".join([f"medadv pretrain --width {width_tag(config.width)}", *quick])


def model_card(config: PretrainConfig, done: Pretrained) -> dict[str, Any]:
    """The model card of a kit Vnet (everything but the weights' sha256, added once they are written).

    Returns:
        The card, JSON-able.
    """
    sets = {
        which: {"seeds": config.seeds(which), "patients_per_modality": n, "images": 2 * n * len(MODALITIES)}
        for which, n in (
            ("train", config.patients),
            ("validation", config.val_patients),
            ("check", config.check_patients),
        )
    }
    return {
        "role": ROLE,
        "name": f"vnet_w{width_tag(config.width)}",
        "architecture": f"paper 001's Vnet: torchvision's VGG11 features at width {width_tag(config.width)} (every "
        "channel scaled), ReLU, five 2 x 2 max poolings, no normalisation",
        "corpus": {
            "generator": "medadv.data.phantom",
            "modalities": list(MODALITIES),
            "image_size": [config.image_size, config.image_size],
            "positive_fraction": 0.5,
            "lesion_contrast": config.lesion_contrast,
            "sets": sets,
            "disjoint_from_studies": "seeds from medadv.config.PRETRAIN_SEEDS, which no profile or sweep may use",
        },
        "pretext_task": "lesion presence (cross-entropy, global max pool of Vnet's last map + linear) and lesion "
        "localisation (binary cross-entropy of 1 x 1 convolutions on Vnet's 1/8 and 1/32 maps against "
        "the lesion mask max-pooled to those grids)",
        "training": {
            "loop": "medadv.train.loop.fit (class-balanced batches, no augmentation)",
            "optimizer": "Adam",
            "betas": [0.9, 0.999],
            "lr": config.lr,
            "batch_size": config.batch_size,
            "epochs": config.epochs,
            "best_epoch": done.best_epoch,
            "selection": "best validation presence AUC",
            "seed": config.seed,
            "threads": config.threads,
            "device": "cpu",
            "numerics": done.numerics,
            "seconds": round(done.seconds, 1),
        },
        "validation": {
            "presence_auc": round(done.val_auc, 6),
            "history": done.history[["epoch", "loss", "train_accuracy", "val_auc"]].round(6).to_dict(orient="records"),
        },
        "check": {
            "presence_auc": round(done.check_auc, 6),
            "meaning": "presence AUC on the check set (tests/test_pretrained.py recomputes it)",
        },
        "code_version": git_commit(),
        "torch": torch.__version__,
        "command": command(config),
        "intended_use": INTENDED_USE,
    }


def cpu_kernels(training: dict[str, Any]) -> str:
    """The card's numerical environment, as a clause (empty for cards made before it was recorded).

    Returns:
        ``", torch's AVX2 kernels, MKL_CBWR COMPATIBLE, oneDNN off (pinned)"`` or ``""``.
    """
    numbers = training.get("numerics")
    if not numbers:
        return ""
    onednn = "on" if numbers["onednn"] else "off"
    state = "pinned" if numbers["pinned"] else "not pinned"
    return (
        f", torch's {numbers['aten_cpu_capability']} kernels, MKL_CBWR {numbers['mkl_cbwr']}, oneDNN {onednn} ({state})"
    )


def card_markdown(card: dict[str, Any]) -> str:
    """A readable model card.

    Returns:
        Markdown text.
    """
    corpus, train = card["corpus"], card["training"]
    sets = "; ".join(
        f"{k}: {corpus['sets'][k]['images']} images, seeds {corpus['sets'][k]['seeds']}" for k in SET_OFFSETS
    )
    return "\n".join(
        [
            f"# Model card: {card['name']}",
            "",
            f"- **Architecture**: {card['architecture']}.",
            f"- **Corpus**: {corpus['generator']}, modalities {', '.join(corpus['modalities'])}, "
            f"{corpus['image_size'][0]} x {corpus['image_size'][1]}, half of the patients with a lesion, "
            f"lesion_contrast {corpus['lesion_contrast']}; {sets}. {corpus['disjoint_from_studies']}.",
            f"- **Pretext task**: {card['pretext_task']}.",
            f"- **Training**: {train['optimizer']} (lr {train['lr']}, betas {train['betas']}), batches of "
            f"{train['batch_size']}, {train['epochs']} epochs, kept epoch {train['best_epoch']} "
            f"({train['selection']}); "
            f"seed {train['seed']}, {train['threads']} CPU threads{cpu_kernels(train)}, torch {card['torch']}, "
            f"{train['seconds']} s.",
            f"- **Validation**: presence AUC {card['validation']['presence_auc']:.4f}; check set "
            f"{card['check']['presence_auc']:.4f}.",
            f"- **Code version**: {card['code_version']}; command `{card['command']}`.",
            f"- **sha256** of the weights: `{card['sha256']}`.",
            f"- **Intended use**: {card['intended_use']}",
            "",
        ]
    )


def write_pretrained(done: Pretrained, config: PretrainConfig, folder: str | Path) -> Path:
    """Write the weights (``features.*`` and ``pretext.*``), the card and its Markdown into ``folder``.

    Returns:
        The weights file.
    """
    stem = kit_stem(config.width, folder)
    tensors = {f"features.{k}": v for k, v in done.net.features.state_dict().items()}
    tensors |= {f"pretext.{k}": v for k, v in done.net.pretext.state_dict().items()}
    weights, sidecar = save_checkpoint(stem, tensors, model_card(config, done))
    card = {**read_json(sidecar), "sha256": sha256_file(weights)}
    write_json(sidecar, card)
    stem.with_name(stem.name + ".md").write_text(card_markdown(card))
    return weights


#: What a differing file means (``medadv pretrain``'s verdict).
DIFFERS = (
    "bit-for-bit identity needs the numerical environment of the shipped card (training.numerics) and the same torch "
    "build; a card without numerics was made before the environment was pinned, with the kernels torch picked for "
    "its CPU. The new file is still a valid start: compare its card's validation and check AUC with the shipped card's"
)


def rerun_pinned(argv: Sequence[str]) -> int | None:
    """Run ``medadv pretrain argv`` again with :data:`PORTABLE_ENV` set, unless this process has it: on POSIX this
    process is replaced (``os.execve``), elsewhere a child runs it.

    Returns:
        The child's exit status (not on POSIX, where nothing returns), or None when this process is already pinned.
    """
    if environment_pinned():
        return None
    LOG.info("medadv pretrain: running in the pinned numerical environment (%s)", PORTABLE_ENV)
    line, env = [sys.executable, "-m", "medadv.train.pretrain", *argv], {**os.environ, **PORTABLE_ENV}
    if os.name == "posix":  # this process becomes the pinned one: a signal to its pid reaches the training
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.execve(sys.executable, line, env)
    return subprocess.run(line, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    """``medadv pretrain [--width W ...] [--out DIR] [--epochs N] [--patients N]``: make the kit's pretrained Vnet(s)
    in the pinned numerical environment and compare them with the shipped ones.

    Returns:
        0 when every file made equals the shipped one byte for byte (or none is shipped at that width, or the run is a
        quick look with fewer epochs or patients, whose files are not compared), 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="medadv pretrain", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--width",
        type=float,
        action="append",
        choices=sorted(SHIPPED),
        help="the width to make (repeatable; default: every shipped width)",
    )
    parser.add_argument("--out", type=Path, help="folder for the files (default: the kit's results/pretrain-<time>)")
    parser.add_argument("--epochs", type=int, help="fewer epochs for a quick look (the result then differs)")
    parser.add_argument(
        "--patients", type=int, help="fewer training patients per modality for a quick look (the result then differs)"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    for name, least in (("epochs", 1), ("patients", MIN_PATIENTS)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            parser.error(f"--{name} {getattr(args, name)}: expected a whole number of at least {least}")
    widths = args.width or sorted(SHIPPED)
    _check_out(parser, args.out, widths)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    status = rerun_pinned(argv)
    if status is not None:
        return status
    out = args.out or kit_root() / "results" / f"pretrain-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    keep_freed_memory()  # 88 s -> 42 s an epoch at width 1/16, the same bits (medadv.allocator)
    quick = {k: v for k, v in (("epochs", args.epochs), ("patients", args.patients)) if v is not None}
    shipped = {w: kit_card(w)["sha256"] for w in widths if w in shipped_widths()}  # read before anything is written
    same = True
    for width in widths:
        config = dataclasses.replace(SHIPPED[width], **quick)
        start = time.perf_counter()
        done = pretrain(config)
        if not done.numerics["pinned"]:
            LOG.warning(
                "not pinned (%s): this CPU or Python lacks what the pinned environment needs (AVX2, x86-64 MKL), so "
                "the file depends on this machine's kernels",
                done.numerics,
            )
        weights = write_pretrained(done, config, out)
        digest = sha256_file(weights)
        verdict, differs = _verdict(digest, shipped.get(width), quick)
        same &= not differs
        LOG.info("%s: %.0f s, sha256 %s: %s", weights, time.perf_counter() - start, digest, verdict)
    return 0 if same else 1


def _verdict(digest: str, shipped: str | None, quick: dict[str, int]) -> tuple[str, bool]:
    """What ``medadv pretrain`` says of a file it made, and whether it differs from the shipped one (a quick look's
    file, with fewer epochs or patients, is not compared)."""
    if quick:
        settings = ", ".join(f"--{k} {v}" for k, v in quick.items())
        return f"a quick look ({settings}): not compared with the shipped file, which the full settings make", False
    if shipped is None:
        return "no shipped file to compare", False
    if digest == shipped:
        return "identical to the shipped weights", False
    return f"differs from the shipped {shipped} ({DIFFERS})", True


def _check_out(parser: argparse.ArgumentParser, out: Path | None, widths: Sequence[float]) -> None:
    """Refuse an ``--out`` that is a file, or a folder already holding a Vnet of a width to make (the package's own
    weights folder among them: writing there would replace the shipped file and its card)."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out}: is a file; give a folder (it is made when missing)")
    held = [p.name for w in widths for p in checkpoint_paths(kit_stem(w, out)) if p.exists()]
    if held:
        parser.error(
            f"--out {out}: holds {', '.join(held)} already, which this run would replace; give a new folder (the "
            "package's weights folder is never written by this command: copy a new file there by hand if meant)"
        )


if __name__ == "__main__":
    sys.exit(main())
