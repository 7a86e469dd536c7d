"""Transfer attacks: PGD crafted on a surrogate, scored on the targets."""

from __future__ import annotations

import pytest
import torch
from _hand_models import Quantised, halves_images, halves_model, halves_weight, single_thread  # noqa: F401 (a fixture)
from medadv import ConfigError
from medadv.attacks import margin_loss, pgd, predict
from medadv.attacks.transfer import transfer_pgd

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(40) % 2
    return halves_images(torch.linspace(0.01, 0.12, 40), y, noise=0.1, seed=5), y


def test_transfer_images_come_from_the_surrogate_and_each_target_is_scored_on_them(images):
    x, y = images
    surrogate = halves_model(
        weight=halves_weight() + 0.5 * torch.randn(256, generator=torch.Generator().manual_seed(3))
    )
    targets = {"plain": halves_model(), "masked": Quantised(halves_model(), levels=32)}
    eps = 8 / 255
    result = transfer_pgd(surrogate, targets, x, y, eps, steps=10, batch_size=16, seed=1)
    assert result.images.shape == x.shape
    assert float((result.images - x).abs().max()) <= eps + 1e-6
    for name, model in targets.items():
        assert torch.equal(result.correct[name], predict(model, result.images) == y)
    assert torch.equal(result.surrogate_correct, predict(surrogate, result.images) == y)
    assert float(result.surrogate_correct.float().mean()) < 0.7  # the surrogate itself was attacked
    # the zero-gradient model, which PGD cannot touch, falls to images made on another model
    assert float(result.correct["masked"].float().mean()) < 0.8
    again = transfer_pgd(surrogate, {"plain": targets["plain"]}, x, y, eps, steps=10, batch_size=16, seed=1)
    assert torch.equal(again.images, result.images)  # seeded, and independent of the targets


def test_the_surrogate_as_its_own_target_is_white_box_pgd(images):
    x, y = images
    model = halves_model()
    eps = 4 / 255
    result = transfer_pgd(model, {"self": model}, x, y, eps, steps=10, step_ratio=2.5, batch_size=len(x), seed=7)
    expected = pgd(
        model, x, y, eps, 2.5 * eps / 10, 10, loss_fn=margin_loss, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(result.images, expected)


def test_bad_arguments_are_named(images):
    x, y = images
    with pytest.raises(ConfigError, match="targets is empty"):
        transfer_pgd(halves_model(), {}, x, y, 0.01)
    with pytest.raises(ConfigError, match="batch_size 0"):
        transfer_pgd(halves_model(), {"m": halves_model()}, x, y, 0.01, batch_size=0)
