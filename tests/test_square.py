"""The Square attack on hand-built models whose adversarial examples are known, and its conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _hand_models import Quantised, halves_images, halves_model, halves_weight, single_thread  # noqa: F401 (a fixture)
from medadv import ConfigError, DataError
from medadv.attacks import pgd, predict, square
from medadv.attacks.square import (
    P_HALVINGS,
    _bump,
    _linf_candidate,
    _linf_start,
    _pattern,
    square_fraction,
    square_side,
)
from torch import nn

pytestmark = pytest.mark.usefixtures("single_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sizes(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("norm,eps,needed", [("linf", 8 / 255, 0.8), ("l2", 0.5, 0.25)])
def test_square_finds_the_known_adversarial_example_within_its_budget(norm, eps, needed):
    """The halves model is fooled exactly when ``w . delta`` reaches the image's margin; the best reachable is
    ``eps * 256`` (L-inf) or ``eps * 16`` (L2). Images that need ``needed`` of that are fooled, images that need 105%
    cannot be, and use the whole budget."""
    model = halves_model()
    best = eps * 256 if norm == "linf" else eps * 16
    y = torch.tensor([0, 1] * 4)
    contrast = torch.tensor([needed, needed, needed, needed, 1.05, 1.05, 1.05, 1.05]) * best / 128
    x = halves_images(contrast, y)  # no noise: the margin is exactly 128 * contrast
    assert torch.equal(predict(model, x), y)
    result = square(model, x, y, eps, queries=300, norm=norm, generator=_gen())
    fooled = predict(model, result.images) != y
    assert fooled.tolist() == [True] * 4 + [False] * 4
    assert (result.queries[:4] < 300).all() and (result.queries[4:] == 300).all()
    w = halves_weight()
    gain = ((result.images - x).flatten(1) @ w) * (1 - 2 * y.float())  # how far along the known direction
    assert (gain[:4] >= needed * best * 0.999).all()
    assert float(_sizes(result.images - x, norm).max()) <= eps + 1e-5
    assert float(result.images.min()) >= 0.0 and float(result.images.max()) <= 1.0


@pytest.mark.parametrize(
    "norm,eps,shape",
    [("linf", 16 / 255, (12, 12)), ("l2", 1.0, (12, 12)), ("linf", 16 / 255, (17, 9)), ("l2", 1.0, (17, 9))],
)
def test_square_never_leaves_the_ball_or_the_unit_range(norm, eps, shape):
    """A random convolutional model on images (square or not) that touch 0 and 1, where candidates are clipped."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(3), nn.Flatten(), nn.Linear(36, 2))
    gen = _gen(1)
    x = (torch.rand(16, 1, *shape, generator=gen) * 1.6 - 0.3).clamp(0, 1)  # a third of the pixels at 0 or 1
    y = torch.randint(0, 2, (16,), generator=gen)
    result = square(model, x, y, eps, queries=60, norm=norm, generator=_gen())
    assert float(_sizes(result.images - x, norm).max()) <= eps + 1e-5
    assert float(result.images.min()) >= 0.0 and float(result.images.max()) <= 1.0
    assert ((result.queries >= 1) & (result.queries <= 60)).all()
    assert result.queries.dtype == torch.long and result.images.shape == x.shape


class NoGradient(torch.autograd.Function):
    """The identity, whose backward pass refuses to run."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        raise AssertionError("a gradient was asked for")


class Guarded(nn.Module):
    """A model that counts the images it is shown and cannot be differentiated."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.seen = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return self.model(NoGradient.apply(x))


def test_square_reads_only_outputs_and_counts_every_query():
    model = Guarded(Quantised(halves_model(), levels=32))
    y = torch.tensor([0, 1] * 8)
    x = halves_images(torch.full((16,), 0.03), y, noise=0.1)
    eps = 8 / 255  # one quantisation level (1/32) and a little more: every pixel can move a level
    with pytest.raises(AssertionError, match="gradient"):
        pgd(model, x, y, eps, eps / 4, 5, generator=_gen())
    model.seen = 0
    result = square(model, x, y, eps, queries=200, generator=_gen())
    assert model.seen == int(result.queries.sum())  # no forward pass that the counts leave out
    assert bool((predict(model, result.images) != y).all())


def test_square_stops_querying_an_image_once_it_is_fooled():
    model = halves_model()
    y = torch.tensor([0, 1, 0, 1])
    x = halves_images(torch.tensor([0.001, 0.001, 0.5, 0.5]), y)  # two easy images, two out of reach
    result = square(model, x, y, 8 / 255, queries=100, generator=_gen())
    assert result.queries[:2].tolist() == [1, 1]  # fooled by the start (the stripes)
    assert result.queries[2:].tolist() == [100, 100]


