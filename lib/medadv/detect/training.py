"""Training notebook 06's real-vs-fake classifier: paper 001's network, started from the protected classifier's
weights (``detect.fake_init: classifier``) or at random, trained by the kit's loop (:func:`medadv.train.loop.fit`)
with paper 001's recipe on real images (0) against GAN fakes of them (1), the model kept at the best validation AUC.
The detector it becomes is :class:`medadv.detect.real_fake.RealFakeClassifier`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medadv.data.images import SplitArrays
from medadv.detect.config import DetectionConfig
from medadv.detect.real_fake import RealFakeClassifier
from medadv.models.checkpoint import CheckpointLedger
from medadv.models.registry import build_model
from medadv.train.loop import ClassifierConfig, TrainSpec, fit
from medadv.train.recipes import PaperObjective, Recipe

REAL_FAKE_NAME = "real_fake_classifier"

__all__ = ["REAL_FAKE_NAME", "real_fake_arrays", "train_real_fake"]


def real_fake_arrays(real: np.ndarray, fake: np.ndarray, prefix: str) -> SplitArrays:
    """Real images (label 0) and fakes (label 1) as one split for the kit's training loop.

    Returns:
        The split: real images then fakes, labels 0 then 1, masks all False.
    """
    images = np.concatenate([real, fake]).astype(np.float32)
    labels = np.concatenate([np.zeros(len(real)), np.ones(len(fake))]).astype(np.int64)
    rows = pd.DataFrame(
        {"image_id": [f"{prefix}_{'fake' if y else 'real'}_{i}" for i, y in enumerate(labels)], "label": labels}
    )
    return SplitArrays(images, labels, np.zeros(images.shape, bool), np.zeros(len(labels), bool), rows)


def train_real_fake(
    spec_of: Mapping[str, Any],
    init: Mapping[str, torch.Tensor] | None,
    train: SplitArrays,
    val: SplitArrays,
    config: DetectionConfig,
    classifier_section: Mapping[str, Any],
    checkpoints_dir: Path,
    seed: int,
    device: torch.device,
    ledger: CheckpointLedger | None = None,
) -> tuple[RealFakeClassifier, Any]:
    """Train the real-vs-fake classifier with paper 001's recipe (:func:`medadv.train.loop.fit`).

    Args:
        spec_of: the network's spec (the protected classifier's, :func:`build_model`).
        init: weights to start from, or None for the network's initialisation.
        train, val: real (0) and fake (1) images (:func:`real_fake_arrays`).
        config: the ``detect`` section; classifier_section: the profile's ``classifier`` section (paper 001's loss).
        checkpoints_dir: where the model and its training state go; seed, device: as everywhere.
        ledger: the run folder's record of its checkpoints (:func:`medadv.train.loop.fit`), or None.

    Returns:
        (the detector, the training result with its history).
    """
    torch.manual_seed(seed)
    model = build_model(spec_of, weights_follow=True)
    if init is not None:
        model.load_state_dict(init)
    cfg = ClassifierConfig.from_section(classifier_section)
    spec = TrainSpec(
        name=REAL_FAKE_NAME,
        recipe="erm",
        epochs=config.fake_epochs,
        warmup_epochs=0,
        lr_head=config.fake_lr_head,
        lr_features=config.fake_lr_features,
        betas=cfg.betas,
        batch_per_class=config.fake_batch_per_class,
        steps_per_epoch=config.fake_steps_per_epoch,
        eval_batch=config.batch_size,
        init="protected classifier" if init is not None else "initial weights",
    )
    result = fit(
        model.to(device),
        spec,
        PaperObjective(cfg.focal_gamma, cfg.gp_k, cfg.gp_power),
        Recipe("erm", cfg.recipe_params()),
        train,
        val,
        checkpoints_dir,
        seed,
        device,
        extra_meta={"role_in_study": "detector of GAN fakes"},
        ledger=ledger,
    )
    return RealFakeClassifier(model, device), result
