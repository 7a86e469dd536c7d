"""Feature squeezing (Xu, Evans & Qi, "Feature squeezing: detecting adversarial examples in deep neural networks",
NDSS 2018).

The classifier's softmax on the image is compared with its softmax on "squeezed" copies; the score is the largest L1
distance, ``max_s || f(x) - f(s(x)) ||_1`` (the paper's joint detector over several squeezers). Small perturbations
that carry an attack tend to be undone by squeezing, so the prediction moves; a clean image's prediction hardly
does. Two squeezers, the paper's choices for grey images (MNIST):

* bit-depth reduction to ``bits`` bits per pixel, ``round(x (2^b - 1)) / (2^b - 1)``;
* a ``median`` x ``median`` median filter (the paper's 2 x 2 for MNIST; for an even size the window reaches one
  pixel further right and down, edges reflected, and the lower of the two middle values is taken).

Rounding has no useful gradient; for the adaptive attack it passes the gradient straight through (BPDA, Athalye,
Carlini & Wagner, ICML 2018: ``x + (round(x) - x).detach()``), the median filter is differentiable almost
everywhere (it selects one pixel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medadv.detect.base import Detector
from medadv.errors import ConfigError

__all__ = ["FeatureSqueezing", "median_filter", "reduce_bit_depth"]


def reduce_bit_depth(x: Tensor, bits: int) -> Tensor:
    """``x`` quantised to ``bits`` bits, with the straight-through (BPDA) gradient of the identity.

    Returns:
        The quantised images, the shape of ``x``.
    """
    levels = 2**bits - 1
    return x + (torch.round(x * levels) / levels - x).detach()


def median_filter(x: Tensor, size: int) -> Tensor:
    """Median over ``size`` x ``size`` windows of (N, C, H, W) images, same shape out (edges reflected).

    Returns:
        The filtered images, the shape of ``x``.
    """
    before, after = (size - 1) // 2, size // 2
    padded = F.pad(x, (before, after, before, after), mode="reflect")
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)
    return windows.reshape(*x.shape, size * size).median(dim=-1).values


class FeatureSqueezing(Detector):
    """Score = max over the squeezers of the L1 distance between the softmax outputs on ``x`` and on ``s(x)``.

    Args:
        classifier: the protected classifier (grey [0, 1] images -> logits).
        bits: bit depth of the bit-depth squeezer (1-8; 0 leaves it out).
        median: window of the median-filter squeezer (>= 2; 0 leaves it out).
        device: where it runs.
    """

    name = "feature_squeezing"
    citation = "Xu, Evans & Qi 2018, NDSS: feature squeezing (bit depth, median filter; L1 of the softmax change)"

    def __init__(
        self, classifier: nn.Module, bits: int = 5, median: int = 2, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(device)
        if not (0 <= bits <= 8) or median == 1 or median < 0 or (bits == 0 and median == 0):
            raise ConfigError(
                f"feature squeezing: bits={bits}, median={median}; expected bits 1-8 and/or a median "
                "window >= 2 (0 leaves a squeezer out, not both)."
            )
        self.classifier = classifier.to(self.device).eval().requires_grad_(False)
        self.bits, self.median = bits, median

    def squeezed(self, x: Tensor) -> list[Tensor]:
        """The squeezed copies of ``x``.

        Returns:
            The squeezed copies, one per squeezer.
        """
        out = []
        if self.bits:
            out.append(reduce_bit_depth(x, self.bits))
        if self.median:
            out.append(median_filter(x, self.median))
        return out

    def score_tensor(self, x: Tensor) -> Tensor:
        """The largest L1 distance between the softmax of ``x`` and of each squeezed copy (Xu et al. 2018).

        Returns:
            Scores (N,), differentiable in ``x``; larger = more likely manipulated.
        """
        p = torch.softmax(self.classifier(x), dim=1)
        dists = [(p - torch.softmax(self.classifier(s), dim=1)).abs().sum(dim=1) for s in self.squeezed(x)]
        return torch.stack(dists, dim=1).amax(dim=1)
