"""Sanity checks that tell robustness from gradient masking, per model, from a table of robust accuracies.

A defence can make gradient attacks fail without making the model robust: its gradients are zero, noisy or point
the wrong way (quantised inputs, saturated logits, a loss flattened around the data), so the attacks that follow them
stall while an attacker who does not trust them still succeeds. Athalye, Carlini & Wagner (2018, "Obfuscated gradients
give a false sense of security") list the signs, Carlini et al. (2019, "On evaluating adversarial robustness") the
checks; each function here is one of them, run on every model of a table:

* (a) :func:`large_budget`: at a large budget (64/255 L-inf by default, enough to repaint a lesion) the strongest
  attack leaves no more than a constant classifier's accuracy; :func:`unbounded`: an attack whose ball holds the whole
  image space (L-inf eps 1) leaves no image correct;
* (b) :func:`iterative_vs_one_step`: iterative attacks are at least as strong as one-step ones at the same budget;
* (c) :func:`white_box_vs_black_box`: white-box attacks are at least as strong as the score-based (Square) and
  transfer attacks at the same budget; the opposite means the model's own gradients mislead. The evaluation runs
  Square on the images the white-box attacks left correct (:mod:`medadv.attacks.catalogue`), so its row is the worst
  case over both and the gap is exactly the share of images Square fooled where every gradient attack failed;
* (d) :func:`steps_and_restarts`: more steps and restarts change an attack's accuracy by no more than a tolerance
  (else the attack had not converged, and its number is an upper bound at best);
* (e) :func:`monotone_in_budget`: robust accuracy does not rise with the budget.

:func:`masking_checks` runs them all; :func:`masking_suspected` says which models failed which.

The input table (:data:`ACCURACY_COLUMNS`), one row per model, attack, norm, budget and setting:

==============  ======================================================================================================
``model``       the classifier's name
``attack``      the attack's name (rows of one attack differ in norm, eps, steps or restarts)
``family``      one of :data:`FAMILIES`: ``one_step`` (FGSM), ``iterative`` (PGD, APGD, iterative FGSM), both
                white-box; ``score_based`` (Square), ``transfer`` (crafted on another model), both black-box;
                ``ensemble`` (the worst case over attacks, :mod:`medadv.attacks.worst_case`)
``norm``        ``"linf"`` or ``"l2"``
``eps``         the budget in [0, 1] image units (the same float in every row of a budget)
``steps``       iterations (queries for Square; 1 for FGSM)
``restarts``    random restarts (1 for none)
``accuracy``    robust accuracy in [0, 1] (plain accuracy; feed balanced accuracies and a constant accuracy of 0.5
                to check those instead)
==============  ======================================================================================================

Each check returns rows :data:`CHECK_COLUMNS`: ``model``, ``check`` (its name), ``value`` (the number the verdict
reads, in accuracy units), ``passes`` (bool) and ``meaning`` (a sentence with the numbers, for a notebook's verdict).
A model that lacks the rows a check needs is an error that names it, never a silent pass.

Tolerances. Accuracy differences between attacks on the same images move by whole images: a different random start
fools one more or one fewer. :data:`TOLERANCE` (2 points) lets two images of the default profile's test split of
about 120 go either way (1 image = 0.8 points), while the masking the checks are for shows as gaps of tens of points
(a white-box accuracy of 54% beside a black-box one of 10%). The large-budget and unbounded checks have no tolerance:
their bars (a constant classifier's accuracy; zero) are already the most lenient ones that a working attack can meet.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from medadv.errors import ConfigError, DataError

ACCURACY_COLUMNS = ("model", "attack", "family", "norm", "eps", "steps", "restarts", "accuracy")
FAMILIES = ("one_step", "iterative", "score_based", "transfer", "ensemble")
WHITE_BOX = ("one_step", "iterative")
BLACK_BOX = ("score_based", "transfer")
CHECK_COLUMNS = ("model", "check", "value", "passes", "meaning")
TOLERANCE = 0.02
LARGE_EPS = 64 / 255
UNBOUNDED_EPS = 1.0  # an L-inf ball of radius 1 around any image in [0, 1] holds every image


def _budget(norm: str, eps: float) -> str:
    """``L-inf 64/255`` or ``L2 0.5``: a budget as a reader writes it."""
    if norm == "linf" and eps < 1.0:
        grey = eps * 255
        return f"L-inf {round(grey)}/255" if math.isclose(grey, round(grey), abs_tol=1e-6) else f"L-inf {eps:.4g}"
    return f"{'L-inf' if norm == 'linf' else norm.upper()} {eps:g}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def validate_accuracies(table: pd.DataFrame) -> pd.DataFrame:
    """Check the accuracy table's columns, families, ranges and keys.

    Returns:
        The table, with ``accuracy`` and ``eps`` as floats and ``steps``, ``restarts`` as ints.
    """
    missing = [c for c in ACCURACY_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"the accuracy table lacks the column(s) {missing}; expected {list(ACCURACY_COLUMNS)}.")
    if table.empty:
        raise DataError("the accuracy table has no rows; expected one per model, attack, norm, eps and setting.")
    unknown = sorted(set(table["family"]) - set(FAMILIES))
    if unknown:
        raise DataError(f"the accuracy table has family {unknown}; expected one of {FAMILIES}.")
    table = table.astype({"accuracy": float, "eps": float, "steps": int, "restarts": int})
    bad = table[~table["accuracy"].between(0.0, 1.0)]
    if not bad.empty:
        raise DataError(
            f"accuracy {bad['accuracy'].iloc[0]} of model {bad['model'].iloc[0]!r}, attack "
            f"{bad['attack'].iloc[0]!r} is outside [0, 1]; expected a share of images."
        )
    key = ["model", "attack", "norm", "eps", "steps", "restarts"]
    dup = table[table.duplicated(key, keep=False)]
    if not dup.empty:
        raise DataError(
            f"the accuracy table repeats {dict(zip(key, dup[key].iloc[0].tolist()))}; each model, attack, "
            "norm, eps, steps and restarts must appear once."
        )
    return table


def _check_rows(
    table: pd.DataFrame, check: str, one: Callable[[str, pd.DataFrame], tuple[float, bool, str]], needs: str
) -> pd.DataFrame:
    """Run ``one(model, its rows) -> (value, passes, meaning)`` for every model; ``needs`` names what a model that
    returns NaN lacks."""
    table = validate_accuracies(table)
    rows = []
    for model, group in table.groupby("model", sort=False):
        value, passes, meaning = one(str(model), group)
        if math.isnan(value):
            raise DataError(
                f"check {check}: model {model!r} has no {needs} in the accuracy table; add them, or leave "
                "this check out for it."
            )
        rows.append({"model": model, "check": check, "value": value, "passes": bool(passes), "meaning": meaning})
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS))


def _at(group: pd.DataFrame, norm: str, eps: float) -> pd.DataFrame:
    return group[(group["norm"] == norm) & np.isclose(group["eps"], eps)]


def _lowest(rows: pd.DataFrame) -> pd.Series:
    """The row with the lowest accuracy (the strongest attack); ties go to the first."""
    return rows.loc[rows["accuracy"].idxmin()]


def large_budget(
    table: pd.DataFrame, constant_accuracy: float, norm: str = "linf", eps: float = LARGE_EPS
) -> pd.DataFrame:
    """Check (a), first half: at a large budget the strongest attack leaves no more than a constant classifier.

    A constant classifier cannot be attacked at all (its answer does not depend on the image), so a model that keeps
    more than it at a budget large enough to repaint the image is either out of the attacks' reach for a reason that is
    not robustness (masked gradients, saturated outputs) or not a classifier of the image.

    Args:
        table: the accuracy table (:data:`ACCURACY_COLUMNS`), with rows at ``norm`` and ``eps``.
        constant_accuracy: the best constant classifier's accuracy on the same images (the majority class's share;
            0.5 when ``accuracy`` holds balanced accuracies).
        norm, eps: the large budget (default L-inf 64/255).

    Returns:
        One row per model (:data:`CHECK_COLUMNS`): ``value`` the lowest accuracy there, passing when it is at most
        ``constant_accuracy``.
    """
    if not 0.0 <= constant_accuracy <= 1.0:
        raise ConfigError(f"constant_accuracy is {constant_accuracy}; expected the majority class's share in [0, 1].")
    where = _budget(norm, eps)

    def one(model: str, group: pd.DataFrame) -> tuple[float, bool, str]:
        rows = _at(group, norm, eps)
        if rows.empty:
            return math.nan, False, ""
        best = _lowest(rows)
        passes = best["accuracy"] <= constant_accuracy
        meaning = (
            f"at {where} the strongest attack ({best['attack']}) leaves {_pct(best['accuracy'])}, "
            f"{'not above' if passes else 'more than'} the constant classifier's {_pct(constant_accuracy)}"
        )
        if not passes:
            meaning += (
                "; at a budget that can repaint the image the attacks should do better: its gradients or "
                "outputs hide the way to the other class (masking suspected)"
            )
        return float(best["accuracy"]), bool(passes), meaning

    return _check_rows(table, "a_large_budget", one, f"rows at {where}")


def unbounded(table: pd.DataFrame, norm: str = "linf", eps: float = UNBOUNDED_EPS) -> pd.DataFrame:
    """Check (a), second half: an attack whose ball holds every image leaves no image correct.

    With L-inf eps 1 any image in [0, 1] is reachable, so a model that still answers correctly on some image either
    never gives the other class (a constant classifier in disguise) or hides the way there from the attack.

    Args:
        table: the accuracy table, with rows at ``norm`` and a budget of at least ``eps``.
        norm, eps: the unbounded budget (default L-inf 1).

    Returns:
        One row per model: ``value`` the lowest accuracy at that budget, passing when it is 0.
    """
    where = _budget(norm, eps)

    def one(model: str, group: pd.DataFrame) -> tuple[float, bool, str]:
        rows = group[(group["norm"] == norm) & (group["eps"] >= eps - 1e-9)]
        if rows.empty:
            return math.nan, False, ""
        best = _lowest(rows)
        passes = best["accuracy"] == 0.0
        meaning = (
            f"with the whole image space in reach ({where}) the strongest attack ({best['attack']}) leaves "
            f"{_pct(best['accuracy'])}"
        )
        meaning += (
            ""
            if passes
            else (
                ": some image can be changed into anything and is still classified correctly; "
                "the model never gives the other class there, or the attack cannot find it"
            )
        )
        return float(best["accuracy"]), bool(passes), meaning

    return _check_rows(table, "a_unbounded", one, f"rows at {where} or more")


def _largest_gap(group: pd.DataFrame, strong: tuple[str, ...], weak: tuple[str, ...]) -> tuple[float, str]:
    """Over the budgets where both kinds ran: the largest (lowest accuracy of ``strong``) - (lowest of ``weak``),
    with a sentence on the budget where it is largest. NaN when no budget has both."""
    gaps = []
    for (norm, eps), rows in group.groupby(["norm", "eps"], sort=True):
        s, w = rows[rows["family"].isin(strong)], rows[rows["family"].isin(weak)]
        if s.empty or w.empty:
            continue
        s_best, w_best = _lowest(s), _lowest(w)
        gaps.append(
            (
                float(s_best["accuracy"] - w_best["accuracy"]),
                f"at {_budget(str(norm), float(eps))} {s_best['attack']} leaves {_pct(s_best['accuracy'])}, "
                f"{w_best['attack']} {_pct(w_best['accuracy'])}",
            )
        )
    return max(gaps, key=lambda g: g[0]) if gaps else (math.nan, "")


def iterative_vs_one_step(table: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Check (b): at every budget where both ran, iterative attacks leave no more than one-step ones.

    An iterative attack starts where FGSM goes (or near) and climbs further; when FGSM does better, the loss surface is
    so curved or noisy near the image that following the gradient for small steps leads astray (Athalye et al. 2018).

    Returns:
        One row per model: ``value`` the largest (best iterative - best one-step accuracy) over the budgets, passing
        when at most ``tolerance``.
    """

    def one(model: str, group: pd.DataFrame) -> tuple[float, bool, str]:
        gap, where = _largest_gap(group, ("iterative",), ("one_step",))
        passes = gap <= tolerance
        meaning = f"{where}: " + (
            "iterative attacks are at least as strong as one-step ones"
            if passes
            else "the one-step attack is stronger than the iterative ones; small gradient steps "
            "lead astray near the image (masking suspected)"
        )
        return gap, bool(passes), meaning + f" (gap {100 * gap:+.1f} points, tolerance {100 * tolerance:.1f})"

    return _check_rows(table, "b_iterative_vs_one_step", one, "budget with both a one-step and an iterative attack")


