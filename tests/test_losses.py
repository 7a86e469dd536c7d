"""Paper 001's focal loss + gradient penalty (eqs. 1-3), Dice + BCE, and the TRADES / AugMix divergences."""

from __future__ import annotations

import math

import pytest
import torch
from medadv.errors import ConfigError
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.train.losses import (
    check_gp_at,
    cross_entropy_loss,
    dice_bce_loss,
    focal_gp_loss,
    focal_terms,
    jensen_shannon,
    kl_to_soft_targets,
)
from torch.nn import functional as F


def test_focal_terms_match_eq2_by_hand() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0], [0.3, 0.2]])
    y = torch.tensor([1, 1, 0])
    p = torch.softmax(logits, 1)[torch.arange(3), y]
    expected = -((1 - p) ** 2) * torch.log(p)
    assert torch.allclose(focal_terms(logits, y, gamma=2.0), expected)
    assert torch.allclose(focal_terms(logits, y, gamma=0.0).mean(), F.cross_entropy(logits, y))


def _model() -> VGGClassifier:
    torch.manual_seed(0)
    return VGGClassifier(VGGConfig(width=1 / 16, dropout=0.0, init="random")).eval()


def _by_hand(model: VGGClassifier, x: torch.Tensor, y: torch.Tensor, gp_at: str) -> float:
    """Eqs. 1-3 image by image: focal terms per class, k / (2N) x the sum of ||grad||^4 over the batch."""
    n, fl, gp_sum = 2, [0.0, 0.0], 0.0
    for j in range(len(y)):
        z = model.prepare(x[j : j + 1]).detach().requires_grad_(True)
        if gp_at == "image":  # the authors': d(sum of both logits) / d(normalised 3-channel image)
            out = model.classify(z)
            (g,) = torch.autograd.grad(out.sum(), z)
        else:  # the kit's earlier reading: d(positive log-odds) / d(Vnet(x))
            feats = model.features(z).detach().requires_grad_(True)
            out = model.head(feats)
            (g,) = torch.autograd.grad(out[0, 1] - out[0, 0], feats)
        p = torch.softmax(out, 1)[0, y[j]]
        fl[int(y[j])] += float((-((1 - p) ** 2) * torch.log(p)).detach()) / n
        gp_sum += float(g.norm()) ** 4
    return fl[1] + fl[0] + 10.0 / (2 * n) * gp_sum


@pytest.mark.parametrize("gp_at", ["image", "features"])
def test_focal_gp_loss_equals_eqs_1_to_3_computed_image_by_image(gp_at: str) -> None:
    model = _model()
    torch.manual_seed(1)
    x = torch.rand(4, 1, 96, 96)
    y = torch.tensor([1, 1, 0, 0])  # N = 2 positives (g_p) and 2 negatives (g_n)
    loss, logits = focal_gp_loss(model, x, y, gamma=2.0, k=10.0, power=4.0, gp_at=gp_at)
    assert math.isclose(float(loss.detach()), _by_hand(model, x, y, gp_at), rel_tol=1e-4)
    other = "features" if gp_at == "image" else "image"
    assert not math.isclose(float(loss.detach()), _by_hand(model, x, y, other), rel_tol=1e-3)
    assert logits.shape == (4, 2)
    with pytest.raises(ConfigError, match="gp_at"):
        focal_gp_loss(model, x, y, gp_at="pixels")


def test_no_penalty_is_the_focal_loss_alone_and_only_the_classifier_takes_it() -> None:
    model = _model()
    torch.manual_seed(1)
    x, y = torch.rand(4, 1, 96, 96), torch.tensor([1, 1, 0, 0])
    none, _ = focal_gp_loss(model, x, y, k=10.0, gp_at="none")
    zero, _ = focal_gp_loss(model, x, y, k=0.0, gp_at="image")
    image, _ = focal_gp_loss(model, x, y, k=10.0, gp_at="image")
    assert float(none.detach()) == pytest.approx(float(zero.detach())) and float(image.detach()) > float(none.detach())
    with pytest.raises(ConfigError, match="gp_at is 'none'"):
        check_gp_at("none")  # the GAN's discriminator keeps its penalty (eq. 6)


