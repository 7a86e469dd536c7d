"""Notebook 03, attack evaluation: the GAN attack of paper 001 (Table 1, on the reference (ERM) classifier and on every
recipe), example figures of the gradient attacks (papers 002 and 004), robustness of every recipe to FGSM, PGD,
APGD and natural corruptions (paper 002), and the headline numbers.

The domain work lives in :mod:`medadv.attacks` (:mod:`~medadv.attacks.gan_attack`, :mod:`~medadv.attacks.robustness`,
:mod:`~medadv.attacks.plots`); this module is what the notebook calls.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from medadv.attacks.gan_attack import GanAttackResult, gan_attack_evaluation, load_fakes
from medadv.attacks.plots import (attack_examples_figure, corruption_curves_figure, corruption_examples_figure,
                                  gan_scores_figure, robustness_curves_figure)
from medadv.attacks.robustness import AttackConfig, Robustness, attack_examples, evaluate_models, load_models
from medadv.data.adversarial import read_adversarial_index
from medadv.data.images import SplitArrays, load_split
from medadv.models.inference import positive_scores
from medadv.models.registry import load_trained
from medadv.report import RunContext
from medadv.train.loop import ClassifierConfig

__all__ = ["AttackEvaluationConfig", "AttackInputs", "GanAttack", "corruption_curves_figure",
           "corruption_examples_figure", "erm_variants", "evaluate_robustness", "gan_attack", "gan_attack_by_recipe",
           "gan_scores_figure", "gradient_examples", "headline", "load_inputs", "multitask_example",
           "robustness_curves_figure"]


@dataclasses.dataclass(frozen=True)
class AttackEvaluationConfig(AttackConfig):
    """The profile's ``attacks`` section (:class:`medadv.attacks.robustness.AttackConfig`)."""


@dataclasses.dataclass(frozen=True)
class AttackInputs:
    """What notebook 03 attacks.

    Attributes:
        cohort: the run's cohort table; test: its test split at the profile's size.
        models: every classifier of notebook 01, ``name -> (model in eval mode, recipe)``.
        reference: the profile's ``classifier.reference_model`` (the standard, ERM classifier): paper 001's Table 1
            and the gradient attack examples attack it.
        erm: that classifier, in eval mode.
    """

    cohort: pd.DataFrame
    test: SplitArrays
    models: dict[str, tuple[nn.Module, str]]
    reference: str
    erm: nn.Module

    def model_table(self) -> pd.DataFrame:
        """The classifiers under attack.

        Returns:
            one row per model (index): its ``recipe`` and the number of ``test_images``.
        """
        recipes = {name: recipe for name, (_, recipe) in self.models.items()}
        return pd.DataFrame({"recipe": recipes}).assign(test_images=len(self.test.labels))


def load_inputs(ctx: RunContext) -> AttackInputs:
    """The test split and every trained classifier of a run.

    Returns:
        :class:`AttackInputs`.
    """
    cohort = ctx.cohort()
    test = load_split(cohort, ctx.image_root, ctx.profile.data.image_size, "test")
    reference = ClassifierConfig.from_profile(ctx.profile).reference_model
    return AttackInputs(cohort, test, load_models(ctx.run_dir, ctx.device), reference,
                        load_trained(ctx.run_dir, reference, ctx.device))


@dataclasses.dataclass(frozen=True)
class GanAttack:
    """Paper 001's GAN attack on the ERM classifier.

    Attributes:
        result: Table 1 (``result.table()``, ``gan_attack_table.csv``) and its headline (``result.summary()``).
        fakes: the fake of every test image (notebook 02), in test order.
        real_scores, fake_scores: the ERM classifier's positive-class probability on the real images and their fakes.
    """

    result: GanAttackResult
    fakes: np.ndarray
    real_scores: np.ndarray
    fake_scores: np.ndarray


def gan_attack(ctx: RunContext, inputs: AttackInputs, config: AttackConfig) -> GanAttack:
    """Read notebook 02's adversarial set (validated against the cohort) and attack the ERM classifier with it.

    Returns:
        :class:`GanAttack`.

    Raises:
        RunError: notebook 02 has not written ``adversarial_index``; DataError: the index does not match the cohort.
    """
    index = read_adversarial_index(ctx.run_dir, inputs.cohort)
    fakes = load_fakes(ctx.run_dir, index, inputs.test.rows["image_id"], ctx.profile.data.image_size)
    real_scores = positive_scores(inputs.erm, inputs.test.images, ctx.device, config.batch_size)
    fake_scores = positive_scores(inputs.erm, fakes, ctx.device, config.batch_size)
    return GanAttack(gan_attack_evaluation(inputs.test.labels, real_scores, fake_scores), fakes, real_scores,
                     fake_scores)


