"""Robustness of each trained classifier: the attacks section's configuration and the pieces the evaluation is made of
(paper 002's comparison); :func:`medadv.attacks.ensemble.evaluate_models` runs it.

Paper 002 (RTDA) benchmarks robust training against six baselines "under adversarial perturbations and natural
variations": clean accuracy, accuracy under attacks of growing budget, and accuracy under distribution shift. Here
every classifier that notebook 01 trained (:func:`medadv.models.registry.trained_models`) is evaluated on the test
split with:

* clean accuracy and AUC;
* FGSM at every L-inf budget;
* PGD (cross-entropy, random start, ``alpha = step_ratio * eps / steps``; Madry et al. 2018 use 2.5 eps / steps) at
  every L-inf and every L2 budget;
* at the headline L-inf budget, APGD with cross-entropy and then with the margin loss (Croce & Hein 2020);
* paper 004's iterative FGSM (eps 0.1, 25 steps);
* the Square attack (score-based) and PGD crafted on a surrogate (transfer) at the headline budgets (or every budget:
  ``black_box_budgets``), the worst case over all of them per image, and the gradient-masking checks
  (:mod:`medadv.attacks.catalogue` lists the attacks, :mod:`medadv.attacks.ensemble` runs them);
* every corruption of :mod:`medadv.attacks.corruptions` at every severity of the profile: accuracy and AUC.

Robust accuracy is counted as in AutoAttack (Croce & Hein 2020): an image the model gets wrong unattacked counts as
wrong, and an attack runs only on the images still classified correctly. Every accuracy is given twice: plain, and
balanced (the mean of the accuracies on the positive and on the negative images, ``sensitivity`` and
``specificity``), with what the constant classifier scores beside them (``constant_accuracy``, the majority share,
and ``constant_balanced_accuracy``, 0.5): no attack changes a constant output, so a classifier that calls every image
negative keeps its plain accuracy under every attack, and only the balanced accuracy shows that it has none
(:mod:`medadv.stats.accuracy`). The study compares balanced accuracies. Three facts make this exact and cheap: an
image fooled inside a ball is fooled inside every larger ball (so the PGD curve attacks, at each budget, only the
images that survived the smaller one); an image fooled once need not be attacked further (``early_stop``); and the
APGD accuracies are those of the cascade PGD -> APGD-CE -> APGD-margin at the headline budget, each attack run on the
images all earlier ones left correct (AutoAttack's protocol), so each is the worst case over the cascade so far.

Budgets are in [0, 1] image units. Attacks use the true labels. Random starts and corruption noise come from
generators seeded by the profile's seed (the same for every model: a paired comparison), so two runs on the CPU
give the same tables.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from medadv.attacks.catalogue import ATTACKS, SMALLER_BUDGET, WHITE_BOX_SURVIVORS, Attack, registered
from medadv.attacks.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from medadv.attacks.examples import AttackExamples
from medadv.attacks.gradient import apgd, check_linf_budgets, fgsm, ifgsm, pgd
from medadv.attacks.square import square
from medadv.config import ProfileSection, check_ranges
from medadv.errors import ConfigError
from medadv.models.inference import positive_scores
from medadv.models.multitask import MULTITASK_NAME
from medadv.models.registry import load_model_checkpoint, trained_models
from medadv.stats.accuracy import balanced_accuracy, class_rates, constant_accuracy, is_degenerate
from medadv.stats.auc import roc_auc

#: The accuracy columns of every row of the curve and corruption tables (:func:`accuracy_columns`).
ACCURACY_COLUMNS = (
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "constant_accuracy",
    "constant_balanced_accuracy",
)
CURVE_COLUMNS = ("model", "recipe", "attack", "norm", "eps", *ACCURACY_COLUMNS)
CORRUPTION_COLUMNS = ("model", "recipe", "corruption", "severity", *ACCURACY_COLUMNS, "auc")

__all__ = [
    "ACCURACY_COLUMNS",
    "CORRUPTION_COLUMNS",
    "CURVE_COLUMNS",
    "Attack",
    "AttackConfig",
    "Robustness",
    "accuracy_columns",
    "as_tensors",
    "attack_examples",
    "corruption_rows",
    "load_models",
    "recipe_row",
    "run_attack",
    "still_correct",
]
#: What the masking checks need of the ensemble: the one-step and PGD attacks, and a black-box one.
CHECKED_ATTACKS = ("fgsm", "pgd")
BLACK_BOX_ATTACKS = ("square", "transfer")


@dataclasses.dataclass(frozen=True)
class AttackConfig(ProfileSection, section="attacks"):
    """The profile's ``attacks`` section. Budgets in [0, 1] image units (2/255 = 0.00784).

    Attributes:
        linf_eps: L-inf budgets of the FGSM / PGD curves.
        l2_eps: L2 budgets (per image) of the PGD curve.
        steps: PGD steps; ``step_ratio``: alpha = step_ratio * eps / steps.
        restarts: PGD random restarts.
        headline_linf_eps, headline_l2_eps: budgets of the per-recipe table, APGD and the example figures
            (2/255 is below what a reader sees on a mammogram); each must be one of the curve's budgets.
        apgd_steps, apgd_restarts: APGD iterations and restarts.
        ifgsm_step_grey, ifgsm_steps: paper 004's iterative FGSM: ``ifgsm_steps`` steps of ``ifgsm_step_grey`` grey
            levels of 255 (paper: 25 steps of 0.1, i.e. 0.1/255 in [0, 1] units, a budget of 2.5/255; attack
            ``ifgsm``, budget :attr:`ifgsm_eps`).
        ifgsm_extra_eps: the kit's labelled extra, attack ``ifgsm_extra``: the same steps in an L-inf ball of this
            radius in [0, 1] units (0.1 = 25.5/255, the old reading of paper 004's 0.1; far beyond "visually
            identical").
        corruptions, severities: the corruption suite evaluated.
        batch_size: images per attack batch.
        n_examples: images in the example figures.
        ifgsm_model: the model of the iterative-FGSM example figure, paper 004's network (the figure is left out when
            the run did not train it).
        ensemble: the registered attacks (:data:`medadv.attacks.catalogue.ATTACKS`) the evaluation runs; the worst
            case is taken over them. It must hold ``fgsm``, ``pgd`` and ``square`` or ``transfer`` (the masking
            checks compare them), and every attack a cascaded one runs after.
        square_queries, square_p_init: the Square attack's queries per image (the paper's and AutoAttack's 5000) and
            its first square's share of the image (AutoAttack's 0.8).
        black_box_budgets: where Square and the transfer attacks run: ``headline`` (the headline budgets, which the
            declared effects read) or ``all`` (every budget of the curves).
        transfer_from: the classifiers of notebook 01 whose gradients craft the transfer attacks (attack
            ``transfer_from_<model>``; each is shown to every other model).
        check_images: test images (half of each class where the split allows) of the large-budget and unbounded
            masking checks (PGD at ``check_large_eps`` and at L-inf 1).
        check_large_eps: the large budget of masking check (a) (64/255).
        check_steps, check_restarts: PGD's setting for masking check (d) at the headline L-inf budget, on the images
            PGD's own run attacks; its steps x restarts must exceed ``steps`` x ``restarts``.
        masking_tolerance: the tolerance of masking checks (b) to (e), in accuracy (0.02: two points).

    Defaults: paper 004's ``ifgsm_step_grey`` and ``ifgsm_steps``; every other default is the kit's choice (the
    papers give no budgets, steps or corruption suite for an evaluation like this one).
    """

    linf_eps: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    l2_eps: tuple[float, ...] = (0.25, 0.5, 1.0)
    steps: int = 20
    step_ratio: float = 2.5
    restarts: int = 1
    headline_linf_eps: float = 2 / 255
    headline_l2_eps: float = 0.5
    apgd_steps: int = 50
    apgd_restarts: int = 1
    ifgsm_step_grey: float = 0.1
    ifgsm_steps: int = 25
    ifgsm_extra_eps: float = 0.1
    corruptions: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = SEVERITIES
    batch_size: int = 128
    n_examples: int = 4
    ifgsm_model: str = MULTITASK_NAME
    ensemble: tuple[str, ...] = tuple(ATTACKS)
    square_queries: int = 5000
    square_p_init: float = 0.8
    black_box_budgets: str = "all"
    transfer_from: tuple[str, ...] = ("vgg_erm_init_random",)
    check_images: int = 32
    check_large_eps: float = 64 / 255
    check_steps: int = 100
    check_restarts: int = 2
    masking_tolerance: float = 0.02

    def __post_init__(self) -> None:
        for key in ("linf_eps", "l2_eps"):
            if not getattr(self, key):
                raise ConfigError(
                    f"attacks.{key} is empty; expected a list of at least one budget, e.g. [{2 / 255:.5f}] (2/255)."
                )
        check_linf_budgets(
            {
                "attacks.linf_eps": self.linf_eps,
                "attacks.headline_linf_eps": self.headline_linf_eps,
                "attacks.ifgsm_extra_eps": self.ifgsm_extra_eps,
            }
        )
        for key, values in (("l2_eps", list(self.l2_eps)), ("headline_l2_eps", self.headline_l2_eps)):
            if any(not math.isfinite(e) or e <= 0 for e in np.atleast_1d(values)):
                raise ConfigError(
                    f"attacks.{key} is {values}; expected positive L2 budgets (per image, in [0, 1] pixel units)."
                )
        if self.ifgsm_eps > 1:
            raise ConfigError(
                f"attacks: ifgsm_steps x ifgsm_step_grey / 255 = {self.ifgsm_eps:g} exceeds the grey "
                "range 1; ifgsm_step_grey is in grey levels of 255 (paper 004: 0.1)."
            )
        if min(self.steps, self.restarts, self.apgd_steps, self.apgd_restarts, self.ifgsm_steps, self.batch_size) < 1:
            raise ConfigError(
                "attacks: steps, restarts, apgd_steps, apgd_restarts, ifgsm_steps, batch_size must be >= 1."
            )
        if not self.ifgsm_step_grey > 0:
            raise ConfigError(
                f"attacks.ifgsm_step_grey is {self.ifgsm_step_grey}; expected a positive step in grey "
                "levels of 255 (paper 004: 0.1)."
            )
        check_ranges("attacks", self, at_least={"n_examples": 0})
        if not self.step_ratio > 0:
            raise ConfigError(f"attacks.step_ratio is {self.step_ratio}; expected a positive number.")
        if not any(math.isclose(e, self.headline_linf_eps) for e in self.linf_eps) or not any(
            math.isclose(e, self.headline_l2_eps) for e in self.l2_eps
        ):
            raise ConfigError(
                f"attacks: headline budgets {self.headline_linf_eps} (L-inf) and {self.headline_l2_eps} "
                f"(L2) must be among linf_eps {self.linf_eps} and l2_eps {self.l2_eps}."
            )
        self._check_ensemble()
        unknown = sorted(set(self.corruptions) - set(CORRUPTIONS))
        if unknown:
            raise ConfigError(f"attacks.corruptions has unknown {unknown}; choose from {list(CORRUPTIONS)}.")
        outside = sorted(set(self.severities) - set(SEVERITIES))
        if outside:
            raise ConfigError(
                f"attacks.severities has {outside}; expected severities among {list(SEVERITIES)} (ImageNet-C's five)."
            )

    def _check_ensemble(self) -> None:
        """Refuse an ensemble the evaluation cannot run or the masking checks cannot read."""
        for name in self.ensemble:
            after = registered(name).after
            if after not in (None, SMALLER_BUDGET, WHITE_BOX_SURVIVORS) and after not in self.ensemble:
                raise ConfigError(
                    f"attacks.ensemble has {name!r} but not {after!r}, which it runs after (AutoAttack's "
                    f"cascade); add {after!r}. Registered attacks: {list(ATTACKS)}."
                )
        if not set(CHECKED_ATTACKS) <= set(self.ensemble) or not set(BLACK_BOX_ATTACKS) & set(self.ensemble):
            raise ConfigError(
                f"attacks.ensemble is {list(self.ensemble)}; the gradient-masking checks need "
                f"{list(CHECKED_ATTACKS)} and at least one of {list(BLACK_BOX_ATTACKS)}. Registered "
                f"attacks: {list(ATTACKS)}."
            )
        if "transfer" in self.ensemble and not self.transfer_from:
            raise ConfigError(
                "attacks.transfer_from is empty while attacks.ensemble has 'transfer'; name the "
                "surrogate classifier(s), e.g. [vgg_erm_init_random], or leave 'transfer' out."
            )
        if self.black_box_budgets not in ("headline", "all"):
            raise ConfigError(
                f"attacks.black_box_budgets is {self.black_box_budgets!r}; expected 'headline' (the "
                "headline budgets only) or 'all' (every budget of the curves)."
            )
        check_linf_budgets({"attacks.check_large_eps": self.check_large_eps})
        if min(self.square_queries, self.check_steps, self.check_restarts) < 1 or self.check_images < 2:
            raise ConfigError(
                f"attacks: square_queries {self.square_queries}, check_steps {self.check_steps}, "
                f"check_restarts {self.check_restarts} must be >= 1 and check_images "
                f"{self.check_images} >= 2 (one image of each class)."
            )
        if self.check_steps * self.check_restarts <= self.steps * self.restarts:
            raise ConfigError(
                f"attacks: check_steps x check_restarts = {self.check_steps * self.check_restarts} is "
                f"not more than steps x restarts = {self.steps * self.restarts}; masking check (d) "
                "reruns PGD with more steps or restarts than its own."
            )
        if not 0.0 < self.square_p_init <= 1.0 or not 0.0 <= self.masking_tolerance < 1.0:
            raise ConfigError(
                f"attacks: square_p_init {self.square_p_init} must be in (0, 1] (AutoAttack: 0.8) and "
                f"masking_tolerance {self.masking_tolerance} in [0, 1) (0.02: two points)."
            )

    def fgsm_attack(self, eps: float) -> Attack:
        """FGSM at ``eps``.

        Returns:
            The attack, ``(model, x, y, generator) -> adversarial x``.
        """
        return lambda m, x, y, g: fgsm(m, x, y, eps)

    def pgd_attack(self, eps: float, norm: str, early_stop: bool = True) -> Attack:
        """PGD at ``eps`` with this configuration's steps, step size and restarts (stopping on success for accuracy).

        Returns:
            The attack, ``(model, x, y, generator) -> adversarial x``.
        """
        alpha = self.step_ratio * eps / self.steps
        return lambda m, x, y, g: pgd(
            m, x, y, eps, alpha, self.steps, norm=norm, restarts=self.restarts, generator=g, early_stop=early_stop
        )

    def apgd_attack(self, loss: str) -> Attack:
        """APGD with ``loss`` at the headline L-inf budget.

        Returns:
            The attack, ``(model, x, y, generator) -> adversarial x``.
        """
        return lambda m, x, y, g: apgd(
            m, x, y, self.headline_linf_eps, steps=self.apgd_steps, loss=loss, restarts=self.apgd_restarts, generator=g
        )

    def square_attack(self, eps: float, norm: str) -> Attack:
        """The Square attack at ``eps`` with this configuration's queries and ``p_init``.

        Returns:
            The attack, ``(model, x, y, generator) -> adversarial x``.
        """
        return lambda m, x, y, g: (
            square(m, x, y, eps, queries=self.square_queries, norm=norm, p_init=self.square_p_init, generator=g).images
        )

    @property
    def ifgsm_eps(self) -> float:
        """The L-inf budget that paper 004's steps reach, in [0, 1] units (25 x 0.1/255 = 2.5/255)."""
        return self.ifgsm_steps * self.ifgsm_step_grey / 255.0

    def ifgsm_attack(self, early_stop: bool = True) -> Attack:
        """Paper 004's iterative FGSM (steps of ``ifgsm_step_grey`` / 255) against the true label (stopping on
        success for accuracy).

        Returns:
            The attack, ``(model, x, y, generator) -> adversarial x``.
        """
        return lambda m, x, y, g: ifgsm(
            m,
            x,
            y,
            eps=self.ifgsm_eps,
            steps=self.ifgsm_steps,
            alpha=self.ifgsm_step_grey / 255.0,
            early_stop=early_stop,
        )

    def ifgsm_extra_attack(self, early_stop: bool = True) -> Attack:
        """The kit's extra: iterative FGSM with ``ifgsm_steps`` steps in the ``ifgsm_extra_eps`` ball (25.5/255).

        Returns:
            The attack, ``(model, x, y, generator) -> adversarial x``.
        """
        return lambda m, x, y, g: ifgsm(
            m, x, y, eps=self.ifgsm_extra_eps, steps=self.ifgsm_steps, early_stop=early_stop
        )


