"""Reading images and masks into arrays, and a cohort split into model-ready tensors.

Images come back as float32 in [0, 1] with their full bit depth used (a 16-bit PNG keeps its 65536 levels until this
division); masks as bool. DICOM files go through :func:`medadv.data.dicom.load_dicom` and are scaled over the value
range their header declares; a file is DICOM by its suffix or, without one, by the ``DICM`` mark of its preamble.
Colour images become their luminance (:func:`medadv.data.pixels.luminance`, ITU-R BT.601 weights). A 16-bit colour
PNG is refused: Pillow reads it at 8 bits per channel, which would silently drop the low byte. Every failure is a
:class:`medadv.DataError` naming the file. PNGs are written by :mod:`medadv.data.pixels`.

Cohort paths (the ``path`` and ``mask_path`` columns, relative to the cohort's root) are plain files or one of three
references, so that real data sets whose images or masks are not single files need no converted copy and nothing is
ever written into a data root:

``<file.npz>::<key>/<index>``
    image ``index`` of the array ``key`` inside a NumPy ``.npz`` archive (MedMNIST:
    ``breastmnist.npz::train_images/12``). Arrays are cached (a few archives at a time) so that a split loads fast.
``<dicom file>::frame/<index>``
    frame ``index`` (0-based) of a multi-frame DICOM file (cine ultrasound), as the manifest field ``dicom_frame``
    asks (:func:`dicom_frame`).
``union::<file>|<file>|...``
    a mask: the union of several mask files, each relative to the root (BUSI's ``_mask_1.png``, CBIS-DDSM's several
    ROI masks per image).
``shapes::<H>x<W>::rect:x0,y0,x1,y1|poly:x0,y0,x1,y1,x2,y2,...``
    a mask drawn on an H x W pixel grid from boxes (VinDr-Mammo findings; corners in pixel coordinates, x to the
    right, y down) and polygons (FracAtlas COCO segmentations, rasterised with :func:`skimage.draw.polygon`).

The references survive ``root / reference`` (pathlib only joins strings), so ``read_image(root / row.path)`` and
``read_mask(root / row.mask_path)`` work for every cohort; build them with :func:`npz_member`, :func:`union_mask`
and :func:`shapes_mask`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from medadv.data.dicom import is_dicom, load_dicom, read_dicom_stored
from medadv.data.pixels import luminance
from medadv.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy", ".dcm", ".dicom")
NPZ_SEP = "::"
UNION_PREFIX = "union::"
SHAPES_PREFIX = "shapes::"
_MASK_REF = re.compile(r"(?:^|[/\\])(union|shapes)::")
_NPZ_MEMBER = re.compile(r"^(?P<file>.+\.npz)::(?P<key>[^/\\]+)[/\\](?P<index>\d+)$")
_DICOM_FRAME = re.compile(r"^(?P<file>.+)::frame[/\\](?P<index>\d+)$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A lesion mask covering more of its image than this is refused (an inverted mask, or a background that is not 0);
#: above :data:`MASK_MAJORITY` it is kept with a warning (a lesion larger than the rest of the image is rare).
MASK_MAX_COVERAGE = 0.9
MASK_MAJORITY = 0.5
#: An image with a side below this many pixels is read with a warning: resized to the model's input it holds no detail.
MIN_IMAGE_SIDE = 8
#: Images whose sampled pixels span less than this share of [0, 1] are read with a warning (:func:`warn_narrow_range`).
NARROW_RANGE = 0.25
log = logging.getLogger(__name__)


# ---- references ------------------------------------------------------------------------------------------------
def npz_member(npz_file: str, key: str, index: int) -> str:
    """The cohort path of image ``index`` of array ``key`` inside ``npz_file`` (relative to the root).

    Returns:
        The path reference ``<file>::<key>/<index>``.
    """
    return f"{npz_file}{NPZ_SEP}{key}/{int(index)}"


def union_mask(files: Sequence[str]) -> str:
    """The cohort mask path of the union of ``files`` (relative to the root); a single file stays a plain path.

    Returns:
        The path reference: ``union::a|b|...``, or the single file.
    """
    files = list(dict.fromkeys(files))
    if not files:
        raise ValueError("union_mask needs at least one mask file")
    if any("|" in f for f in files):
        raise DataError(f"mask file names {[f for f in files if '|' in f]} contain '|', which mask references use.")
    return files[0] if len(files) == 1 else UNION_PREFIX + "|".join(files)


def dicom_frame(file: str, index: int) -> str:
    """The cohort path of frame ``index`` (0-based) of the multi-frame DICOM ``file`` (relative to the root).

    Returns:
        The path reference ``<file>::frame/<index>``.
    """
    return f"{file}{NPZ_SEP}frame/{int(index)}"


def _num(value: float) -> str:
    return format(round(float(value), 2), "g")


def shapes_mask(
    shape: tuple[int, int], rects: Sequence[Sequence[float]] = (), polygons: Sequence[Sequence[float]] = ()
) -> str:
    """The cohort mask path of boxes ``(x0, y0, x1, y1)`` and polygons ``(x0, y0, x1, y1, ...)`` on an H x W grid.

    Returns:
        The path reference ``shapes::HxW::...``.
    """
    parts = ["rect:" + ",".join(_num(v) for v in r) for r in rects]
    parts += ["poly:" + ",".join(_num(v) for v in p) for p in polygons]
    if not parts:
        raise ValueError("shapes_mask needs at least one box or polygon")
    return f"{SHAPES_PREFIX}{int(shape[0])}x{int(shape[1])}{NPZ_SEP}" + "|".join(parts)


# ---- images ----------------------------------------------------------------------------------------------------
def _to_unit(arr: np.ndarray, path: Path | str) -> np.ndarray:
    if arr.ndim == 3:
        if arr.shape[-1] in (3, 4) and np.issubdtype(arr.dtype, np.integer):
            # RGB(A) stored grey images (BUSI, FracAtlas): the luminance, on the grey image's scale (a grey PNG of the
            # same picture reads the same); min-max stretching it would rescale each image by its own range
            info = np.iinfo(arr.dtype)
            return np.clip((luminance(arr) - info.min) / float(info.max - info.min), 0.0, 1.0).astype(np.float32)
        if arr.shape[-1] in (3, 4):
            arr = luminance(arr)
        elif arr.shape[0] == 1:
            arr = arr[0]
        elif arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:
            raise DataError(f"{path}: image of shape {arr.shape}; expected a grey-level (H, W) image.")
    if arr.ndim != 2:
        raise DataError(f"{path}: image of shape {arr.shape}; expected a grey-level (H, W) image.")
    if np.issubdtype(arr.dtype, np.bool_):
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize > 2:
        # a wider integer type's range would make every image flat grey: read its values as 16-bit grey levels
        # (Pillow gives some 16-bit PNGs and TIFFs as int32), and refuse values that do not fit
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > np.iinfo(np.uint16).max):
            raise DataError(
                f"{path}: {arr.dtype} image with values {int(arr.min())} to {int(arr.max())}; integer images are "
                "read as 8- or 16-bit grey levels (0-255, 0-65535). Save it as uint16 (or uint8) holding its grey "
                "levels, or as float32 in [0, 1]."
            )
        arr = arr.astype(np.uint16)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        out = (arr.astype(np.float64) - info.min) / float(info.max - info.min) if arr.dtype != np.uint8 else arr / 255.0
        # a 16-bit file holding 12-bit data reads dark (at most 1/16): notebook 00 warns (warn_narrow_range)
    else:
        out = arr.astype(np.float64)
        if not np.isfinite(out).all():
            raise DataError(f"{path}: image holds NaN or inf pixels; re-export the image or drop it from the cohort.")
        if out.min() < 0.0 or out.max() > 1.0:
            lo, hi = float(out.min()), float(out.max())
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    return out.astype(np.float32)


@contextlib.contextmanager
def open_npz(file: Path | str) -> Iterator[np.lib.npyio.NpzFile]:
    """The archive ``file`` opened by :func:`numpy.load` (no pickles), for reading its arrays inside the ``with``.

    Returns:
        A context manager giving the open archive. A file that is not a readable ``.npz`` archive (truncated, not a
        zip file at all) raises :class:`medadv.DataError` naming it, and so does any failure to read
        one of its arrays inside the ``with``; a DataError raised there passes unchanged.
    """
    try:
        with np.load(file, allow_pickle=False) as archive:
            yield archive
    except DataError:
        raise
    except zipfile.BadZipFile as exc:
        raise DataError(
            f"{file}: not a readable .npz archive (the zip file is truncated or damaged: {exc}); download it again."
        ) from exc
    except (ValueError, OSError, EOFError) as exc:
        # numpy takes any file that is neither a zip nor a .npy header for a pickle, which it refuses to load
        what = "neither a zip archive nor a NumPy array file" if "pickled" in str(exc) else str(exc)
        raise DataError(f"{file}: not a readable .npz archive ({what}); download it again.") from exc


@functools.lru_cache(maxsize=4)
def _npz_array(file: str, mtime_ns: int, key: str) -> np.ndarray:
    with open_npz(file) as archive:
        if key not in archive.files:
            raise DataError(
                f"{file}: no array {key!r} in the archive (it holds {archive.files}); check the cohort path."
            )
        arr = archive[key]
    arr.setflags(write=False)
    return arr


def _read_npz_member(text: str) -> np.ndarray:
    match = _NPZ_MEMBER.match(text)
    if match is None:
        raise DataError(f"{text}: malformed archive member; expected '<file>.npz::<key>/<index>'.")
    file = Path(match["file"])
    if not file.is_file():
        raise DataError(f"{file}: archive not found; check the data root and the manifest's layout.")
    arr = _npz_array(str(file.resolve()), file.stat().st_mtime_ns, match["key"])
    index = int(match["index"])
    if index >= len(arr):
        raise DataError(f"{text}: index {index} out of range; array {match['key']!r} holds {len(arr)} images.")
    return arr[index]


def _refuse_16_bit_colour_png(path: Path) -> None:
    """A 16-bit RGB(A) PNG (IHDR bit depth 16, colour type 2 or 6): Pillow would keep only its high bytes."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6):
        raise DataError(
            f"{path}: 16-bit colour PNG; the image reader (Pillow) keeps only 8 bits per colour channel, which would "
            "silently drop the low byte. Save it as a 16-bit grey-level PNG (e.g. with skimage.io.imsave of its "
            "luminance as uint16), or as an 8-bit colour PNG if 8 bits suffice."
        )


