"""Reading images and masks into arrays, and a cohort split into model-ready tensors.

Images come back as float32 in [0, 1] with their full bit depth used (a 16-bit PNG keeps its 65536 levels until this
division); masks as bool. DICOM files go through :func:`medadv.data.dicom.read_dicom`. Every failure is a
:class:`medadv.DataError` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from medadv.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy", ".dcm", ".dicom")


def _to_unit(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3:
        if arr.shape[-1] in (3, 4):  # RGB(A) stored grey images (BUSI, FracAtlas): take the luminance
            arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        elif arr.shape[0] == 1:
            arr = arr[0]
        else:
            raise DataError(f"{path}: image of shape {arr.shape}; expected a grey-level (H, W) image.")
    if arr.ndim != 2:
        raise DataError(f"{path}: image of shape {arr.shape}; expected a grey-level (H, W) image.")
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        out = (arr.astype(np.float64) - info.min) / float(info.max - info.min) if arr.dtype != np.uint8 else arr / 255.0
        # 16-bit PNGs holding 12-bit data are stretched by the model's normalisation, not here.
    else:
        out = arr.astype(np.float64)
        if not np.isfinite(out).all():
            raise DataError(f"{path}: image holds NaN or inf pixels; re-export the image or drop it from the cohort.")
        if out.min() < 0.0 or out.max() > 1.0:
            lo, hi = float(out.min()), float(out.max())
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    return out.astype(np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """Read one grey-level image (PNG/JPEG/TIFF/BMP, ``.npy`` or DICOM) as float32 (H, W) in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the cohort's paths and the data root.")
    suffix = path.suffix.lower()
    if suffix in (".dcm", ".dicom"):
        from medadv.data.dicom import read_dicom

        arr = read_dicom(path)
        return _to_unit(arr, path) if np.issubdtype(arr.dtype, np.integer) else _float_dicom(arr, path)
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc}); re-export it with numpy.save.") from exc
        return _to_unit(arr, path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.array(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: corrupt or unreadable image ({exc}); replace the file or remove it from the cohort.") from exc
    return _to_unit(arr, path)


def _float_dicom(arr: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: DICOM pixel data holds NaN or inf after rescaling; check RescaleSlope/Intercept.")
    lo, hi = float(arr.min()), float(arr.max())
    return ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)).astype(np.float32)


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask as bool (H, W): any non-zero pixel is lesion. ``shape`` must match when given."""
    arr = read_image(path) > 0
    if shape is not None and arr.shape != tuple(shape):
        raise DataError(
            f"{path}: mask of shape {arr.shape} but its image is {tuple(shape)}; the mask must be drawn on the "
            "same pixel grid as the image."
        )
    return arr


def resize(arr: np.ndarray, size: tuple[int, int], is_mask: bool = False) -> np.ndarray:
    """Resize (H, W) to ``size`` = (height, width): bicubic for images (paper 001), nearest for masks."""
    if arr.shape == tuple(size):
        return arr
    if is_mask:
        img = Image.fromarray(arr.astype(np.uint8) * 255)
        return np.array(img.resize((size[1], size[0]), Image.NEAREST)) > 0
    img = Image.fromarray(arr.astype(np.float32), mode="F")
    return np.clip(np.array(img.resize((size[1], size[0]), Image.BICUBIC)), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class SplitArrays:
    """One split of a cohort, loaded: images (N, 1, H, W) float32 in [0, 1], labels (N,), masks (N, 1, H, W) bool
    (all False where an image has no annotation), ``has_mask`` (N,) and the cohort rows in the same order."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    has_mask: np.ndarray
    rows: pd.DataFrame


def load_split(cohort: pd.DataFrame, root: str | Path, image_size: tuple[int, int], split: str | None = None) -> SplitArrays:
    """Load the images and masks of one split (or all rows when ``split`` is None), resized to ``image_size``."""
    root = Path(root)
    rows = cohort if split is None else cohort[cohort["split"] == split]
    rows = rows.reset_index(drop=True)
    if len(rows) == 0:
        raise DataError(f"cohort split {split!r} is empty; check the split fractions and the cohort size.")
    h, w = image_size
    images = np.empty((len(rows), 1, h, w), np.float32)
    masks = np.zeros((len(rows), 1, h, w), bool)
    has_mask = np.zeros(len(rows), bool)
    for i, row in enumerate(rows.itertuples(index=False)):
        img = read_image(root / row.path)
        if row.mask_path:
            masks[i, 0] = resize(read_mask(root / row.mask_path, img.shape), (h, w), is_mask=True)
            has_mask[i] = True
        images[i, 0] = resize(img, (h, w))
    return SplitArrays(images, rows["label"].to_numpy(np.int64), masks, has_mask, rows)
