"""Paper 001's VGG11-GroupNorm classifier, paper 004's multi-task ResNet, torchvision backbones, the registry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from medadv.errors import CheckpointError, ConfigError
from medadv.models import backbones
from medadv.models.backbones import IMAGENET_MEAN, IMAGENET_STD, GreyToImageNet, TorchvisionClassifier
from medadv.models.classifier import VGGClassifier, VGGConfig, group_count
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from medadv.models.registry import build_model, load_trained, trained_models
from medadv.train.checkpoint import save_checkpoint

TINY = VGGConfig(width=1 / 16, hidden=8, imagenet=False)


def test_grey_to_imagenet_copies_and_normalises() -> None:
    z = GreyToImageNet()(torch.full((2, 1, 4, 4), 0.5))
    assert z.shape == (2, 3, 4, 4)
    for c in range(3):
        assert torch.allclose(z[:, c], torch.full((2, 4, 4), (0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
    with pytest.raises(ConfigError, match=r"\(N, 1, H, W\)"):
        GreyToImageNet()(torch.zeros(2, 3, 4, 4))


def test_vgg_layout_follows_paper_001() -> None:
    model = VGGClassifier(VGGConfig(width=0.5, hidden=16, imagenet=False))
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.GroupNorm)]
    acts = [m for m in model.features if isinstance(m, nn.LeakyReLU)]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128, 256, 256, 256, 256]
    assert len(norms) == 8 and all(n.num_groups == 32 for n in norms)  # every width here is a multiple of 32
    assert len(acts) == 8 and all(a.negative_slope == 0.2 for a in acts)
    assert len(pools) == 4  # VGG11's first 20 layers: the last max-pooling is not in Vnet
    drops = [m for m in model.head.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(d.p == 0.2 for d in drops)
    assert isinstance(model.head.pool, nn.AdaptiveMaxPool2d)
    assert model.head.out.out_features == 2
    assert not model.pretrained


def test_group_count_divides_narrow_widths() -> None:
    assert group_count(512) == 32 and group_count(64) == 32 and group_count(16) == 16 and group_count(48) == 16


def test_vgg_forward_is_classify_of_prepare_and_head_can_be_swapped() -> None:
    torch.manual_seed(0)
    model = VGGClassifier(TINY).eval()
    x = torch.rand(3, 1, 32, 32)
    logits = model(x)
    assert logits.shape == (3, 2)
    assert torch.allclose(logits, model.classify(model.prepare(x)))
    model.head.out = nn.Linear(model.head.out.in_features, 1)  # the GAN discriminator's Dnet
    assert model(x).shape == (3, 1)


def test_global_max_pooling_sees_a_single_spot() -> None:
    """A spot anywhere moves the output: the pooled maximum fires wherever the spot is."""
    torch.manual_seed(1)
    model = VGGClassifier(TINY).eval()
    x = torch.full((1, 1, 32, 32), 0.3)
    spot_a, spot_b = x.clone(), x.clone()
    spot_a[..., 4:8, 4:8] = 1.0
    spot_b[..., 22:26, 22:26] = 1.0
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


def test_imagenet_weights_only_from_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert backbones.cached_imagenet_file("vgg11") is None
    assert VGGClassifier(VGGConfig(width=1.0, hidden=8)).pretrained is False  # nothing cached: random init
    conv_state = {f"features.{i}.weight": torch.full((o, c, 3, 3), 0.01 * (k + 1)) for k, (i, c, o) in enumerate(
        [(0, 3, 64), (3, 64, 128), (6, 128, 256), (8, 256, 256), (11, 256, 512), (13, 512, 512), (16, 512, 512), (18, 512, 512)])}
    conv_state.update({k.replace("weight", "bias"): torch.zeros(v.shape[0]) for k, v in conv_state.items()})
    cached = tmp_path / "checkpoints" / "vgg11-8a719046.pth"
    cached.parent.mkdir()
    torch.save(conv_state, cached)
    assert backbones.cached_imagenet_file("vgg11") == cached
    model = VGGClassifier(VGGConfig(width=1.0, hidden=8))
    assert model.pretrained
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert torch.all(convs[0].weight == 0.01) and torch.all(convs[7].weight == 0.08)


def _save_trained(ckpt: Path, name: str, model: nn.Module) -> None:
    save_checkpoint(ckpt / name, {f"model.{k}": v for k, v in model.state_dict().items()},
                    {"role": "trained_model", "name": name, "model": model.spec()})


def test_registry_lists_and_loads_trained_models(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    torch.manual_seed(2)
    vgg = VGGClassifier(TINY).eval()
    multi = MultiTaskResNet(MultiTaskConfig(encoder="resnet18", decoder_width=8, imagenet=False)).eval()
    _save_trained(ckpt, "vgg_erm", vgg)
    _save_trained(ckpt, "multitask_erm", multi)
    save_checkpoint(ckpt / "training" / "vgg_erm_last", {"model.x": torch.zeros(1)}, {"role": "training_state"})
    (ckpt / "notes.json").write_text(json.dumps({"role": "something else"}))
    assert list(trained_models(tmp_path)) == ["multitask_erm", "vgg_erm"]
    x = torch.rand(2, 1, 32, 32)
    loaded = load_trained(tmp_path, "vgg_erm", "cpu")
    assert not loaded.training
    assert torch.allclose(loaded(x), vgg(x))
    assert torch.allclose(load_trained(tmp_path, "multitask_erm")(x), multi(x), atol=1e-6)
    with pytest.raises(CheckpointError, match="run notebook 01"):
        load_trained(tmp_path, "vgg_trades")


def test_build_model_refuses_unknown_kinds() -> None:
    assert isinstance(build_model({"kind": "vgg", "width": 0.0625, "hidden": 4, "imagenet": False}), VGGClassifier)
    with pytest.raises(ConfigError, match="kind"):
        build_model({"kind": "transformer"})
    with pytest.raises(ConfigError, match="does not fit"):
        build_model({"kind": "vgg", "depth": 3})


def test_a_checkpoint_without_its_sidecar_is_an_error_not_skipped(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    _save_trained(ckpt, "vgg_erm", VGGClassifier(TINY))
    _save_trained(ckpt, "vgg_pgd_at", VGGClassifier(TINY))
    (ckpt / "vgg_pgd_at.json").unlink()
    with pytest.raises(CheckpointError, match=r"weights \['vgg_pgd_at\.safetensors'\] have no JSON sidecar.*notebook 01"):
        trained_models(tmp_path)
    (ckpt / "vgg_pgd_at.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"vgg_pgd_at\.json: the sidecar is not valid JSON"):
        trained_models(tmp_path)
