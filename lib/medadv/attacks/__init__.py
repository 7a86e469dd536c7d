"""Attacks on the study's classifiers: gradient attacks (FGSM, iterative FGSM, PGD, APGD), image corruptions
(natural distribution shift), the GAN attack's evaluation (paper 001, Table 1) and per-recipe robustness.

The gradient attacks are re-exported here: ``from medadv.attacks import pgd, fgsm``.
"""
from __future__ import annotations

from medadv.attacks.gradient import apgd, fgsm, ifgsm, margin_loss, pgd
from medadv.models.inference import predicted_labels as predict  # the attacks' name for the argmax of a batch

__all__ = ["apgd", "fgsm", "ifgsm", "margin_loss", "pgd", "predict"]
