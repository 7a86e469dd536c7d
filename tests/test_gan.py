"""The GAN of paper 001: Gnet's structure, the discriminator, Eqs. 4-8 on hand-computed values, the staged schedule's
stopping rules, and resuming from a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from medadv.errors import ConfigError, DataError
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.gan_networks import DIRECTIONS, Discriminator, Gnet, dis, fake_batch, flipped_fakes
from medadv.models.inference import batched_outputs
from medadv.train import gan as gan_train
from medadv.train.gan import (
    GanConfig,
    GanResult,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    identity_loss,
    load_generator,
    train_gan,
)
from torch import nn

CPU = torch.device("cpu")


def tiny_classifier(seed: int = 0) -> VGGClassifier:
    torch.manual_seed(seed)
    return VGGClassifier(VGGConfig(width=0.0625, init="random")).eval()


def tiny_data(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 96, 96)).astype(np.float32), np.array([0, 1] * (n // 2))


def tiny_config(**kw: object) -> GanConfig:
    base = dict(width=4, depth=2, batch_size=4, identity_epochs=1, warmup_epochs=1, joint_epochs=2, generator_every=2)
    base.update(kw)
    return GanConfig(**base)  # type: ignore[arg-type]


# ---- generator -------------------------------------------------------------------------------------------------------
def test_gnet_shape_range_and_unet_structure() -> None:
    g = Gnet(width=4, depth=3)
    x = torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert float(y.min()) > 0.0 and float(y.max()) < 1.0  # sigmoid output
    pools = [m for m in g.modules() if isinstance(m, nn.AvgPool2d)]
    ups = [m for m in g.modules() if isinstance(m, nn.Upsample)]
    assert len(pools) == 1 and pools[0].kernel_size == 2 and pools[0].stride == 2
    assert len(ups) == 1 and ups[0].scale_factor == 2 and ups[0].mode == "bilinear"
    assert len(g.encoder) == 4 and len(g.decoder) == 3  # depth 3: three downs, three ups
    convs = [m for m in g.encoder[3].modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 4 * 2**3  # channels double per level
    assert all(
        isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in g.modules() if isinstance(m, nn.LeakyReLU)
    )
    assert any(isinstance(m, nn.GroupNorm) for m in g.modules())


def test_gnet_input_normalisation_is_vgg_first_channel() -> None:
    g = Gnet(width=2, depth=1)
    seen = {}
    g.encoder[0][0].register_forward_pre_hook(lambda m, inp: seen.update(x=inp[0]))
    x = torch.full((1, 1, 8, 8), 0.485 + 0.229)
    g(x)
    assert torch.allclose(seen["x"], torch.ones_like(x))


def test_gnet_identity_skip_starts_as_identity() -> None:
    x = torch.rand(2, 1, 16, 16) * 0.98 + 0.01
    with torch.no_grad():
        y = Gnet(width=4, depth=2, identity_skip=True)(x)
    assert torch.allclose(y, x, atol=1e-5)
    assert float(identity_loss(y, x)) < 1e-9


def test_gnet_rejects_bad_input() -> None:
    g = Gnet(width=2, depth=3)
    with pytest.raises(DataError, match="divisible"):
        g(torch.rand(1, 1, 20, 20))
    with pytest.raises(DataError, match="N, 1, H, W"):
        g(torch.rand(1, 3, 16, 16))


def test_batched_outputs_and_flipped_fakes() -> None:
    torch.manual_seed(0)
    g = Gnet(width=2, depth=2).train()
    x = np.random.default_rng(0).random((5, 1, 16, 16)).astype(np.float32)
    out = batched_outputs(g, x, batch_size=2, device=CPU).numpy()
    assert g.training  # mode restored
    with torch.no_grad():
        ref = g.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)
    gens = {"remove": nn.Identity(), "insert": _Shift()}
    fakes = flipped_fakes(gens, x, np.array([1, 0, 0, 1, 1]), batch_size=2, device=CPU)
    np.testing.assert_allclose(fakes[[0, 3, 4]], x[[0, 3, 4]])  # positives through `remove`
    np.testing.assert_allclose(fakes[[1, 2]], x[[1, 2]] + 1.0)  # negatives through `insert`


def test_fake_batch_bounds_pixels_and_leaves_the_fakes_unchanged() -> None:
    # FAKE_BATCH_PIXELS worth of images: the default's 64 at 96 x 96, 9 at 256 x 256, one full-size mammogram
    assert [fake_batch(np.zeros((2, 1, h, w))) for h, w in [(96, 96), (256, 256), (1728, 1408)]] == [64, 9, 1]
    torch.manual_seed(0)
    gens = {d: Gnet(width=2, depth=2) for d in DIRECTIONS}
    x = np.random.default_rng(1).random((7, 1, 16, 16)).astype(np.float32)
    labels = np.array([1, 0, 0, 1, 1, 0, 1])
    by_one, by_all = (flipped_fakes(gens, x, labels, CPU, batch_size=b) for b in (1, 7))
    # each image is edited on its own: the batch changes the kernels' float32 rounding, nothing more
    np.testing.assert_allclose(by_one, by_all, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(flipped_fakes(gens, x, labels, CPU), by_all)  # 16 x 16: one batch


class _Shift(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0


# ---- discriminator ---------------------------------------------------------------------------------------------------
def test_discriminator_copies_classifier_and_replaces_last_layer() -> None:
    clf = tiny_classifier()
    d = Discriminator(clf)
    assert d.last_layer.out_features == 1 and d.net.head.out is d.last_layer
    assert clf.head.out.out_features == 2  # the classifier is untouched
    for (name, p), (_, q) in zip(clf.features.named_parameters(), d.net.features.named_parameters(), strict=True):
        assert torch.equal(p, q), name
    x = torch.rand(3, 1, 96, 96)
    d.eval()
    score = d(x)
    assert score.shape == (3,)
    with torch.no_grad():
        feats = clf.head.fc(clf.head.pool(clf.head.pre_pool(clf.features(clf.prepare(x)))))
    assert torch.allclose(score, d.last_layer(feats).reshape(-1), atol=1e-6)
    ids_f = {id(p) for p in d.feature_parameters()}
    ids_h = {id(p) for p in d.head_parameters()}
    assert not ids_f & ids_h and len(ids_f) + len(ids_h) == len(list(d.parameters()))


def test_discriminator_started_from_the_classifier_log_odds() -> None:
    clf = tiny_classifier()
    x = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        logits = clf(x)
        for real in (0, 1):
            d = Discriminator(clf, real_label=real).eval()
            assert torch.allclose(d(x), logits[:, real] - logits[:, 1 - real], atol=1e-5)
    with pytest.raises(ConfigError, match="real_label"):
        Discriminator(clf, real_label=2)
    with pytest.raises(ConfigError, match="dnet_init"):
        GanConfig(dnet_init="pretrained")


def test_discriminator_refuses_other_networks() -> None:
    with pytest.raises(ConfigError, match="prepare"):
        Discriminator(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    headless = tiny_classifier()
    headless.head.out = nn.Identity()
    with pytest.raises(ConfigError, match="head.out"):
        Discriminator(headless)


def test_dis_formula() -> None:
    s = torch.tensor([-3.0, 0.0, 2.0, 50.0, -50.0])
    expected = torch.tensor(
        [-math.log(1 + math.exp(-v)) for v in (-3.0, 0.0, 2.0, 50.0)] + [-50.0 - math.log1p(math.exp(-50.0))]
    )
    assert torch.allclose(dis(s), expected, atol=1e-6)
    assert bool((dis(s) <= 0).all())


# ---- losses (Eqs. 4-8) -----------------------------------------------------------------------------------------------
def test_discriminator_loss_eq4_by_hand() -> None:
    sr, sf = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0])
    d = lambda v: -math.log1p(math.exp(-v))  # noqa: E731
    by_hand = np.mean([-d(1.0) + d(0.5) + abs(d(1.0) - 1), -d(-1.0) + d(2.0) + abs(d(-1.0) - 1)]) + 0.25
    assert float(discriminator_loss(sr, sf, torch.tensor(0.25))) == pytest.approx(by_hand, rel=1e-6)


class _Linear(nn.Module):
    """Vnet(z) = 2z after prepare(x) = x, Dnet(f) = sum(w * f): the gradient of Dnet at Vnet(z) is w for every image."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def vnet(self, z: torch.Tensor) -> torch.Tensor:
        return 2.0 * z

    def dnet(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats * self.w).flatten(1).sum(1)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        return self.dnet(self.vnet(z))


