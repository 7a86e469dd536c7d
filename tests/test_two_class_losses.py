"""What AutoAttack's DLR loss and a targeted attack mean for two-logit classifiers (``margin_loss``'s docstring).

The claims: with two logits, cross-entropy is an increasing function of the margin; the attacks read a loss only
through its gradient's direction and its values' order, so any attack-independent rescaling of the margin gives the
same attack; the scale-invariant reading of DLR (``m / |m|``) has no gradient at all; a margin attack ignores the
logits' scale where cross-entropy's gradient underflows; and targeting the other class is the untargeted margin attack.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _hand_models import fitted_tanh_net, single_thread  # noqa: F401 (a fixture)
from medadv.attacks import apgd, margin_loss, pgd, predict
from torch import nn

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def fitted() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return fitted_tanh_net()


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


class Scaled(nn.Module):
    """The same classifier with its logits multiplied by ``scale``: the same answers, steeper or flatter logits."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


def test_cross_entropy_is_softplus_of_the_margin_with_two_logits():
    gen = torch.Generator().manual_seed(0)
    logits = 10 * torch.randn(1000, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (1000,), generator=gen)
    margin = margin_loss(logits, y)
    softplus = torch.logaddexp(torch.zeros_like(margin), margin)  # log(1 + e^m), without F.softplus's cut at 20
    assert torch.allclose(F.cross_entropy(logits, y, reduction="none"), softplus, rtol=1e-12, atol=1e-12)


def test_an_attack_independent_rescaling_of_the_margin_is_the_same_attack(fitted):
    model, x, y = fitted
    with torch.no_grad():
        scale = margin_loss(model(x), y).abs() + 0.37  # per image, fixed before the attack (the clean |margin|)
    rescaled = lambda z, t: margin_loss(z, t) / scale  # noqa: E731
    eps = 8 / 255
    plain = pgd(model, x, y, eps, eps / 4, 10, loss_fn=margin_loss, generator=_gen())
    assert torch.equal(pgd(model, x, y, eps, eps / 4, 10, loss_fn=rescaled, generator=_gen()), plain)
    assert _accuracy(model, plain, y) < 0.9  # the attack does something
    plain_l2 = pgd(model, x, y, 0.5, 0.125, 10, norm="l2", loss_fn=margin_loss, generator=_gen())
    other_l2 = pgd(model, x, y, 0.5, 0.125, 10, norm="l2", loss_fn=rescaled, generator=_gen())
    assert torch.allclose(other_l2, plain_l2, atol=1e-5)  # unit-norm steps: equal up to rounding


def test_the_scale_invariant_two_logit_dlr_has_no_gradient(fitted):
    model, x, y = fitted
    dlr = lambda z, t: margin_loss(z, t) / (margin_loss(z, t).abs() + 1e-12)  # noqa: E731 (z_pi1 - z_pi2 = |m|)
    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    (grad,) = torch.autograd.grad(dlr(logits, y).sum(), xr)
    assert torch.equal(dlr(logits.detach(), y), -torch.ones(len(y)))  # every clean image: the same value
    assert torch.count_nonzero(grad) == 0
    x_dlr = pgd(model, x, y, 0.5, 0.125, 10, norm="l2", loss_fn=dlr, generator=_gen())
    x_margin = pgd(model, x, y, 0.5, 0.125, 10, norm="l2", loss_fn=margin_loss, generator=_gen())
    assert _accuracy(model, x_dlr, y) == 1.0  # only the random start moved
    assert _accuracy(model, x_margin, y) < 0.8


def test_the_margin_attack_ignores_the_logits_scale_where_cross_entropy_saturates(fitted):
    model, x, y = fitted
    steep = Scaled(model, 2.0**10)  # the same decisions; a power of two keeps the arithmetic exact
    eps = 8 / 255
    for attack in (
        lambda m, lf: pgd(m, x, y, eps, eps / 4, 10, loss_fn=lf, generator=_gen()),
        lambda m, lf: apgd(m, x, y, eps, steps=10, loss="margin" if lf else "ce", generator=_gen()),
    ):
        assert torch.equal(attack(steep, margin_loss), attack(model, margin_loss))
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(steep(xr), y, reduction="sum"), xr)
    assert torch.count_nonzero(grad) == 0  # the other class's probability underflows: no gradient to follow
    x_ce = pgd(steep, x, y, eps, eps / 4, 10, generator=_gen())
    x_margin = pgd(steep, x, y, eps, eps / 4, 10, loss_fn=margin_loss, generator=_gen())
    assert _accuracy(steep, x_ce, y) == 1.0
    assert _accuracy(steep, x_margin, y) < 0.9


def test_targeting_the_other_class_is_the_untargeted_margin_attack(fitted):
    model, x, y = fitted
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 2, generator=gen)
    labels = torch.randint(0, 2, (500,), generator=gen)

    def targeted_margin(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``z_t - max_{j != t} z_j``, to maximise (towards the target class)."""
        others = z.scatter(1, target[:, None], -torch.inf).max(dim=1).values
        return z.gather(1, target[:, None])[:, 0] - others

    assert torch.equal(targeted_margin(logits, 1 - labels), margin_loss(logits, labels))
    eps = 8 / 255
    towards_other = pgd(model, x, y, eps, eps / 4, 10, loss_fn=lambda z, t: targeted_margin(z, 1 - t), generator=_gen())
    assert torch.equal(towards_other, pgd(model, x, y, eps, eps / 4, 10, loss_fn=margin_loss, generator=_gen()))
