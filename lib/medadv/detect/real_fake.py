"""The real-vs-fake classifier: paper 001's network taught that GAN-made images are manipulated.

Paper 001 (Zhou et al., Nat Commun 2021, Discussion) names this defence: "pre-generating adversarial images and
teaching the model that these images are manipulated". The network is the kit's classifier of paper 001 (any
two-logit kit classifier, rebuilt with :func:`medadv.models.registry.build_model` from the trained classifier's spec),
trained with paper 001's recipe on the training split's real images (class 0) against their GAN fakes (class 1);
training is :func:`medadv.detect.training.train_real_fake` (the kit's one training loop). The score is the
network's log-odds of "fake", ``z_fake - z_real``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medadv.detect.base import Detector

__all__ = ["FAKE_CLASS", "RealFakeClassifier"]

FAKE_CLASS = 1  #: the class index of "manipulated" in the real-vs-fake network's two logits


class RealFakeClassifier(Detector):
    """Score = log-odds of the fake class of a two-logit network trained on real (0) vs fake (1) images.

    Args:
        model: the trained real-vs-fake network (grey [0, 1] images -> two logits).
        device: where it runs.
    """

    name = "real_fake_classifier"
    citation = "Zhou et al. 2021 (paper 001), Discussion: teaching the model that GAN-made images are manipulated"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.model = model.to(self.device).eval().requires_grad_(False)

    def score_tensor(self, x: Tensor) -> Tensor:
        """The real-vs-fake classifier's logit margin of the fake class.

        Returns:
            Scores (N,), differentiable in ``x``; larger = more likely fake.
        """
        logits = self.model(x)
        return logits[:, FAKE_CLASS] - logits[:, 1 - FAKE_CLASS]
