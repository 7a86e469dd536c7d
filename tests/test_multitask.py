"""Paper 004's decoder (Sec. II-B): six sub-boxes of Conv + ReLU, up-sampling x2 and BatchNorm, in that order, from
the encoder's last activation to a one-channel mask at the input size; U-Net skips only as the kit's option."""

from __future__ import annotations

import pytest
import torch
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from torch import nn


def _box_outputs(model: MultiTaskResNet, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [box.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape))) for box in model.decoder]
    try:
        model.forward_both(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def test_paper_width_decoder_on_resnet50() -> None:
    model = MultiTaskResNet(MultiTaskConfig(encoder="resnet50", decoder_width=1024, imagenet=False)).eval()
    assert len(model.decoder) == 6
    for k, box in enumerate(model.decoder):
        kinds = [type(m) for m in box]
        assert kinds == [nn.Conv2d, nn.ReLU, nn.Upsample if k else nn.Identity, nn.BatchNorm2d]
        if k:
            assert box[2].scale_factor == 2.0 and box[2].mode == "nearest"
    convs = [box[0] for box in model.decoder]
    assert [c.in_channels for c in convs] == [2048, 1024, 512, 256, 128, 64]  # the paper's "7x7x1024" after box 1
    assert [c.out_channels for c in convs] == [1024, 512, 256, 128, 64, 32]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert model.mask_out.in_channels == 32 and model.mask_out.out_channels == 1
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        shapes = _box_outputs(model, x)
        _, mask = model.forward_both(x)
    # 64 / 32 = 2: box 1 keeps the encoder's 2 x 2, boxes 2-6 double it to the input's 64 x 64 (paper: 7 -> 224)
    assert [s[-1] for s in shapes] == [2, 4, 8, 16, 32, 64]
    assert mask.shape == (1, 1, 64, 64)


def test_skips_are_an_option_that_feeds_the_encoder_activations() -> None:
    torch.manual_seed(0)
    plain = MultiTaskResNet(MultiTaskConfig(encoder="resnet18", width=0.25, decoder_width=64, imagenet=False)).eval()
    skip = MultiTaskResNet(
        MultiTaskConfig(encoder="resnet18", width=0.25, decoder_width=64, imagenet=False, skips=True)
    ).eval()
    assert plain.spec()["skips"] is False and skip.spec()["skips"] is True
    plain_in = [box[0].in_channels for box in plain.decoder]
    skip_in = [box[0].in_channels for box in skip.decoder]
    # resnet18 at width 0.25: stem 16 (1/2), layer1 16 (1/4), layer2 32 (1/8), layer3 64 (1/16), layer4 128 (1/32)
    assert plain_in == [128, 64, 32, 16, 8, 8]
    assert [s - p for s, p in zip(skip_in, plain_in, strict=True)] == [0, 0, 64, 32, 16, 16]
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert [s[-2:] for s in _box_outputs(skip, x)] == [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]
        logits, mask = skip.forward_both(x)
    assert logits.shape == (2, 2) and mask.shape == (2, 1, 32, 32)


@pytest.mark.parametrize("skips", [False, True])
def test_the_mask_depends_on_the_decoder_and_the_logits_do_not(skips: bool) -> None:
    torch.manual_seed(1)
    model = MultiTaskResNet(
        MultiTaskConfig(encoder="resnet18", width=0.125, decoder_width=16, imagenet=False, skips=skips)
    ).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        logits, mask = model.forward_both(x)
        model.decoder[3][0].weight.mul_(2.0)
        logits2, mask2 = model.forward_both(x)
    assert torch.equal(logits, logits2) and not torch.allclose(mask, mask2)
