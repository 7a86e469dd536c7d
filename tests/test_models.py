"""Paper 001's VGG11 + Fnet classifier, paper 004's multi-task ResNet, torchvision backbones, the registry."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torchvision
from medadv.config import load_profile
from medadv.errors import CheckpointError, ConfigError
from medadv.models import backbones
from medadv.models.backbones import IMAGENET_MEAN, IMAGENET_STD, GreyToImageNet, TorchvisionClassifier
from medadv.models.checkpoint import save_checkpoint
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from medadv.models.registry import build_model, load_trained, trained_models
from medadv.pipeline import check_profile
from medadv.train.losses import focal_gp_loss
from torch import nn

TINY = VGGConfig(width=1 / 16, init="random")


def test_grey_to_imagenet_copies_and_normalises() -> None:
    z = GreyToImageNet()(torch.full((2, 1, 4, 4), 0.5))
    assert z.shape == (2, 3, 4, 4)
    for c in range(3):
        assert torch.allclose(z[:, c], torch.full((2, 4, 4), (0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
    with pytest.raises(ConfigError, match=r"\(N, 1, H, W\)"):
        GreyToImageNet()(torch.zeros(2, 3, 4, 4))


@pytest.fixture(scope="module")
def full_width() -> VGGClassifier:
    """Paper 001's classifier at full width (built once: its fully connected layers hold 34 M weights)."""
    torch.manual_seed(0)
    return VGGClassifier(VGGConfig(width=1.0, init="random")).eval()


def test_vgg_layout_follows_paper_001_authors_code(full_width: VGGClassifier) -> None:
    model = full_width
    tv = torchvision.models.vgg11(weights=None).features
    assert [type(m) for m in model.features] == [type(m) for m in tv]  # VGG11 features: ReLU, 5 max-pools, no norm
    assert [tuple(p.shape) for p in model.features.parameters()] == [tuple(p.shape) for p in tv.parameters()]
    c1, _, c2, _ = model.head.conv
    assert (c1.in_channels, c1.out_channels, c1.stride, c1.padding) == (512, 512, (2, 2), (1, 1))
    assert (c2.in_channels, c2.out_channels, c2.stride, c2.padding) == (512, 2048, (1, 1), (1, 1))
    assert (model.head.smooth.kernel_size, model.head.smooth.stride, model.head.smooth.padding) == (2, 1, 0)
    assert isinstance(model.head.pool, nn.AdaptiveMaxPool2d)
    kinds = [type(m).__name__ for m in model.head.fc]
    assert kinds == [
        "Flatten",
        "Linear",
        "GroupNorm",
        "Dropout",
        "LeakyReLU",
        "Linear",
        "GroupNorm",
        "LeakyReLU",
        "Linear",
        "GroupNorm",
        "LeakyReLU",
    ]
    linears = [m for m in model.head.fc if isinstance(m, nn.Linear)] + [model.head.out]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 8192), (8192, 2048), (2048, 256), (256, 2)]
    assert all(m.num_groups == 32 for m in model.head.fc if isinstance(m, nn.GroupNorm))
    assert all(m.negative_slope == 0.2 for m in model.head.fc if isinstance(m, nn.LeakyReLU))
    assert [m.p for m in model.head.fc if isinstance(m, nn.Dropout)] == [0.2]
    assert not model.pretrained


def test_narrow_width_keeps_the_papers_channels_per_group() -> None:
    model = VGGClassifier(VGGConfig(width=1 / 8, init="random"))
    norms = [m for m in model.head.fc if isinstance(m, nn.GroupNorm)]
    assert [(n.num_groups, n.num_channels) for n in norms] == [(4, 1024), (4, 256), (4, 32)]  # 256, 64, 8 per group
    assert [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)] == [8, 16, 32, 32, 64, 64, 64, 64]
    with pytest.raises(ConfigError, match="GroupNorm"):
        VGGConfig(width=0.3)


