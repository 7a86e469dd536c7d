"""Every bad input of the data layer is a medadv.DataError naming the file, the problem and what to do."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless
from test_dicom import write_dicom

from medadv import DataError
from medadv.data.cohort import COHORT_COLUMNS
from medadv.data.dicom import read_dicom
from medadv.data.images import load_split, read_image, read_mask
from medadv.data.sources import load_cohort, load_manifest

MANIFESTS = Path(__file__).resolve().parents[1] / "data_manifests"


def _png(path: Path, shape: tuple[int, int] = (8, 8), value: int = 200) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


def _busi(root: Path, classes: dict[str, int] | None = None) -> Path:
    """A tiny BUSI tree: ``classes`` maps a class folder to its number of images (each with one mask)."""
    for name, count in (classes or {"benign": 1, "malignant": 1}).items():
        for i in range(1, count + 1):
            _png(root / "Dataset_BUSI_with_GT" / name / f"{name} ({i}).png")
            _png(root / "Dataset_BUSI_with_GT" / name / f"{name} ({i})_mask.png", value=255)
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


def test_not_a_dicom(tmp_path: Path) -> None:
    path = tmp_path / "text.dcm"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"text\.dcm: not a DICOM file .*convert it"):
        read_image(path)


def test_compressed_dicom_without_decoder_names_the_package(tmp_path: Path) -> None:
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here, so the no-decoder path cannot be exercised")
    path = write_dicom(tmp_path / "jls.dcm", np.zeros((8, 8), np.uint16), transfer_syntax=JPEGLSLossless,
                       frames=[b"\xff\xd8 bogus JPEG-LS stream \xff\xd9"])
    with pytest.raises(DataError, match=r"jls\.dcm: pixel data compressed with JPEG-LS .*no decoder.*pip install pyjpegls"):
        read_dicom(path)


def test_compressed_dicom_that_does_not_decode_names_the_package(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "j2k.dcm", np.zeros((8, 8), np.uint16), transfer_syntax=JPEG2000Lossless,
                       frames=[b"\x00\x00\x00\x0cjP  bogus JPEG 2000 data"])
    message = r"(?s)j2k\.dcm: .*JPEG 2000.*pip install pylibjpeg pylibjpeg-openjpeg"
    with pytest.raises(DataError, match=message):
        read_dicom(path)


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "empty.dcm", np.zeros((4, 4), np.uint16), pixel_data=False)
    with pytest.raises(DataError, match=r"empty\.dcm: the DICOM file holds no pixel data \(its header describes a 4 x 4 image\).*remove it"):
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
    with pytest.raises(DataError, match=r"malignant \(1\)_mask\.png: mask of shape \(6, 8\) but its image is \(8, 8\).*same pixel grid"):
        load_split(cohort, root, (8, 8))


def test_missing_mask(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data")
    (root / "Dataset_BUSI_with_GT" / "benign" / "benign (1)_mask.png").unlink()
    with pytest.raises(DataError, match=r"benign \(1\)\.png: no mask file next to it .*benign \(1\)_mask\.png.*restore"):
        load_cohort(MANIFESTS / "busi.yaml", root)
    with pytest.raises(DataError, match=r"gone_mask\.png: mask file not found; restore it"):
        read_mask(root / "gone_mask.png")


def test_unknown_label(tmp_path: Path) -> None:
    root = _busi(tmp_path / "data", {"benign": 1, "malignant": 1, "suspicious": 1})
    with pytest.raises(DataError, match=r"suspicious: unknown label 'suspicious'; the manifest .*busi\.yaml.*label_map"):
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
    with pytest.raises(DataError, match=rf"busi\.yaml: the manifest has a duplicate key 'benign' on line \d+ \(first on line {line}\)"):
        load_manifest(path)
