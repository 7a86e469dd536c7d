"""The attacks of notebook 03's robustness evaluation, registered in one place.

Each attack is one :class:`RegisteredAttack`: its name (the ``attack`` column of the tables), its family for the
gradient-masking checks (:data:`medadv.attacks.masking.FAMILIES`), the norms and budgets it runs at, how it is built
from the profile's ``attacks`` section, and which images it attacks. The evaluation
(:func:`medadv.attacks.ensemble.evaluate_models`) iterates :data:`ATTACKS` in registration order; the profile's
``attacks.ensemble`` chooses among them, and a name that is not registered is refused with the registered names.
Adding an attack is one call of :func:`register`.

Which images an attack runs on (``after``): every image the model classifies correctly unattacked (None); for PGD,
``"smaller budget"``: the images that PGD at the next smaller budget of the same norm left correct (an image fooled
inside a ball is fooled inside every larger ball, so the curve is exact and cheaper); or the name of another attack
at the same budget, whose survivors it attacks (AutoAttack's cascade: PGD -> APGD-CE -> APGD-margin); or
``"white-box survivors"``: the images that every white-box attack run before it at the same norm and budget left
correct (Square: AutoAttack runs it last, on what the gradient attacks could not fool). A cascaded attack's accuracy is
therefore the worst case over the cascade so far: Square's row is the worst case over the white-box attacks and
Square, and how far it lies below the best white-box row is what Square found that the gradients missed (masking
check c, :func:`medadv.attacks.masking.white_box_vs_black_box`).

Two-class notes. AutoAttack's APGD-DLR needs a third logit (DLR divides by ``z_pi1 - z_pi3``); with two logits the
kit runs APGD on the margin loss ``z_other - z_y`` (:func:`medadv.attacks.gradient.margin_loss`), which is DLR's
numerator and, up to an increasing function, the only shift-invariant loss two logits allow: attack ``apgd_margin``
is the kit's APGD-DLR. A targeted attack adds nothing with two classes: the only target is the other class, and the
targeted margin towards it is the untargeted margin (``tests/test_two_class_losses.py``), so none is registered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from medadv.errors import ConfigError

#: An attack as evaluated: (model, images, labels, generator) -> adversarial images.
Attack = Callable[[nn.Module, Tensor, Tensor, torch.Generator], Tensor]
#: (the ``attacks`` section, norm) -> the budgets the attack runs at for that norm.
Budgets = Callable[[Any, str], tuple[float, ...]]
SMALLER_BUDGET = "smaller budget"
WHITE_BOX_SURVIVORS = "white-box survivors"
WHITE_BOX_FAMILIES = ("one_step", "iterative")


@dataclasses.dataclass(frozen=True)
class RegisteredAttack:
    """One attack of the evaluation.

    Attributes:
        name: the ``attack`` column's value.
        family: ``one_step``, ``iterative``, ``score_based`` or ``transfer`` (:mod:`medadv.attacks.masking`).
        summary: one line for the notebook and the docs.
        norms: the norms it runs in.
        budgets: (section, norm) -> its budgets there.
        build: (section, norm, eps) -> the attack; None for an attack ``on_surrogate``, which
            :func:`medadv.attacks.transfer.transfer_pgd` crafts with the section's PGD steps, step ratio and restarts.
        setting: section -> (steps, restarts) (queries for Square), the masking table's columns.
        after: which images it attacks (module docstring).
        on_surrogate: crafted once on each model of ``attacks.transfer_from`` and shown to every model.
    """

    name: str
    family: str
    summary: str
    norms: tuple[str, ...]
    budgets: Budgets
    build: Callable[[Any, str, float], Attack] | None
    setting: Callable[[Any], tuple[int, int]]
    after: str | None = None
    on_surrogate: bool = False


#: The registered attacks, by name, in the order the evaluation runs them.
ATTACKS: dict[str, RegisteredAttack] = {}


def register(attack: RegisteredAttack) -> RegisteredAttack:
    """Add ``attack`` to :data:`ATTACKS` (refused when its name is taken or its cascade names an unknown attack).

    Returns:
        The attack.
    """
    if attack.name in ATTACKS:
        raise ConfigError(f"attack {attack.name!r} is registered already; registered: {list(ATTACKS)}.")
    if attack.after not in (None, SMALLER_BUDGET, WHITE_BOX_SURVIVORS, *ATTACKS):
        raise ConfigError(
            f"attack {attack.name!r} runs after {attack.after!r}, which is not registered before it; "
            f"registered: {list(ATTACKS)}."
        )
    ATTACKS[attack.name] = attack
    return attack


def registered(name: str, key: str = "attacks.ensemble") -> RegisteredAttack:
    """The registered attack ``name``.

    Returns:
        Its :class:`RegisteredAttack`; a :class:`ConfigError` naming ``key`` and the registered names otherwise.
    """
    if name not in ATTACKS:
        raise ConfigError(
            f"{key} names attack {name!r}, which is not registered; registered attacks: "
            f"{list(ATTACKS)} (medadv.attacks.catalogue)."
        )
    return ATTACKS[name]


def headline_budget(config: Any, norm: str) -> tuple[float, ...]:
    """The headline budget of ``norm`` (the declared effects' budget).

    Returns:
        A one-budget tuple.
    """
    return (config.headline_linf_eps if norm == "linf" else config.headline_l2_eps,)


def curve_budgets(config: Any, norm: str) -> tuple[float, ...]:
    """Every budget of the curve for ``norm``, smallest first.

    Returns:
        ``attacks.linf_eps`` or ``attacks.l2_eps``, sorted.
    """
    return tuple(sorted(config.linf_eps if norm == "linf" else config.l2_eps))


def black_box_budgets(config: Any, norm: str) -> tuple[float, ...]:
    """Where Square and the transfer attacks run: the headline budget, or every budget of the curve
    (``attacks.black_box_budgets``: ``headline`` or ``all``).

    Returns:
        The budgets, smallest first.
    """
    return headline_budget(config, norm) if config.black_box_budgets == "headline" else curve_budgets(config, norm)


register(
    RegisteredAttack(
        "fgsm",
        "one_step",
        "FGSM (Goodfellow et al. 2015), one signed-gradient step",
        ("linf",),
        lambda c, norm: tuple(c.linf_eps),
        lambda c, norm, eps: c.fgsm_attack(eps),
        lambda c: (1, 1),
    )
)
register(
    RegisteredAttack(
        "pgd",
        "iterative",
        "PGD (Madry et al. 2018), cross-entropy, random start",
        ("linf", "l2"),
        curve_budgets,
        lambda c, norm, eps: c.pgd_attack(eps, norm),
        lambda c: (c.steps, c.restarts),
        after=SMALLER_BUDGET,
    )
)
register(
    RegisteredAttack(
        "apgd_ce",
        "iterative",
        "APGD with cross-entropy (Croce & Hein 2020)",
        ("linf",),
        headline_budget,
        lambda c, norm, eps: c.apgd_attack("ce"),
        lambda c: (c.apgd_steps, c.apgd_restarts),
        after="pgd",
    )
)
register(
    RegisteredAttack(
        "apgd_margin",
        "iterative",
        "APGD with the two-logit margin loss z_other - z_y (AutoAttack's APGD-DLR; DLR needs a third logit)",
        ("linf",),
        headline_budget,
        lambda c, norm, eps: c.apgd_attack("margin"),
        lambda c: (c.apgd_steps, c.apgd_restarts),
        after="apgd_ce",
    )
)
register(
    RegisteredAttack(
        "ifgsm",
        "iterative",
        "paper 004's iterative FGSM (25 steps of 0.1/255)",
        ("linf",),
        lambda c, norm: (c.ifgsm_eps,),
        lambda c, norm, eps: c.ifgsm_attack(),
        lambda c: (c.ifgsm_steps, 1),
    )
)
register(
    RegisteredAttack(
        "ifgsm_extra",
        "iterative",
        "the kit's extra: the same steps in a 25.5/255 ball",
        ("linf",),
        lambda c, norm: (c.ifgsm_extra_eps,),
        lambda c, norm, eps: c.ifgsm_extra_attack(),
        lambda c: (c.ifgsm_steps, 1),
    )
)
register(
    RegisteredAttack(
        "square",
        "score_based",
        "Square (Andriushchenko et al. 2020), reads only the logits",
        ("linf", "l2"),
        black_box_budgets,
        lambda c, norm, eps: c.square_attack(eps, norm),
        lambda c: (c.square_queries, 1),
        after=WHITE_BOX_SURVIVORS,
    )
)
register(
    RegisteredAttack(
        "transfer",
        "transfer",
        "margin PGD crafted on a surrogate (attacks.transfer_from), shown to every model",
        ("linf", "l2"),
        black_box_budgets,
        None,
        lambda c: (c.steps, c.restarts),
        on_surrogate=True,
    )
)
