"""The trained GAN discriminators' own judgement, as the baseline detector of GAN fakes.

Paper 001 trains two generators, each with its discriminator Dis = Dnet(Vnet(.)) (Eq. 5): the ``remove``
discriminator learns real negatives against positives edited to look negative, the ``insert`` discriminator real
positives against negatives edited to look positive (:mod:`medadv.models.gan_networks`). An image of unknown origin is
accepted as real when either discriminator takes it for a real image of its class, so the score is
``-max(Dnet_remove(x), Dnet_insert(x))`` on the raw scores (higher = more likely fake). The maximum needs no
classifier to route an image to "its" discriminator, and a real image of either class is judged by the
discriminator that saw real images of that class.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from medadv.detect.base import Detector
from medadv.errors import ConfigError

__all__ = ["DiscriminatorScore"]


class DiscriminatorScore(Detector):
    """Score = minus the larger raw score Dnet(Vnet(x)) of the GAN discriminators.

    Args:
        discriminators: ``{"remove": Dis, "insert": Dis}`` (either one alone also works), modules mapping images
            (N, 1, H, W) to raw scores (N,) (:class:`medadv.models.gan_networks.Discriminator`).
        device: where they run.
    """

    name = "gan_discriminator"
    citation = "Zhou et al. 2021 (paper 001), Eq. 5: the discriminator Dis = Dnet(Vnet(.)) of the lesion GAN"

    def __init__(self, discriminators: Mapping[str, nn.Module], device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        if not discriminators:
            raise ConfigError("DiscriminatorScore needs at least one trained discriminator (gan_remove, gan_insert).")
        self.discriminators = {k: d.to(self.device).eval().requires_grad_(False) for k, d in discriminators.items()}

    def score_tensor(self, x: Tensor) -> Tensor:
        """Minus the larger of the GAN discriminators' scores (a discriminator scores real images high).

        Returns:
            Scores (N,), differentiable in ``x``; larger = more likely fake.
        """
        scores = torch.stack([d(x).reshape(-1) for d in self.discriminators.values()], dim=1)
        return -scores.amax(dim=1)
