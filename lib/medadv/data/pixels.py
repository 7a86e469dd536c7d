"""Pixel levels and PNG files: grey from colour, [0, 1] floats to 8- or 16-bit levels, and the kit's one PNG writer
per bit depth.

Every PNG the kit writes goes through :func:`save_png16` (images the kit reads back at full depth: the phantom
cohort, the GAN's fakes, the education triplets) or :func:`save_png8` (lesion masks, the reader packages' display
images). Both round each value to the nearest level after clipping to [0, 1] (in float64) and write no metadata, so
the bytes depend on the pixels only; :func:`medadv.data.images.read_image` reads either back into [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from medadv.errors import DataError

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, the Y of DICOM's YBR_FULL

__all__ = ["LUMA_WEIGHTS", "luminance", "quantize", "save_png16", "save_png8"]


def luminance(rgb: np.ndarray) -> np.ndarray:
    """The BT.601 luminance ``0.299 R + 0.587 G + 0.114 B`` of an (..., 3) array.

    Returns:
        float64 in the input's units, the last axis dropped.
    """
    return rgb[..., :3].astype(np.float64) @ np.asarray(LUMA_WEIGHTS)


def quantize(image: ArrayLike, bits: int) -> np.ndarray:
    """[0, 1] values (floats or booleans) to the levels of ``bits`` (8 or 16), rounding to the nearest level.

    Returns:
        uint8 (``bits=8``, 0..255) or uint16 (``bits=16``, 0..65535), the shape of ``image``.

    Raises:
        DataError: ``bits`` other than 8 or 16.
    """
    dtypes = {8: np.uint8, 16: np.uint16}
    if bits not in dtypes:
        raise DataError(f"bits is {bits!r}; expected 8 or 16 bits per pixel.")
    top = float(2**bits - 1)
    return np.round(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * top).astype(dtypes[bits])


def _save_png(path: Path, image: ArrayLike, bits: int) -> Path:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise DataError(f"{path}: image of shape {arr.shape}; expected (H, W).")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(quantize(arr, bits)).save(path, format="PNG")
    return path


def save_png16(path: Path, image: ArrayLike) -> Path:
    """Write a (H, W) image in [0, 1] as a 16-bit grey PNG (65536 levels; no timestamps), creating its folder.

    Returns:
        ``path``.

    Raises:
        DataError: the image is not (H, W).
    """
    return _save_png(path, image, 16)


def save_png8(path: Path, image: ArrayLike) -> Path:
    """Write a (H, W) image in [0, 1], or a boolean mask (0 or 255), as an 8-bit grey PNG (no timestamps), creating
    its folder.

    Returns:
        ``path``.

    Raises:
        DataError: the image is not (H, W).
    """
    return _save_png(path, image, 8)