def _read_dicom_unit(path: Path, frame: int | None = None) -> np.ndarray:
    pixels = load_dicom(path, frame)
    return _dicom_unit(pixels.values, pixels.low, pixels.high)


def read_image(path: str | Path) -> np.ndarray:
    """Read one grey-level image (PNG/JPEG/TIFF/BMP, ``.npy``, DICOM, an npz member or a DICOM frame) as float32
    (H, W) in [0, 1]; colour images as their luminance.

    Returns:
        The image, float32 (H, W) in [0, 1].
    """
    text = str(path)
    if NPZ_SEP in text and ".npz" + NPZ_SEP in text:
        return _to_unit(_read_npz_member(text), text)
    frame = _DICOM_FRAME.match(text)
    if frame is not None:
        return _read_dicom_unit(Path(frame["file"]), int(frame["index"]))
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the cohort's paths and the data root.")
    suffix = path.suffix.lower()
    if is_dicom(path):
        return _read_dicom_unit(path)
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc}); re-export it with numpy.save.") from exc
        return _to_unit(arr, path)
    _refuse_16_bit_colour_png(path)
    try:
        with Image.open(path) as img:
            img.load()
            # a palette's indices are no grey levels, grey + alpha is grey, and CMYK's four channels are no RGBA:
            # each reads as its luminance
            arr = np.array(img.convert("L") if img.mode in ("P", "PA", "LA", "CMYK") else img)
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{path}: the image is too large to read safely ({exc}); a medical image of this size is "
            "more likely a damaged or hostile file. Check it, or downscale it before adding it to the "
            "cohort."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{path}: corrupt or unreadable image ({exc}); replace the file or remove it from the cohort."
        ) from exc
    return _to_unit(arr, path)


