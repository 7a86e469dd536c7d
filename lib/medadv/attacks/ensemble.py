"""Notebook 03's robustness evaluation: every registered attack of the profile's ensemble on every model, the worst
case over them image by image, and the gradient-masking checks.

The protocol (Croce & Hein 2020, AutoAttack; Carlini et al. 2019, "On evaluating adversarial robustness"):

1. **Each attack** of ``attacks.ensemble`` (:data:`medadv.attacks.catalogue.ATTACKS`, in registration order) at its
   budgets, on the images it attacks (:mod:`medadv.attacks.catalogue`: the images right unattacked, PGD's survivors of
   the next smaller budget, the survivors of the attack before it in AutoAttack's cascade, or, for Square, the
   survivors of every white-box attack at its budget, as AutoAttack runs it last): the curve rows
   (:data:`medadv.attacks.robustness.CURVE_COLUMNS`). The transfer attack is crafted once per surrogate of
   ``attacks.transfer_from`` (:func:`medadv.attacks.transfer.transfer_pgd`) and shown to every other model, as
   ``transfer_from_<surrogate>``.
2. **The worst case** (:func:`medadv.attacks.worst_case.worst_case_accuracy`) at every budget of the curves: an
   image is robust only if it is right unattacked and under every attack. An attack run only at smaller budgets
   counts with what it found there (a ball holds the smaller balls), so the worst case never rises with the budget;
   an attack run only at larger budgets does not count.
3. **The masking checks** (:func:`medadv.attacks.masking.masking_checks`) on each attack's plain accuracy, with two
   more runs of PGD per model: at the headline L-inf budget with ``check_steps`` x ``check_restarts`` on the images
   PGD's own run attacked (check d), and on ``check_images`` test images (half of each class) at ``check_large_eps``
   (64/255) and at L-inf 1, attack ``pgd_check`` (check a; the bar of its first half is the majority share of those
   images, 0.5 when they are balanced).

Random starts are seeded as in :mod:`medadv.attacks.robustness`: each model's attacks draw the seeds ``seed``,
``seed + 1``, ... in the order above (so the attacks the kit ran before Square and the transfer attacks keep their
seeds and their numbers), the transfer attacks ``seed + 3000 + k``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from medadv.attacks import masking
from medadv.attacks.catalogue import (
    ATTACKS,
    SMALLER_BUDGET,
    WHITE_BOX_FAMILIES,
    WHITE_BOX_SURVIVORS,
    RegisteredAttack,
    registered,
)
from medadv.attacks.examples import AttackExamples
from medadv.attacks.gradient import pgd
from medadv.attacks.robustness import (
    CORRUPTION_COLUMNS,
    CURVE_COLUMNS,
    AttackConfig,
    Robustness,
    accuracy_columns,
    as_tensors,
    attack_survivors,
    corruption_rows,
    recipe_row,
    still_correct,
)
from medadv.attacks.transfer import transfer_pgd
from medadv.attacks.worst_case import PER_IMAGE_COLUMNS, worst_case_accuracy
from medadv.core import in_notebook_progress
from medadv.errors import ConfigError, DataError
from medadv.models.inference import positive_scores
from medadv.stats.accuracy import majority_share

logger = logging.getLogger(__name__)

CHECK_ATTACK = "pgd_check"  # PGD on the check images at the large and the unbounded budget (check a)
TRANSFER_PREFIX = "transfer_from_"
TRANSFER_SEED = 3000
#: (surrogate, norm, eps) -> target model -> (N,) bool: right on the surrogate's images.
Transfers = dict[tuple[str, str, float], dict[str, np.ndarray]]


@dataclasses.dataclass
class ModelResult:
    """One model's rows: the per-recipe row, the curve rows, the per-image rows (worst case) and the accuracy rows
    of the masking checks; its adversarial examples when they were kept."""

    row: dict
    curves: list[dict]
    per_image: list[dict]
    checked: list[dict]
    examples: AttackExamples | None = None


def ensemble_attacks(config: AttackConfig) -> list[RegisteredAttack]:
    """The registered attacks of ``attacks.ensemble``, in registration order.

    Returns:
        The attacks.
    """
    chosen = {registered(name).name for name in config.ensemble}
    return [attack for name, attack in ATTACKS.items() if name in chosen]


def check_images(labels: np.ndarray, n: int) -> np.ndarray:
    """The images of the large-budget checks: the first ``n // 2`` positives and the first negatives up to ``n`` (in
    test order; fewer where a class has fewer).

    Returns:
        Their indices, sorted.
    """
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_pos = min(n // 2, len(pos))
    return np.sort(np.concatenate([pos[:n_pos], neg[: n - n_pos]]))


def transfer_results(
    models: Mapping[str, tuple[nn.Module, str]],
    x: Tensor,
    y: Tensor,
    config: AttackConfig,
    device: torch.device,
    seed: int,
) -> Transfers:
    """Every surrogate's transfer attack at every budget of the ``transfer`` attack, shown to every model.

    Returns:
        (surrogate, norm, eps) -> model -> whether the model is right on each image (empty without ``transfer``).
    """
    if "transfer" not in config.ensemble:
        return {}
    missing = [m for m in config.transfer_from if m not in models]
    if missing:
        raise ConfigError(
            f"attacks.transfer_from names {missing}, which notebook 01 did not train; it trained "
            f"{sorted(models)}. Name trained classifiers, or leave 'transfer' out of attacks.ensemble."
        )
    spec, out = registered("transfer"), {}
    targets = {name: model for name, (model, _) in models.items()}
    budgets = [
        (s, norm, eps) for s in config.transfer_from for norm in spec.norms for eps in spec.budgets(config, norm)
    ]
    for k, (surrogate, norm, eps) in enumerate(budgets):
        result = transfer_pgd(
            models[surrogate][0],
            targets,
            x,
            y,
            eps,
            norm=norm,
            steps=config.steps,
            step_ratio=config.step_ratio,
            restarts=config.restarts,
            device=device,
            batch_size=config.batch_size,
            seed=seed + TRANSFER_SEED + k,
        )
        out[surrogate, norm, eps] = {name: c.numpy() for name, c in result.correct.items()}
    return out


def _start(
    spec: RegisteredAttack,
    norm: str,
    eps: float,
    clean: np.ndarray,
    previous: np.ndarray,
    masks: dict[tuple[str, str, float], np.ndarray],
) -> np.ndarray:
    """The images ``spec`` attacks at (norm, eps): see :mod:`medadv.attacks.catalogue`."""
    if spec.after == SMALLER_BUDGET:
        return previous
    if spec.after == WHITE_BOX_SURVIVORS:
        survivors = [
            m
            for (a, n, e), m in masks.items()
            if n == norm and math.isclose(e, eps) and _family(a).family in WHITE_BOX_FAMILIES
        ]
        return np.logical_and.reduce([clean, *survivors])
    return clean if spec.after is None else masks[spec.after, norm, eps]


def _example_base(
    spec: RegisteredAttack,
    norm: str,
    eps: float,
    x: Tensor,
    previous: Tensor,
    examples: dict[tuple[str, str, float], Tensor],
) -> Tensor | None:
    """The examples an attack's run updates (:mod:`medadv.attacks.examples`): the images for a first run, the last
    budget's examples for PGD's nested runs, the cascade's examples so far; None where none are kept (Square)."""
    if spec.after == SMALLER_BUDGET:
        return previous
    if spec.after == WHITE_BOX_SURVIVORS:
        return None
    return x if spec.after is None else examples[spec.after, norm, eps]