def gan_attack_by_recipe(inputs: AttackInputs, fakes: np.ndarray, config: AttackConfig,
                         device: torch.device) -> pd.DataFrame:
    """The same fakes against every classifier.

    Returns:
        ``gan_attack_by_recipe``: one row per model with its recipe and :meth:`GanAttackResult.summary`.
    """
    test = inputs.test
    return pd.DataFrame([
        {"model": name, "recipe": recipe, **gan_attack_evaluation(
            test.labels, positive_scores(model, test.images, device, config.batch_size),
            positive_scores(model, fakes, device, config.batch_size)).summary()}
        for name, (model, recipe) in inputs.models.items()])


def gradient_examples(inputs: AttackInputs, config: AttackConfig, device: torch.device,
                      seed: int) -> dict[str, Figure]:
    """FGSM and PGD (L-inf, at the headline budget, without early stopping) on ``config.n_examples`` correctly
    classified test images of the ERM classifier: image, perturbation and adversarial image per row.

    Returns:
        figure name (``attack_examples_fgsm``, ``attack_examples_pgd``) -> figure.
    """
    eps = config.headline_linf_eps
    figures = {}
    for name, attack in (("fgsm", config.fgsm_attack(eps)), ("pgd", config.pgd_attack(eps, "linf", early_stop=False))):
        examples = attack_examples(inputs.erm, inputs.test.images, inputs.test.labels, attack, config.n_examples,
                                   device, seed)
        title = f"{name.upper()} L-inf, eps = {eps * 255:g}/255, against {inputs.reference}"
        figures[f"attack_examples_{name}"] = attack_examples_figure(**examples, attack=title)
    return figures


def multitask_example(inputs: AttackInputs, config: AttackConfig, device: torch.device, seed: int) -> Figure | None:
    """Paper 004's own setting: the profile's ``attacks.ifgsm_model`` (its multi-task network) under iterative FGSM
    (``ifgsm_steps`` steps of ``ifgsm_step_grey``/255), as :func:`gradient_examples` draws it.

    Returns:
        the figure (``attack_examples_ifgsm_multitask``), or None when notebook 01 did not train that model.
    """
    if config.ifgsm_model not in inputs.models:
        return None
    examples = attack_examples(inputs.models[config.ifgsm_model][0], inputs.test.images, inputs.test.labels,
                               config.ifgsm_attack(early_stop=False), config.n_examples, device, seed)
    title = (f"Iterative FGSM, {config.ifgsm_steps} steps of {config.ifgsm_step_grey:g}/255 "
             f"(budget {255 * config.ifgsm_eps:g}/255), against {config.ifgsm_model} (paper 004)")
    return attack_examples_figure(**examples, attack=title)


def evaluate_robustness(ctx: RunContext, inputs: AttackInputs, config: AttackConfig) -> Robustness:
    """Every classifier under every attack and corruption of ``config`` (:func:`evaluate_models`), seeded by the
    profile.

    Returns:
        :class:`medadv.attacks.robustness.Robustness`: ``by_recipe``, ``curves`` and ``corruptions``.
    """
    return evaluate_models(inputs.models, inputs.test.images, inputs.test.labels, config, ctx.device,
                           ctx.profile.seed)


def erm_variants(by_recipe: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The rows of ``robustness_by_recipe`` of the reference classifier and its variants (the models whose name
    starts with ``reference``: ``vgg_erm``, ``vgg_erm_gp_features``, ``vgg_erm_matched``, ...).

    Returns:
        those rows, in table order.
    """
    return by_recipe[by_recipe["model"].str.startswith(reference)]


def headline(gan: GanAttack, robust: Robustness) -> dict[str, object]:
    """Notebook 03's numbers for ``summary.json``.

    Returns:
        ``gan_attack`` (the GAN attack's summary) and ``robust_accuracy`` (per model, the per-recipe row without
        its recipe).
    """
    return {
        "gan_attack": gan.result.summary(),
        "robust_accuracy": robust.by_recipe.set_index("model").drop(columns="recipe").to_dict(orient="index"),
    }