def _dicom_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale DICOM presentation values over their declared range ``[low, high]`` to [0, 1]."""
    if high <= low:
        return np.zeros(values.shape, np.float32)
    return np.clip((values.astype(np.float64) - low) / (high - low), 0.0, 1.0).astype(np.float32)


# ---- masks -----------------------------------------------------------------------------------------------------
def _read_mask_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(
            f"{path}: mask file not found; restore it from the data set, or clear the image's mask_path if it has "
            "no annotation."
        )
    if is_dicom(path):
        return read_dicom_stored(path) != 0
    levels = read_image(path)
    values = np.unique(levels)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        shown = ", ".join(f"{v * 255:g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
        raise DataError(
            f"{path}: not a binary lesion mask: it holds {len(values)} grey levels ({shown} of 255); a mask holds 0 "
            "for the background and one level (255, or 1) for the lesion. Re-export it as a binary mask (threshold "
            "it), or remove it from the cohort."
        )
    return levels > 0


def _rect_pixels(values: list[float], height: int, width: int) -> tuple[slice, slice]:
    """The rows and columns a box (corners x0, y0, x1, y1) covers on the grid; a box thinner than a pixel covers one."""
    x0, y0, x1, y1 = values
    r0, c0 = int(np.floor(min(y0, y1))), int(np.floor(min(x0, x1)))
    r1, c1 = max(int(np.ceil(max(y0, y1))), r0 + 1), max(int(np.ceil(max(x0, x1))), c0 + 1)
    return slice(max(r0, 0), min(r1, height)), slice(max(c0, 0), min(c1, width))


def _poly_pixels(values: list[float], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels a polygon (x0, y0, x1, y1, ...) covers on the grid: its inside and its outline, so that a polygon
    thinner than a pixel (a fracture line) is not lost."""
    from skimage.draw import line, polygon

    cols, rows = np.asarray(values[0::2]), np.asarray(values[1::2])
    inside_r, inside_c = polygon(rows, cols, (height, width))
    corners = np.round(np.stack([rows, cols], 1)).astype(int)
    edges = [line(r0, c0, r1, c1) for (r0, c0), (r1, c1) in zip(corners, np.roll(corners, -1, 0), strict=True)]
    rr, cc = np.concatenate([inside_r, *(e[0] for e in edges)]), np.concatenate([inside_c, *(e[1] for e in edges)])
    keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
    return rr[keep], cc[keep]


