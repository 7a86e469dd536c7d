"""Paper 001's AI-CAD classifier: VGG11 features with GroupNorm, global max pooling, LeakyReLU and dropout.

Zhou et al. (Nat Commun 2021), "AI-CAD classifier" and Fig. 3a: the first 20 layers of torchvision's VGG11
(configuration A, the convolutions up to and without the last max-pooling) form ``Vnet`` -- here :attr:`features` --
with a GroupNorm of 32 groups after every convolution and LeakyReLU (negative slope 0.2) in place of ReLU. ``Fnet`` --
here :attr:`head` -- is an average pooling (2 x 2 kernel, stride 1, no padding), a global max pooling ("to magnify the
output of the firing element"), and two fully connected layers with dropout 0.2 and LeakyReLU 0.2, ending in two
logits. Grey input is copied to three channels and normalised as VGG11's ImageNet input inside the model
(:class:`medadv.models.backbones.GreyToImageNet`).

Width: ``width`` scales every convolution's channels (1.0 = VGG11's 64..512; CPU profiles use a narrow net). A
GroupNorm needs its channel count to be divisible by its group count, so each layer uses ``gcd(32, channels)`` groups:
exactly paper 001's 32 groups whenever the channel count is a multiple of 32 (every layer at width >= 0.5), fewer for
narrower layers (16 channels -> 16 groups, i.e. per-channel normalisation). The convolutions have no bias: the
GroupNorm right after each one subtracts its group means and adds its own learned shift, which takes the bias's role
(and with one channel per group the bias would have no effect at all). Cached ImageNet weights fill the kernels.

The GAN of notebook 02 builds its discriminator ``Dnet(Vnet(.))`` from the same two parts: ``features`` unchanged and
a :class:`GMPHead` with one output, initialised from the trained classifier (paper 001, "GAN model generator and
discriminator").
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from medadv.errors import ConfigError
from medadv.models.backbones import GreyToImageNet, load_cached_imagenet

#: VGG11 (configuration A) without its last max-pooling: paper 001's first 20 layers. "M" is a 2 x 2 max-pooling.
VGG11_CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512)


@dataclasses.dataclass(frozen=True)
class VGGConfig:
    """Architecture of :class:`VGGClassifier`.

    Attributes:
        width: multiplier of VGG11's channel counts (1.0 = 64..512; ImageNet weights only fit width 1.0).
        hidden: units of the head's hidden fully connected layer.
        dropout: drop rate of the head's dropout layers (paper 001: 0.2).
        negative_slope: LeakyReLU negative slope (paper 001: 0.2).
        num_outputs: logits out of the head (2 for the classifier, 1 for the GAN discriminator).
        imagenet: start ``features`` from cached ImageNet VGG11 weights when present (never downloaded).
    """

    width: float = 1.0
    hidden: int = 256
    dropout: float = 0.2
    negative_slope: float = 0.2
    num_outputs: int = 2
    imagenet: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.width <= 4.0:
            raise ConfigError(f"classifier width is {self.width}; expected a multiplier in (0, 4].")
        if self.hidden < 1 or self.num_outputs < 1:
            raise ConfigError(f"classifier hidden={self.hidden}, num_outputs={self.num_outputs}; both must be >= 1.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"classifier dropout is {self.dropout}; expected a rate in [0, 1).")

    def channels(self) -> list[int]:
        """Output channels of the eight convolutions."""
        return [max(1, int(round(c * self.width))) for c in VGG11_CFG if c != "M"]


def group_count(channels: int, groups: int = 32) -> int:
    """GroupNorm groups for ``channels``: ``gcd(groups, channels)`` (= 32 for any multiple of 32)."""
    return math.gcd(groups, channels)


def vgg11_gn_features(config: VGGConfig) -> nn.Sequential:
    """Paper 001's ``Vnet``: VGG11 convolutions, each followed by GroupNorm and LeakyReLU, 4 max-poolings."""
    layers: list[nn.Module] = []
    in_ch = 3
    widths = iter(config.channels())
    for item in VGG11_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out_ch = next(widths)
        layers += [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(group_count(out_ch), out_ch),
            nn.LeakyReLU(config.negative_slope),
        ]
        in_ch = out_ch
    return nn.Sequential(*layers)


class GMPHead(nn.Module):
    """Paper 001's ``Fnet``: 2 x 2 average pooling (stride 1), global max pooling, dropout, FC, LeakyReLU, dropout, FC.

    The last layer is :attr:`out`, so the GAN discriminator can swap it for a one-output layer.
    """

    def __init__(self, in_channels: int, hidden: int, num_outputs: int, dropout: float, negative_slope: float) -> None:
        super().__init__()
        self.smooth = nn.AvgPool2d(kernel_size=2, stride=1, padding=0)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_channels, hidden),
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
        )
        self.out = nn.Linear(hidden, num_outputs)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if min(feats.shape[-2:]) >= 2:
            feats = self.smooth(feats)
        return self.out(self.fc(self.pool(feats)))


class VGGClassifier(nn.Module):
    """Paper 001's AI-CAD classifier on grey [0, 1] images (N, 1, H, W) -> logits (N, ``num_outputs``).

    The input needs at least 16 x 16 pixels (four 2 x 2 max-poolings). ``pretrained`` tells whether ``features``
    started from ImageNet weights.
    """

    def __init__(self, config: VGGConfig = VGGConfig()) -> None:
        super().__init__()
        self.config = config
        self.prepare = GreyToImageNet()
        self.features = vgg11_gn_features(config)
        self.head = GMPHead(config.channels()[-1], config.hidden, config.num_outputs, config.dropout, config.negative_slope)
        self.pretrained = config.imagenet and config.width == 1.0 and self._load_imagenet()

    def _load_imagenet(self) -> bool:
        state = load_cached_imagenet("vgg11")
        if state is None:
            return False
        ours = [m for m in self.features if isinstance(m, nn.Conv2d)]
        theirs = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
        for conv, idx in zip(ours, theirs, strict=True):
            conv.weight.data.copy_(state[f"features.{idx}.weight"])
        return True

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """``Fnet(Vnet(z))`` on the normalised 3-channel tensor ``z``."""
        return self.head(self.features(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of grey images ``x`` (N, 1, H, W) in [0, 1]."""
        return self.classify(self.prepare(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Paper 001's two learning-rate groups: ``features`` (Vnet) and ``head`` (Fnet)."""
        return {"features": list(self.features.parameters()), "head": list(self.head.parameters())}

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which :func:`medadv.models.registry.build_model` rebuilds this network."""
        return {"kind": "vgg", **dataclasses.asdict(self.config)}