def accuracy_columns(labels: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """The :data:`ACCURACY_COLUMNS` of one set of decisions: plain and balanced accuracy, the per-class accuracies and
    the constant classifier's values.

    Returns:
        column -> value.
    """
    sens, spec = class_rates(labels, correct)
    return {
        "accuracy": float(np.mean(correct)),
        "balanced_accuracy": balanced_accuracy(labels, correct),
        "sensitivity": sens,
        "specificity": spec,
        **constant_accuracy(labels),
    }


def run_attack(
    model: nn.Module, x: Tensor, y: Tensor, attack: Attack, device: torch.device, batch_size: int, seed: int
) -> Tensor:
    """Adversarial images for all of ``x`` (on the CPU), attacked batch by batch on ``device`` with one seeded
    generator.

    Returns:
        The adversarial images, on the CPU, in the order of ``x``.
    """
    generator = torch.Generator().manual_seed(seed)
    out = [
        attack(model, xb.to(device), yb.to(device), generator).detach().cpu()
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
    ]
    return torch.cat(out)


def attack_survivors(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Attack,
    robust: np.ndarray,
    device: torch.device,
    batch_size: int,
    seed: int,
) -> tuple[np.ndarray, Tensor]:
    """Attack the images marked ``robust`` (those still classified correctly).

    Returns:
        The new mask (N,) bool, True where the model is still right (the others stay wrong: an adversarial example
        for them is already known), and the adversarial images of the attacked ones ((robust.sum(), 1, H, W), on the
        CPU, in the order of ``x``).
    """
    idx = np.flatnonzero(robust)
    out = robust.copy()
    if not idx.size:
        return out, x[:0].clone()
    sel = torch.as_tensor(idx)
    x_adv = run_attack(model, x[sel], y[sel], attack, device, batch_size, seed)
    out[idx] = (positive_scores(model, x_adv, device, batch_size) >= 0.5) == (y[sel].numpy() == 1)
    return out, x_adv


def still_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Attack,
    robust: np.ndarray,
    device: torch.device,
    batch_size: int,
    seed: int,
) -> np.ndarray:
    """:func:`attack_survivors`'s mask alone.

    Returns:
        The new mask (N,) bool: True where the model is still right.
    """
    return attack_survivors(model, x, y, attack, robust, device, batch_size, seed)[0]


