"""DICOM to array with pydicom: modality LUT (rescale), VOI LUT or window, MONOCHROME1 inversion, bit depth kept;
colour images (palette, RGB, YBR) as their luminance; one frame of a multi-frame file.

The pixel pipeline follows the DICOM grey-scale presentation chain (PS3.3 C.11, PS3.4 N.2): stored values ->
modality LUT (``RescaleSlope``/``RescaleIntercept`` or a Modality LUT Sequence) -> VOI LUT (a VOI LUT Sequence or
``WindowCenter``/``WindowWidth``, first item) -> for ``MONOCHROME1``, inversion so that higher values are brighter.
pydicom's :func:`pydicom.pixels.apply_modality_lut` and :func:`pydicom.pixels.apply_voi_lut` do the two LUT steps.

Colour images have no modality or VOI LUT (PS3.3 C.7.6.3.1.2); the kit studies grey-level images, so each colour
image becomes its luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the weights of YBR_FULL's Y and of
:func:`medadv.data.pixels.luminance`), over the range 0 .. 2^BitsStored - 1. ``PALETTE COLOR`` indices go through
their palette first (pydicom's :func:`~pydicom.pixels.apply_color_lut`; the range is the palette's own bit depth);
``YBR_FULL`` / ``YBR_FULL_422`` are converted to RGB by pydicom while decoding (its
:func:`~pydicom.pixels.convert_color_space`), and JPEG 2000's ``YBR_RCT`` / ``YBR_ICT`` by the decoder. A
multi-frame file (cine ultrasound) is read one frame at a time: ``frame`` (0-based) must be given, which a cohort
does with the manifest field ``dicom_frame`` (:mod:`medadv.data.sources.manifest`); without it the file is refused
with its frame count.

Nothing is squashed to 8 bits here. :func:`load_dicom` also gives the range the values can take (the same chain
applied to every stored value the header allows), which :func:`medadv.data.images.read_image` uses to scale to
[0, 1]; :func:`read_dicom` returns the values alone. Every failure is a :class:`medadv.DataError` that names the file
and what to do: not a DICOM or truncated file, no pixel data, a compressed transfer syntax without a decoder (the
message names the package to install), a multi-frame file without a chosen frame, an unknown colour model, NaN or inf
values.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medadv.data.pixels import luminance
from medadv.errors import DataError

log = logging.getLogger(__name__)

# Transfer-syntax UID prefix -> the pip command that installs a decoder pydicom can use for it.
_DECODER_ADVICE = (
    ("1.2.840.10008.1.2.4.9", "pip install pylibjpeg pylibjpeg-openjpeg"),  # JPEG 2000 (.90, .91, .92, .93)
    ("1.2.840.10008.1.2.4.20", "pip install pylibjpeg pylibjpeg-openjpeg"),  # HTJ2K (.201, .202, .203)
    ("1.2.840.10008.1.2.4.8", "pip install pyjpegls  (or: pip install pylibjpeg pylibjpeg-libjpeg)"),  # JPEG-LS
    ("1.2.840.10008.1.2.4.", "pip install pylibjpeg pylibjpeg-libjpeg"),  # JPEG baseline, extended, lossless
    ("1.2.840.10008.1.2.5", "pip install pylibjpeg pylibjpeg-rle"),  # RLE
)
_FALLBACK_ADVICE = "pip install python-gdcm"
_EXTRA_ADVICE = "pip install 'medadv[dicom]'"  # the kit's extra that brings every pylibjpeg decoder
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420")
_MAX_GRID_BITS = 16  # the value range is computed on every stored value up to this bit depth


@dataclass(frozen=True)
class DicomPixels:
    """The presentation values of one DICOM image and the range they can take.

    Attributes:
        values: (H, W) array, integer when no LUT changed the stored values, float64 otherwise.
        low, high: the smallest and largest value the header allows after the same chain (or the data's own
            minimum and maximum for float pixel data and stored depths above 16 bits).
    """

    values: np.ndarray
    low: float
    high: float


def decoder_advice(transfer_syntax: str) -> str:
    """The pip command that installs a pydicom decoder for ``transfer_syntax`` (a UID string).

    Returns:
        The advice, a pip command.
    """
    for prefix, advice in _DECODER_ADVICE:
        if transfer_syntax.startswith(prefix):
            return f"{_EXTRA_ADVICE}  (or: {advice})"
    return _FALLBACK_ADVICE


def _read_dataset(path: Path, stop_before_pixels: bool = False) -> "pydicom.Dataset":  # noqa: F821
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise DataError(f"{path}: DICOM file not found; check the cohort's paths and the data root.")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise DataError(
            f"{path}: not a DICOM file ({exc}); replace it with the data set's original file, or if it is an old "
            "ACR-NEMA file without the 'DICM' preamble, convert it first (for example with dcmtk's dcmconv)."
        ) from exc
    except (EOFError, OSError, struct.error, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(
            f"{path}: truncated or corrupt DICOM file ({type(exc).__name__}: {exc}); download the file again and "
            "check its size or checksum."
        ) from exc


def read_dicom_header(path: str | Path) -> "pydicom.Dataset":  # noqa: F821
    """The header of a DICOM file without its pixel data (fast), or a :class:`DataError` naming the file.

    Returns:
        The header, a pydicom dataset without pixel data.
    """
    return _read_dataset(Path(path), stop_before_pixels=True)


def header_int(ds: "pydicom.Dataset", keyword: str, path: str | Path, default: int | None = None) -> int:  # noqa: F821
    """The integer header attribute ``keyword`` of the DICOM file ``path`` (``default`` where the header lacks it or
    leaves it empty).

    Returns:
        The value as an int.

    Raises:
        DataError: naming the file and the attribute, where the header lacks it and there is no default (a header
            cut short) or holds a value that is not an integer (pydicom keeps a malformed IS such as ``'1A'`` as text).
    """
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise DataError(
                f"{path}: the DICOM header has no {keyword}; the file is truncated or not an image (download it "
                "again and check its size or checksum, or remove it from the cohort)."
            )
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: the DICOM header's {keyword} is {str(value)!r}, not an integer; fix the attribute (for example "
            f"with dcmtk's dcmodify) or re-export the file."
        ) from exc


def _check_layout(ds: "pydicom.Dataset", path: Path, frame: int | None) -> None:  # noqa: F821
    """Refuse what the kit cannot turn into one grey image: an unknown colour model, an unchosen or absent frame."""
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        size = f"a {ds.Rows} x {ds.Columns} image" if "Rows" in ds and "Columns" in ds else "no image"
        raise DataError(
            f"{path}: the DICOM file holds no pixel data (its header describes {size}): either the file is truncated "
            "(download it again and check its size or checksum), or it is not an image (a structured report or "
            "presentation state: remove it from the cohort)."
        )
    samples, photometric = header_int(ds, "SamplesPerPixel", path, 1), str(getattr(ds, "PhotometricInterpretation", ""))
    if samples != 1 and not (samples == 3 and photometric in _COLOUR):
        raise DataError(
            f"{path}: DICOM image with {samples} samples per pixel ({photometric or '?'}); expected a grey-level, "
            f"PALETTE COLOR or 3-sample colour image ({', '.join(_COLOUR)}). Export the image as MONOCHROME2."
        )
    frames = header_int(ds, "NumberOfFrames", path, 1)
    if frames > 1 and frame is None:
        raise DataError(
            f"{path}: multi-frame DICOM with {frames} frames; the kit reads one image per file. Choose the frame "
            f"(0 to {frames - 1}) with the manifest field 'dicom_frame: N', or read it as '{path.name}::frame/N'."
        )
    if frames > 1 and not 0 <= frame < frames:
        raise DataError(
            f"{path}: frame {frame} asked for, but the DICOM file holds {frames} frame(s) (0 to {frames - 1})."
        )


def _check_decoder(ds: "pydicom.Dataset", path: Path) -> None:  # noqa: F821
    from pydicom.pixels import get_decoder

    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    if syntax is None:
        raise DataError(f"{path}: the DICOM file has no Transfer Syntax UID in its file meta; re-export the file.")
    if not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise DataError(
            f"{path}: pixel data compressed with {syntax.name} ({syntax}), which pydicom cannot decode; "
            f"convert the file to an uncompressed transfer syntax (for example: gdcmconv --raw)."
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise DataError(
            f"{path}: pixel data compressed with {syntax.name} ({syntax}) and no decoder for it is installed; "
            f"install one: {decoder_advice(str(syntax))}  (pydicom accepts: {missing})."
        )


def _stored_pixels(ds: "pydicom.Dataset", path: Path, frame: int | None = None) -> np.ndarray:  # noqa: F821
    """The decoded pixels of the file (of ``frame`` in a multi-frame file): (H, W), or (H, W, 3) RGB for colour."""
    _check_layout(ds, path, frame)
    _check_decoder(ds, path)
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        if header_int(ds, "NumberOfFrames", path, 1) > 1:
            ds.pixel_array_options(index=frame)
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001  decoders raise many types; all mean the same to the user
        if syntax.is_compressed:
            raise DataError(
                f"{path}: the {syntax.name} pixel data could not be decoded ({type(exc).__name__}: {exc}); the file "
                f"may be truncated or corrupt (download it again), or the installed decoder cannot read it: "
                f"{decoder_advice(str(syntax))}."
            ) from exc
        raise DataError(
            f"{path}: truncated or corrupt DICOM pixel data ({type(exc).__name__}: {exc}); download the file again "
            "and check its size or checksum."
        ) from exc
    return arr


def _colour_luminance(ds: "pydicom.Dataset", stored: np.ndarray, path: Path) -> DicomPixels:  # noqa: F821
    """A palette or RGB image (YBR already converted by pydicom) as its BT.601 luminance and its range."""
    from pydicom.pixels import apply_color_lut

    if ds.PhotometricInterpretation == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(stored, ds)
        except (ValueError, KeyError, AttributeError, IndexError) as exc:
            raise DataError(
                f"{path}: PALETTE COLOR image whose palette cannot be applied ({exc}); re-export it."
            ) from exc
    else:
        rgb = stored
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DataError(f"{path}: colour DICOM decoded to shape {rgb.shape}; expected (rows, columns, 3).")
    palette = ds.PhotometricInterpretation == "PALETTE COLOR"
    bits = rgb.dtype.itemsize * 8 if palette else header_int(ds, "BitsStored", path)
    return DicomPixels(values=luminance(rgb), low=0.0, high=float(2**bits - 1))


def _present(arr: np.ndarray, ds: "pydicom.Dataset") -> np.ndarray:  # noqa: F821
    """Modality LUT then VOI LUT / window (first item), as pydicom applies them."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with np.errstate(over="ignore", invalid="ignore"):  # overflow becomes inf, which load_dicom reports
        out = apply_modality_lut(arr, ds)
        if "VOILUTSequence" in ds or "WindowCenter" in ds:
            out = apply_voi_lut(out, ds, index=0)
    return out