def test_receptive_field_before_the_first_fully_connected_layer_is_406(full_width: VGGClassifier) -> None:
    """Gradient of one element of the map the global max pooling reads w.r.t. the input, on the full-width net made
    linear (ReLU -> identity, each max-pooling -> an average pooling of the same geometry, positive weights), so that
    every pixel the element sees has a non-zero gradient."""
    layers = [*full_width.features, *full_width.head.conv, full_width.head.smooth]
    net = copy.deepcopy(
        nn.Sequential(
            *[
                nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else nn.Identity() if isinstance(m, nn.ReLU) else m
                for m in layers
            ]
        )
    )
    with torch.no_grad():
        for conv in [m for m in net if isinstance(m, nn.Conv2d)]:
            conv.weight.fill_(1.0 / conv.weight[0].numel())
            conv.bias.zero_()
    z = torch.zeros(1, 3, 448, 448, requires_grad=True)
    out = net(z)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], z)
    rows = torch.nonzero(grad[0].abs().sum((0, 2))).flatten()
    cols = torch.nonzero(grad[0].abs().sum((0, 1))).flatten()
    assert 0 < rows.min() and rows.max() < 447  # the field lies inside the image: no zero padding cuts it
    assert int(rows.max() - rows.min() + 1) == 406 and int(cols.max() - cols.min() + 1) == 406


def test_vnet_equals_torchvision_vgg11_features_on_the_same_weights(full_width: VGGClassifier) -> None:
    torch.manual_seed(0)
    tv = torchvision.models.vgg11(weights=None).features.eval()
    model = copy.deepcopy(full_width)
    model.features.load_state_dict(tv.state_dict())  # strict: the same module names and shapes
    z = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model.features(z), tv(z), rtol=1e-5, atol=1e-5)  # the kit's runs channels-last on the CPU


def test_vnet_runs_channels_last_on_the_cpu_with_the_same_outputs_and_gradients() -> None:
    """The layout hook changes speed only: logits, input gradients and paper 001's loss gradients (the gradient
    penalty's double back-propagation included) match the same network run in NCHW layout."""
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=0.0625, init="random"))
    nchw = copy.deepcopy(model)
    nchw.features._forward_pre_hooks.clear()
    x = torch.rand(4, 1, 128, 128)
    y = torch.tensor([1, 0, 1, 0])
    assert model.features(model.prepare(x)).is_contiguous(memory_format=torch.channels_last)
    assert not nchw.features(nchw.prepare(x)).is_contiguous(memory_format=torch.channels_last)
    results = []
    for net in (model.eval(), nchw.eval()):
        xx = x.clone().requires_grad_(True)
        logits = net(xx)
        (grad_x,) = torch.autograd.grad(logits[:, 1].sum(), xx)
        loss, _ = focal_gp_loss(net, x, y)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        results.append((logits.detach(), grad_x, loss.detach(), grads))
    (l1, g1, loss1, w1), (l2, g2, loss2, w2) = results
    assert torch.allclose(l1, l2, rtol=1e-4, atol=1e-6) and torch.allclose(loss1, loss2, rtol=1e-4)
    assert torch.allclose(g1, g2, rtol=1e-3, atol=1e-3 * float(g2.abs().max()))
    for a, b in zip(w1, w2, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()) + 1e-12)


def test_vgg_forward_is_classify_of_prepare_and_head_can_be_swapped() -> None:
    torch.manual_seed(0)
    model = VGGClassifier(TINY).eval()
    x = torch.rand(3, 1, 96, 96)
    logits = model(x)
    assert logits.shape == (3, 2)
    assert torch.allclose(logits, model.classify(model.prepare(x)))
    model.head.out = nn.Linear(model.head.out.in_features, 1)  # the GAN discriminator's Dnet
    assert model(x).shape == (3, 1)
    with pytest.raises(ConfigError, match="at least 96 x 96"):
        model(torch.rand(1, 1, 64, 64))


