"""Every bad input of the data layer is a medadv.DataError naming the file, the problem and what to do."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv import DataError
from medadv.data.cohort import COHORT_COLUMNS
from medadv.data.dicom import header_int, read_dicom, read_dicom_header
from medadv.data.images import load_split, read_image, read_mask
from medadv.data.sources import load_cohort, load_manifest
from PIL import Image
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless
from test_dicom import write_dicom

MANIFESTS = Path(__file__).resolve().parents[1] / "data_manifests"


def _png(path: Path, shape: tuple[int, int] = (8, 8), value: int = 200) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


def _mask_png(
    path: Path,
    shape: tuple[int, int] = (8, 8),
    lesion: tuple[slice, slice] = (slice(2, 4), slice(2, 5)),
    background: int = 0,
    level: int = 255,
) -> Path:
    """A binary lesion mask: ``level`` on the ``lesion`` rectangle, ``background`` elsewhere."""
    arr = np.full(shape, background, np.uint8)
    arr[lesion] = level
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _busi(root: Path, classes: dict[str, int] | None = None) -> Path:
    """A tiny BUSI tree: ``classes`` maps a class folder to its number of images (each with one mask)."""
    for name, count in (classes or {"benign": 1, "malignant": 1}).items():
        for i in range(1, count + 1):
            _png(root / "Dataset_BUSI_with_GT" / name / f"{name} ({i}).png")
            _mask_png(root / "Dataset_BUSI_with_GT" / name / f"{name} ({i})_mask.png")
    return root


def _manifest_copy(tmp_path: Path, name: str, edit=lambda text: text) -> Path:
    out = tmp_path / f"{name}.yaml"
    out.write_text(edit((MANIFESTS / f"{name}.yaml").read_text()))
    return out


def test_corrupt_image(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    with pytest.raises(DataError, match=r"broken\.png: corrupt or unreadable image .*replace the file"):
        read_image(bad)


def test_truncated_dicom(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "cut.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), bits_stored=12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])  # the pixel data ends early
    with pytest.raises(DataError, match=r"cut\.dcm: truncated or corrupt DICOM .*download the file again"):
        read_dicom(path)
    path.write_bytes(data[:200])  # the header ends early
    with pytest.raises(DataError, match=r"cut\.dcm: .*no pixel data .*truncated .*download it again"):
        read_dicom(path)
    # CBIS-DDSM picks an ROI folder's mask by its header's size alone: a header cut before Rows is named, not an
    # AttributeError from pydicom
    with pytest.raises(DataError, match=r"cut\.dcm: the DICOM header has no Rows; the file is truncated"):
        header_int(read_dicom_header(path), "Rows", path)


def test_a_malformed_integer_in_a_dicom_header_is_named() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("badVR.dcm")  # pydicom's own file: NumberOfFrames '1A', which pydicom keeps as text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the invalid value as it reads it
        with pytest.raises(DataError, match=r"badVR\.dcm: the DICOM header's NumberOfFrames is '1A', not an integer"):
            read_image(path)


def test_not_a_dicom(tmp_path: Path) -> None:
    path = tmp_path / "text.dcm"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"text\.dcm: not a DICOM file .*convert it"):
        read_image(path)


def test_compressed_dicom_without_decoder_names_the_package(tmp_path: Path) -> None:
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here, so the no-decoder path cannot be exercised")
    path = write_dicom(
        tmp_path / "jls.dcm",
        np.zeros((8, 8), np.uint16),
        transfer_syntax=JPEGLSLossless,
        frames=[b"\xff\xd8 bogus JPEG-LS stream \xff\xd9"],
    )
    with pytest.raises(
        DataError, match=r"jls\.dcm: pixel data compressed with JPEG-LS .*no decoder.*pip install pyjpegls"
    ):
        read_dicom(path)


def test_compressed_dicom_that_does_not_decode_names_the_package(tmp_path: Path) -> None:
    path = write_dicom(
        tmp_path / "j2k.dcm",
        np.zeros((8, 8), np.uint16),
        transfer_syntax=JPEG2000Lossless,
        frames=[b"\x00\x00\x00\x0cjP  bogus JPEG 2000 data"],
    )
    message = r"(?s)j2k\.dcm: .*JPEG 2000.*pip install pylibjpeg pylibjpeg-openjpeg"
    with pytest.raises(DataError, match=message):
        read_dicom(path)


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "empty.dcm", np.zeros((4, 4), np.uint16), pixel_data=False)
    with pytest.raises(
        DataError,
        match=r"empty\.dcm: the DICOM file holds no pixel data \(its header describes a 4 x 4 image\).*remove it",
    ):
        read_dicom(path)


def test_nan_and_inf_pixels(tmp_path: Path) -> None:
    arr = np.ones((4, 4), np.float32)
    arr[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", arr)
    with pytest.raises(DataError, match=r"nan\.npy: image holds NaN or inf pixels; re-export"):
        read_image(tmp_path / "nan.npy")
    path = write_dicom(tmp_path / "inf.dcm", np.full((4, 4), 4000, np.uint16), bits_stored=12, rescale=(1e308, 0.0))
    with pytest.raises(DataError, match=r"inf\.dcm: DICOM pixel values hold NaN or inf .*RescaleSlope"):
        read_image(path)
    path = write_dicom(tmp_path / "nan.dcm", arr)  # float pixel data holding a NaN
    with pytest.raises(DataError, match=r"nan\.dcm: DICOM pixel values hold NaN or inf .*drop it from the cohort"):
        read_image(path)


def test_mask_shape_differs_from_image(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data")
    _png(root / "Dataset_BUSI_with_GT" / "malignant" / "malignant (1)_mask.png", shape=(6, 8), value=255)
    cohort = load_cohort(MANIFESTS / "busi.yaml", root)
    with pytest.raises(
        DataError, match=r"malignant \(1\)_mask\.png: mask of shape \(6, 8\) but its image is \(8, 8\).*same pixel grid"
    ):
        load_split(cohort, root, (8, 8))


def test_missing_mask(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data")
    (root / "Dataset_BUSI_with_GT" / "benign" / "benign (1)_mask.png").unlink()
    with pytest.raises(
        DataError, match=r"benign \(1\)\.png: no mask file next to it .*benign \(1\)_mask\.png.*restore"
    ):
        load_cohort(MANIFESTS / "busi.yaml", root)
    with pytest.raises(DataError, match=r"gone_mask\.png: mask file not found; restore it"):
        read_mask(root / "gone_mask.png")


def test_unknown_label(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data", {"benign": 1, "malignant": 1, "suspicious": 1})
    with pytest.raises(
        DataError, match=r"suspicious: unknown label 'suspicious'; the manifest .*busi\.yaml.*label_map"
    ):
        load_cohort(MANIFESTS / "busi.yaml", root)


def test_empty_cohort(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("benign", "malignant", "normal"):
        (root / "Dataset_BUSI_with_GT" / name).mkdir(parents=True)
    with pytest.raises(DataError, match=r"(?s)data: no images found for busi .*Dataset_BUSI_with_GT/benign"):
        load_cohort(MANIFESTS / "busi.yaml", root)
    with pytest.raises(DataError, match=r"data root not found"):
        load_cohort(MANIFESTS / "busi.yaml", tmp_path / "nowhere")
    empty = pd.DataFrame(columns=list(COHORT_COLUMNS))
    with pytest.raises(DataError, match=r"split 'train' is empty"):
        load_split(empty, root, (8, 8), "train")


def test_checksum_mismatch(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data")
    image = root / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png"
    good = hashlib.sha256(image.read_bytes()).hexdigest()
    entry = f"sha256:\n  Dataset_BUSI_with_GT/benign/benign (1).png: {good}\n"
    manifest = _manifest_copy(tmp_path, "busi", lambda t: t + entry)
    assert len(load_cohort(manifest, root)) == 2  # the right file passes
    _png(image, value=7)
    seen = hashlib.sha256(image.read_bytes()).hexdigest()
    with pytest.raises(DataError) as err:
        load_cohort(manifest, root)
    text = str(err.value)
    assert "benign (1).png: checksum mismatch" in text and good in text and seen in text
    assert "download it again" in text


def test_manifest_that_does_not_parse(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: busi\nlabel_map: {malignant: 1, benign: 0\n")
    with pytest.raises(DataError, match=r"bad\.yaml: the manifest is not valid YAML"):
        load_manifest(bad)


def test_manifest_that_lacks_a_field(tmp_path: Path) -> None:
    manifest = _manifest_copy(tmp_path, "busi", lambda t: t.replace("licence:", "licensing:"))
    with pytest.raises(DataError, match=r"busi\.yaml: the manifest lacks the field\(s\) \['licence'\]"):
        load_manifest(manifest)
    manifest = _manifest_copy(tmp_path, "busi", lambda t: t.replace("  malignant: 1\n", "  malignant: yes\n"))
    with pytest.raises(DataError, match=r"busi\.yaml: field 'label_map' maps 'malignant' to True"):
        load_manifest(manifest)
    manifest = _manifest_copy(tmp_path, "busi", lambda t: t.replace("loader: busi", "loader: nosuch"))
    with pytest.raises(DataError, match=r"busi\.yaml: field 'loader' is 'nosuch'"):
        load_manifest(manifest)
    manifest = _manifest_copy(tmp_path, "busi", lambda t: t.replace("  lesion_free:", "  lesionfree:"))
    with pytest.raises(DataError, match=r"busi\.yaml: field 'options' has unknown keys \['lesionfree'\]"):
        load_cohort(manifest, _busi(tmp_path / "data"))


def test_shipped_manifests_parse() -> None:
    names = sorted(p.stem for p in MANIFESTS.glob("*.yaml"))
    assert names == ["breastmnist", "busi", "cbis_ddsm", "fracatlas", "pneumoniamnist", "vindr_mammo"]
    for name in names:
        manifest = load_manifest(MANIFESTS / f"{name}.yaml")
        assert manifest.name == name
        assert set(manifest.label_map.values()) >= {0, 1}


def test_loader_does_not_write_into_the_data_root(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data")
    shutil.copytree(root, tmp_path / "before")
    load_split(load_cohort(MANIFESTS / "busi.yaml", root), root, (8, 8))
    before = sorted(p.relative_to(tmp_path / "before") for p in (tmp_path / "before").rglob("*"))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_colour_dicom(tmp_path: Path) -> None:
    from pydicom import dcmread

    path = write_dicom(tmp_path / "rgb.dcm", np.zeros((4, 4), np.uint8))
    ds = dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 2] = (255, 0, 0)
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    image = read_dicom(path)  # colour is read as its luminance
    assert image[1, 2] == pytest.approx(0.299 * 255) and image.sum() == pytest.approx(0.299 * 255)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 4, "ARGB"  # a retired colour model
    ds.PixelData = np.zeros((4, 4, 4), np.uint8).tobytes()
    ds.save_as(path)
    with pytest.raises(DataError, match=r"rgb\.dcm: DICOM image with 4 samples per pixel \(ARGB\).*MONOCHROME2"):
        read_dicom(path)


def test_manifest_with_a_duplicated_key_names_the_line(tmp_path: Path) -> None:
    def twice(text: str) -> str:  # benign given twice in label_map: the second would win and turn benign positive
        return text.replace("label_map:\n", "label_map:\n  benign: 1\n", 1)

    path = _manifest_copy(tmp_path, "busi", twice)
    line = 1 + path.read_text().splitlines().index("  benign: 1")
    with pytest.raises(
        DataError, match=rf"busi\.yaml: the manifest has a duplicate key 'benign' on line \d+ \(first on line {line}\)"
    ):
        load_manifest(path)


def _busi_case(root: Path, files: dict[str, np.ndarray]) -> Path:
    """A BUSI tree with a healthy benign and malignant image, plus ``files`` (name under the data set's folder ->
    8-bit pixels)."""
    _busi(root)
    for name, pixels in files.items():
        path = root / "Dataset_BUSI_with_GT" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return root


def _lesion(shape: tuple[int, int] = (8, 8), background: int = 0, level: int = 255) -> np.ndarray:
    arr = np.full(shape, background, np.uint8)
    arr[2:4, 2:5] = level
    return arr


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (
            _lesion(background=1),
            r"malignant \(2\)_mask\.png: not a binary lesion mask: it holds 2 grey levels \(1, 255 of "
            r"255\); a mask holds 0 for the background",
        ),
        (
            _lesion(background=255, level=0),
            r"malignant \(2\)_mask\.png: the lesion mask covers 91% of its 8 x 8 image; .*"
            r"this one is inverted, its background is not 0",
        ),
        (np.full((8, 8), 1, np.uint8), r"malignant \(2\)_mask\.png: the lesion mask covers 100% of its 8 x 8 image"),
        (np.arange(64, dtype=np.uint8).reshape(8, 8), r"not a binary lesion mask: it holds 64 grey levels"),
    ],
)
def test_a_mask_that_is_not_a_binary_minority_is_named(tmp_path: Path, mask: np.ndarray, message: str) -> None:
    """A background of 1, an inverted mask: the lesion covered (nearly) the whole image and notebook 00 said done."""
    root = _busi_case(
        tmp_path / "data",
        {"malignant/malignant (2).png": np.full((8, 8), 90, np.uint8), "malignant/malignant (2)_mask.png": mask},
    )
    cohort = load_cohort(MANIFESTS / "busi.yaml", root)
    with pytest.raises(DataError, match=message):
        load_split(cohort, root, (8, 8))


def test_masks_in_0_1_and_in_0_255_read_alike(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    root = tmp_path / "masks"
    for name, level in (("a.png", 255), ("b.png", 1)):
        _mask_png(root / name, level=level)
    assert np.array_equal(read_mask(root / "a.png"), read_mask(root / "b.png")) and read_mask(root / "a.png").sum() == 6
    big = np.zeros((8, 8), np.uint8)
    big[:6, :] = 255  # 75%: a large lesion, kept with a warning
    Image.fromarray(big).save(root / "big.png")
    with caplog.at_level(logging.WARNING, logger="medadv.data.images"):
        assert read_mask(root / "big.png").mean() == 0.75
    assert "big.png: the lesion mask covers 75% of the image; check that it is not inverted" in caplog.text


def test_file_names_without_ascii_letters_get_an_id_and_duplicate_ids_name_their_files(tmp_path: Path) -> None:
    from medadv.data.sources.busi import image_id

    assert image_id("ñ") == "n" and image_id("benign (12)") == "benign_12"
    assert image_id("乳腺").startswith("img_") and len(image_id("乳腺")) == 16 and image_id("乳腺") != image_id("腺")
    root = _busi_case(
        tmp_path / "data",
        {
            "benign/ñ.png": np.full((8, 8), 90, np.uint8),
            "benign/ñ_mask.png": _lesion(),
            "benign/乳腺.png": np.full((8, 8), 90, np.uint8),
            "benign/乳腺_mask.png": _lesion(),
        },
    )
    cohort = load_cohort(MANIFESTS / "busi.yaml", root)
    assert (cohort["image_id"] != "").all() and (cohort["patient_id"] != "").all()
    assert set(cohort["image_id"]) >= {"n", image_id("乳腺")}
    twin = _busi_case(
        tmp_path / "twin", {"benign/benign_1.png": np.full((8, 8), 90, np.uint8), "benign/benign_1_mask.png": _lesion()}
    )
    with pytest.raises(
        DataError,
        match=r"image id 'benign_1' is given to 2 images, \['Dataset_BUSI_with_GT/benign/"
        r"benign \(1\)\.png', 'Dataset_BUSI_with_GT/benign/benign_1\.png'\].*rename one",
    ):
        load_cohort(MANIFESTS / "busi.yaml", twin)


def test_an_empty_image_id_is_refused_naming_the_file() -> None:
    from medadv.data.cohort import validate_cohort

    table = pd.DataFrame(
        {
            "image_id": ["a", ""],
            "patient_id": ["a", "b"],
            "path": ["a.png", "b.png"],
            "label": [0, 1],
            "mask_path": ["", ""],
            "view": ["", ""],
            "split": ["", ""],
            "modality": ["xray"] * 2,
            "source_label": ["x", "y"],
        }
    )
    with pytest.raises(DataError, match=r"1 image\(s\) with an empty image_id, e\.g\. \['b\.png'\]"):
        validate_cohort(table)


def test_blank_and_one_pixel_images_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    root = _busi_case(
        tmp_path / "data",
        {"benign/benign (2).png": np.zeros((8, 8), np.uint8), "benign/benign (2)_mask.png": _lesion()},
    )
    with caplog.at_level(logging.WARNING, logger="medadv.data.images"):
        load_split(load_cohort(MANIFESTS / "busi.yaml", root), root, (8, 8))
    assert "benign (2).png: every pixel has the grey level 0: a blank image" in caplog.text
    tiny = _busi_case(
        tmp_path / "tiny",
        {
            "malignant/malignant (2).png": np.full((1, 1), 90, np.uint8),
            "malignant/malignant (2)_mask.png": np.full((1, 1), 255, np.uint8),
        },
    )
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="medadv.data.images"),
        pytest.raises(DataError, match=r"malignant \(2\)_mask\.png: the lesion mask covers 100% of its 1 x 1 image"),
    ):
        load_split(load_cohort(MANIFESTS / "busi.yaml", tiny), tiny, (8, 8))
    assert "malignant (2).png: the image is only 1 x 1 pixels" in caplog.text


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` grey pixels (the decoder refuses it before reading data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


def test_a_decompression_bomb_is_named(tmp_path: Path) -> None:
    bomb = _png_header_only(tmp_path / "huge.png", 14000, 14000)
    with pytest.raises(DataError, match=r"huge\.png: the image is too large to read safely .*196000000 pixels"):
        read_image(bomb)


def test_loader_options_of_the_wrong_kind_are_named(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data")
    for edit, message in (
        (
            lambda t: t.replace("strict: false", 'strict: "false"'),
            r"options\.strict is 'false'; expected true or false \(the default is False\)\. It is quoted, so YAML "
            r"reads it as text: write strict: false without quotes",
        ),
        (
            lambda t: t.replace("folder: Dataset_BUSI_with_GT", "folder: [x]"),
            r"options\.folder is \['x'\]; expected "
            r"text",
        ),
        (
            lambda t: t.replace("lesion_free: [normal]", "lesion_free: normal"),
            r"options\.lesion_free is 'normal'; "
            r"expected a list",
        ),
    ):
        with pytest.raises(DataError, match=message):
            load_cohort(_manifest_copy(tmp_path, "busi", edit), root)


def test_a_missing_data_root_argument_is_named() -> None:
    with pytest.raises(DataError, match=r"data root is None; give the folder that holds busi"):
        load_cohort(MANIFESTS / "busi.yaml", None)  # type: ignore[arg-type]