def as_tensors(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """Images and labels as the attacks take them.

    Returns:
        (float images, long labels) as tensors.
    """
    x = x.float() if isinstance(x, Tensor) else torch.as_tensor(np.array(x, dtype=np.float32))
    y = y.long() if isinstance(y, Tensor) else torch.as_tensor(np.array(y), dtype=torch.long)
    return x, y


@dataclasses.dataclass(frozen=True)
class Robustness:
    """The tables of the comparison: per-recipe summary, accuracy-vs-budget curves, corruption accuracy; the worst
    case over the ensemble per model and budget (:func:`medadv.attacks.worst_case.worst_case_accuracy`) and the
    gradient-masking checks per model (:func:`medadv.attacks.masking.masking_checks`); the adversarial examples kept for
    later notebooks, by model (:mod:`medadv.attacks.examples`)."""

    by_recipe: pd.DataFrame
    curves: pd.DataFrame
    corruptions: pd.DataFrame
    worst_case: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    sanity: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    examples: dict[str, AttackExamples] = dataclasses.field(default_factory=dict)


def corruption_rows(
    models: Mapping[str, tuple[nn.Module, str]],
    x: Tensor,
    labels: np.ndarray,
    config: AttackConfig,
    device: torch.device,
    seed: int,
) -> dict[str, list[dict]]:
    """Accuracy and AUC of every model under every corruption and severity of ``config`` (corruption j seeded
    ``seed + 1000 + j``). Each corrupted set is made once and scored by every model: the models see the same images,
    and at 256 x 256 making the blurs and JPEG round trips cost more than scoring them.

    Returns:
        model name -> one row per corruption and severity (:data:`CORRUPTION_COLUMNS`), corruption-major.
    """
    rows: dict[str, list[dict]] = {name: [] for name in models}
    for j, corruption in enumerate(config.corruptions):
        for severity in config.severities:
            xc = corrupt(x, corruption, severity, seed=seed + 1000 + j)
            for name, (model, recipe) in models.items():
                s = positive_scores(model, xc, device, config.batch_size)
                rows[name].append(
                    {
                        "model": name,
                        "recipe": recipe,
                        "corruption": corruption,
                        "severity": severity,
                        **accuracy_columns(labels, (s >= 0.5) == (labels == 1)),
                        "auc": roc_auc(labels, s),
                    }
                )
    return rows


def recipe_row(
    name: str,
    recipe: str,
    labels: np.ndarray,
    scores: np.ndarray,
    curves: list[dict],
    corrupted: list[dict],
    config: AttackConfig,
) -> dict[str, Any]:
    """The per-recipe row of one model from its clean scores, its curve rows and its corruption rows.

    Returns:
        The row: clean AUC, whether the model is degenerate (one class for more than 95% of the clean test images),
        the constant classifier's accuracy, and the plain and balanced accuracy clean, under each attack at its
        headline budget and averaged over the corruptions (with their mean AUC).
    """
    headline = {
        "clean": ("clean", "none", 0.0),
        "fgsm_linf": ("fgsm", "linf", config.headline_linf_eps),
        "pgd_linf": ("pgd", "linf", config.headline_linf_eps),
        "pgd_l2": ("pgd", "l2", config.headline_l2_eps),
        "apgd_ce": ("apgd_ce", "linf", config.headline_linf_eps),
        "apgd_margin": ("apgd_margin", "linf", config.headline_linf_eps),
        "ifgsm": ("ifgsm", "linf", config.ifgsm_eps),
        "ifgsm_extra": ("ifgsm_extra", "linf", config.ifgsm_extra_eps),
    }
    row: dict[str, Any] = {
        "model": name,
        "recipe": recipe,
        "linf_eps": config.headline_linf_eps,
        "l2_eps": config.headline_l2_eps,
        "clean_auc": roc_auc(labels, scores),
        "degenerate": is_degenerate(scores >= 0.5),
        **constant_accuracy(labels),
    }
    for label, (attack_name, norm, eps) in headline.items():  # NaN for an attack the ensemble leaves out
        r = next(
            (r for r in curves if r["attack"] == attack_name and r["norm"] == norm and math.isclose(r["eps"], eps)),
            {"accuracy": math.nan, "balanced_accuracy": math.nan},
        )
        row |= {f"{label}_accuracy": r["accuracy"], f"{label}_balanced_accuracy": r["balanced_accuracy"]}
    for column in ("accuracy", "balanced_accuracy", "auc"):
        row[f"mean_corruption_{column}"] = float(np.mean([r[column] for r in corrupted]))
    return row


def load_models(checkpoints: Path, device: torch.device) -> dict[str, tuple[nn.Module, str]]:
    """Every trained classifier in a run folder's checkpoints folder (notebook 01; ``RunLayout.checkpoints``):
    ``name -> (model in eval mode, recipe)``.

    Returns:
        ``{name: (model in eval mode, recipe)}``, sorted by name.
    """
    out = {}
    for name, weights in trained_models(checkpoints).items():
        model, meta = load_model_checkpoint(weights.with_suffix(""), device)
        out[name] = (model, str(meta.get("recipe", "unknown")))
    return out


def attack_examples(
    model: nn.Module,
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    attack: Attack,
    k: int,
    device: torch.device,
    seed: int,
) -> dict[str, np.ndarray]:
    """``k`` correctly classified images (classes alternating, in test-set order; any images if the model gets none
    right), their adversarial versions and the model's positive-class probability on both: the arguments of
    :func:`medadv.attacks.plots.attack_examples_figure` (less its title).

    Returns:
        ``{"x", "x_adv", "p_clean", "p_adv", "labels"}``: the images (k, 1, H, W), their adversarial versions,
        both probabilities (k,) and the labels (k,).
    """
    x, y = as_tensors(x, y)
    p = positive_scores(model, x, device)
    correct = (p >= 0.5) == (y.numpy() == 1)
    by_class = [[int(i) for i in np.flatnonzero(correct) if y[i] == c] for c in (1, 0)]
    interleaved = [i for pair in itertools.zip_longest(*by_class) for i in pair if i is not None]
    picked = (interleaved or list(range(len(x))))[:k]
    idx = torch.as_tensor(picked)
    x_adv = run_attack(model, x[idx], y[idx], attack, device, len(idx), seed)
    return {
        "x": x[idx].numpy(),
        "x_adv": x_adv.numpy(),
        "p_clean": p[picked],
        "p_adv": positive_scores(model, x_adv, device),
        "labels": y[idx].numpy(),
    }
