"""Natural distribution shift: image corruptions for grey-level medical images, five severities each.

After MedMNIST-C (Di Salvo, Doerrich & Ledig 2024, "MedMNIST-C: comprehensive benchmark and improved classifier
robustness by simulating realistic image corruptions"), which adapts ImageNet-C (Hendrycks & Dietterich 2019) to
medical modalities. The intensity corruptions take MedMNIST-C's radiology parameters (ChestMNIST / PneumoniaMNIST /
BreastMNIST); the spatial ones (blur radius, motion length, pixelation) are given as fractions of the image side so that
severity means the same at 32, 64 or 1024 pixels (ImageNet-C's defocus radii 3-10 px at 224 px are 1.3-4.5% of the
side).

Every corruption is a pure function ``f(x, severity, generator) -> x'`` on a [0, 1] tensor (N, 1, H, W); the random
ones (noise, motion direction) draw only from the given generator, so :func:`corrupt` is deterministic given its
seed. :func:`corrupt` also takes NumPy arrays (N, 1, H, W) or a single (H, W) image and returns the same kind.
Severity grows monotonically: for a fixed seed each corruption moves an image further from the original at each level.

Written here rather than taken from the ``medmnistc`` package: it needs ImageMagick (Wand) and works on 8-bit PIL
images, while the study's images keep 16 bits and live in batched tensors.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from medadv.errors import ConfigError, DataError

SEVERITIES = (1, 2, 3, 4, 5)

#: Parameters per severity 1..5.
PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),  # noise sd (MedMNIST-C, ChestMNIST)
    "speckle_noise": (0.05, 0.15, 0.20, 0.35, 0.45),  # multiplicative noise sd (MedMNIST-C, ChestMNIST)
    "defocus_blur": (0.02, 0.03, 0.04, 0.05, 0.06),  # disk radius / image side
    "motion_blur": (0.03, 0.05, 0.07, 0.09, 0.12),  # streak length / image side
    "contrast": (0.9, 0.8, 0.7, 0.6, 0.4),  # contrast factor (MedMNIST-C contrast_down)
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # additive shift (ImageNet-C)
    "gamma": (1.1, 1.2, 1.3, 1.4, 1.6),  # x ** gamma (MedMNIST-C gamma_corr_up)
    "jpeg": (50, 30, 15, 10, 7),  # JPEG quality (MedMNIST-C)
    "pixelate": (1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6),  # resolution kept (MedMNIST-C's radiology range)
}
CORRUPTIONS = tuple(PARAMS)

Corruption = Callable[[Tensor, float, torch.Generator], Tensor]


def _noise_like(x: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)


def gaussian_noise(x: Tensor, sd: float, generator: torch.Generator) -> Tensor:
    """Additive white noise: ``x + N(0, sd^2)`` (acquisition noise).

    Returns:
        The corrupted images, the shape of ``x`` (not clipped; :func:`corrupt` clips).
    """
    return x + sd * _noise_like(x, generator)


def speckle_noise(x: Tensor, sd: float, generator: torch.Generator) -> Tensor:
    """Multiplicative noise ``x + x N(0, sd^2)``: the speckle of coherent imaging (ultrasound).

    Returns:
        The corrupted images, the shape of ``x`` (not clipped; :func:`corrupt` clips).
    """
    return x + x * sd * _noise_like(x, generator)


def _convolve(x: Tensor, kernel: Tensor) -> Tensor:
    """Same-size convolution of every image with one normalised 2-D kernel, edges replicated."""
    kh, kw = kernel.shape
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    weight = (kernel / kernel.sum()).to(device=x.device, dtype=x.dtype)[None, None]
    return F.conv2d(padded, weight)


def _grid(half: int) -> tuple[Tensor, Tensor]:
    r = torch.arange(-half, half + 1, dtype=torch.float32)  # single precision: MPS has no float64
    return torch.meshgrid(r, r, indexing="ij")


def defocus_blur(x: Tensor, radius_fraction: float, generator: torch.Generator) -> Tensor:
    """Out-of-focus blur: convolution with a disk of radius ``radius_fraction`` x the shorter side.

    The disk is anti-aliased (each pixel weighted by its coverage, ``clip(r + 1/2 - distance, 0, 1)``), so the blur
    grows continuously with the radius even below one pixel.

    Returns:
        The blurred images, the shape of ``x``.
    """
    radius = radius_fraction * min(x.shape[-2:])
    yy, xx = _grid(math.ceil(radius + 0.5))
    kernel = (radius + 0.5 - torch.sqrt(yy**2 + xx**2)).clamp(0.0, 1.0)
    return _convolve(x, kernel)


def motion_blur(x: Tensor, length_fraction: float, generator: torch.Generator) -> Tensor:
    """Motion blur: convolution with a straight streak of length ``length_fraction`` x the shorter side, centred, in a
    direction drawn from ``generator`` (patient or probe motion). Anti-aliased: weight ``clip(1 - distance to the
    segment, 0, 1)``.

    Returns:
        The blurred images, the shape of ``x``.
    """
    length = length_fraction * min(x.shape[-2:])
    angle = float(torch.rand((), generator=generator)) * math.pi
    yy, xx = _grid(math.ceil(length / 2 + 1))
    dy, dx = math.sin(angle), math.cos(angle)
    along = (yy * dy + xx * dx).clamp(-length / 2, length / 2)
    distance = torch.sqrt((yy - along * dy) ** 2 + (xx - along * dx) ** 2)
    return _convolve(x, (1.0 - distance).clamp(0.0, 1.0))


def contrast(x: Tensor, factor: float, generator: torch.Generator) -> Tensor:
    """Contrast change about each image's mean grey level: ``(x - mean) * factor + mean``.

    Returns:
        The corrupted images, the shape of ``x`` (not clipped; :func:`corrupt` clips).
    """
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * factor + mean


def brightness(x: Tensor, shift: float, generator: torch.Generator) -> Tensor:
    """Brightness: every grey level raised by ``shift`` (saturating at 1).

    Returns:
        The corrupted images, the shape of ``x`` (not clipped; :func:`corrupt` clips).
    """
    return x + shift


def gamma(x: Tensor, exponent: float, generator: torch.Generator) -> Tensor:
    """Gamma (display or detector response) change: ``x ** exponent``.

    Returns:
        The corrupted images, the shape of ``x``, in [0, 1].
    """
    return x.clamp(0.0, 1.0) ** exponent


def jpeg(x: Tensor, quality: float, generator: torch.Generator) -> Tensor:
    """JPEG compression at ``quality`` (PIL's encoder on the 8-bit image): blocking and ringing artefacts.

    Returns:
        The decoded images, the shape of ``x``, in [0, 1].
    """
    out = torch.empty_like(x)
    arr = (x.detach().clamp(0.0, 1.0).cpu().numpy() * 255.0).round().astype(np.uint8)
    for i in range(arr.shape[0]):
        buffer = io.BytesIO()
        Image.fromarray(arr[i, 0]).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as img:
            out[i, 0] = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return out


def pixelate(x: Tensor, keep: float, generator: torch.Generator) -> Tensor:
    """Pixelation: area-averaged down to ``keep`` x the resolution, then blown back up with nearest neighbours.

    Returns:
        The pixelated images, the shape of ``x``.
    """
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * keep)), max(1, round(w * keep))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


FUNCTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "speckle_noise": speckle_noise,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "contrast": contrast,
    "brightness": brightness,
    "gamma": gamma,
    "jpeg": jpeg,
    "pixelate": pixelate,
}


def corrupt(images: Tensor | np.ndarray, name: str, severity: int, seed: int = 0) -> Tensor | np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1-5) to [0, 1] images; the result is clipped to [0, 1].

    Args:
        images: tensor or array (N, 1, H, W), or one (H, W) array, in [0, 1].
        name: one of :data:`CORRUPTIONS`.
        severity: 1 (mild) to 5 (severe).
        seed: seed of the noise and the motion direction (the same seed gives the same corruption).

    Returns:
        the corrupted images, of the same kind and shape as ``images``.
    """
    if name not in FUNCTIONS:
        raise ConfigError(f"corruption {name!r} is unknown; expected one of {CORRUPTIONS}.")
    if severity not in SEVERITIES:
        raise ConfigError(f"severity is {severity!r}; expected one of {SEVERITIES}.")
    as_numpy = isinstance(images, np.ndarray)
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)) if as_numpy else images
    single = x.ndim == 2
    if single:
        x = x[None, None]
    if x.ndim != 4 or x.shape[1] != 1 or not x.is_floating_point():
        raise DataError(f"images of shape {tuple(images.shape)}; expected float (N, 1, H, W) or (H, W) in [0, 1].")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise DataError(f"images span [{float(x.min()):.3g}, {float(x.max()):.3g}]; corruptions expect [0, 1].")
    generator = torch.Generator().manual_seed(seed)
    out = FUNCTIONS[name](x, PARAMS[name][severity - 1], generator).clamp(0.0, 1.0)
    if single:
        out = out[0, 0]
    return out.numpy() if as_numpy else out
