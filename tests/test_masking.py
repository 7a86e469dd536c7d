"""The masking checks: each verdict on hand-made accuracy tables, then on real attacks against a plain model and a
model built to mask its gradients (a quantising input layer, whose gradient is zero)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from _hand_models import Quantised, halves_images, halves_model, halves_weight, single_thread  # noqa: F401 (a fixture)
from medadv import DataError
from medadv.attacks import fgsm, pgd, predict, square
from medadv.attacks.masking import (
    ACCURACY_COLUMNS,
    CHECK_COLUMNS,
    iterative_vs_one_step,
    large_budget,
    masking_checks,
    masking_suspected,
    monotone_in_budget,
    steps_and_restarts,
    unbounded,
    white_box_vs_black_box,
)
from medadv.attacks.transfer import transfer_pgd

E2, E8, E64 = 2 / 255, 8 / 255, 64 / 255

pytestmark = pytest.mark.usefixtures("single_thread")


def _rows(*rows: tuple) -> pd.DataFrame:
    """Rows of (model, attack, family, norm, eps, steps, restarts, accuracy)."""
    return pd.DataFrame(rows, columns=list(ACCURACY_COLUMNS))


def _verdict(checks: pd.DataFrame, model: str = "m") -> tuple[float, bool]:
    row = checks[checks["model"] == model].iloc[0]
    return float(row["value"]), bool(row["passes"])


def test_check_a_large_budget_and_unbounded():
    table = _rows(
        ("m", "pgd", "iterative", "linf", E64, 20, 1, 0.10),
        ("m", "square", "score_based", "linf", E64, 100, 1, 0.05),
        ("n", "pgd", "iterative", "linf", E64, 20, 1, 0.75),
        ("m", "pgd", "iterative", "linf", 1.0, 20, 1, 0.0),
        ("n", "pgd", "iterative", "linf", 1.0, 20, 1, 0.02),
    )
    checks = large_budget(table, constant_accuracy=0.7)
    assert _verdict(checks, "m") == (0.05, True)  # the strongest attack counts
    assert _verdict(checks, "n") == (0.75, False)
    assert "square" in checks.iloc[0]["meaning"] and "64/255" in checks.iloc[0]["meaning"]
    assert "masking suspected" in checks.iloc[1]["meaning"]
    checks = unbounded(table)
    assert _verdict(checks, "m") == (0.0, True) and _verdict(checks, "n") == (0.02, False)
    with pytest.raises(DataError, match="check a_large_budget: model 'm' has no rows at L-inf 64/255"):
        large_budget(table[table["eps"] != E64], 0.7)


def test_check_b_iterative_vs_one_step():
    table = _rows(
        ("m", "fgsm", "one_step", "linf", E2, 1, 1, 0.40),
        ("m", "pgd", "iterative", "linf", E2, 20, 1, 0.30),
        ("m", "fgsm", "one_step", "linf", E8, 1, 1, 0.20),
        ("m", "pgd", "iterative", "linf", E8, 20, 1, 0.21),
        ("n", "fgsm", "one_step", "linf", E2, 1, 1, 0.20),
        ("n", "pgd", "iterative", "linf", E2, 20, 1, 0.50),
    )
    checks = iterative_vs_one_step(table)
    assert _verdict(checks, "m") == pytest.approx((0.01, True))  # within the 2-point tolerance
    assert _verdict(checks, "n") == pytest.approx((0.30, False))
    assert "fgsm 20.0%" in checks.iloc[1]["meaning"]
    assert not iterative_vs_one_step(table, tolerance=0.0).iloc[0]["passes"]


def test_check_c_white_box_vs_black_box():
    table = _rows(
        ("m", "pgd", "iterative", "linf", E2, 20, 1, 0.30),
        ("m", "square", "score_based", "linf", E2, 100, 1, 0.35),
        ("m", "transfer", "transfer", "linf", E2, 20, 1, 0.60),
        ("n", "pgd", "iterative", "linf", E2, 20, 1, 0.54),
        ("n", "apgd", "iterative", "linf", E2, 50, 1, 0.50),
        ("n", "square", "score_based", "linf", E2, 100, 1, 0.12),
        ("n", "worst_case", "ensemble", "linf", E2, 0, 1, 0.10),
    )
    checks = white_box_vs_black_box(table)
    assert _verdict(checks, "m") == pytest.approx((-0.05, True))
    assert _verdict(checks, "n") == pytest.approx((0.38, False))  # apgd's 50% against square's 12%
    assert "gradient masking" in checks.iloc[1]["meaning"]
    with pytest.raises(DataError, match="no budget with both a white-box and a black-box attack"):
        white_box_vs_black_box(table[table["family"] != "score_based"])


def test_check_d_steps_and_restarts():
    table = _rows(
        ("m", "pgd", "iterative", "linf", E2, 20, 1, 0.30),
        ("m", "pgd", "iterative", "linf", E2, 100, 5, 0.29),
        ("n", "pgd", "iterative", "linf", E2, 20, 1, 0.30),
        ("n", "pgd", "iterative", "linf", E2, 100, 1, 0.22),
        ("n", "pgd", "iterative", "linf", E2, 20, 5, 0.27),
    )
    checks = steps_and_restarts(table)
    assert _verdict(checks, "m") == pytest.approx((0.01, True))
    assert _verdict(checks, "n") == pytest.approx((0.08, False))
    assert "20 steps x 1 restarts leave 30.0%, 100 x 1 22.0%" in checks.iloc[1]["meaning"]


def test_check_e_monotone_in_budget():
    table = _rows(
        ("m", "pgd", "iterative", "linf", E2, 20, 1, 0.30),
        ("m", "pgd", "iterative", "linf", E8, 20, 1, 0.10),
        ("m", "pgd", "iterative", "l2", 0.5, 20, 1, 0.20),
        ("m", "pgd", "iterative", "l2", 1.0, 20, 1, 0.21),
        ("n", "pgd", "iterative", "linf", E2, 20, 1, 0.30),
        ("n", "pgd", "iterative", "linf", E8, 20, 1, 0.45),
    )
    checks = monotone_in_budget(table)
    assert _verdict(checks, "m") == pytest.approx((0.01, True))
    assert _verdict(checks, "n") == pytest.approx((0.15, False))
    assert "30.0% at L-inf 2/255 and 45.0% at L-inf 8/255" in checks.iloc[1]["meaning"]


def test_bad_accuracy_tables_are_named():
    table = _rows(("m", "pgd", "iterative", "linf", E2, 20, 1, 0.3))
    with pytest.raises(DataError, match="lacks the column"):
        monotone_in_budget(table.drop(columns="family"))
    with pytest.raises(DataError, match="family \\['whitebox'\\]"):
        monotone_in_budget(table.assign(family="whitebox"))
    with pytest.raises(DataError, match="outside \\[0, 1\\]"):
        monotone_in_budget(table.assign(accuracy=30.0))
    with pytest.raises(DataError, match="repeats"):
        monotone_in_budget(pd.concat([table, table]))


# ---- the checks on real attacks ----------------------------------------------------------------------------------
def _robust(model: torch.nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    """AutoAttack's count: right unattacked and right on the attacked image."""
    return float(((predict(model, x) == y) & (predict(model, x_adv) == y)).float().mean())