def _stored_range(ds: "pydicom.Dataset", stored: np.ndarray, path: Path) -> tuple[int, int] | None:  # noqa: F821
    """The stored values the header allows (``BitsStored``, ``PixelRepresentation``), or None beyond 16 bits."""
    bits = header_int(ds, "BitsStored", path, 0)
    if not np.issubdtype(stored.dtype, np.integer) or not 0 < bits <= _MAX_GRID_BITS:
        return None
    if header_int(ds, "PixelRepresentation", path, 0) == 0:
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _present_with_range(
    ds: "pydicom.Dataset",  # noqa: F821
    stored: np.ndarray,
    path: Path,
) -> tuple[np.ndarray, float, float]:
    """The presentation values and their possible range.

    For integer data of up to 16 bits the chain is applied once to every stored value the header allows, giving a
    lookup table whose extremes are the range, and the image is then one table look-up (pydicom's windowing of a
    full mammogram directly takes seconds). pydicom has already masked the stored values to ``BitsStored`` bits, so
    every value has its table entry. Float pixel data and deeper integers go through the chain directly, with the
    data's own extremes as the range.
    """
    allowed = _stored_range(ds, stored, path)
    if allowed is not None:
        lo, hi = allowed
        table = _present(np.arange(lo, hi + 1).astype(stored.dtype), ds)
        index = stored if lo == 0 else stored.astype(np.int32) - lo
        return table[index], float(np.min(table)), float(np.max(table))
    values = _present(stored, ds)
    with np.errstate(invalid="ignore"):
        return values, float(np.min(values)), float(np.max(values))


