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

from medadv.attacks.ensemble import credit_order, evaluate_models
from medadv.attacks.examples import write_examples
from medadv.attacks.gan_attack import GanAttackResult, gan_attack_evaluation, load_fakes
from medadv.attacks.masking import masking_suspected
from medadv.attacks.plots import attack_examples_figure
from medadv.attacks.robustness import AttackConfig, Robustness, attack_examples, load_models
from medadv.data.adversarial import read_adversarial_index
from medadv.data.images import SplitArrays, load_split
from medadv.detect.config import ENSEMBLE_ATTACK, DetectionConfig
from medadv.models.inference import positive_scores
from medadv.models.registry import load_trained
from medadv.report import RunContext
from medadv.train.loop import ClassifierConfig

__all__ = [
    "AttackEvaluationConfig",
    "AttackInputs",
    "GanAttack",
    "erm_variants",
    "evaluate_robustness",
    "gan_attack",
    "gan_attack_by_recipe",
    "gradient_examples",
    "headline",
    "load_inputs",
    "masking_verdict",
    "multitask_example",
    "penalty_verdict",
]


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
    return AttackInputs(
        cohort,
        test,
        load_models(ctx.layout.checkpoints, ctx.device),
        reference,
        load_trained(ctx.layout.checkpoints, reference, ctx.device),
    )


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
    index = read_adversarial_index(ctx.layout.adversarial_index, inputs.cohort)
    fakes = load_fakes(ctx.layout.root, index, inputs.test.rows["image_id"], ctx.profile.data.image_size)
    real_scores = positive_scores(inputs.erm, inputs.test.images, ctx.device, config.batch_size)
    fake_scores = positive_scores(inputs.erm, fakes, ctx.device, config.batch_size)
    return GanAttack(
        gan_attack_evaluation(inputs.test.labels, real_scores, fake_scores), fakes, real_scores, fake_scores
    )


def gan_attack_by_recipe(
    inputs: AttackInputs, fakes: np.ndarray, config: AttackConfig, device: torch.device
) -> pd.DataFrame:
    """The same fakes against every classifier.

    Returns:
        ``gan_attack_by_recipe``: one row per model with its recipe and :meth:`GanAttackResult.summary`.
    """
    test = inputs.test
    return pd.DataFrame(
        [
            {
                "model": name,
                "recipe": recipe,
                **gan_attack_evaluation(
                    test.labels,
                    positive_scores(model, test.images, device, config.batch_size),
                    positive_scores(model, fakes, device, config.batch_size),
                ).summary(),
            }
            for name, (model, recipe) in inputs.models.items()
        ]
    )


def gradient_examples(inputs: AttackInputs, config: AttackConfig, device: torch.device, seed: int) -> dict[str, Figure]:
    """FGSM and PGD (L-inf, at the headline budget, without early stopping) on ``config.n_examples`` correctly
    classified test images of the ERM classifier: image, perturbation and adversarial image per row.

    Returns:
        figure name (``attack_examples_fgsm``, ``attack_examples_pgd``) -> figure.
    """
    eps = config.headline_linf_eps
    figures = {}
    for name, attack in (("fgsm", config.fgsm_attack(eps)), ("pgd", config.pgd_attack(eps, "linf", early_stop=False))):
        examples = attack_examples(
            inputs.erm, inputs.test.images, inputs.test.labels, attack, config.n_examples, device, seed
        )
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
    examples = attack_examples(
        inputs.models[config.ifgsm_model][0],
        inputs.test.images,
        inputs.test.labels,
        config.ifgsm_attack(early_stop=False),
        config.n_examples,
        device,
        seed,
    )
    title = (
        f"Iterative FGSM, {config.ifgsm_steps} steps of {config.ifgsm_step_grey:g}/255 "
        f"(budget {255 * config.ifgsm_eps:g}/255), against {config.ifgsm_model} (paper 004)"
    )
    return attack_examples_figure(**examples, attack=title)