@pytest.mark.parametrize(("gp_at", "norm"), [("image", 6.0), ("features", 3.0)])
def test_gradient_penalty_eq6_by_hand(gp_at: str, norm: float) -> None:
    w = torch.tensor([[[[1.0, 2.0], [2.0, 0.0]]]])  # ||w||_2 = 3 at the feature map, ||2w||_2 = 6 at the image
    x = torch.rand(3, 1, 2, 2)
    gp, score = gradient_penalty(_Linear(w), x, k=10.0, power=4.0, gp_at=gp_at)
    assert float(gp.detach()) == pytest.approx(10.0 / 2.0 * norm**4)
    assert torch.allclose(score, (2 * x * w).flatten(1).sum(1))
    gp.backward()  # the penalty trains the discriminator (double backward)


def test_gradient_penalty_of_the_discriminator_at_the_image_and_at_the_feature_map() -> None:
    d = Discriminator(tiny_classifier()).eval()
    x = torch.rand(2, 1, 96, 96)
    gp, score = gradient_penalty(d, x, k=10.0, power=4.0)  # default: the image, as the authors
    z = d.prepare(x).detach().requires_grad_(True)
    norms = [torch.autograd.grad(d.classify(z[i : i + 1]).sum(), z)[0].norm() for i in range(2)]
    assert float(gp.detach()) == pytest.approx(float(5.0 * sum(n**4 for n in norms) / 2), rel=1e-4)
    assert torch.allclose(score.detach(), d(x).detach(), atol=1e-6)
    gp_f, _ = gradient_penalty(d, x, k=10.0, power=4.0, gp_at="features")
    feats = d.vnet(d.prepare(x)).detach().requires_grad_(True)
    norms = [torch.autograd.grad(d.dnet(feats[i : i + 1]).sum(), feats)[0].norm() for i in range(2)]
    assert float(gp_f.detach()) == pytest.approx(float(5.0 * sum(n**4 for n in norms) / 2), rel=1e-4)


