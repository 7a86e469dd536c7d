"""Training recipes, chosen by name, all run by the one loop of :mod:`medadv.train.loop`.

Each recipe is one step function registered by :func:`training_recipe` in :data:`TRAINING_RECIPES` with its name,
whether it attacks the model while training (``adversarial``) and the paper it follows; :data:`RECIPES` names them in
registration order, the profile's check lists them, and :class:`Recipe` runs the one a name picks.

A recipe turns one batch into one scalar loss. Most call the model's *objective* (paper 001's focal loss plus
gradient penalty for the VGG classifier, cross-entropy plus Dice + BCE for paper 004's multi-task network; see
:mod:`medadv.train.losses`) on the view(s) they train on; paper 002's recipes use cross-entropy, as its authors'
``src/rtda/training/trainer.py`` does.

Paper 001 (its classifier's training):

``erm``          the objective on paper 001's augmented batch (vertical flip; rotation, scale, shear; see
                 :func:`medadv.train.augment.flip_affine_augment`), as the authors' ``trainClas1728pal134.py``.
``erm_matched``  the same, continued from the trained ``vgg_erm`` for as many epochs as the recipes fine-tuned from
                 it (``classifier.finetune_epochs``): the matched-budget twin their effects are compared against.

Paper 002 (Martinez et al., RTDA) and its baselines, as its authors' code has them (L2-PGD: ``rtda_eps``,
``rtda_alpha``, ``rtda_steps``, random start; AugMix severity 3, width 3, random depth, alpha 1):

``vanilla``         cross-entropy on the clean batch.
``adversarial_l2``  cross-entropy on L2-PGD images of the batch.
``augmix``          CE(clean) + ``jsd_weight`` x JS(p(clean), p(augmix_1), p(augmix_2)) (Hendrycks et al. 2020).
``rtda``            CE(clean) + ``jsd_weight`` x JS(p(clean), p(augmix), p(adv)), adv the L2-PGD image of the clean
                    image.

The kit's additions (named so that none passes for a paper's recipe):

``erm_noaug``        the objective on the clean batch (the unaugmented baseline).
``pgd_at``           Madry et al. (2018): the objective on PGD adversarial images (L-inf ball); ``pgd_at_l2`` the
                     same in the L2 ball (``l2_eps``, ``l2_alpha``).
``trades``           Zhang et al. (2019): objective(clean) + beta * KL(p(clean) || p(adv)), the adversarial image
                     found by PGD on that KL divergence.
``fast_at``          Wong, Rice & Kolter (2020): one FGSM step of 1.25 eps from a uniform random start, projected.
``rtda_focal_linf``  the kit's earlier reading of RTDA from paper 002's abstract: objective(adv) + ``jsd_weight`` x
                     JS(p(clean), p(augmix), p(adv)), adv an L-inf PGD image (``eps``, ``alpha``, ``steps``).

The adversarial images come from :func:`medadv.attacks.gradient.pgd` and :func:`~medadv.attacks.gradient.fgsm` (the
model is attacked in eval mode, so dropout is off while the attack searches, as in paper 002's code), with the
loop's seeded generator for random starts (uniform in the ball). Budgets are in [0, 1] pixel units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from medadv.attacks.gradient import fgsm, pgd
from medadv.errors import ConfigError
from medadv.train.augment import AugMixBatch, flip_affine_augment
from medadv.train.losses import cross_entropy_loss, dice_bce_loss, focal_gp_loss, jensen_shannon, kl_to_soft_targets


@dataclass(frozen=True)
class Batch:
    """One training batch on the device: images (N, 1, H, W), labels (N,), masks (N, 1, H, W), has_mask (N,)."""

    x: Tensor
    y: Tensor
    masks: Tensor
    has_mask: Tensor


@dataclass(frozen=True)
class RecipeParams:
    """Hyper-parameters of the recipes (from the profile's ``classifier`` section).

    ``eps``/``alpha``/``steps``: the kit's L-inf attacks (pgd_at, trades, fast_at, rtda_focal_linf); ``l2_*``:
    pgd_at_l2; ``rtda_*``: paper 002's L2-PGD (2/255, 0.5/255 and 7 steps in its authors' code).

    Defaults: paper 002's values for ``rtda_*``, ``jsd_weight`` and ``augmix_*``; the budgets and steps of the other
    recipes, ``trades_beta`` and ``fast_alpha_ratio`` are the kit's choices (the usual values of their own papers).
    """

    eps: float = 2 / 255
    alpha: float = 0.5 / 255
    steps: int = 5
    l2_eps: float = 0.5
    l2_alpha: float = 0.125
    trades_beta: float = 6.0
    fast_alpha_ratio: float = 1.25
    rtda_eps: float = 2 / 255
    rtda_alpha: float = 0.5 / 255
    rtda_steps: int = 7
    jsd_weight: float = 12.0
    augmix_severity: int = 3
    augmix_width: int = 3
    augmix_depth: int = -1


# An objective maps (model, images, labels, batch or None) to (loss, logits). The batch is given when the images are
# pixel-aligned with the batch's masks (clean or adversarial views), so a segmentation term can use them.
Objective = Callable[[nn.Module, Tensor, Tensor, "Batch | None"], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class PaperObjective:
    """Paper 001's classifier loss, focal loss plus gradient penalty (eqs. 1-3), the penalty's gradient at ``gp_at``."""

    gamma: float = 2.0
    k: float = 10.0
    power: float = 4.0
    gp_at: str = "image"

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, batch: Batch | None = None) -> tuple[Tensor, Tensor]:
        return focal_gp_loss(model, x, y, self.gamma, self.k, self.power, self.gp_at)


@dataclass(frozen=True)
class MultiTaskObjective:
    """Paper 004's two tasks: cross-entropy on the class plus ``seg_weight`` x (Dice + BCE) on the lesion mask,
    the latter only over images that carry an annotation (and only for views aligned with the masks)."""

    seg_weight: float = 1.0

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, batch: Batch | None = None) -> tuple[Tensor, Tensor]:
        if batch is None:
            return cross_entropy_loss(model, x, y)
        logits, mask_logits = model.forward_both(x)
        seg = dice_bce_loss(mask_logits, batch.masks, batch.has_mask)
        return F.cross_entropy(logits, y) + self.seg_weight * seg, logits


#: One recipe's step: ``(recipe, model, objective, batch, generator) -> (loss, logits)``; ``recipe`` gives the
#: parameters (:class:`RecipeParams`) and the AugMix mixer.
StepFn = Callable[["Recipe", nn.Module, Objective, Batch, torch.Generator], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class RegisteredRecipe:
    """A training recipe as registered (:func:`training_recipe`).

    Attributes:
        name: the name a profile gives (``classifier.recipes``).
        step: the function that turns one batch into ``(loss, logits)``.
        adversarial: whether the recipe attacks the model during training.
        paper: the paper whose authors' code the recipe follows (``"001"``, ``"002"``), or ``None`` for the kit's.
    """

    name: str
    step: StepFn
    adversarial: bool
    paper: str | None


#: Every training recipe by name, in registration order: adding a recipe is one function decorated with
#: :func:`training_recipe`.
TRAINING_RECIPES: dict[str, RegisteredRecipe] = {}


def training_recipe(name: str, *, adversarial: bool = False, paper: str | None = None) -> Callable[[StepFn], StepFn]:
    """Register the decorated step function as the training recipe ``name``.

    Returns:
        The decorator; it returns the function unchanged.
    """

    def register(step: StepFn) -> StepFn:
        if name in TRAINING_RECIPES:
            raise ValueError(f"training recipe {name!r} is registered twice.")
        TRAINING_RECIPES[name] = RegisteredRecipe(name, step, adversarial, paper)
        return step

    return register


class Recipe:
    """A named recipe: ``recipe(model, objective, batch, generator) -> (loss, logits)``.

    ``logits`` are those of the view the objective was applied to (for the training accuracy shown in progress).
    """

    def __init__(self, name: str, params: RecipeParams) -> None:
        if name not in TRAINING_RECIPES:
            raise ConfigError(f"recipe {name!r} is unknown; choose from {RECIPES}.")
        self.name = name
        self.params = params
        self.mixer = AugMixBatch(params.augmix_severity, params.augmix_width, params.augmix_depth)
        self._registered = TRAINING_RECIPES[name]

    @property
    def adversarial(self) -> bool:
        """Whether the recipe attacks the model during training (as registered)."""
        return self._registered.adversarial

    def __call__(
        self, model: nn.Module, objective: Objective, batch: Batch, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return self._registered.step(self, model, objective, batch, gen)

    def pgd(
        self, model: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator, norm: str = "linf", **kw: object
    ) -> Tensor:
        """PGD (Madry et al. 2018) in the recipe's L-inf (``eps``, ``alpha``) or L2 (``l2_eps``, ``l2_alpha``) ball.

        Returns:
            The adversarial images.
        """
        p = self.params
        eps, alpha = (p.eps, p.alpha) if norm == "linf" else (p.l2_eps, p.l2_alpha)
        return pgd(model, x, y, eps=eps, alpha=alpha, steps=p.steps, norm=norm, generator=gen, **kw)

    def l2_pgd(self, model: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        """Paper 002's training attack (RTDA, its authors' ``trainer.py``): L2-PGD on cross-entropy with a random
        start, in the ``rtda_eps`` ball with ``rtda_alpha`` steps, ``rtda_steps`` times.

        Returns:
            The adversarial images.
        """
        p = self.params
        return pgd(model, x, y, eps=p.rtda_eps, alpha=p.rtda_alpha, steps=p.rtda_steps, norm="l2", generator=gen)


Step = tuple[Tensor, Tensor]


@training_recipe("erm", paper="001")
def _erm(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    return objective(model, flip_affine_augment(b.x, gen), b.y, None)


training_recipe("erm_matched", paper="001")(_erm)


@training_recipe("erm_noaug")
def _erm_noaug(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    return objective(model, b.x, b.y, b)


@training_recipe("vanilla", paper="002")
def _vanilla(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    return cross_entropy_loss(model, b.x, b.y)


@training_recipe("adversarial_l2", adversarial=True, paper="002")
def _adversarial_l2(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    return cross_entropy_loss(model, r.l2_pgd(model, b.x, b.y, gen), b.y)


@training_recipe("augmix", paper="002")
def _augmix(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    loss, logits = cross_entropy_loss(model, b.x, b.y)
    views = [model(r.mixer(b.x)) for _ in range(2)]
    return loss + r.params.jsd_weight * jensen_shannon(logits, *views), logits


@training_recipe("rtda", adversarial=True, paper="002")
def _rtda(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    x_adv = r.l2_pgd(model, b.x, b.y, gen)
    loss, logits = cross_entropy_loss(model, b.x, b.y)
    consistency = jensen_shannon(logits, model(r.mixer(b.x)), model(x_adv))
    return loss + r.params.jsd_weight * consistency, logits


@training_recipe("pgd_at", adversarial=True)
def _pgd_at(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    return objective(model, r.pgd(model, b.x, b.y, gen), b.y, b)


@training_recipe("pgd_at_l2", adversarial=True)
def _pgd_at_l2(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    return objective(model, r.pgd(model, b.x, b.y, gen, norm="l2"), b.y, b)


@training_recipe("trades", adversarial=True)
def _trades(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    loss, logits = objective(model, b.x, b.y, b)
    clean_probs = F.softmax(logits, dim=1)
    x_adv = r.pgd(model, b.x, clean_probs.detach(), gen, loss_fn=kl_to_soft_targets)
    robust = kl_to_soft_targets(model(x_adv), clean_probs).mean()
    return loss + r.params.trades_beta * robust, logits


@training_recipe("fast_at", adversarial=True)
def _fast_at(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    eps = r.params.eps
    start = (torch.rand(b.x.shape, generator=gen, dtype=b.x.dtype) * 2 - 1).to(b.x.device) * eps
    x_step = fgsm(model, (b.x + start).clamp(0.0, 1.0), b.y, eps=r.params.fast_alpha_ratio * eps)
    x_adv = (b.x + (x_step - b.x).clamp(-eps, eps)).clamp(0.0, 1.0)
    return objective(model, x_adv, b.y, b)


@training_recipe("rtda_focal_linf", adversarial=True)
def _rtda_focal_linf(r: Recipe, model: nn.Module, objective: Objective, b: Batch, gen: torch.Generator) -> Step:
    x_adv = r.pgd(model, b.x, b.y, gen)
    loss, logits_adv = objective(model, x_adv, b.y, b)
    consistency = jensen_shannon(model(b.x), model(r.mixer(b.x)), logits_adv)
    return loss + r.params.jsd_weight * consistency, logits_adv


#: The recipes' names, in registration order.
RECIPES = tuple(TRAINING_RECIPES)
#: Recipes of paper 002's authors' code (the others are paper 001's ``erm`` / ``erm_matched`` or the kit's).
PAPER002_RECIPES = tuple(name for name, recipe in TRAINING_RECIPES.items() if recipe.paper == "002")
