"""Attribution maps: shapes and finite values for every method, Grad-CAM on a hand-built model, layer dispatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medadv.errors import ConfigError, DataError
from medadv.explain.attribute import METHODS, CallOrdered, attribute, attribution_copy, gradcam_layer
from medadv.models.backbones import TorchvisionClassifier
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from torch import nn


class BlobNet(nn.Module):
    """Hand-built detector: a 3 x 3 box filter + ReLU, mean-pooled; logit 1 grows with local brightness."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(1, 1, 3, padding=1)
        with torch.no_grad():
            conv.weight.fill_(1.0 / 9.0)
            conv.bias.fill_(-0.1)
        self.features = nn.Sequential(conv, nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.features(x).mean(dim=(2, 3))
        return torch.cat([-s, s], dim=1)


def blob_images() -> torch.Tensor:
    x = torch.zeros(2, 1, 16, 16)
    x[0, 0, 10:14, 10:14] = 1.0  # bright square bottom-right
    x[1, 0, 2:5, 3:6] = 0.8  # top-left
    return x


@pytest.fixture(scope="module")
def tiny_vgg() -> VGGClassifier:
    torch.manual_seed(0)
    return VGGClassifier(VGGConfig(width=0.125, init="random")).eval()


@pytest.fixture(scope="module")
def tiny_multitask() -> MultiTaskResNet:
    torch.manual_seed(0)
    return MultiTaskResNet(MultiTaskConfig(encoder="resnet18", decoder_width=8, imagenet=False)).eval()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_both_architectures(method: str, tiny_vgg: nn.Module, tiny_multitask: nn.Module) -> None:
    x = torch.rand(3, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    for model in (tiny_vgg, tiny_multitask):
        maps = attribute(model, x, method, target=1, ig_steps=4, occlusion_window=16, occlusion_stride=16, batch_size=2)
        assert maps.shape == (3, 96, 96) and maps.dtype == np.float32
        assert np.isfinite(maps).all()
        assert np.abs(maps).max() > 0 or method in ("gradcam", "guided_gradcam")  # CAM may be all-zero at random init
        if method in ("gradcam", "saliency"):
            assert maps.min() >= 0


@pytest.mark.parametrize("method", ["gradcam", "occlusion", "saliency", "integrated_gradients", "deeplift"])
def test_peak_lands_on_the_bright_square(method: str) -> None:
    model = BlobNet()
    maps = attribute(
        model, blob_images(), method, target=1, layer=model.features, ig_steps=8, occlusion_window=3, occlusion_stride=1
    )
    rows, cols = np.unravel_index(maps.reshape(2, -1).argmax(axis=1), (16, 16))
    assert 9 <= rows[0] <= 14 and 9 <= cols[0] <= 14
    assert 1 <= rows[1] <= 5 and 2 <= cols[1] <= 6


def test_gradcam_of_the_blob_net_is_its_feature_map() -> None:
    model, x = BlobNet(), blob_images()
    maps = attribute(model, x, "gradcam", target=1, layer=model.features)
    # mean pooling: every channel weight is 1 / (H W) > 0, so the CAM is the (ReLU'd) feature map up to that factor.
    with torch.no_grad():
        feats = model.features(x)[:, 0].numpy()
    np.testing.assert_allclose(maps, feats / 256.0, rtol=1e-5, atol=1e-7)
    assert (
        np.abs(attribute(model, x, "gradcam", target=0, layer=model.features)).max() == 0.0
    )  # no positive evidence for class 0


def test_integrated_gradients_completeness() -> None:
    model, x = BlobNet(), blob_images()
    maps = attribute(model, x, "integrated_gradients", target=1, ig_steps=64)
    with torch.no_grad():
        gap = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), gap.numpy(), rtol=1e-2, atol=1e-4)


def test_default_target_is_the_predicted_class() -> None:
    model, x = BlobNet(), blob_images()
    np.testing.assert_array_equal(attribute(model, x, "saliency"), attribute(model, x, "saliency", target=[1, 1]))


