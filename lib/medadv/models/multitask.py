"""Paper 004's multi-task network: a ResNet encoder with a classification head and a segmentation decoder.

Rasaee & Rivaz, "Modified ResNet-50" (Sec. II-B, Fig. 1): the ResNet's 1000-way layer is replaced by a two-way one,
and a decoder after the encoder turns its activations into a lesion mask at the input size: "Six sub-boxes were
inserted ... to upsample the ResNet-50 activation layer weights from 7x7x1024 to the mask size (224x224x1). Each
sub-box is made up of three smaller sub-boxes: Conv2D with Relu activation, Up Sampling2D(2,2), and Batch
Normalization." Learning the mask alongside the label is what the paper credits for its better classification.

The decoder here (:func:`sub_box`, :attr:`MultiTaskResNet.decoder`) is six sub-boxes in exactly that order: Conv
3 x 3 + ReLU, up-sampling x2 (nearest, as Keras' ``UpSampling2D``), BatchNorm. The paper's sizes fix what it leaves
open: 7 -> 224 is five doublings, not six, and its "7x7x1024" is not the 7 x 7 x 2048 activation of ResNet-50's last
stage; so the first sub-box works at the encoder's resolution (its convolution takes the 2048 channels to
``decoder_width``, the paper's 1024, and it has no up-sampling) and the other five double the resolution, halving the
channels each time (1024, 512, 256, 128, 64, 32 at the paper's width). A 1 x 1 convolution to one channel gives the
mask logits (the paper's 224 x 224 x 1 output; its output activation is not given, the kit trains on logits). The
paper has no skip connections; ``skips=True`` (profile key of the training section) is the kit's U-Net-like option
that concatenates the encoder activation of the same resolution to the input of sub-boxes 3-6.

The encoder is any torchvision ResNet (``resnet50`` in the full profile); the CPU profiles use a ResNet-18 with a
fraction of the channels, built from torchvision's residual blocks (:func:`narrow_resnet`).

``forward(x)`` returns the class logits only, so that attacks and explanations treat every classifier alike;
:meth:`MultiTaskResNet.forward_both` returns ``(logits, mask_logits)`` for training. Grey input is copied to three
channels and normalised as ImageNet input inside the model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

from medadv.errors import ConfigError
from medadv.models.backbones import GreyToImageNet, load_imagenet

#: The checkpoint name of this network in a run folder (notebook 01 trains it with ``classifier.multitask``).
MULTITASK_NAME = "multitask_erm"

RESNETS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


@dataclasses.dataclass(frozen=True)
class MultiTaskConfig:
    """Architecture of :class:`MultiTaskResNet`.

    Attributes:
        encoder: torchvision ResNet name (paper 004: ``resnet50``).
        width: multiplier of the encoder's channel counts (1.0 = torchvision's network, which ImageNet weights fit;
            CPU profiles use a narrower one built from torchvision's residual blocks).
        decoder_width: channels of the first decoder sub-box (paper 004: 1024), halved in each of the next five
            (at least 8).
        num_classes: class logits (2: index 1 = positive).
        imagenet: start the encoder from torchvision's ImageNet weights (full width only; fetched into torch's cache
            on first use, :func:`medadv.models.backbones.load_imagenet`).
        skips: the kit's U-Net-like option: sub-boxes 3-6 also take the encoder activation of their resolution
            (paper 004: none).
    """

    encoder: str = "resnet50"
    width: float = 1.0
    decoder_width: int = 256
    num_classes: int = 2
    imagenet: bool = True
    skips: bool = False

    def __post_init__(self) -> None:
        if self.encoder not in RESNETS:
            raise ConfigError(f"multitask encoder is {self.encoder!r}; expected one of {sorted(RESNETS)}.")
        if not 0.0 < self.width <= 1.0:
            raise ConfigError(f"multitask width is {self.width}; expected a multiplier in (0, 1].")
        if self.decoder_width < 8:
            raise ConfigError(f"multitask decoder_width is {self.decoder_width}; expected at least 8.")
        if self.imagenet and self.width != 1.0:  # it would start at random while its card said ImageNet
            raise ConfigError(
                f"classifier.init is imagenet, but classifier.multitask_width is {self.width}; ImageNet "
                f"{self.encoder} weights only fit width 1.0. Set multitask_width: 1.0, or init: kit or random (the "
                "multi-task network then starts at random)."
            )


def _scaled(channels: int, width: float) -> int:
    return channels if width == 1.0 else max(8, int(round(channels * width)))


def narrow_resnet(encoder: str, width: float) -> tuple[nn.Sequential, nn.ModuleList]:
    """The stem and four stages of torchvision's ResNet ``encoder`` with every channel count times ``width``, built
    from torchvision's own residual blocks (torchvision fixes the widths of its ResNets).

    Returns:
        The stem and the four stages.
    """
    block, layers = RESNETS[encoder]
    inplanes = _scaled(64, width)
    stem = nn.Sequential(
        nn.Conv2d(3, inplanes, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(inplanes), nn.ReLU(inplace=True)
    )
    stages = []
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        planes, stride = _scaled(planes, width), 1 if i == 0 else 2
        down = None
        if stride != 1 or inplanes != planes * block.expansion:
            down = nn.Sequential(
                conv1x1(inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        mods: list[nn.Module] = [nn.MaxPool2d(3, stride=2, padding=1)] if i == 0 else []
        mods.append(block(inplanes, planes, stride, down))
        inplanes = planes * block.expansion
        mods += [block(inplanes, planes) for _ in range(1, blocks)]
        stages.append(nn.Sequential(*mods))
    return stem, nn.ModuleList(stages)


DECODER_BOXES = 6


def sub_box(in_ch: int, out_ch: int, upsample: bool) -> nn.Sequential:
    """One decoder sub-box of paper 004: Conv 3 x 3 + ReLU, up-sampling x2 (nearest; identity when ``upsample`` is
    False), BatchNorm.

    Returns:
        the sub-box as ``nn.Sequential(conv, relu, upsample, norm)``.
    """
    up: nn.Module = nn.Upsample(scale_factor=2, mode="nearest") if upsample else nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(), up, nn.BatchNorm2d(out_ch))


class MultiTaskResNet(nn.Module):
    """Paper 004's multi-task classifier on grey [0, 1] images (N, 1, H, W) (H and W multiples of 32; other sizes
    get a mask interpolated to the input size).

    :attr:`gradcam_layer` names the module whose output Grad-CAM weighs (read by
    :func:`medadv.explain.attribute.gradcam_layer`): the last of the four encoder stages (torchvision's ``layer4``),
    the "activation layer" of paper 004 Sec. II-C.
    """

    gradcam_layer = "features.3"

    def __init__(self, config: MultiTaskConfig = MultiTaskConfig()) -> None:
        super().__init__()
        self.config = config
        self.prepare = GreyToImageNet()
        if config.width == 1.0:  # a narrow encoder never asks for ImageNet weights (MultiTaskConfig refuses it)
            resnet = torchvision.models.get_model(config.encoder, weights=None)
            state = load_imagenet(config.encoder) if config.imagenet else None
            if state is not None:
                resnet.load_state_dict(state)
            self.pretrained = state is not None
            self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu)
            self.features = nn.ModuleList(
                [nn.Sequential(resnet.maxpool, resnet.layer1), resnet.layer2, resnet.layer3, resnet.layer4]
            )
        else:
            self.pretrained = False
            self.stem, self.features = narrow_resnet(config.encoder, config.width)
        block = RESNETS[config.encoder][0]
        planes = [_scaled(c, config.width) for c in (64, 128, 256, 512)]
        enc = [_scaled(64, config.width)] + [c * block.expansion for c in planes]
        self.head = nn.Linear(enc[-1], config.num_classes)
        dec = [max(8, config.decoder_width // 2**i) for i in range(DECODER_BOXES)]
        skips = [0, 0, enc[3], enc[2], enc[1], enc[0]] if config.skips else [0] * DECODER_BOXES
        ins = [enc[4] + skips[0]] + [d + k for d, k in zip(dec[:-1], skips[1:], strict=True)]
        self.decoder = nn.ModuleList(
            [sub_box(i, o, upsample=k > 0) for k, (i, o) in enumerate(zip(ins, dec, strict=True))]
        )
        self.mask_out = nn.Conv2d(dec[-1], 1, kernel_size=1)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        acts = [self.stem(self.prepare(x))]
        for stage in self.features:
            acts.append(stage(acts[-1]))
        return acts

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Class logits from the normalised 3-channel tensor ``z``.

        Returns:
            The class logits (N, 2).
        """
        h = self.stem(z)
        for stage in self.features:
            h = stage(h)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 2) of grey images ``x``.

        Returns:
            The class logits (N, 2).
        """
        return self.classify(self.prepare(x))

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (N, 2) and lesion-mask logits (N, 1, H, W) of grey images ``x``.

        Returns:
            (class logits (N, 2), lesion-mask logits (N, 1, H, W)).
        """
        acts = self._encode(x)
        logits = self.head(torch.flatten(F.adaptive_avg_pool2d(acts[-1], 1), 1))
        h = acts[-1]
        skips = [None, None, acts[3], acts[2], acts[1], acts[0]] if self.config.skips else [None] * DECODER_BOXES
        for box, skip in zip(self.decoder, skips, strict=True):
            if skip is not None:
                h = torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], dim=1)
            h = box(h)
        mask = self.mask_out(h)
        if mask.shape[-2:] != x.shape[-2:]:
            mask = F.interpolate(mask, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, mask

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Learning-rate groups: the encoder is ``features``; class head and decoder are ``head``.

        Returns:
            ``{"features": [...], "head": [...]}``.
        """
        feats = list(self.stem.parameters()) + list(self.features.parameters())
        ids = {id(p) for p in feats}
        return {"features": feats, "head": [p for p in self.parameters() if id(p) not in ids]}

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which :func:`medadv.models.registry.build_model` rebuilds this network.

        Returns:
            The spec, ``{"kind": "multitask", ...}``.
        """
        return {"kind": "multitask", **dataclasses.asdict(self.config)}