def _accuracy_table(models: dict, x: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    """FGSM, PGD at two settings, Square and a transfer attack at four budgets, plus the unbounded one."""
    surrogate = halves_model(
        weight=halves_weight() + 0.5 * torch.randn(256, generator=torch.Generator().manual_seed(3))
    )
    rows = []
    for eps in (E2, 4 / 255, E8, E64, 1.0):
        transfer = transfer_pgd(surrogate, models, x, y, eps, steps=10, batch_size=32, seed=1)
        for name, model in models.items():
            gen = torch.Generator().manual_seed(0)
            attacks = {
                ("fgsm", "one_step", 1, 1): fgsm(model, x, y, eps),
                ("pgd", "iterative", 10, 1): pgd(model, x, y, eps, eps / 4, 10, generator=gen),
                ("pgd", "iterative", 40, 2): pgd(model, x, y, eps, eps / 16, 40, restarts=2, generator=gen),
                ("square", "score_based", 300, 1): square(model, x, y, eps, queries=300, generator=gen).images,
            }
            for (attack, family, steps, restarts), x_adv in attacks.items():
                rows.append((name, attack, family, "linf", eps, steps, restarts, _robust(model, x_adv, x, y)))
            rows.append(
                (
                    name,
                    "transfer",
                    "transfer",
                    "linf",
                    eps,
                    10,
                    1,
                    float(((predict(model, x) == y) & transfer.correct[name]).float().mean()),
                )
            )
    return _rows(*rows)


def test_a_gradient_masking_model_fails_check_c_and_a_plain_model_passes_every_check():
    y = torch.arange(64) % 2
    x = halves_images(torch.linspace(0.01, 0.12, 64), y, noise=0.1, seed=5)
    plain, masked = halves_model(), Quantised(halves_model(), levels=32)
    assert torch.equal(predict(plain, x), y) and torch.equal(predict(masked, x), y)
    table = _accuracy_table({"plain": plain, "masked": masked}, x, y)
    at8 = table[(table["eps"] == E8)].set_index(["model", "attack", "steps"])["accuracy"]
    assert at8["masked", "pgd", 10] == 1.0  # zero gradients: PGD goes nowhere
    assert at8["masked", "square", 300] < 0.6  # Square reads the outputs and gets through
    checks = masking_checks(table, constant_accuracy=0.5)
    assert list(checks.columns) == list(CHECK_COLUMNS)
    verdicts = checks.set_index(["model", "check"])["passes"]
    assert verdicts["plain"].all(), checks[checks["model"] == "plain"].to_string()
    assert not verdicts["masked", "c_white_box_vs_black_box"]
    flags = masking_suspected(checks).set_index("model")
    assert not flags.loc["plain", "masking_suspected"] and flags.loc["plain", "failed_checks"] == ""
    assert flags.loc["masked", "masking_suspected"]
    assert "c_white_box_vs_black_box" in flags.loc["masked", "failed_checks"].split("+")
