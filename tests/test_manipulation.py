"""Grad-CAM manipulation: softplus copy, differentiable Grad-CAM, budget and label conditions of the attack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medadv.errors import ConfigError, DataError
from medadv.explain.attribute import attribute
from medadv.explain.manipulation import (
    SmoothLeakyReLU,
    gradcam_maps,
    manipulate_gradcam,
    peak_position,
    softplus_copy,
    topk_region,
)
from medadv.models.classifier import VGGClassifier, VGGConfig
from torch import nn


@pytest.fixture(scope="module")
def model() -> VGGClassifier:
    torch.manual_seed(3)
    return VGGClassifier(VGGConfig(width=0.125, dropout=0.0, init="random")).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(4, 1, 96, 96, generator=torch.Generator().manual_seed(5)) * 0.8 + 0.1


def test_softplus_copy_replaces_every_rectifier_and_leaves_the_model(
    model: VGGClassifier, images: torch.Tensor
) -> None:
    smooth = softplus_copy(model, beta=200.0)  # Fnet's GroupNorms amplify a smaller beta's offsets
    kinds = {type(m) for m in smooth.modules()}
    assert nn.LeakyReLU not in kinds and nn.ReLU not in kinds and SmoothLeakyReLU in kinds
    assert any(isinstance(m, nn.LeakyReLU) for m in model.modules())
    with torch.no_grad():
        gap = (smooth(images) - model(images)).abs().max().item()
    assert gap < 0.05 * model(images).abs().max().item() + 1e-3
    relu_net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    assert isinstance(softplus_copy(relu_net, 5.0)[1], nn.Softplus)
    with pytest.raises(ConfigError):
        softplus_copy(model, beta=0.0)


def test_smooth_leaky_relu_limits() -> None:
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(SmoothLeakyReLU(0.2, 200.0)(x), nn.LeakyReLU(0.2)(x), atol=5e-3, rtol=0)


def test_differentiable_gradcam_matches_captum(model: VGGClassifier, images: torch.Tensor) -> None:
    target = torch.tensor([1, 0, 1, 1])
    ours, _ = gradcam_maps(model, model.features, images.clone().requires_grad_(True), target)
    captum = attribute(model, images, "gradcam", target=target)
    np.testing.assert_allclose(ours.detach().numpy(), captum, rtol=1e-4, atol=1e-7)


def _weight_gradient(net: nn.Module, x: torch.Tensor) -> float:
    """|d(sum of Grad-CAM channel weights)/dx|, summed: the second-derivative path the attack needs."""
    x = x.clone().requires_grad_(True)
    store = {}
    handle = net.features.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out))
    score = net(x)[:, 1].sum()
    handle.remove()
    (grads,) = torch.autograd.grad(score, store["a"], create_graph=True)
    if not grads.requires_grad:
        return 0.0
    (g,) = torch.autograd.grad(grads.mean(dim=(2, 3)).sum(), x, allow_unused=True)
    return 0.0 if g is None else float(g.abs().sum())


def test_second_derivative_exists_only_in_the_softplus_copy(model: VGGClassifier, images: torch.Tensor) -> None:
    # paper 001's Fnet has GroupNorms after the Grad-CAM layer, so the model itself has a second derivative too
    assert _weight_gradient(model, images) > 0.0
    assert _weight_gradient(softplus_copy(model, beta=10.0), images) > 0.0
    smooth = softplus_copy(model, beta=10.0)
    x = images.clone().requires_grad_(True)
    cam, _ = gradcam_maps(smooth, smooth.features, x, torch.ones(4, dtype=torch.long), create_graph=True)
    (grad,) = torch.autograd.grad(cam.sum(), x)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


@pytest.mark.parametrize("flip", [False, True])
def test_attack_respects_budget_box_and_label_rule(model: VGGClassifier, images: torch.Tensor, flip: bool) -> None:
    eps = 0.03
    with torch.no_grad():
        labels = model(images).argmax(1)
    before = attribute(model, images, "gradcam", target=labels)
    region = topk_region(before, 0.1)
    res = manipulate_gradcam(model, images, region, eps=eps, steps=6, flip_label=flip, batch_size=3)
    delta = (res.x_adv - images).abs().max().item()
    assert delta <= eps + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    torch.testing.assert_close(res.label_before, labels)
    changed = res.label_after != res.label_before
    assert torch.equal(changed[res.accepted], torch.full_like(changed[res.accepted], flip))
    after = attribute(model, res.x_adv, "gradcam", target=labels)
    share = lambda m: (m * region).sum(axis=(1, 2)) / np.maximum(m.sum(axis=(1, 2)), 1e-12)  # noqa: E731
    if not flip:
        assert changed.sum() == 0  # an image with no accepted step keeps the original
        assert (share(after) <= share(before) + 1e-6).all()
        assert res.accepted.any() and (share(after) < share(before) - 1e-3).any()


def test_attack_input_checks(model: VGGClassifier, images: torch.Tensor) -> None:
    region = np.zeros((4, 96, 96), bool)
    with pytest.raises(ConfigError):
        manipulate_gradcam(model, images, region, eps=0.0, steps=3)
    with pytest.raises(DataError, match="region"):
        manipulate_gradcam(model, images, region[:2], eps=0.01, steps=3)


def test_topk_region_and_peak_position() -> None:
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 2] = 5.0
    maps[0, 3, 3] = 4.0
    maps[1, 0, 0] = maps[1, 2, 2] = 1.0  # tied peaks -> centroid (1, 1)
    region = topk_region(maps, 2 / 16)
    assert region[0].sum() == 2 and region[0, 1, 2] and region[0, 3, 3]
    np.testing.assert_allclose(peak_position(maps), [[1, 2], [1, 1]])
    with pytest.raises(ConfigError):
        topk_region(maps, 0.0)
