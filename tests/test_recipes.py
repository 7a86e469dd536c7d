"""Recipes on tiny models: each gives a finite loss that trains the weights, with the views it promises."""
from __future__ import annotations

import math

import pytest
import torch
from _classifier_data import synthetic_split

from medadv.errors import ConfigError
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from medadv.train.augment import AugMixBatch, paper001_augment
from medadv.train.recipes import RECIPES, Batch, MultiTaskObjective, PaperObjective, Recipe, RecipeParams

PARAMS = RecipeParams(eps=4 / 255, alpha=2 / 255, steps=2, l2_eps=0.5, l2_alpha=0.25, augmix_width=2)


def _batch() -> Batch:
    split = synthetic_split(4, size=32)
    return Batch(torch.from_numpy(split.images), torch.from_numpy(split.labels), torch.from_numpy(split.masks),
                 torch.from_numpy(split.has_mask))


def _vgg() -> VGGClassifier:
    torch.manual_seed(0)
    return VGGClassifier(VGGConfig(width=1 / 16, hidden=8, imagenet=False))


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_gives_a_trainable_loss(name: str) -> None:
    model = _vgg().train()
    loss, logits = Recipe(name, PARAMS)(model, PaperObjective(), _batch(), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and math.isfinite(float(loss.detach())) and logits.shape == (4, 2)
    loss.backward()
    assert model.features[0].weight.grad is not None and float(model.features[0].weight.grad.abs().sum()) > 0
    assert model.training  # attacks restore the training mode


class _Spy:
    """An objective that records the images it is given."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []
        self.inner = PaperObjective(k=0.0)

    def __call__(self, model, x, y, batch=None):  # noqa: ANN001, ANN204
        self.seen.append(x.detach().clone())
        return self.inner(model, x, y, batch)


@pytest.mark.parametrize(("name", "norm"), [("pgd_at", "linf"), ("fast_at", "linf"), ("rtda", "linf"), ("pgd_at_l2", "l2")])
def test_adversarial_views_stay_in_the_ball(name: str, norm: str) -> None:
    spy, batch = _Spy(), _batch()
    Recipe(name, PARAMS)(_vgg(), spy, batch, torch.Generator().manual_seed(1))
    (x_adv,) = spy.seen
    delta = (x_adv - batch.x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    budget = PARAMS.eps if norm == "linf" else PARAMS.l2_eps
    assert float(size.max()) <= budget + 1e-6 and float(size.max()) > 0.5 * budget
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_erm_and_augment_views() -> None:
    spy, batch = _Spy(), _batch()
    Recipe("erm", PARAMS)(_vgg(), spy, batch, torch.Generator())
    Recipe("augment", PARAMS)(_vgg(), spy, batch, torch.Generator().manual_seed(3))
    assert torch.equal(spy.seen[0], batch.x)
    assert spy.seen[1].shape == batch.x.shape and not torch.allclose(spy.seen[1], batch.x)


def test_paper001_augment_is_seeded_and_bounded() -> None:
    x = torch.rand(3, 1, 32, 32)
    a = paper001_augment(x, torch.Generator().manual_seed(5))
    b = paper001_augment(x, torch.Generator().manual_seed(5))
    c = paper001_augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert float((a == 0).float().mean()) > 0.01  # zero padding shows where the image left the frame


def test_augmix_views_follow_the_global_seed() -> None:
    x = torch.rand(2, 1, 32, 32)
    aug = AugMixBatch(width=2)
    torch.manual_seed(0)
    a = aug(x)
    torch.manual_seed(0)
    b = aug(x)
    assert torch.equal(a, b) and a.shape == x.shape and not torch.allclose(a, x)


def test_multitask_objective_uses_the_masks() -> None:
    torch.manual_seed(0)
    model = MultiTaskResNet(MultiTaskConfig(encoder="resnet18", decoder_width=8, imagenet=False)).train()
    batch = _batch()
    with_seg, _ = MultiTaskObjective(seg_weight=1.0)(model, batch.x, batch.y, batch)
    torch.manual_seed(0)
    model2 = MultiTaskResNet(MultiTaskConfig(encoder="resnet18", decoder_width=8, imagenet=False)).train()
    no_seg, _ = MultiTaskObjective(seg_weight=0.0)(model2, batch.x, batch.y, batch)
    class_only, _ = MultiTaskObjective()(model2, batch.x, batch.y, None)
    assert float(with_seg.detach()) > float(no_seg.detach()) + 0.1
    assert float(no_seg.detach()) == pytest.approx(float(class_only.detach()), rel=1e-5)


def test_unknown_recipe() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        Recipe("mixup", PARAMS)