def test_identity_and_generator_loss_eq7_eq8_by_hand() -> None:
    y = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    fake = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]], [[[0.5, 0.5], [0.5, 1.0]]]])
    gen1 = (1.0 / 2.0 + 0.25 / 1.0) / 2
    assert float(identity_loss(fake, y)) == pytest.approx(gen1)
    score = torch.tensor([0.0, 1.0])
    gen2 = np.mean([math.log(2.0), math.log1p(math.exp(-1.0))]) + gen1
    assert float(generator_loss(score, fake, y)) == pytest.approx(gen2, rel=1e-6)
    assert float(identity_loss(y, y)) == 0.0


# ---- schedule --------------------------------------------------------------------------------------------------------
def test_schedule_runs_every_stage_up_to_its_limit() -> None:
    images, labels = tiny_data()
    res = train_gan(
        "remove",
        tiny_classifier(),
        images,
        labels,
        tiny_config(identity_threshold=1e-9, warmup_margin=50.0, stop_margin=-50.0),
        seed=1,
        device=CPU,
        progress=False,
    )
    assert list(res.history["stage"]) == ["identity", "warmup", "joint", "joint"]
    joint = res.history[res.history["stage"] == "joint"]
    assert list(joint["generator_updates"]) == [1, 1]  # 8 positives / batch 4 = 2 batches; G every 2nd batch
    assert (res.history.loc[res.history["stage"] == "warmup", "generator_updates"] == 0).all()
    assert not any(p.requires_grad for p in res.generator.parameters())


def test_stopping_rules_end_stages_early() -> None:
    images, labels = tiny_data()
    cfg = tiny_config(
        identity_epochs=3,
        warmup_epochs=3,
        joint_epochs=3,
        identity_threshold=10.0,
        warmup_margin=-10.0,
        stop_margin=10.0,
    )
    res = train_gan("insert", tiny_classifier(), images, labels, cfg, seed=1, device=CPU, progress=False)
    assert list(res.history["stage"]) == ["identity", "warmup", "joint"]
    assert res.history["stop"].all()


def test_warmup_trains_only_dnet_last_layer() -> None:
    images, labels = tiny_data()
    clf = tiny_classifier()
    cfg = tiny_config(identity_epochs=0, warmup_epochs=1, joint_epochs=0, warmup_margin=50.0)
    torch.manual_seed(1)
    g0 = Gnet(cfg.width, cfg.depth)  # train_gan seeds with the same seed, then builds Gnet and the discriminator
    before = Discriminator(clf)
    res = train_gan("remove", clf, images, labels, cfg, seed=1, device=CPU, progress=False)
    changed = {k for k, v in res.discriminator.state_dict().items() if not torch.equal(v, before.state_dict()[k])}
    assert changed == {"net.head.out.weight", "net.head.out.bias", "last_layer.weight", "last_layer.bias"}
    for k, v in res.generator.state_dict().items():
        assert torch.equal(v, g0.state_dict()[k]), k


def test_identity_stage_lowers_gen1() -> None:
    images, labels = tiny_data(32)
    cfg = tiny_config(
        width=8, identity_epochs=6, warmup_epochs=0, joint_epochs=0, lr_identity=3e-3, identity_threshold=1e-9
    )
    res = train_gan("remove", tiny_classifier(), images, labels, cfg, seed=2, device=CPU, progress=False)
    gen1 = res.history["loss_gen1"].to_numpy()
    assert gen1[-1] < 0.5 * gen1[0]