def test_image_gradient_is_the_grey_gradient_up_to_the_normalisation() -> None:
    """The kit takes the gradient at z = (x - mean_c) / std_c; at the grey x it is sum_c dL/dz_c / std_c."""
    from medadv.models.backbones import IMAGENET_STD

    model = _model()
    x = torch.rand(1, 1, 96, 96, requires_grad=True)
    z = model.prepare(x)
    (gz, gx) = torch.autograd.grad(model.classify(z).sum(), [z, x])
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(gx, (gz / std).sum(1, keepdim=True), atol=1e-6)


def test_image_gradient_penalty_trains_vnet() -> None:
    """At the image, the penalty reaches every layer between the image and the logits, Vnet's first one included
    (power 2: at random initialisation the image gradient's norm is about 1e-3, so its 4th power barely counts)."""
    model = _model()
    x, y = torch.rand(4, 1, 96, 96), torch.tensor([1, 0, 1, 0])
    grads = []
    for k in (0.0, 1e4):
        model.zero_grad()
        focal_gp_loss(model, x, y, k=k, power=2.0, gp_at="image")[0].backward()
        grads.append(model.features[0].weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_paper_loss_refuses_a_network_without_vnet_and_fnet() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with pytest.raises(ConfigError, match="features"):
        focal_gp_loss(net, torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))


def test_class_terms_average_over_each_class() -> None:
    """An unbalanced batch (a shard, a last batch) averages each class over its own count."""
    model = _model()
    x, y = torch.rand(3, 1, 96, 96), torch.tensor([1, 0, 0])
    loss, logits = focal_gp_loss(model, x, y, k=0.0)
    terms = focal_terms(logits, y)
    assert math.isclose(float(loss.detach()), float((terms[0] + terms[1:].mean()).detach()), rel_tol=1e-6)


def test_cross_entropy_loss() -> None:
    model = _model()
    x, y = torch.rand(2, 1, 96, 96), torch.tensor([1, 0])
    loss, logits = cross_entropy_loss(model, x, y)
    assert math.isclose(float(loss.detach()), float(F.cross_entropy(logits, y).detach()), rel_tol=1e-6)


def test_dice_bce_masks_out_images_without_annotation() -> None:
    masks = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, 2:5, 2:5] = True
    good = torch.where(masks, 20.0, -20.0)
    has = torch.tensor([True, True, False])
    assert float(dice_bce_loss(good, masks, has)) < 1e-6
    worse = good.clone()
    worse[2] = 20.0  # the unannotated image's prediction does not count
    assert torch.allclose(dice_bce_loss(worse, masks, has), dice_bce_loss(good, masks, has))
    flipped = -good
    assert float(dice_bce_loss(flipped, masks, has)) > 5.0
    none = dice_bce_loss(good.requires_grad_(True), masks, torch.zeros(3, dtype=torch.bool))
    assert float(none.detach()) == 0.0
    none.backward()


def test_dice_bce_by_hand() -> None:
    logits = torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]])
    mask = torch.tensor([[[[False, True], [False, True]]]])
    p = torch.sigmoid(logits).flatten()
    t = mask.float().flatten()
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    bce = F.binary_cross_entropy(p, t)
    assert torch.allclose(dice_bce_loss(logits, mask, torch.tensor([True])), dice + bce, atol=1e-6)


def test_divergences() -> None:
    logits = torch.tensor([[1.0, -1.0], [0.0, 3.0]])
    target = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
    logq = torch.log_softmax(logits, 1)
    expected = (target * (target.log() - logq)).sum(1)
    assert torch.allclose(kl_to_soft_targets(logits, target), expected)
    assert float(jensen_shannon(logits, logits.clone(), logits.clone())) == pytest.approx(0.0, abs=1e-6)
    far = jensen_shannon(torch.tensor([[10.0, -10.0]]), torch.tensor([[-10.0, 10.0]]))
    assert float(far) == pytest.approx(math.log(2), rel=1e-3)  # the largest JS divergence of two distributions