def white_box_vs_black_box(table: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Check (c): at every budget where both ran, the best white-box attack leaves no more than the black-box ones.

    A white-box attack knows everything a score-based or transfer attack knows, and the gradient besides; when Square
    (which reads only outputs) or images crafted on another model do better, the model's own gradients mislead the
    attacker: gradient masking (Athalye et al. 2018; Croce & Hein 2020).

    Returns:
        One row per model: ``value`` the largest (best white-box - best black-box accuracy) over the budgets,
        passing when at most ``tolerance``.
    """

    def one(model: str, group: pd.DataFrame) -> tuple[float, bool, str]:
        gap, where = _largest_gap(group, WHITE_BOX, BLACK_BOX)
        passes = gap <= tolerance
        meaning = f"{where}: " + (
            "the white-box attacks are at least as strong as the black-box ones"
            if passes
            else "an attack without the model's gradients does better than those with them; the "
            "gradients mislead (gradient masking), and the white-box accuracy overstates "
            "robustness"
        )
        return gap, bool(passes), meaning + f" (gap {100 * gap:+.1f} points, tolerance {100 * tolerance:.1f})"

    return _check_rows(table, "c_white_box_vs_black_box", one, "budget with both a white-box and a black-box attack")


def steps_and_restarts(table: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Check (d): running an attack with more steps or restarts changes its accuracy by at most ``tolerance``.

    For each (attack, norm, eps) with several settings, the cheapest one (fewest ``steps * restarts``, the evaluation's
    own) is compared with every other; a change means the attack had not converged at its own setting.

    Returns:
        One row per model: ``value`` the largest absolute change, passing when at most ``tolerance``.
    """

    def one(model: str, group: pd.DataFrame) -> tuple[float, bool, str]:
        worst = (math.nan, "")
        for (attack, norm, eps), rows in group.groupby(["attack", "norm", "eps"], sort=False):
            if len(rows) < 2:
                continue
            rows = rows.assign(cost=rows["steps"] * rows["restarts"]).sort_values("cost", kind="stable")
            base = rows.iloc[0]
            changes = (rows["accuracy"].iloc[1:] - base["accuracy"]).abs()
            other = rows.iloc[1:].loc[changes.idxmax()]
            change = float(changes.max())
            if math.isnan(worst[0]) or change > worst[0]:
                worst = (
                    change,
                    f"{attack} at {_budget(str(norm), float(eps))}: {base['steps']} steps x "
                    f"{base['restarts']} restarts leave {_pct(base['accuracy'])}, {other['steps']} x "
                    f"{other['restarts']} {_pct(other['accuracy'])}",
                )
        change, where = worst
        passes = change <= tolerance
        meaning = f"{where}" + (
            ""
            if passes
            else "; the attack had not converged at its own setting, so its accuracy is an upper bound at best"
        )
        return change, bool(passes), meaning + f" (change {100 * change:.1f} points, tolerance {100 * tolerance:.1f})"

    return _check_rows(table, "d_steps_and_restarts", one, "attack run with more than one setting of steps/restarts")


def monotone_in_budget(table: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Check (e): an attack's accuracy does not rise with its budget (a larger ball holds the smaller one).

    Returns:
        One row per model: ``value`` the largest rise from one budget to the next larger one of the same attack,
        norm and setting (0 when accuracy never rises), passing when at most ``tolerance``.
    """

    def one(model: str, group: pd.DataFrame) -> tuple[float, bool, str]:
        worst = (math.nan, "")
        for (attack, norm, _, _), rows in group.groupby(["attack", "norm", "steps", "restarts"], sort=False):
            if rows["eps"].nunique() < 2:
                continue
            rows = rows.sort_values("eps")
            rises = rows["accuracy"].diff().iloc[1:]
            k = int(np.argmax(rises.to_numpy()))
            rise = max(float(rises.iloc[k]), 0.0)
            if math.isnan(worst[0]) or rise > worst[0]:
                lo, hi = rows.iloc[k], rows.iloc[k + 1]
                worst = (
                    rise,
                    f"{attack} leaves {_pct(lo['accuracy'])} at {_budget(str(norm), float(lo['eps']))} and "
                    f"{_pct(hi['accuracy'])} at {_budget(str(norm), float(hi['eps']))}",
                )
        rise, where = worst
        passes = rise <= tolerance
        meaning = (
            f"accuracy does not rise with the budget (largest rise {100 * rise:.1f} points)"
            if passes
            else f"{where}: more room to attack and fewer images fooled; the attack loses its way as the budget "
            "grows (masking suspected)"
        )
        return rise, bool(passes), meaning + f" (tolerance {100 * tolerance:.1f})"

    return _check_rows(table, "e_monotone_in_budget", one, "attack run at two or more budgets")


def masking_checks(
    table: pd.DataFrame,
    constant_accuracy: float,
    tolerance: float = TOLERANCE,
    large: tuple[str, float] = ("linf", LARGE_EPS),
    unbounded_budget: tuple[str, float] = ("linf", UNBOUNDED_EPS),
) -> pd.DataFrame:
    """Every check, (a) to (e), on every model of ``table``.

    Args:
        table: the accuracy table (:data:`ACCURACY_COLUMNS`).
        constant_accuracy: the constant classifier's accuracy for check (a) (see :func:`large_budget`).
        tolerance: the tolerance of checks (b) to (e).
        large, unbounded_budget: (norm, eps) of check (a)'s two budgets.

    Returns:
        The rows of all checks (:data:`CHECK_COLUMNS`), model by model in the table's order, checks in order.
    """
    parts = [
        large_budget(table, constant_accuracy, *large),
        unbounded(table, *unbounded_budget),
        iterative_vs_one_step(table, tolerance),
        white_box_vs_black_box(table, tolerance),
        steps_and_restarts(table, tolerance),
        monotone_in_budget(table, tolerance),
    ]
    out = pd.concat(parts, ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}
    return out.sort_values("model", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def masking_suspected(checks: pd.DataFrame) -> pd.DataFrame:
    """Which models failed a check: the flag that every effect reading their robustness carries.

    Returns:
        One row per model: ``masking_suspected`` (bool: any check failed) and ``failed_checks`` (their names joined
        by ``+``, empty when none).
    """
    missing = [c for c in CHECK_COLUMNS if c not in checks.columns]
    if missing:
        raise DataError(f"the checks table lacks the column(s) {missing}; expected {list(CHECK_COLUMNS)}.")
    rows = [
        {
            "model": model,
            "masking_suspected": bool((~group["passes"].astype(bool)).any()),
            "failed_checks": "+".join(group.loc[~group["passes"].astype(bool), "check"]),
        }
        for model, group in checks.groupby("model", sort=False)
    ]
    return pd.DataFrame(rows, columns=["model", "masking_suspected", "failed_checks"])