def test_global_max_pooling_sees_a_single_spot() -> None:
    """A spot in either half moves the output: at 160 pixels the max pooling reads a 2 x 2 map."""
    torch.manual_seed(1)
    model = VGGClassifier(TINY).eval()
    x = torch.full((1, 1, 160, 160), 0.3)
    assert model.head.pre_pool(model.features(model.prepare(x))).shape[-2:] == (2, 2)
    spot_a, spot_b = x.clone(), x.clone()
    spot_a[..., 10:30, 10:30] = 1.0
    spot_b[..., 130:150, 130:150] = 1.0
    base = model(x)
    assert not torch.allclose(model(spot_a), base) and not torch.allclose(model(spot_b), base)


@pytest.mark.parametrize(("encoder", "width"), [("resnet18", 1.0), ("resnet18", 0.25), ("resnet50", 0.125)])
def test_multitask_returns_logits_and_mask(encoder: str, width: float) -> None:
    model = MultiTaskResNet(MultiTaskConfig(encoder=encoder, width=width, decoder_width=16, imagenet=False)).eval()
    x = torch.rand(2, 1, 32, 32)
    logits = model(x)
    both_logits, mask = model.forward_both(x)
    assert logits.shape == (2, 2) and mask.shape == (2, 1, 32, 32)
    assert torch.allclose(logits, both_logits, atol=1e-6)
    groups = model.param_groups()
    assert len(groups["features"]) + len(groups["head"]) == len(list(model.parameters()))
    with pytest.raises(ConfigError, match="encoder"):
        MultiTaskConfig(encoder="vgg11")


def test_torchvision_backbone_by_name() -> None:
    model = TorchvisionClassifier("resnet18", imagenet=False).eval()
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 2)
    assert model.param_groups()["head"][0].shape == (2, 512)
    with pytest.raises(ConfigError, match="not a torchvision classification model"):
        TorchvisionClassifier("no_such_net")


def test_imagenet_start_comes_from_torchvisions_cache_and_offline_names_the_file_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert backbones.cached_imagenet_file("vgg11") is None
    # not cached and no network (conftest makes every download fail): an error naming the file and the command
    with pytest.raises(
        ConfigError,
        match=r"(?s)vgg11-8a719046\.pth.*could not be downloaded.*get_model\('vgg11', "
        r"weights='DEFAULT'\).*classifier.init to random, or to kit with a classifier.width the kit ships a "
        r"pretrained Vnet for \(0.0625, 0.125; none at full width\)",
    ) as err:
        VGGClassifier(VGGConfig(width=1.0, init="imagenet"))
    assert str(tmp_path / "checkpoints") in str(err.value)
    torch.manual_seed(3)
    state = {k: v for k, v in torchvision.models.vgg11(weights=None).state_dict().items() if k.startswith("features.")}
    cached = tmp_path / "checkpoints" / "vgg11-8a719046.pth"
    cached.parent.mkdir(exist_ok=True)
    torch.save(state, cached)  # a small stand-in file the test writes: Vnet's tensors only
    assert backbones.cached_imagenet_file("vgg11") == cached
    model = VGGClassifier(VGGConfig(width=1.0, init="imagenet"))
    assert model.pretrained
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, state[f"features.{key}"])  # intact
    with pytest.raises(ConfigError, match="only fit width 1.0.*init: kit"):
        VGGClassifier(VGGConfig(width=0.5, init="imagenet"))
    cached.write_bytes(cached.read_bytes()[:1000])  # a copy cut short: named, not torch's advice to unpickle it
    with pytest.raises(ConfigError, match=r"(?s)vgg11-8a719046\.pth, cannot be read .*damaged.*Delete it and fetch"):
        VGGClassifier(VGGConfig(width=1.0, init="imagenet"))