def load_dicom(path: str | Path, frame: int | None = None) -> DicomPixels:
    """Read one DICOM image through the presentation chain (colour as luminance), keeping its bit depth.

    Args:
        path: a DICOM file (any suffix).
        frame: the 0-based frame of a multi-frame file (required there, ignored for a single frame).

    Returns:
        :class:`DicomPixels`: the values (MONOCHROME1 already inverted, so that higher is brighter; colour as
        float64 luminance) and their range.

    Raises:
        DataError: not a DICOM or truncated file, no pixel data, compressed without an installed decoder (the message
            names the package), a multi-frame file without ``frame``, an unknown colour model, NaN or inf values.
    """
    path = Path(path)
    ds = _read_dataset(path)
    stored = _stored_pixels(ds, path, frame)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "PALETTE COLOR" or stored.ndim == 3:
        return _colour_luminance(ds, stored, path)
    try:
        values, low, high = _present_with_range(ds, stored, path)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise DataError(
            f"{path}: the DICOM rescale / VOI LUT / window attributes cannot be applied ({exc}); fix or remove them "
            "from the header."
        ) from exc
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        raise DataError(
            f"{path}: DICOM pixel values hold NaN or inf (after RescaleSlope/Intercept and the VOI step); check those "
            "attributes or re-export the image, or drop it from the cohort."
        )
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        if np.issubdtype(values.dtype, np.integer):
            values = (int(low) + int(high) - values.astype(np.int64)).astype(values.dtype)
        else:
            values = (low + high) - values
    if low == high:
        log.warning("%s: DICOM value range is a single value %s; the image is flat.", path, low)
    return DicomPixels(values=values, low=low, high=high)