def _run_attacks(
    model: nn.Module,
    name: str,
    x: Tensor,
    y: Tensor,
    clean: np.ndarray,
    transfers: Transfers,
    config: AttackConfig,
    device: torch.device,
    seeds: itertools.count,
    keep: bool = False,
) -> tuple[dict[tuple, np.ndarray], dict[tuple, Tensor]]:
    """Every attack of the ensemble on one model, in order.

    Returns:
        (attack, norm, eps) -> (N,) bool: right unattacked and under that attack (insertion order = curve order);
        and, when ``keep``, (attack, "linf", eps) -> the examples (N, 1, H, W) of every L-inf attack but Square and
        the transfer attacks (:mod:`medadv.attacks.examples`; rows of images wrong unattacked hold the image).
    """
    masks: dict[tuple[str, str, float], np.ndarray] = {}
    examples: dict[tuple[str, str, float], Tensor] = {}
    specs = ensemble_attacks(config)
    progress = tqdm(
        total=sum(len(s.budgets(config, n)) for s in specs for n in s.norms),
        desc=f"{name}: attacks",
        leave=False,
        disable=not in_notebook_progress(),
    )
    for spec in specs:
        for norm in spec.norms:
            previous, previous_examples = clean, x
            for eps in spec.budgets(config, norm):
                progress.update()
                if spec.on_surrogate:
                    for surrogate in (s for s in config.transfer_from if s != name):
                        masks[TRANSFER_PREFIX + surrogate, norm, eps] = clean & transfers[surrogate, norm, eps][name]
                    continue
                attack = spec.build(config, norm, eps)
                start = _start(spec, norm, eps, clean, previous, masks)
                previous, adversarial = attack_survivors(
                    model, x, y, attack, start, device, config.batch_size, next(seeds)
                )
                masks[spec.name, norm, eps] = previous
                base = (
                    _example_base(spec, norm, eps, x, previous_examples, examples) if keep and norm == "linf" else None
                )
                if base is not None:
                    previous_examples = examples[spec.name, norm, eps] = base.clone()
                    previous_examples[torch.as_tensor(np.flatnonzero(start))] = adversarial
    progress.close()
    return masks, examples