def test_resume_equals_uninterrupted(tmp_path) -> None:
    images, labels = tiny_data()
    cfg = tiny_config(identity_threshold=1e-9, warmup_margin=50.0, stop_margin=-50.0)
    clf = tiny_classifier()
    full = train_gan(
        "remove",
        clf,
        images,
        labels,
        cfg,
        seed=3,
        device=CPU,
        checkpoint_prefix=tmp_path / "a" / "gan_remove",
        progress=False,
    )
    prefix = tmp_path / "b" / "gan_remove"
    for stop_after in (1, 2):  # interrupt in the warmup stage and again inside the joint stage
        part = train_gan(
            "remove",
            clf,
            images,
            labels,
            cfg,
            seed=3,
            device=CPU,
            checkpoint_prefix=prefix,
            progress=False,
            max_epochs=stop_after,
        )
        assert len(part.history) < len(full.history)
    resumed = train_gan(
        "remove", clf, images, labels, cfg, seed=3, device=CPU, checkpoint_prefix=prefix, progress=False
    )
    for k, v in full.generator.state_dict().items():
        assert torch.equal(v, resumed.generator.state_dict()[k]), k
    for k, v in full.discriminator.state_dict().items():
        assert torch.equal(v, resumed.discriminator.state_dict()[k]), k
    cols = ["stage", "epoch", "loss_gen1", "loss_dis", "margin", "stop"]
    assert resumed.history[cols].equals(full.history[cols])
    g = load_generator(prefix, CPU)
    x = torch.from_numpy(images[:2])
    assert torch.equal(g(x), resumed.generator(x))


def test_a_state_of_other_settings_is_ignored_and_training_starts_over(tmp_path, caplog) -> None:
    """A folder rerun with other settings (``medadv run --force``) trains its GANs afresh, as notebook 01 does its
    classifiers; it was refused (a CheckpointError at notebook 02)."""
    images, labels = tiny_data()
    prefix = tmp_path / "gan_insert"

    def insert(joint_epochs: int, seed: int, at: Path, **kwargs: Any) -> GanResult:
        config = tiny_config(joint_epochs=joint_epochs)
        return train_gan(
            "insert",
            tiny_classifier(),
            images,
            labels,
            config,
            seed=seed,
            device=CPU,
            checkpoint_prefix=at,
            progress=False,
            **kwargs,
        )

    insert(0, 3, prefix, max_epochs=1)
    with caplog.at_level("INFO", logger="medadv.train.gan"):
        rerun = insert(1, 4, prefix)
    assert "training state of another ['seed', 'config'] ignored" in caplog.text
    fresh = insert(1, 4, tmp_path / "fresh" / "gan_insert")
    for k, v in fresh.generator.state_dict().items():
        assert torch.equal(v, rerun.generator.state_dict()[k]), k
    cols = ["stage", "epoch", "loss_gen1", "loss_dis", "margin", "stop"]  # all but the wall-clock column
    assert rerun.history[cols].equals(fresh.history[cols])


def test_bad_inputs_are_named() -> None:
    images, labels = tiny_data()
    with pytest.raises(ConfigError, match="direction"):
        train_gan("swap", tiny_classifier(), images, labels, tiny_config(), seed=0, device=CPU)
    with pytest.raises(DataError, match="both classes"):
        train_gan("remove", tiny_classifier(), images, np.zeros(len(images), int), tiny_config(), seed=0, device=CPU)
    with pytest.raises(ConfigError, match="gan.batch_size"):
        GanConfig(batch_size=0)
    with pytest.raises(ConfigError, match="gan.betas"):
        GanConfig(betas=(0.5, 1.5))
    assert DIRECTIONS == {"remove": (1, 0), "insert": (0, 1)}


def test_profiles_parse() -> None:
    from medadv.config import load_profile

    for name in ("smoke", "default", "full"):
        cfg = GanConfig.from_profile(load_profile(name))
        assert cfg.betas == (0.5, 0.9) and cfg.gp_k == 10.0 and cfg.gp_power == 4.0
    full = GanConfig.from_profile(load_profile("full"))  # the paper's settings
    assert (full.lr_identity, full.lr_generator, full.lr_dis_head, full.lr_dis_features) == (1e-4, 1e-5, 1e-4, 1e-5)
    assert (full.generator_every, full.identity_threshold, full.warmup_margin, full.stop_margin) == (
        5,
        0.002,
        0.2,
        0.01,
    )
    assert not full.identity_skip and full.dnet_init == "random"
    assert gan_train.STAGES == ("identity", "warmup", "joint")
