"""Recipes on tiny models: each gives a finite loss that trains the weights, with the views it promises."""

from __future__ import annotations

import math

import pytest
import torch
from _classifier_data import synthetic_split
from medadv.attacks.gradient import pgd
from medadv.errors import ConfigError
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from medadv.train.augment import AffineRanges, AugMixBatch, flip_affine_augment, gan_augment
from medadv.train.losses import jensen_shannon
from medadv.train.recipes import (
    PAPER002_RECIPES,
    RECIPES,
    Batch,
    MultiTaskObjective,
    PaperObjective,
    Recipe,
    RecipeParams,
)
from torch.nn import functional as F

PARAMS = RecipeParams(eps=4 / 255, alpha=2 / 255, steps=2, l2_eps=0.5, l2_alpha=0.25, augmix_width=2)


def _batch() -> Batch:
    split = synthetic_split(4, size=96)
    return Batch(
        torch.from_numpy(split.images),
        torch.from_numpy(split.labels),
        torch.from_numpy(split.masks),
        torch.from_numpy(split.has_mask),
    )


def _vgg() -> VGGClassifier:
    torch.manual_seed(0)
    return VGGClassifier(VGGConfig(width=1 / 16, init="random"))


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


@pytest.mark.parametrize(
    ("name", "norm"), [("pgd_at", "linf"), ("fast_at", "linf"), ("rtda_focal_linf", "linf"), ("pgd_at_l2", "l2")]
)
def test_adversarial_views_stay_in_the_ball(name: str, norm: str) -> None:
    spy, batch = _Spy(), _batch()
    Recipe(name, PARAMS)(_vgg(), spy, batch, torch.Generator().manual_seed(1))
    (x_adv,) = spy.seen
    delta = (x_adv - batch.x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    budget = PARAMS.eps if norm == "linf" else PARAMS.l2_eps
    assert float(size.max()) <= budget + 1e-6 and float(size.max()) > 0.5 * budget
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_erm_augments_and_erm_noaug_does_not() -> None:
    spy, batch = _Spy(), _batch()
    Recipe("erm_noaug", PARAMS)(_vgg(), spy, batch, torch.Generator())
    Recipe("erm", PARAMS)(_vgg(), spy, batch, torch.Generator().manual_seed(3))
    Recipe("erm_matched", PARAMS)(_vgg(), spy, batch, torch.Generator().manual_seed(3))
    assert torch.equal(spy.seen[0], batch.x)
    assert torch.equal(spy.seen[1], flip_affine_augment(batch.x, torch.Generator().manual_seed(3)))
    assert torch.equal(spy.seen[2], spy.seen[1])  # the matched twin trains exactly as erm does


def _p002_model() -> VGGClassifier:
    torch.manual_seed(0)
    return VGGClassifier(VGGConfig(width=1 / 16, dropout=0.0, init="random")).train()


def test_rtda_is_ce_clean_plus_12_jsd_of_clean_augmix_and_l2_pgd() -> None:
    """Paper 002's authors' loss, rebuilt from its parts with the same random draws."""
    params, batch, model = RecipeParams(augmix_width=2), _batch(), _p002_model()
    torch.manual_seed(9)
    loss, logits = Recipe("rtda", params)(model, PaperObjective(), batch, torch.Generator().manual_seed(4))
    x_adv = pgd(
        model,
        batch.x,
        batch.y,
        eps=2 / 255,
        alpha=0.5 / 255,
        steps=7,
        norm="l2",
        generator=torch.Generator().manual_seed(4),
    )
    torch.manual_seed(9)
    mixed = AugMixBatch(severity=3, width=2, depth=-1, alpha=1.0)(batch.x)
    clean = model(batch.x)
    expected = F.cross_entropy(clean, batch.y) + 12.0 * jensen_shannon(clean, model(mixed), model(x_adv))
    assert torch.allclose(loss, expected, rtol=1e-5) and torch.allclose(logits, clean)
    assert 0 < float((x_adv - batch.x).flatten(1).norm(dim=1).max()) <= 2 / 255 + 1e-6


def test_paper002_baselines_use_cross_entropy() -> None:
    batch, model = _batch(), _p002_model()
    loss, logits = Recipe("vanilla", PARAMS)(model, PaperObjective(), batch, torch.Generator())
    assert torch.allclose(loss, F.cross_entropy(model(batch.x), batch.y))
    loss, logits = Recipe("adversarial_l2", PARAMS)(model, PaperObjective(), batch, torch.Generator().manual_seed(2))
    x_adv = pgd(
        model,
        batch.x,
        batch.y,
        eps=2 / 255,
        alpha=0.5 / 255,
        steps=7,
        norm="l2",
        generator=torch.Generator().manual_seed(2),
    )
    assert torch.allclose(loss, F.cross_entropy(model(x_adv), batch.y))
    assert set(PAPER002_RECIPES) == {"vanilla", "adversarial_l2", "augmix", "rtda"}


def test_gan_augment_flips_rotates_shears_without_scaling() -> None:
    x = torch.rand(3, 1, 32, 32)
    a = gan_augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, gan_augment(x, torch.Generator().manual_seed(5)))
    ranges = AffineRanges(scale=(1.0, 1.0))
    assert torch.equal(a, flip_affine_augment(x, torch.Generator().manual_seed(5), ranges))
    assert not torch.equal(a, flip_affine_augment(x, torch.Generator().manual_seed(5)))


def test_flip_affine_augment_is_seeded_and_bounded() -> None:
    x = torch.rand(3, 1, 32, 32)
    a = flip_affine_augment(x, torch.Generator().manual_seed(5))
    b = flip_affine_augment(x, torch.Generator().manual_seed(5))
    c = flip_affine_augment(x, torch.Generator().manual_seed(6))
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


def test_a_recipe_is_one_registered_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from medadv.train import recipes

    assert recipes.RECIPES == tuple(recipes.TRAINING_RECIPES)
    assert {n for n in recipes.RECIPES if Recipe(n, PARAMS).adversarial} == {
        "adversarial_l2",
        "rtda",
        "pgd_at",
        "pgd_at_l2",
        "trades",
        "fast_at",
        "rtda_focal_linf",
    }
    monkeypatch.setattr(recipes, "TRAINING_RECIPES", dict(recipes.TRAINING_RECIPES))
    seen = []

    @recipes.training_recipe("mixup", adversarial=True)
    def _mixup(r, model, objective, b, gen):  # noqa: ANN001, ANN202
        seen.append(r.params)
        return objective(model, b.x, b.y, b)

    mixup = Recipe("mixup", PARAMS)
    loss, _ = mixup(_vgg(), PaperObjective(), _batch(), torch.Generator().manual_seed(0))
    assert mixup.adversarial and seen == [PARAMS] and torch.isfinite(loss)
    with pytest.raises(ValueError, match="'mixup' is registered twice"):
        recipes.training_recipe("mixup")(_mixup)