def evaluate_robustness(ctx: RunContext, inputs: AttackInputs, config: AttackConfig) -> Robustness:
    """Every classifier under every attack of the ensemble and every corruption of ``config``
    (:func:`medadv.attacks.ensemble.evaluate_models`), seeded by the profile; the adversarial examples of
    ``detect.classifier`` that notebook 06 reads (``detect.attacks``) written to ``data/attack_examples`` and
    registered (:mod:`medadv.attacks.examples`).

    Returns:
        :class:`medadv.attacks.robustness.Robustness`: ``by_recipe``, ``curves``, ``corruptions``, ``worst_case``
        (``robustness_worst_case``) and ``sanity`` (``attack_sanity``).
    """
    detect = DetectionConfig.from_profile(ctx.profile)
    robust = evaluate_models(
        inputs.models,
        inputs.test.images,
        inputs.test.labels,
        config,
        ctx.device,
        ctx.profile.seed,
        keep_examples=[detect.classifier],
        image_ids=list(inputs.test.rows["image_id"]),
    )
    wanted = {ENSEMBLE_ATTACK[a] for a in detect.attacks}
    for kept in robust.examples.values():
        sets = {(a, n, e): images for (a, n, e), images in kept.images.items() if a in wanted and n == "linf"}
        ctx.register_many(write_examples(ctx.layout.attack_examples, dataclasses.replace(kept, images=sets)))
    return robust


