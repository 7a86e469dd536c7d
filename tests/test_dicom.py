"""DICOM reading: the presentation chain (rescale, window, VOI LUT, MONOCHROME1) and kept bit depth.

``write_dicom`` writes small, standard-conforming DICOM files with pydicom; the loader and error tests reuse it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medadv.data.dicom import load_dicom, read_dicom, read_dicom_stored
from medadv.data.images import read_image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    frames: list[bytes] | None = None,
    pixel_data: bool = True,
) -> Path:
    """Write ``pixels`` (uint8 / uint16 / int16 / float32, (H, W)) as a single-frame grey DICOM file with file meta.

    ``frames`` (encoded bytes) makes an encapsulated (compressed) file with ``transfer_syntax``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.PatientID = "P_TEST"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    if not np.issubdtype(pixels.dtype, np.floating):  # float32 pixels go to Float Pixel Data, without these
        ds.BitsStored = bits_stored or ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if np.issubdtype(pixels.dtype, np.signedinteger) else 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixel_data and np.issubdtype(pixels.dtype, np.floating):
        ds.FloatPixelData = pixels.astype(np.float32).tobytes()
    elif pixel_data:
        ds.PixelData = encapsulate(frames) if frames is not None else pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_plain_12_bit_keeps_integers_and_depth(tmp_path: Path) -> None:
    pixels = np.array([[0, 1000], [2000, 4095]], np.uint16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12)
    out = read_dicom(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, pixels)
    loaded = load_dicom(path)
    assert (loaded.low, loaded.high) == (0.0, 4095.0)
    # [0, 1] over the 12-bit range, not the 16-bit container: 4095 -> 1.0, 1000 -> 1000/4095
    np.testing.assert_allclose(read_image(path), pixels / 4095.0, rtol=1e-6)


def test_16_bit_depth_kept(tmp_path: Path) -> None:
    pixels = np.array([[0, 1], [65534, 65535]], np.uint16)
    out = read_dicom(write_dicom(tmp_path / "a.dcm", pixels, bits_stored=16))
    np.testing.assert_array_equal(out, pixels)  # neighbouring 16-bit levels stay distinct
    assert len(np.unique(read_image(tmp_path / "a.dcm"))) == 4


def test_rescale_slope_intercept_applied(tmp_path: Path) -> None:
    pixels = np.array([[0, 10], [100, 1000]], np.uint16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12, rescale=(2.0, -1024.0))
    out = read_dicom(path)
    np.testing.assert_allclose(out, pixels * 2.0 - 1024.0)
    loaded = load_dicom(path)
    assert (loaded.low, loaded.high) == (-1024.0, 4095 * 2.0 - 1024.0)


def test_window_applied(tmp_path: Path) -> None:
    pixels = np.array([[0, 999], [1500, 4095]], np.uint16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12, window=(1500.0, 1001.0))
    out = read_image(path)
    # LINEAR window (PS3.3 C.11.2.1.2.1), centre 1500, width 1001: x <= 999.5 -> black, x > 2000.5 -> white,
    # the centre -> mid grey
    assert out[0, 0] == 0.0 and out[0, 1] == 0.0 and out[1, 1] == 1.0
    assert out[1, 0] == pytest.approx(0.5, abs=1e-3)


def test_monochrome1_inverted(tmp_path: Path) -> None:
    pixels = np.array([[0, 100], [4000, 4095]], np.uint16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12, photometric="MONOCHROME1")
    out = read_dicom(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, 4095 - pixels)
    unit = read_image(path)
    assert unit[0, 0] == 1.0 and unit[1, 1] == 0.0  # stored 0 is white in MONOCHROME1
    np.testing.assert_array_equal(read_dicom_stored(path), pixels)  # masks read stored values, untouched


def test_signed_pixels(tmp_path: Path) -> None:
    pixels = np.array([[-2048, 0], [1, 2047]], np.int16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12)
    np.testing.assert_array_equal(read_dicom(path), pixels)
    np.testing.assert_allclose(read_image(path), (pixels + 2048) / 4095.0, rtol=1e-6)


def test_voi_lut_sequence_applied(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.dataset import Dataset

    pixels = np.array([[0, 16], [2048, 4095]], np.uint16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12)
    ds = dcmread(path)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", [x * 16 for x in range(4096)])  # LUTData: a 12-bit -> 16-bit VOI LUT
    ds.VOILUTSequence = [item]
    ds.save_as(path)
    np.testing.assert_array_equal(read_dicom(path), pixels * 16)
    loaded = load_dicom(path)
    assert (loaded.low, loaded.high) == (0.0, 4095.0 * 16)


@pytest.mark.parametrize("signed", [False, True])
def test_lookup_table_equals_pydicom_chain(tmp_path: Path, signed: bool) -> None:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    rng = np.random.default_rng(1)
    pixels = rng.integers(-2048 if signed else 0, 2048 if signed else 4096, (16, 16)).astype(
        np.int16 if signed else np.uint16
    )
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12, rescale=(0.5, 100.0), window=(400.0, 900.0))
    ds = pydicom.dcmread(path)
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    np.testing.assert_allclose(read_dicom(path), expected, rtol=0, atol=1e-9)