def test_init_refuses_a_width_its_weights_do_not_fit_and_an_unknown_start() -> None:
    with pytest.raises(
        ConfigError,
        match=r"ships no pretrained Vnet of width 0.25 \(it has widths \['0.0625', "
        r"'0.125'\].*Set classifier.width to one of them, or use init: random",
    ):
        VGGClassifier(VGGConfig(width=0.25, init="kit"))
    with pytest.raises(ConfigError, match="init is 'imagenet1k'; expected one of"):
        VGGConfig(width=0.125, init="imagenet1k")
    # the profile's check, before notebook 00 (it was found in notebook 01): full's width with the kit's start
    with pytest.raises(ConfigError, match=r"ships no pretrained Vnet of width 1 \(it has widths"):
        check_profile(load_profile("full", overrides={"classifier": {"init": "kit"}}))
    with pytest.raises(ConfigError, match=r"classifier.init is imagenet but classifier.width is 0.125"):
        check_profile(load_profile("default", overrides={"classifier": {"init": "imagenet"}}))
    # paper 004's network at the default's narrow width would have started at random while called ImageNet-started
    with pytest.raises(ConfigError, match=r"classifier.multitask_width is 0.25; ImageNet resnet18 weights only fit"):
        check_profile(load_profile("default", overrides={"classifier": {"init": "imagenet", "width": 1.0}}))
    fresh = VGGClassifier(VGGConfig(width=0.125, init="random"))
    assert (
        not fresh.pretrained
        and build_model({**fresh.spec(), "init": "kit"}, weights_follow=True).config.init == "random"
    )


def _save_trained(ckpt: Path, name: str, model: nn.Module) -> None:
    save_checkpoint(
        ckpt / name,
        {f"model.{k}": v for k, v in model.state_dict().items()},
        {"role": "trained_model", "name": name, "model": model.spec()},
    )


def test_registry_lists_and_loads_trained_models(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    torch.manual_seed(2)
    vgg = VGGClassifier(TINY).eval()
    multi = MultiTaskResNet(MultiTaskConfig(encoder="resnet18", decoder_width=8, imagenet=False)).eval()
    _save_trained(ckpt, "vgg_erm", vgg)
    _save_trained(ckpt, "multitask_erm", multi)
    save_checkpoint(ckpt / "training" / "vgg_erm_last", {"model.x": torch.zeros(1)}, {"role": "training_state"})
    (ckpt / "notes.json").write_text(json.dumps({"role": "something else"}))
    assert list(trained_models(tmp_path / "checkpoints")) == ["multitask_erm", "vgg_erm"]
    x = torch.rand(2, 1, 96, 96)
    loaded = load_trained(tmp_path / "checkpoints", "vgg_erm", "cpu")
    assert not loaded.training
    assert torch.allclose(loaded(x), vgg(x))
    assert torch.allclose(load_trained(tmp_path / "checkpoints", "multitask_erm")(x), multi(x), atol=1e-6)
    with pytest.raises(CheckpointError, match="run notebook 01"):
        load_trained(tmp_path / "checkpoints", "vgg_trades")


def test_build_model_refuses_unknown_kinds() -> None:
    assert isinstance(build_model({"kind": "vgg", "width": 0.0625, "init": "random"}), VGGClassifier)
    with pytest.raises(ConfigError, match="kind"):
        build_model({"kind": "transformer"})
    with pytest.raises(ConfigError, match="does not fit"):
        build_model({"kind": "vgg", "depth": 3})


def test_a_checkpoint_without_its_sidecar_is_an_error_not_skipped(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    _save_trained(ckpt, "vgg_erm", VGGClassifier(TINY))
    _save_trained(ckpt, "vgg_pgd_at", VGGClassifier(TINY))
    (ckpt / "vgg_pgd_at.json").unlink()
    with pytest.raises(
        CheckpointError, match=r"weights \['vgg_pgd_at\.safetensors'\] have no JSON sidecar.*notebook 01"
    ):
        trained_models(tmp_path / "checkpoints")
    (ckpt / "vgg_pgd_at.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"vgg_pgd_at\.json: the sidecar is not valid JSON"):
        trained_models(tmp_path / "checkpoints")
