"""Training-time augmentation: paper 001's geometric transforms and AugMix, on [0, 1] grey tensors (N, 1, H, W).

Paper 001 ("AI-CAD classifier") and its authors' ``trainClas1728pal134.py``: vertical flipping (p = 1/2), rotation
(-45 to 45 degrees), scaling (factor 0.5 to 2) and shearing (-45 to 45 degrees), with bilinear interpolation and zero
fill (:func:`flip_affine_augment`); the GAN's (``trainV1728negPal41.py``) is the same without the scaling
(:func:`gan_augment`). Each image draws its own parameters from a seeded ``torch.Generator`` (the scale
log-uniformly, so that shrinking and enlarging are equally likely; torchvision's ``RandomAffine`` draws it uniformly)
and is transformed by ``torchvision.transforms.v2.functional.affine``: the v2 transform classes draw from torch's
global generator, which would tie the augmentation to every other random draw of the step.

AugMix (Hendrycks et al., ICLR 2020) is ``torchvision.transforms.v2.AugMix`` applied image by image (the torchvision
transform draws one chain of operations per call, so a batch in one call would share its operations). It draws from
torch's global generator, which the training loop seeds at the start of every epoch. ``all_ops=False`` keeps the
operations that overlap with the corruptions used to test robustness (brightness, contrast, colour, sharpness) out
of training, as the AugMix paper does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class AffineRanges:
    """Paper 001's augmentation ranges (degrees, scale factors, flip probability)."""

    rotation: float = 45.0
    scale: tuple[float, float] = (0.5, 2.0)
    shear: float = 45.0
    vflip: float = 0.5


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def flip_affine_augment(x: Tensor, generator: torch.Generator, ranges: AffineRanges = AffineRanges()) -> Tensor:
    """Random vertical flip, rotation, scaling and shear per image (paper 001), bilinear, zero fill.

    Returns:
        the augmented images, same shape as ``x``, in [0, 1].
    """
    n = x.shape[0]
    flips = torch.rand(n, generator=generator) < ranges.vflip
    angles = _uniform(generator, n, -ranges.rotation, ranges.rotation)
    scales = torch.exp(_uniform(generator, n, math.log(ranges.scale[0]), math.log(ranges.scale[1])))
    shears = _uniform(generator, n, -ranges.shear, ranges.shear)
    out = []
    for i in range(n):
        img = TF.vertical_flip(x[i]) if bool(flips[i]) else x[i]
        out.append(
            TF.affine(
                img,
                angle=float(angles[i]),
                translate=[0, 0],
                scale=float(scales[i]),
                shear=[float(shears[i]), 0.0],
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=0.0,
            )
        )
    return torch.stack(out).clamp(0.0, 1.0)


GAN_RANGES = AffineRanges(scale=(1.0, 1.0))


def gan_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Paper 001's GAN augmentation: random vertical flip, rotation and shear (+-45 degrees), no scaling.

    Returns:
        the augmented images, same shape as ``x``, in [0, 1].
    """
    return flip_affine_augment(x, generator, GAN_RANGES)


class AugMixBatch:
    """AugMix views of a batch, one independent torchvision ``AugMix`` draw per image."""

    def __init__(self, severity: int = 3, width: int = 3, depth: int = -1, alpha: float = 1.0) -> None:
        self.transform = v2.AugMix(
            severity=severity, mixture_width=width, chain_depth=depth, alpha=alpha, all_ops=False
        )

    def __call__(self, x: Tensor) -> Tensor:
        cpu = x.detach().to("cpu")
        return torch.stack([self.transform(img) for img in cpu]).clamp(0.0, 1.0).to(x.device)
