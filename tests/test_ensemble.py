"""The attack registry and notebook 03's evaluation over it: the worst case per image and the masking checks, on
hand-built models whose adversarial examples are known (tests/_hand_models.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from _hand_models import Quantised, halves_images, halves_model, halves_weight, single_thread  # noqa: F401
from medadv import ConfigError
from medadv.attacks.catalogue import ATTACKS, RegisteredAttack, register, registered
from medadv.attacks.ensemble import CHECK_ATTACK, TRANSFER_PREFIX, check_images, credit_order, evaluate_models
from medadv.attacks.masking import FAMILIES
from medadv.attacks.robustness import AttackConfig
from medadv.attacks.worst_case import FOOLED_PREFIX
from medadv.config import load_profile, profile_from_dict
from medadv.pipeline import check_profile

E2, E8 = 2 / 255, 8 / 255
CPU = torch.device("cpu")
CONFIG = AttackConfig(
    linf_eps=(E2, E8),
    l2_eps=(0.5,),
    steps=10,
    headline_linf_eps=E8,
    headline_l2_eps=0.5,
    apgd_steps=5,
    ifgsm_steps=3,
    corruptions=("contrast",),
    severities=(1,),
    batch_size=64,
    square_queries=300,
    black_box_budgets="headline",
    transfer_from=("surrogate",),
    check_images=16,
    check_steps=20,
    check_restarts=2,
)


def test_every_registered_attack_has_a_masking_family_and_builds_from_the_section():
    assert list(ATTACKS)[:6] == ["fgsm", "pgd", "apgd_ce", "apgd_margin", "ifgsm", "ifgsm_extra"]  # the kit's order
    assert {"square", "transfer"} <= set(ATTACKS)
    for attack in ATTACKS.values():
        assert attack.family in FAMILIES and attack.family != "ensemble", attack.name
        assert attack.norms and all(attack.budgets(CONFIG, norm) for norm in attack.norms), attack.name
        assert (attack.build is None) == attack.on_surrogate, attack.name
        steps, restarts = attack.setting(CONFIG)
        assert steps >= 1 and restarts >= 1
    assert registered("square").budgets(CONFIG, "linf") == (E8,)  # headline only
    assert registered("square").budgets(dataclasses.replace(CONFIG, black_box_budgets="all"), "linf") == (E2, E8)
    assert credit_order(CONFIG)[-2:] == ["square", TRANSFER_PREFIX + "surrogate"]


def test_the_profile_check_names_the_registered_attacks():
    with pytest.raises(ConfigError, match=r"attacks.ensemble names attack 'cw'.*registered attacks: \['fgsm', 'pgd'"):
        dataclasses.replace(CONFIG, ensemble=("fgsm", "pgd", "cw", "square"))
    with pytest.raises(ConfigError, match="'apgd_margin' but not 'apgd_ce', which it runs after"):
        dataclasses.replace(CONFIG, ensemble=("fgsm", "pgd", "apgd_margin", "square"))
    with pytest.raises(ConfigError, match="need \\['fgsm', 'pgd'\\] and at least one of \\['square', 'transfer'\\]"):
        dataclasses.replace(CONFIG, ensemble=("fgsm", "pgd", "apgd_ce"))
    with pytest.raises(ConfigError, match="black_box_budgets is 'some'"):
        dataclasses.replace(CONFIG, black_box_budgets="some")
    with pytest.raises(ConfigError, match="check_steps x check_restarts = 10 is not more than steps x restarts = 10"):
        dataclasses.replace(CONFIG, check_steps=10, check_restarts=1)
    with pytest.raises(ConfigError, match="registered already"):
        register(dataclasses.replace(registered("pgd")))
    with pytest.raises(ConfigError, match="runs after 'nothing'"):
        register(
            RegisteredAttack(
                "new",
                "iterative",
                "",
                ("linf",),
                lambda c, n: (E2,),
                lambda c, n, e: None,
                lambda c: (1, 1),
                after="nothing",
            )
        )
    assert "new" not in ATTACKS


def test_check_images_take_half_of_each_class_in_test_order():
    labels = np.array([0, 0, 1, 0, 1, 0, 0])
    assert check_images(labels, 4).tolist() == [0, 1, 2, 4]
    assert check_images(labels, 6).tolist() == [0, 1, 2, 3, 4, 5]  # two positives only: negatives fill up


@pytest.fixture(scope="module")
def evaluated(single_thread: None) -> tuple:  # noqa: F811
    y = torch.arange(48) % 2
    x = halves_images(torch.linspace(0.01, 0.06, 48), y, noise=0.1, seed=5)
    surrogate = halves_model(
        weight=halves_weight() + 0.5 * torch.randn(256, generator=torch.Generator().manual_seed(3))
    )
    models = {
        "plain": (halves_model(), "erm"),
        "masked": (Quantised(halves_model(), levels=32), "erm"),
        "surrogate": (surrogate, "erm"),
    }
    return evaluate_models(models, x, y, CONFIG, CPU, seed=0), x, y


def test_a_masking_model_is_found_out_by_square_and_transfer_and_flagged(evaluated: tuple):
    result, _, _ = evaluated
    curves = result.curves[np.isclose(result.curves["eps"], E8) & (result.curves["norm"] == "linf")]
    own = curves.set_index(["model", "attack"])["accuracy"]
    assert own["masked", "pgd"] == 1.0  # zero gradients: PGD goes nowhere
    assert own["masked", "square"] < 0.5 and own["masked", TRANSFER_PREFIX + "surrogate"] < 0.5
    worst = result.worst_case.set_index(["model", "norm", "eps"])
    masked = worst.loc["masked", "linf", E8]
    assert masked["worst_case_accuracy"] <= min(own["masked", "square"], own["masked", TRANSFER_PREFIX + "surrogate"])
    assert masked[FOOLED_PREFIX + "square"] + masked[FOOLED_PREFIX + TRANSFER_PREFIX + "surrogate"] > 0.5
    assert masked[FOOLED_PREFIX + "pgd"] == 0.0
    verdicts = result.sanity.set_index(["model", "check"])["passes"]
    assert not verdicts["masked", "c_white_box_vs_black_box"]
    assert verdicts["plain"].all(), result.sanity[result.sanity["model"] == "plain"].to_string()
    assert set(result.sanity["check"]) == {
        "a_large_budget",
        "a_unbounded",
        "b_iterative_vs_one_step",
        "c_white_box_vs_black_box",
        "d_steps_and_restarts",
        "e_monotone_in_budget",
    }


def test_square_attacks_only_what_every_white_box_attack_left_standing(evaluated: tuple):
    """AutoAttack's order: Square's row is the worst case over the white-box attacks and Square at its budget."""
    result, _, _ = evaluated
    curves = result.curves
    for (model, norm, eps), rows in curves[curves["attack"] != "clean"].groupby(["model", "norm", "eps"]):
        own = rows.set_index("attack")["accuracy"]
        if "square" not in own:
            continue
        white = own[[a for a in own.index if a in ("fgsm", "pgd", "apgd_ce", "apgd_margin")]]
        assert own["square"] <= white.min() + 1e-12, (model, norm, eps)
    plain = curves[(curves["model"] == "plain") & np.isclose(curves["eps"], E8) & (curves["norm"] == "linf")]
    own = plain.set_index("attack")["accuracy"]
    assert own["square"] == own["apgd_margin"]  # the gradients work: Square finds nothing they missed


def test_the_worst_case_is_never_above_an_attack_run_at_or_below_its_budget(evaluated: tuple):
    result, x, y = evaluated
    attacks = result.curves[result.curves["attack"] != "clean"]
    assert set(attacks["attack"]) <= set(ATTACKS) | {TRANSFER_PREFIX + "surrogate"}
    assert "surrogate" not in set(attacks.loc[attacks["attack"].str.startswith(TRANSFER_PREFIX), "model"])
    for row in result.worst_case.itertuples():
        mine = attacks[
            (attacks["model"] == row.model) & (attacks["norm"] == row.norm) & (attacks["eps"] <= row.eps + 1e-12)
        ]
        assert row.worst_case_accuracy <= mine["accuracy"].min() + 1e-12
        assert row.worst_case_balanced_accuracy == pytest.approx(
            (row.worst_case_sensitivity + row.worst_case_specificity) / 2
        )
        assert row.n_images == len(y)
    # Square ran at 8/255 only: it does not count at 2/255, and counts at 8/255
    at2 = result.worst_case[np.isclose(result.worst_case["eps"], E2)]
    assert at2[FOOLED_PREFIX + "square"].isna().all() and "square" not in at2["attacks"].iloc[0]
    # the large-budget checks ran on 16 images, half of each class: their accuracy moves in sixteenths
    checked = result.sanity.set_index(["model", "check"])["value"]
    assert (checked.xs("a_unbounded", level="check") * 16 % 1 == 0).all()
    assert CHECK_ATTACK not in set(result.curves["attack"])  # the checks' own runs stay out of the curves


def test_adding_the_black_box_attacks_keeps_the_gradient_attacks_numbers(single_thread: None):  # noqa: F811
    y = torch.arange(24) % 2
    x = halves_images(torch.linspace(0.01, 0.06, 24), y, noise=0.1, seed=2)
    models = {"plain": (halves_model(), "erm"), "surrogate": (halves_model(weight=0.5 + halves_weight()), "erm")}
    small = dataclasses.replace(
        CONFIG, square_queries=20, ensemble=("fgsm", "pgd", "apgd_ce", "apgd_margin", "ifgsm", "square")
    )
    both = dataclasses.replace(small, ensemble=(*small.ensemble, "transfer"))
    a, b = (evaluate_models(models, x, y, c, CPU, seed=4).curves for c in (small, both))
    pd.testing.assert_frame_equal(a, b[b["attack"].isin(set(a["attack"]))].reset_index(drop=True))
    assert len(b) == len(a) + 2  # the transfer attack at the two headline budgets, for plain only


def test_a_surrogate_the_classifier_section_does_not_train_is_refused_before_the_run() -> None:
    raw = load_profile("smoke").to_dict()
    raw["attacks"]["transfer_from"] = ["vgg_erm_seed2"]
    with pytest.raises(
        ConfigError,
        match=r"attacks.transfer_from \['vgg_erm_seed2'\] names classifier\(s\) "
        r"\['vgg_erm_seed2'\] that the classifier section does not train",
    ):
        check_profile(profile_from_dict(raw))
    raw["attacks"]["ensemble"] = ["fgsm", "pgd", "apgd_ce", "apgd_margin", "square"]  # no transfer: surrogates unread
    check_profile(profile_from_dict(raw))