def test_each_model_declares_its_gradcam_layer(tiny_vgg: VGGClassifier, tiny_multitask: MultiTaskResNet) -> None:
    assert gradcam_layer(tiny_vgg) is tiny_vgg.features
    assert gradcam_layer(tiny_multitask) is tiny_multitask.features[-1]
    resnet = TorchvisionClassifier("resnet18", imagenet=False)
    mobilenet = TorchvisionClassifier("mobilenet_v3_small", imagenet=False)
    assert resnet.gradcam_layer == "net.layer4" and gradcam_layer(resnet) is resnet.net.layer4
    assert mobilenet.gradcam_layer == "net.features" and gradcam_layer(mobilenet) is mobilenet.net.features
    with pytest.raises(ConfigError, match=r"a BlobNet declares no Grad-CAM layer \(its gradcam_layer is None\)"):
        gradcam_layer(BlobNet())


def test_a_new_model_class_declares_its_layer_and_a_wrong_path_is_named() -> None:
    class Declared(BlobNet):
        gradcam_layer = "features.0"

    class Misspelt(BlobNet):
        gradcam_layer = "featurs"

    model = Declared()
    assert gradcam_layer(model) is model.features[0]
    x = blob_images()
    np.testing.assert_array_equal(
        attribute(model, x, "gradcam", target=1), attribute(model, x, "gradcam", target=1, layer=model.features[0])
    )
    with pytest.raises(ConfigError, match="declares the Grad-CAM layer 'featurs', which is not one of its submodules"):
        gradcam_layer(Misspelt())


def test_shared_activations_are_split_and_the_model_left_alone(tiny_multitask: MultiTaskResNet) -> None:
    x = torch.rand(2, 1, 96, 96)
    twin = attribution_copy(tiny_multitask, x)
    block = twin.features[-1][0]
    assert isinstance(block.relu, CallOrdered) and len(block.relu.calls) == 2  # BasicBlock calls its ReLU twice
    assert tiny_multitask.features[-1][0].relu.inplace is True  # original untouched
    with torch.no_grad():
        torch.testing.assert_close(twin(x), tiny_multitask(x))
    before = {k: v.clone() for k, v in tiny_multitask.state_dict().items()}
    attribute(tiny_multitask, x, "deeplift", target=1)
    assert all(torch.equal(before[k], v) for k, v in tiny_multitask.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks for m in tiny_multitask.modules())


def test_bad_arguments() -> None:
    model = BlobNet()
    with pytest.raises(ConfigError, match="unknown"):
        attribute(model, blob_images(), "lime", layer=model.features)
    with pytest.raises(DataError, match=r"\(N, 1, H, W\)"):
        attribute(model, torch.rand(2, 3, 16, 16), "saliency")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        attribute(model, blob_images() * 2, "saliency")
    with pytest.raises(DataError, match="targets"):
        attribute(model, blob_images(), "saliency", target=[1, 0, 1])


def test_an_attribution_method_is_one_registered_function(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    module = importlib.import_module("medadv.explain.attribute")  # the package exports the function of that name

    assert METHODS == tuple(module.ATTRIBUTION_METHODS)
    assert [m for m, r in module.ATTRIBUTION_METHODS.items() if r.needs_layer] == ["gradcam", "guided_gradcam"]
    monkeypatch.setattr(module, "ATTRIBUTION_METHODS", dict(module.ATTRIBUTION_METHODS))

    @module.attribution_method("input_times_ones")
    def _ones(call, x, target):  # noqa: ANN001, ANN202
        assert call.layer is None and call.ig_steps == 5
        return x * 0 + target[:, None, None, None].float()

    x = torch.full((3, 1, 4, 4), 0.5)
    maps = attribute(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), x, "input_times_ones", target=[0, 1, 1], ig_steps=5)
    assert maps.shape == (3, 4, 4) and maps[0].max() == 0 and (maps[1:] == 1).all()
    with pytest.raises(ValueError, match="registered twice"):
        module.attribution_method("saliency")(_ones)
