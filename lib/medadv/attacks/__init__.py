"""Attacks on the study's classifiers: gradient attacks (FGSM, iterative FGSM, PGD, APGD), the score-based Square
attack, transfer attacks, image corruptions (natural distribution shift), the GAN attack's evaluation (paper 001,
Table 1), per-recipe robustness, and the worst case over an ensemble with the checks for gradient masking.

The gradient attacks and Square are re-exported here: ``from medadv.attacks import pgd, fgsm, square``.
"""

from __future__ import annotations

from medadv.attacks.gradient import apgd, fgsm, ifgsm, margin_loss, pgd
from medadv.attacks.square import square
from medadv.models.inference import predicted_labels as predict  # the attacks' name for the argmax of a batch

__all__ = ["apgd", "fgsm", "ifgsm", "margin_loss", "pgd", "predict", "square"]