def test_float_pixel_data_scaled_over_its_own_range(tmp_path: Path) -> None:
    pixels = np.array([[-1.0, 0.0], [1.0, 3.0]], np.float32)
    path = write_dicom(tmp_path / "a.dcm", pixels)
    loaded = load_dicom(path)
    np.testing.assert_array_equal(loaded.values, pixels)
    assert (loaded.low, loaded.high) == (-1.0, 3.0)
    np.testing.assert_allclose(read_image(path), (pixels + 1.0) / 4.0)


# ---- colour, palette and multi-frame files (pydicom's own test files) ------------------------------------------
def _pydicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name)
    if found is None:
        pytest.skip(f"{name} is not among the installed pydicom's test files")
    return Path(found)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def test_palette_colour_is_read_through_its_palette() -> None:
    import pydicom
    from pydicom.pixels import apply_color_lut

    path = _pydicom_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    truth = _luma(apply_color_lut(ds.pixel_array, ds).astype(np.float64)) / 65535.0  # a 16-bit palette
    image = read_image(path)
    assert image.shape == (350, 800)
    np.testing.assert_allclose(image, truth, atol=1e-6)
    raw_index = ds.pixel_array.astype(np.float64) / 255.0
    assert np.abs(image - raw_index).max() > 0.3  # the indices themselves would be far off


def test_rgb_dicom_becomes_luminance() -> None:
    import pydicom

    path = _pydicom_file("examples_rgb_color.dcm")
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64)
    np.testing.assert_allclose(read_image(path), _luma(rgb) / 255.0, atol=1e-6)
    pixels = load_dicom(path)
    assert (pixels.low, pixels.high) == (0.0, 255.0)


def test_ybr_multiframe_needs_a_frame_and_gives_its_luma(tmp_path: Path) -> None:
    import pydicom
    from medadv import DataError

    path = _pydicom_file("examples_ybr_color.dcm")  # YBR_FULL_422, JPEG baseline, 30 frames
    with pytest.raises(DataError, match=r"examples_ybr_color\.dcm: multi-frame DICOM with 30 frames.*dicom_frame"):
        read_image(path)
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(index=7, as_rgb=False)
    y_channel = ds.pixel_array[..., 0].astype(np.float64) / 255.0  # YBR_FULL's Y is the BT.601 luminance
    image = read_image(f"{path}::frame/7")
    # YBR -> RGB -> Y rounds to whole levels and clips saturated colours: equal up to that
    assert np.abs(image - y_channel).mean() < 0.5 / 255.0
    assert np.corrcoef(image.ravel(), y_channel.ravel())[0, 1] > 0.999
    assert np.abs(read_image(f"{path}::frame/0") - image).max() > 0.05  # another frame is another image
    with pytest.raises(DataError, match=r"frame 30 asked for, but the DICOM file holds 30 frame"):
        read_image(f"{path}::frame/30")


def test_rle_rgb_two_frames() -> None:
    import pydicom

    path = _pydicom_file("SC_rgb_rle_2frame.dcm")
    ds = pydicom.dcmread(path)
    for frame in (0, 1):
        ds.pixel_array_options(index=frame)
        np.testing.assert_allclose(read_dicom(path, frame), _luma(ds.pixel_array.astype(np.float64)), atol=1e-9)


def test_jpeg2000_colour_when_its_decoder_is_installed() -> None:
    import pydicom
    from pydicom.pixels import get_decoder

    path = _pydicom_file("examples_jpeg2k.dcm")
    ds = pydicom.dcmread(path)
    if not get_decoder(ds.file_meta.TransferSyntaxUID).is_available:
        pytest.skip("no JPEG 2000 decoder installed (the 'dicom' extra: pylibjpeg-openjpeg)")
    np.testing.assert_allclose(read_image(path), _luma(ds.pixel_array.astype(np.float64)) / 255.0, atol=1e-6)


def test_dicom_without_suffix_is_found_by_its_preamble(tmp_path: Path) -> None:
    pixels = np.arange(48, dtype=np.uint16).reshape(6, 8) * 50
    named = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12)
    bare = tmp_path / "IM000001"
    bare.write_bytes(named.read_bytes())
    np.testing.assert_array_equal(read_image(bare), read_image(named))
    from medadv.data.images import read_mask

    lesion = np.zeros((6, 8), np.uint16)
    lesion[2:4, 3:5] = 1
    mask = tmp_path / "IM000002"
    mask.write_bytes(write_dicom(tmp_path / "m.dcm", lesion, bits_stored=12).read_bytes())
    np.testing.assert_array_equal(read_mask(mask), lesion != 0)


def test_jpeg2000_without_its_decoder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import pydicom.pixels
    from medadv import DataError

    class Missing:
        is_available = False
        missing_dependencies = ["plugin 'pylibjpeg' requires pylibjpeg-openjpeg"]

    path = _pydicom_file("examples_jpeg2k.dcm")
    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda syntax: Missing())  # as on a machine without it
    with pytest.raises(
        DataError,
        match=r"examples_jpeg2k\.dcm: pixel data compressed with JPEG 2000.*no decoder for it "
        r"is installed; install one: pip install 'medadv\[dicom\]'",
    ):
        read_image(path)