def _family(attack: str) -> RegisteredAttack:
    return registered("transfer" if attack.startswith(TRANSFER_PREFIX) else attack)


def _check_runs(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    clean: np.ndarray,
    masks: dict,
    config: AttackConfig,
    device: torch.device,
    seeds: itertools.count,
) -> list[dict]:
    """The masking checks' own PGD runs (module docstring, step 3).

    Returns:
        Accuracy rows (:data:`medadv.attacks.masking.ACCURACY_COLUMNS` less ``model``).
    """
    eps = config.headline_linf_eps
    linf = sorted(config.linf_eps)
    smaller = [e for e in linf if e < eps and not math.isclose(e, eps)]
    start = masks["pgd", "linf", smaller[-1]] if smaller else clean
    alpha = config.step_ratio * eps / config.check_steps

    def strong(m: nn.Module, xb: Tensor, yb: Tensor, g: torch.Generator) -> Tensor:
        return pgd(
            m, xb, yb, eps, alpha, config.check_steps, restarts=config.check_restarts, generator=g, early_stop=True
        )

    robust = still_correct(model, x, y, strong, start, device, config.batch_size, next(seeds))
    rows = [
        {
            "attack": "pgd",
            "family": "iterative",
            "norm": "linf",
            "eps": eps,
            "steps": config.check_steps,
            "restarts": config.check_restarts,
            "accuracy": float(robust.mean()),
        }
    ]
    subset = np.zeros(len(clean), dtype=bool)
    subset[check_images(y.numpy(), config.check_images)] = True
    for big in (config.check_large_eps, masking.UNBOUNDED_EPS):
        robust = still_correct(
            model, x, y, config.pgd_attack(big, "linf"), clean & subset, device, config.batch_size, next(seeds)
        )
        rows.append(
            {
                "attack": CHECK_ATTACK,
                "family": "iterative",
                "norm": "linf",
                "eps": big,
                "steps": config.steps,
                "restarts": config.restarts,
                "accuracy": float(robust[subset].mean()),
            }
        )
    return rows