def test_square_is_deterministic_given_its_generator_and_restores_training_flags():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 2))
    model.train()
    model[1].eval()  # a submodule's own flag must come back too
    x = torch.rand(8, 1, 12, 12, generator=_gen(1))
    y = torch.randint(0, 2, (8,), generator=_gen(2))
    first = square(model, x, y, 8 / 255, queries=40, norm="l2", generator=_gen(3))
    again = square(model, x, y, 8 / 255, queries=40, norm="l2", generator=_gen(3))
    other = square(model, x, y, 8 / 255, queries=40, norm="l2", generator=_gen(4))
    assert torch.equal(first.images, again.images) and torch.equal(first.queries, again.queries)
    assert not torch.equal(first.images, other.images)
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True]


def test_every_l_inf_candidate_changes_the_image():
    """The reference never spends a query on a square that leaves the image as it is: with one grey channel and a
    one-pixel square already at the drawn sign (half the draws), the other sign is taken."""
    gen = _gen(0)
    x = torch.rand(200, 1, 8, 8, generator=gen)
    best = _linf_start(x, 0.05, gen)
    for side in (1, 3):
        candidate = _linf_candidate(x, best, 0.05, side, gen)
        changed = (candidate - best).abs().flatten(1).amax(dim=1) > 1e-7
        assert bool(changed.all())
        assert float((candidate - x).abs().max()) <= 0.05 + 1e-7


def test_eps_zero_returns_the_images_and_spends_no_query():
    model = halves_model()
    x = halves_images(torch.tensor([0.1, 0.1]), torch.tensor([0, 1]))
    result = square(model, x, torch.tensor([0, 1]), 0.0)
    assert torch.equal(result.images, x) and result.queries.tolist() == [0, 0]


def test_the_square_size_follows_the_reference_schedule():
    # 10000 queries: p_init up to 10, then halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000
    assert P_HALVINGS == (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
    expected = {0: 1, 10: 1, 11: 2, 50: 2, 51: 4, 200: 4, 201: 8, 1000: 16, 1001: 32, 8000: 256, 8001: 512, 9999: 512}
    for iteration, divisor in expected.items():
        assert square_fraction(0.8, iteration, 10000) == pytest.approx(0.8 / divisor)
    # scaled to the budget: with 1000 queries, iteration 1 stands for query 10 and iteration 2 for 20
    assert square_fraction(0.8, 1, 1000) == 0.8 and square_fraction(0.8, 2, 1000) == 0.4
    assert square_fraction(0.05, 4999, 5000) == pytest.approx(0.05 / 512)
    assert square_side(0.8, 96, 96, "linf") == 86  # round(sqrt(0.8 * 96 * 96))
    assert square_side(1e-6, 96, 96, "linf") == 1
    assert square_side(1.0, 16, 16, "linf") == 15  # at most min(H, W) - 1
    assert square_side(0.05, 96, 96, "l2") == 21  # round(21.5) = 21, odd
    assert square_side(0.04, 96, 96, "l2") == 19  # round(19.2) = 19
    assert square_side(0.045, 96, 96, "l2") == 21  # round(20.4) = 20, made odd
    assert square_side(1e-6, 96, 96, "l2") == 3
    assert square_side(1.0, 20, 12, "l2") == 11  # at most the shorter side, odd


def test_the_l2_window_is_the_papers_pair_of_bumps():
    # one row of three: rectangles of half-size 0 and 1 around the centre, weighted 1 and 1/4
    assert np.allclose(_bump(1, 3), np.array([[0.25, 1.25, 0.25]]) / math.sqrt(1.6875))
    bump = _bump(5, 5)
    assert float(bump[2, 2]) == pytest.approx(float(bump.max())) and float(np.linalg.norm(bump)) == pytest.approx(1.0)
    # 1 + 1/4 + 1/9 at the centre, 1/9 in a corner: Chebyshev distance 2
    assert float(bump[2, 2] / bump[0, 0]) == pytest.approx((1 + 1 / 4 + 1 / 9) / (1 / 9))
    pattern = _pattern(6)
    assert pattern.dtype == torch.float32 and float(pattern.norm()) == pytest.approx(1.0)
    assert bool((pattern[:3] > 0).all()) and bool((pattern[3:] < 0).all())


def test_bad_inputs_are_named():
    model = halves_model()
    x = halves_images(torch.tensor([0.1, 0.1]), torch.tensor([0, 1]))
    y = torch.tensor([0, 1])
    cases = [
        (DataError, "expected a float tensor", dict(x=x[0], y=y)),
        (DataError, r"\[0, 1\]", dict(x=x * 2, y=y)),
        (DataError, "at least 5 x 5", dict(x=x[:, :, :4, :4], y=y)),
        (DataError, "integer labels", dict(x=x, y=y.float())),
        (DataError, "integer labels", dict(x=x, y=y[:1])),
        (ConfigError, "eps is -0.1", dict(x=x, y=y, eps=-0.1)),
        (ConfigError, "norm is 'l1'", dict(x=x, y=y, norm="l1")),
        (ConfigError, "queries is 0", dict(x=x, y=y, queries=0)),
        (ConfigError, "p_init is 0", dict(x=x, y=y, p_init=0.0)),
    ]
    for error, message, kwargs in cases:
        kwargs = {"eps": 0.1, **kwargs}
        with pytest.raises(error, match=message):
            square(model, **kwargs)