def _draw_shapes(body: str, where: str) -> np.ndarray:
    try:
        grid, _, items = body.partition(NPZ_SEP)
        height, width = (int(v) for v in grid.split("x"))
        mask = np.zeros((height, width), bool)
        for item in items.split("|"):
            kind, _, numbers = item.partition(":")
            values = [float(v) for v in numbers.split(",")]
            if kind == "rect" and len(values) == 4:
                pixels: tuple = _rect_pixels(values, height, width)
                empty = any(part.start >= part.stop for part in pixels)
            elif kind == "poly" and len(values) >= 6 and len(values) % 2 == 0:
                pixels = _poly_pixels(values, height, width)
                empty = not pixels[0].size
            else:
                raise ValueError(f"shape {item!r}")
            if empty:
                raise DataError(
                    f"{where}: the shape {item!r} lies wholly outside its {height} x {width} pixel grid, so it marks "
                    "no pixel of the lesion; its coordinates must be the image's pixels (x the column, y the row). "
                    "Check the annotation's coordinates and the image's height and width."
                )
            mask[pixels] = True
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(
            f"{where}: malformed drawn mask ({exc}); expected 'shapes::<H>x<W>::rect:x0,y0,x1,y1|poly:x0,y0,...'."
        ) from exc
    return mask


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask as bool (H, W): a file (any non-zero pixel is lesion; DICOM masks by stored value), a
    ``union::`` of files or a ``shapes::`` drawing (see the module docstring). ``shape`` must match when given.

    Returns:
        The mask, bool (H, W).
    """
    text = str(path)
    match = _MASK_REF.search(text)
    if match is None:
        mask = _read_mask_file(Path(path))
    elif match[1] == "union":
        root = Path(text[: match.start(1)] or ".")
        parts = [_read_mask_file(root / rel) for rel in text[match.end() :].split("|")]
        for rel, part in zip(text[match.end() :].split("|")[1:], parts[1:], strict=True):
            if part.shape != parts[0].shape:
                raise DataError(
                    f"{root / rel}: mask of shape {part.shape} but the other masks of the same image are "
                    f"{parts[0].shape}; all masks of an image must share its pixel grid."
                )
        mask = np.logical_or.reduce(parts)
    else:
        mask = _draw_shapes(text[match.end() :], text)
    if shape is not None and mask.shape != tuple(shape):
        raise DataError(
            f"{path}: mask of shape {mask.shape} but its image is {tuple(shape)}; the mask must be drawn on the "
            "same pixel grid as the image."
        )
    _check_coverage(mask, path)
    return mask


def _check_coverage(mask: np.ndarray, path: str | Path) -> None:
    """Refuse a mask whose lesion covers (nearly) the whole image; warn when it covers most of it."""
    coverage = float(mask.mean()) if mask.size else 0.0
    if coverage > MASK_MAX_COVERAGE:
        raise DataError(
            f"{path}: the lesion mask covers {coverage:.0%} of its {mask.shape[0]} x {mask.shape[1]} image; a lesion "
            "mask marks the lesion (non-zero) on a background of 0, so this one is inverted, its background is not 0, "
            "or its image is too small to hold a lesion. Fix the mask (invert it, or set the background to 0) or "
            "remove the image from the cohort."
        )
    if coverage > MASK_MAJORITY:
        log.warning(
            "%s: the lesion mask covers %.0f%% of the image; check that it is not inverted (the lesion must "
            "be non-zero, the background 0)",
            path,
            100 * coverage,
        )


def resize(arr: np.ndarray, size: tuple[int, int], is_mask: bool = False) -> np.ndarray:
    """Resize (H, W) to ``size`` = (height, width): bicubic for images (paper 001); a mask so that no lesion is lost.

    A mask made smaller marks a pixel as lesion when any pixel of the original under it is (Pillow's box filter, then
    any non-zero): nearest-neighbour sampling would drop a lesion smaller than the step between the samples (a
    calcification or a small box on a 4000 x 3000 mammogram read at 96 x 96), and the images left with an empty
    mask would leave notebook 04's study set, which would then keep only the larger lesions. A mask made larger is
    resized nearest-neighbour.

    Returns:
        The resized array: float32 in [0, 1] for an image, bool for a mask; ``arr`` itself when it has that size
        already.
    """
    if arr.shape == tuple(size):
        return arr
    if is_mask:
        img = Image.fromarray(arr.astype(np.uint8) * 255)
        shrinks = size[0] < arr.shape[0] or size[1] < arr.shape[1]
        return np.array(img.resize((size[1], size[0]), Image.BOX if shrinks else Image.NEAREST)) > 0
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


def warn_narrow_range(pixels: np.ndarray, n_images: int) -> bool:
    """Warn when ``pixels`` (read by :func:`read_image`, from ``n_images`` images) span less than
    :data:`NARROW_RANGE` of [0, 1]: files whose type or DICOM header declares a wider range than they use (16-bit
    files holding 12-bit data, CT without a window), which read dark and make the attack budgets large relative to
    their contrast.

    Returns:
        Whether it warned.
    """
    if not pixels.size:
        return False
    low, high = float(pixels.min()), float(pixels.max())
    if high - low >= NARROW_RANGE:
        return False
    log.warning(
        "the %d images sampled use %.0f%% of the value range their files declare (grey levels %.3f to %.3f of "
        "[0, 1]): 16-bit files holding 12-bit data, or DICOM without a window? They are read on that range, so "
        "they look dark, and the attack budgets (shares of the whole range, e.g. 2/255) are large against their "
        "contrast. If that is not meant, re-export them using the whole range, or give the DICOM files a window",
        n_images,
        100 * (high - low),
        low,
        high,
    )
    return True


def _warn_degenerate(image: np.ndarray, path: Path) -> None:
    """Warn about an image that cannot carry a finding: one grey level throughout, or a side below
    :data:`MIN_IMAGE_SIDE` pixels."""
    if image.size and float(image.max()) == float(image.min()):
        log.warning(
            "%s: every pixel has the grey level %g: a blank image (a failed export?); check the file or "
            "remove it from the cohort",
            path,
            float(image.min()),
        )
    if min(image.shape) < MIN_IMAGE_SIDE:
        log.warning(
            "%s: the image is only %d x %d pixels; resized to the model's input it carries no detail. Check "
            "the file or remove it from the cohort",
            path,
            *image.shape,
        )


def load_split(
    cohort: pd.DataFrame, root: str | Path, image_size: tuple[int, int], split: str | None = None
) -> SplitArrays:
    """Load the images and masks of one split (or all rows when ``split`` is None), resized to ``image_size``.

    Returns:
        :class:`SplitArrays`: images (N, 1, H, W) float32 in [0, 1], labels, masks, which images have a mask,
        the rows.
    """
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
        _warn_degenerate(img, root / row.path)
        if row.mask_path:
            masks[i, 0] = resize(read_mask(root / row.mask_path, img.shape), (h, w), is_mask=True)
            has_mask[i] = True
        images[i, 0] = resize(img, (h, w))
    # a copy: pandas 3 hands out read-only views, and torch.from_numpy warns about those (notebook 06, pandas 3.1)
    labels = rows["label"].to_numpy(np.int64, copy=True)
    return SplitArrays(images, labels, masks, has_mask, rows)