def read_dicom(path: str | Path, frame: int | None = None) -> np.ndarray:
    """The presentation values of a DICOM image (of ``frame``); see :func:`load_dicom`.

    Returns:
        The (H, W) values, higher = brighter (MONOCHROME1 inverted): integer when no LUT changed the stored values,
        float64 otherwise (:attr:`DicomPixels.values`).

    Raises:
        DataError: as :func:`load_dicom`, naming the file.

    Example:
        A 12-bit MONOCHROME1 image (0 = white) written with pydicom comes back with white as its highest value:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from pydicom import Dataset
        >>> from pydicom.uid import SecondaryCaptureImageStorage, generate_uid
        >>> ds = Dataset()
        >>> ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
        >>> ds.set_pixel_data(np.array([[0, 1000], [2000, 4095]], np.uint16), "MONOCHROME1", 12)
        >>> folder_for_example = tempfile.TemporaryDirectory()  # removed when the session ends
        >>> path = Path(folder_for_example.name) / "image.dcm"
        >>> ds.save_as(path, enforce_file_format=True)
        >>> read_dicom(path)
        array([[4095, 3095],
               [2095,    0]], dtype=uint16)
    """
    return load_dicom(path, frame).values


def is_dicom(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM file: a ``.dcm`` / ``.dicom`` suffix, or the ``DICM`` mark after the 128-byte
    preamble (PS3.10 7.1), which DICOM files without a suffix (as PACS exports name them) carry.

    Returns:
        True for a DICOM file.
    """
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_dicom_stored(path: str | Path) -> np.ndarray:
    """The stored pixel values of a DICOM file untouched (no LUT, no inversion): the reading for mask files.

    Returns:
        The stored values (H, W), in their stored integer type.
    """
    path = Path(path)
    ds = _read_dataset(path)
    if (
        header_int(ds, "SamplesPerPixel", path, 1) != 1
        or str(getattr(ds, "PhotometricInterpretation", "")) == "PALETTE COLOR"
    ):
        raise DataError(
            f"{path}: a mask DICOM must be grey-level (1 sample per pixel); it is "
            f"{getattr(ds, 'PhotometricInterpretation', '?')}. Export the mask as MONOCHROME2."
        )
    return _stored_pixels(ds, path)