def erm_variants(by_recipe: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The rows of ``robustness_by_recipe`` of the reference classifier and its variants (the models whose name
    starts with ``reference``: ``vgg_erm``, ``vgg_erm_gp_features``, ``vgg_erm_matched``, ...).

    Returns:
        those rows, in table order.
    """
    return by_recipe[by_recipe["model"].str.startswith(reference)]


def masking_verdict(sanity: pd.DataFrame) -> str:
    """The gradient-masking checks in words: per model, whether it passed them all, else each failed check and what
    it means (the checks' ``meaning`` column, :mod:`medadv.attacks.masking`).

    Returns:
        Markdown: one bullet per model.
    """
    flags = masking_suspected(sanity)
    lines = []
    for model, suspected in zip(flags["model"], flags["masking_suspected"], strict=True):
        if not suspected:
            lines.append(
                f"- **{model}** passes every check: its robust accuracies can be read as robustness to the "
                "ensemble (an upper bound: a stronger attack may still do better)."
            )
            continue
        failed = sanity[(sanity["model"] == model) & ~sanity["passes"].astype(bool)]
        reasons = "; ".join(f"{row.check}: {row.meaning}" for row in failed.itertuples())
        lines.append(
            f"- **{model}**: masking suspected ({reasons}). Its robust accuracies overstate its robustness, "
            "and every effect that reads it says so (`masking_suspected` in `effects.csv`)."
        )
    return "\n".join(lines)


def _at(table: pd.DataFrame, model: str, **where: object) -> pd.DataFrame:
    rows = table[table["model"] == model]
    for column, value in where.items():
        rows = rows[np.isclose(rows[column], value)] if isinstance(value, float) else rows[rows[column] == value]
    return rows


def penalty_table(robust: Robustness, reference: str, config: AttackConfig) -> pd.DataFrame:
    """Paper 001's image gradient penalty against its feature-map reading and no penalty, at the headline L-inf
    budget: balanced accuracy clean, under PGD, under Square (run after the white-box attacks: the worst case over them
    and Square) and each transfer attack, in the worst case, and the masking checks each failed.

    Returns:
        One row per model of ``reference`` (the image penalty), ``<reference>_gp_features``, ``<reference>_gp_none``
        that the run trained.
    """
    eps, rows = config.headline_linf_eps, []
    flags = masking_suspected(robust.sanity).set_index("model")
    for model in (reference, f"{reference}_gp_features", f"{reference}_gp_none"):
        if model not in set(robust.curves["model"]):
            continue
        row = {
            "model": model,
            "penalty": {reference: "image"}.get(model, model.rsplit("_gp_", 1)[-1]),
            "clean": float(_at(robust.curves, model, attack="clean")["balanced_accuracy"].iloc[0]),
        }
        for attack in ["pgd", "square", *(a for a in credit_order(config) if a.startswith("transfer_from_"))]:
            found = _at(robust.curves, model, attack=attack, norm="linf", eps=eps)["balanced_accuracy"]
            row[attack] = float(found.iloc[0]) if len(found) else np.nan
        worst = _at(robust.worst_case, model, norm="linf", eps=eps)
        row["worst_case"] = float(worst["worst_case_balanced_accuracy"].iloc[0])
        row["failed_checks"] = str(flags.loc[model, "failed_checks"])
        rows.append(row)
    return pd.DataFrame(rows)


def penalty_verdict(table: pd.DataFrame, reference: str, tolerance: float) -> str:
    """Whether the image penalty's resistance to PGD is robustness or masked gradients, from :func:`penalty_table`:
    the penalised model resists PGD when its PGD balanced accuracy exceeds the penalty-free model's by more than
    ``tolerance``; the resistance is masking when the worst case (Square and the transfer attacks included) takes the
    gap back to within ``tolerance`` or the model fails a masking check, and robustness when the gap survives the
    worst case and every check passes.

    Returns:
        Markdown, with the run's numbers.
    """
    rows = table.set_index("model")
    control = f"{reference}_gp_none"
    if reference not in rows.index or control not in rows.index:
        return (
            f"The run did not train both {reference} and {control} (classifier.erm_also_gp_at: [none]); the "
            "question needs the penalty-free control."
        )
    pen, free = rows.loc[reference], rows.loc[control]
    gap, worst_gap = pen["pgd"] - free["pgd"], pen["worst_case"] - free["worst_case"]
    numbers = (
        f"Under PGD at the headline budget {reference} (image penalty) keeps a balanced accuracy of "
        f"{pen['pgd']:.3f} and {control} (no penalty) {free['pgd']:.3f} (gap {gap:+.3f}); in the worst case "
        f"over the ensemble {pen['worst_case']:.3f} and {free['worst_case']:.3f} (gap {worst_gap:+.3f})."
    )
    if gap <= tolerance:
        return numbers + (
            f" **No resistance to explain**: the penalty does not make {reference} harder for PGD than "
            f"{control} (by more than {tolerance:g})."
        )
    if worst_gap <= tolerance or pen["failed_checks"]:
        checks = f" and it fails {pen['failed_checks']}" if pen["failed_checks"] else ""
        return numbers + (
            f" **Masked gradients**: the attacks that do not follow {reference}'s gradient take most of "
            f"its advantage back{checks}; the penalty flattens the loss where PGD looks, not the "
            "decision where an attacker can reach."
        )
    return numbers + (
        " **Robustness, as far as this ensemble can tell**: the gap survives Square and the transfer "
        f"attacks and {reference} passes every masking check."
    )


def headline(gan: GanAttack, robust: Robustness) -> dict[str, object]:
    """Notebook 03's numbers for ``summary.json``.

    Returns:
        ``gan_attack`` (the GAN attack's summary), ``robust_accuracy`` (per model, the per-recipe row without
        its recipe), ``worst_case`` (per model and budget, the worst case's accuracies) and ``masking_suspected``
        (per model, the checks it failed; empty when none).
    """
    worst = robust.worst_case
    flags = masking_suspected(robust.sanity)
    return {
        "gan_attack": gan.result.summary(),
        "robust_accuracy": robust.by_recipe.set_index("model").drop(columns="recipe").to_dict(orient="index"),
        "worst_case": {
            model: {
                f"{r.norm} {r.eps:.6g}": {
                    "accuracy": r.worst_case_accuracy,
                    "balanced_accuracy": r.worst_case_balanced_accuracy,
                }
                for r in group.itertuples()
            }
            for model, group in worst.groupby("model", sort=False)
        },
        "masking_suspected": dict(zip(flags["model"], flags["failed_checks"], strict=True)),
    }
