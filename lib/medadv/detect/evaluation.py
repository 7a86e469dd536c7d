"""Notebook 06's detection study: how well each detector (:mod:`medadv.detect`) tells manipulated images from the
clean test images, and how much of that survives an attacker who knows the detector.

The manipulated sets (README, "Detecting manipulated images"):

* the GAN fakes of the test images (notebook 02), ``attack = gan``, ``eps = 0``;
* notebook 03's adversarial examples of the protected classifier (:mod:`medadv.attacks.examples`): for every test
  image it gets right unattacked, the first example each gradient attack of ``detect.attacks`` found in the budget's
  ball (FGSM and PGD at every L-inf budget; APGD, the end of AutoAttack's cascade, at the headline budget;
  :data:`medadv.detect.config.ENSEMBLE_ATTACK`), read, never computed again here. Every example counts, fooled or
  not; the ``fooled`` column gives the share the classifier gets wrong;
* the adaptive PGD against each detector (:func:`medadv.detect.adaptive.adaptive_pgd`), ``attack = adaptive_pgd``, at
  ``detect.adaptive_eps`` (empty: every L-inf budget): PGD on the classifier's loss until it is fooled, then on the
  detector's score; only the targeted detector's AUC is reported for them, beside its non-adaptive PGD row at the same
  budget (:func:`adaptive_comparison`).

Per detector and set: the detection AUC with DeLong's CI and the true-positive rate at ``detect.fpr``
(:func:`medadv.detect.metrics.detection_metrics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from medadv.attacks.examples import AttackExamples
from medadv.attacks.robustness import AttackConfig
from medadv.data.images import SplitArrays
from medadv.detect.adaptive import adaptive_pgd
from medadv.detect.base import Detector
from medadv.detect.config import ENSEMBLE_ATTACK, DetectionConfig
from medadv.detect.metrics import detection_metrics

ADAPTIVE = "adaptive_pgd"
GAN_ATTACK = "gan"

__all__ = [
    "ADAPTIVE",
    "GAN_ATTACK",
    "DetectionStudy",
    "adaptive_comparison",
    "adaptive_images",
    "detection_study",
    "gradient_sets",
]


@dataclasses.dataclass(frozen=True)
class DetectionStudy:
    """The detection study: ``table`` (``detection.csv``) and the manipulated image sets by (attack, eps)."""

    table: pd.DataFrame
    manipulated: dict[tuple[str, float], np.ndarray]


def _fooled(classifier: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """Share of images the classifier assigns to another class than ``labels`` (the source images' labels)."""
    with torch.no_grad():
        pred = torch.cat([classifier(c.to(device)).argmax(1).cpu() for c in torch.from_numpy(images).split(128)])
    return float((pred.numpy() != labels).mean())


def _rows(
    detectors: Mapping[str, Detector],
    attack: str,
    eps: float,
    clean: Mapping[str, np.ndarray],
    manipulated: np.ndarray,
    fooled: float,
    config: DetectionConfig,
) -> list[dict[str, Any]]:
    return [
        {
            "detector": name,
            "attack": attack,
            "eps": eps,
            "fooled": fooled,
            **detection_metrics(clean[name], det.score(manipulated, config.batch_size), fpr=config.fpr),
        }
        for name, det in detectors.items()
    ]


def adaptive_images(
    classifier: nn.Module,
    detector: Detector,
    test: SplitArrays,
    eps: float,
    attacks: AttackConfig,
    config: DetectionConfig,
    seed: int,
) -> np.ndarray:
    """Adaptive PGD against ``detector`` on the test images, batch by batch with one seeded generator.

    Returns:
        The adversarial images (N, 1, H, W) as float32 numpy, in the order of ``test``.
    """
    generator = torch.Generator().manual_seed(seed)
    alpha = attacks.step_ratio * eps / config.adaptive_steps
    out = []
    for xb, yb in zip(
        torch.from_numpy(test.images).split(config.batch_size),
        torch.from_numpy(test.labels).split(config.batch_size),
        strict=True,
    ):
        out.append(
            adaptive_pgd(
                classifier,
                detector,
                xb.to(detector.device),
                yb.to(detector.device),
                eps,
                alpha,
                config.adaptive_steps,
                generator,
            ).cpu()
        )
    return torch.cat(out).numpy()


def gradient_sets(
    examples: AttackExamples, test: SplitArrays, config: DetectionConfig
) -> dict[tuple[str, float], tuple[np.ndarray, np.ndarray]]:
    """Notebook 03's examples of each of ``detect.attacks`` at each L-inf budget it kept, with their images' labels.

    Returns:
        (attack, eps) -> (examples (n, 1, H, W), labels (n,)), in the order of ``config.attacks`` and the budgets.
    """
    position = {image_id: k for k, image_id in enumerate(test.rows["image_id"])}
    labels = test.labels[[position[i] for i in examples.image_ids]]
    return {
        (name, eps): (images, labels)
        for name in config.attacks
        for (attack, norm, eps), images in sorted(examples.images.items(), key=lambda kv: kv[0][2])
        if attack == ENSEMBLE_ATTACK[name] and norm == "linf"
    }


def detection_study(
    classifier: nn.Module,
    detectors: Mapping[str, Detector],
    test: SplitArrays,
    test_fakes: np.ndarray,
    examples: AttackExamples,
    attacks: AttackConfig,
    config: DetectionConfig,
    seed: int,
    device: torch.device,
) -> DetectionStudy:
    """Detection AUC (DeLong CI) and TPR at ``config.fpr`` of every detector for the GAN fakes, notebook 03's
    examples of every gradient attack of ``detect.attacks`` (:func:`gradient_sets`), and the adaptive PGD against each
    detector at the budgets of ``detect.adaptive_eps`` (empty: every L-inf budget; module docstring).

    Returns:
        :class:`DetectionStudy`; its table has columns detector, attack, eps (0 for the GAN fakes), fooled,
        n_clean, n_manipulated, auc, auc_ci_low, auc_ci_high, tpr_at_5fpr.
    """
    clean = {n: d.score(test.images, config.batch_size) for n, d in detectors.items()}
    sets = {(GAN_ATTACK, 0.0): (test_fakes, test.labels), **gradient_sets(examples, test, config)}
    rows = []
    for (name, eps), (images, labels) in sets.items():
        rows += _rows(detectors, name, eps, clean, images, _fooled(classifier, images, labels, device), config)
    for name, det in detectors.items():
        for eps in config.adaptive_eps or attacks.linf_eps:
            images = adaptive_images(classifier, det, test, eps, attacks, config, seed)
            sets[(f"{ADAPTIVE}:{name}", eps)] = images, test.labels
            rows += _rows(
                {name: det}, ADAPTIVE, eps, clean, images, _fooled(classifier, images, test.labels, device), config
            )
    return DetectionStudy(pd.DataFrame(rows), {key: images for key, (images, _) in sets.items()})


def adaptive_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Each adaptive row beside the non-adaptive PGD row of the same detector and budget: how much detection AUC
    and attack success survive an attacker who knows the detector.

    Returns:
        One row per adaptive row of ``table``, with the matching non-adaptive numbers beside it.
    """
    base = table[table["attack"] == "pgd"][["detector", "eps", "auc", "tpr_at_5fpr", "fooled"]]
    adaptive = table[table["attack"] == ADAPTIVE][["detector", "eps", "auc", "tpr_at_5fpr", "fooled"]]
    out = adaptive.merge(base, on=["detector", "eps"], suffixes=("_adaptive", "_pgd"))
    out["auc_drop"] = out["auc_pgd"] - out["auc_adaptive"]
    return out.reset_index(drop=True)
