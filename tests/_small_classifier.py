"""A small classifier with the kit's classifier interface, for tests of code that takes any kit classifier.

The detectors (feature squeezing, Mahalanobis, the GAN discriminators) read a classifier through ``prepare``,
``features``, ``head`` (whose last layer is ``head.out``) and ``classify``; they do not depend on paper 001's network.
Paper 001's classifier needs 96 x 96 images and, trained from scratch for a few dozen steps on a handful of
synthetic images, is a poor stand-in for a trained model (one class cannot be attacked, its outputs saturate), so
those tests use this net: eight 3 x 3 convolutions, each with GroupNorm (gcd(32, channels) groups) and LeakyReLU and
four max-poolings (VGG11's layout at an eighth of its width), average and global max pooling, two fully connected
layers, at 32 x 32.
"""

from __future__ import annotations

import math

import torch
from medadv.models.backbones import GreyToImageNet
from torch import nn

LAYOUT: tuple[int | str, ...] = (8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64)


class SmallHead(nn.Module):
    """2 x 2 average pooling, global max pooling, Linear + LeakyReLU, and the last layer :attr:`out`."""

    def __init__(self, in_channels: int, hidden: int = 16, num_outputs: int = 2) -> None:
        super().__init__()
        self.smooth = nn.AvgPool2d(kernel_size=2, stride=1)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_channels, hidden), nn.LeakyReLU(0.2))
        self.out = nn.Linear(hidden, num_outputs)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(self.pool(self.smooth(feats))))


class SmallClassifier(nn.Module):
    """Grey [0, 1] images (N, 1, 32, 32) -> two logits, with ``prepare`` / ``features`` / ``head`` / ``classify``."""

    def __init__(self) -> None:
        super().__init__()
        self.prepare = GreyToImageNet()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [
                nn.Conv2d(in_ch, int(item), 3, padding=1, bias=False),
                nn.GroupNorm(math.gcd(32, int(item)), int(item)),
                nn.LeakyReLU(0.2),
            ]
            in_ch = int(item)
        self.features = nn.Sequential(*layers)
        self.head = SmallHead(in_ch)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """``head(features(z))`` on the normalised three-channel tensor."""
        return self.head(self.features(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.prepare(x))