def _per_image(name: str, labels: np.ndarray, clean: np.ndarray, masks: dict, config: AttackConfig) -> list[dict]:
    """The per-image rows of the worst case at every budget of the curves (module docstring, step 2)."""
    rows = []
    for norm, budgets in (("linf", config.linf_eps), ("l2", config.l2_eps)):
        for budget in sorted(budgets):
            for attack in dict.fromkeys(a for a, n, _ in masks if n == norm):
                ran = [e for a, n, e in masks if a == attack and n == norm and e <= budget * (1 + 1e-9)]
                if not ran:
                    continue
                correct = masks[attack, norm, max(ran)]
                rows += [
                    {
                        "model": name,
                        "norm": norm,
                        "eps": budget,
                        "attack": attack,
                        "image_id": i,
                        "label": int(labels[i]),
                        "clean_correct": bool(clean[i]),
                        "correct": bool(correct[i]),
                    }
                    for i in range(len(labels))
                ]
    return rows


def _curve_rows(
    name: str, recipe: str, labels: np.ndarray, clean: np.ndarray, masks: dict[tuple[str, str, float], np.ndarray]
) -> list[dict]:
    """A model's rows of ``robustness_curves``: clean, then every attack, norm and budget of the ensemble.

    Returns:
        rows with model, recipe, attack, norm, eps and the accuracy columns (:func:`accuracy_columns`).
    """
    curves = [
        {
            "model": name,
            "recipe": recipe,
            "attack": "clean",
            "norm": "none",
            "eps": 0.0,
            **accuracy_columns(labels, clean),
        }
    ]
    curves += [
        {"model": name, "recipe": recipe, "attack": a, "norm": n, "eps": e, **accuracy_columns(labels, m)}
        for (a, n, e), m in masks.items()
    ]
    return curves


def _attack_runs(masks: dict[tuple[str, str, float], np.ndarray], config: AttackConfig) -> list[dict]:
    """The ensemble's own attack runs as rows for the masking checks: attack, family, norm, budget, steps, restarts
    and the accuracy they left.

    Returns:
        one row per (attack, norm, budget) of ``masks``.
    """
    return [
        {
            "attack": a,
            "family": _family(a).family,
            "norm": n,
            "eps": e,
            "steps": _family(a).setting(config)[0],
            "restarts": _family(a).setting(config)[1],
            "accuracy": float(m.mean()),
        }
        for (a, n, e), m in masks.items()
    ]


def evaluate_model(
    model: nn.Module,
    name: str,
    recipe: str,
    x: Tensor,
    y: Tensor,
    corrupted: list[dict],
    transfers: Transfers,
    config: AttackConfig,
    device: torch.device,
    seed: int,
    image_ids: Sequence[str] | None = None,
) -> ModelResult:
    """One model under every attack of the ensemble (module docstring); ``corrupted`` are its corruption rows
    (:func:`medadv.attacks.robustness.corruption_rows`), ``transfers`` every model's answers on the surrogates' images
    (:func:`transfer_results`); with ``image_ids`` (the images' ids, in order) its adversarial examples are kept.

    Returns:
        :class:`ModelResult`.
    """
    labels = y.numpy()
    scores = positive_scores(model, x, device, config.batch_size)
    clean = (scores >= 0.5) == (labels == 1)
    seeds = itertools.count(seed)
    masks, kept = _run_attacks(model, name, x, y, clean, transfers, config, device, seeds, image_ids is not None)
    curves = _curve_rows(name, recipe, labels, clean, masks)
    checked = _attack_runs(masks, config)
    checked += _check_runs(model, x, y, clean, masks, config, device, seeds)
    row = recipe_row(name, recipe, labels, scores, curves, corrupted, config)
    logger.info(
        "%s: clean balanced accuracy %.3f, PGD L-inf %.4f: %.3f, mean corruption %.3f",
        name,
        row["clean_balanced_accuracy"],
        config.headline_linf_eps,
        row["pgd_linf_balanced_accuracy"],
        row["mean_corruption_balanced_accuracy"],
    )
    examples = (
        None
        if image_ids is None
        else AttackExamples(
            name, tuple(np.asarray(image_ids)[clean]), {k: v[torch.as_tensor(clean)].numpy() for k, v in kept.items()}
        )
    )
    return ModelResult(
        row, curves, _per_image(name, labels, clean, masks, config), [{"model": name, **r} for r in checked], examples
    )


def credit_order(config: AttackConfig) -> list[str]:
    """The attacks in the order the worst case credits them (the ensemble's order; a transfer attack per surrogate).

    Returns:
        Attack names.
    """
    out = []
    for spec in ensemble_attacks(config):
        out += [TRANSFER_PREFIX + s for s in config.transfer_from] if spec.on_surrogate else [spec.name]
    return out


def evaluate_models(
    models: Mapping[str, tuple[nn.Module, str]],
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    config: AttackConfig,
    device: torch.device,
    seed: int,
    keep_examples: Collection[str] = (),
    image_ids: Sequence[str] | None = None,
) -> Robustness:
    """Evaluate every model (``name -> (model, recipe)``) on the same test images.

    Args:
        models: the classifiers, each with its training recipe.
        x: test images (N, 1, H, W) in [0, 1]; y: their labels (N,).
        config: the ensemble, budgets, steps, corruptions and checks.
        device: where the models are.
        seed: base seed of the random starts and corruption noise (the same for every model).
        keep_examples: the models whose adversarial examples later notebooks read (:mod:`medadv.attacks.examples`);
            image_ids: the test images' ids, in order (needed with ``keep_examples``).

    Returns:
        :class:`medadv.attacks.robustness.Robustness`: the per-recipe, curve and corruption tables, the worst case
        per model and budget, the masking checks per model, and the kept examples.
    """
    x, y = as_tensors(x, y)
    by_model = corruption_rows(models, x, y.numpy(), config, device, seed)
    transfers = transfer_results(models, x, y, config, device, seed)
    if keep_examples and (image_ids is None or len(image_ids) != len(y)):
        raise DataError(
            f"keep_examples {sorted(keep_examples)}: keeping adversarial examples needs the id of every "
            f"test image (image_ids, {len(y)} of them); got {None if image_ids is None else len(image_ids)}."
        )
    results = [
        evaluate_model(
            model,
            name,
            recipe,
            x,
            y,
            by_model[name],
            transfers,
            config,
            device,
            seed,
            image_ids if name in keep_examples else None,
        )
        for name, (model, recipe) in models.items()
    ]
    per_image = pd.DataFrame([r for res in results for r in res.per_image], columns=list(PER_IMAGE_COLUMNS))
    order = [a for a in credit_order(config) if a in set(per_image["attack"])]
    checked = pd.DataFrame([r for res in results for r in res.checked], columns=list(masking.ACCURACY_COLUMNS))
    constant = majority_share(y.numpy()[check_images(y.numpy(), config.check_images)])
    return Robustness(
        by_recipe=pd.DataFrame([r.row for r in results]),
        curves=pd.DataFrame([c for r in results for c in r.curves], columns=list(CURVE_COLUMNS)),
        corruptions=pd.DataFrame([c for name in models for c in by_model[name]], columns=list(CORRUPTION_COLUMNS)),
        worst_case=worst_case_accuracy(per_image, order),
        sanity=masking.masking_checks(
            checked, constant, config.masking_tolerance, large=("linf", config.check_large_eps)
        ),
        examples={r.examples.model: r.examples for r in results if r.examples is not None},
    )
