"""Image and mask reading: bit depth, grey conversion, resizing, and the cohort path references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv import DataError
from medadv.data.images import (
    load_split,
    npz_member,
    read_image,
    read_mask,
    resize,
    shapes_mask,
    union_mask,
)
from PIL import Image


def test_16_bit_png_keeps_its_levels(tmp_path: Path) -> None:
    arr = np.array([[0, 1, 2], [65533, 65534, 65535]], np.uint16)
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and len(np.unique(out)) == 6
    np.testing.assert_allclose(out, arr / 65535.0, rtol=1e-6)


def test_rgb_png_becomes_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (255, 255, 255)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx(0.299, abs=1e-3) and out[1, 1] == pytest.approx(1.0) and out[0, 1] == 0.0


def test_a_grey_picture_reads_the_same_stored_grey_rgb_palette_or_with_alpha(tmp_path: Path) -> None:
    """An RGB PNG was min-max stretched per image (it became a 0-255 float before scaling) and a palette PNG read as
    its indices, so the same picture got other pixel values than its grey PNG (BUSI's and FracAtlas's are RGB)."""
    grey = np.random.default_rng(0).integers(20, 200, (6, 5), dtype=np.uint8)  # not spanning 0-255
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey).convert("RGB").save(tmp_path / "rgb.png")
    Image.fromarray(grey).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "palette.png")
    expected = grey / 255.0
    for name in ("grey", "rgb", "rgba", "la", "palette"):
        np.testing.assert_allclose(read_image(tmp_path / f"{name}.png"), expected, atol=1e-6, err_msg=name)


def test_resize_bicubic_for_images_and_no_lesion_lost_from_masks() -> None:
    img = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    out = resize(img, (4, 16))
    assert out.shape == (4, 16) and out.min() >= 0.0 and out.max() <= 1.0
    mask = np.zeros((8, 8), bool)
    mask[:4, :4] = True
    small = resize(mask, (4, 4), is_mask=True)
    assert small.dtype == bool and small.sum() == 4 and small[:2, :2].all()
    # a 3 x 3 lesion on a 400 x 300 image read at 96 x 96: between nearest-neighbour's samples wherever it lies
    # (it was lost), now the model pixel under it is lesion
    for row, col in ((103, 100), (100, 111), (397, 297)):
        tiny = np.zeros((400, 300), bool)
        tiny[row : row + 3, col : col + 3] = True
        marked = resize(tiny, (96, 96), is_mask=True)
        assert 1 <= marked.sum() <= 4 and marked[row * 96 // 400, col * 96 // 300]
    up = resize(mask, (16, 16), is_mask=True)  # made larger: nearest, the lesion keeps its share
    assert up.sum() == 64 and up[:8, :8].all()


def test_references_build_and_read(tmp_path: Path) -> None:
    for name, box in (("a.png", (0, 2)), ("b.png", (4, 6))):
        m = np.zeros((8, 8), np.uint8)
        m[box[0] : box[1], box[0] : box[1]] = 255
        Image.fromarray(m).save(tmp_path / name)
    assert union_mask(["a.png"]) == "a.png"
    assert union_mask(["a.png", "b.png", "a.png"]) == "union::a.png|b.png"
    assert read_mask(tmp_path / union_mask(["a.png", "b.png"]), (8, 8)).sum() == 8
    ref = shapes_mask((8, 8), rects=[(1, 1, 3, 4)])
    assert ref == "shapes::8x8::rect:1,1,3,4"
    drawn = read_mask(tmp_path / ref)
    assert drawn.sum() == 6 and drawn[1:4, 1:3].all()
    np.savez(tmp_path / "set.npz", train_images=np.full((2, 4, 4), 51, np.uint8))
    assert npz_member("set.npz", "train_images", 1) == "set.npz::train_images/1"
    np.testing.assert_allclose(read_image(tmp_path / "set.npz::train_images/1"), 0.2)


def test_bad_references(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match=r"b\.png: mask of shape \(6, 8\) but the other masks of the same image"):
        read_mask(tmp_path / "union::a.png|b.png")
    with pytest.raises(DataError, match=r"malformed drawn mask"):
        read_mask(tmp_path / "shapes::8x8::circle:1,2,3")
    with pytest.raises(DataError, match=r"no array 'test_images'"):
        np.savez(tmp_path / "set.npz", train_images=np.zeros((1, 4, 4), np.uint8))
        read_image(tmp_path / "set.npz::test_images/0")
    with pytest.raises(DataError, match=r"missing\.npz: archive not found"):
        read_image(tmp_path / "missing.npz::train_images/0")


def test_load_split_selects_and_resizes(tmp_path: Path) -> None:
    rows = []
    for i in range(3):
        Image.fromarray(np.full((10, 10), 50 * i, np.uint8)).save(tmp_path / f"im{i}.png")
        rows.append(
            {
                "image_id": f"i{i}",
                "patient_id": f"p{i}",
                "path": f"im{i}.png",
                "label": i % 2,
                "mask_path": shapes_mask((10, 10), rects=[(0, 0, 5, 5)]) if i == 1 else "",
                "view": "",
                "split": "train" if i < 2 else "test",
                "modality": "xray",
                "source_label": "",
            }
        )
    cohort = pd.DataFrame(rows)
    arrays = load_split(cohort, tmp_path, (5, 5), "train")
    assert arrays.images.shape == (2, 1, 5, 5) and list(arrays.labels) == [0, 1]
    assert list(arrays.has_mask) == [False, True]
    # the box covers pixels 0..4 of 10; made 5 pixels wide, pixels 0-1, 2-3 and 4-5 each hold some of it
    assert arrays.masks[1, 0].sum() == 9 and arrays.masks[1, 0, :3, :3].all()
    np.testing.assert_allclose(arrays.images[1], 50 / 255, atol=1e-6)
    # every array is the split's own, writable (torch.from_numpy warns about a read-only one)
    assert all(a.flags.writeable for a in (arrays.images, arrays.labels, arrays.masks, arrays.has_mask))


def _png_16_bit_rgb(path: Path, rgb: np.ndarray) -> Path:
    """A 16-bit RGB PNG written chunk by chunk (Pillow cannot write one): IHDR depth 16, colour type 2."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[r].astype(">u2").tobytes() for r in range(h))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_16_bit_colour_png_is_refused_not_truncated(tmp_path: Path) -> None:
    from medadv import DataError

    rgb = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000 + 7).astype(np.uint16)
    path = _png_16_bit_rgb(tmp_path / "us.png", rgb)
    with pytest.raises(DataError, match=r"us\.png: 16-bit colour PNG.*low byte.*16-bit grey-level PNG"):
        read_image(path)


def test_wide_integer_images_are_grey_levels_and_cmyk_is_its_luminance(tmp_path: Path) -> None:
    ramp = np.tile(np.arange(0, 4096, 64), (64, 1))  # numpy's default int64, 12-bit values
    np.save(tmp_path / "i64.npy", ramp)
    np.testing.assert_allclose(read_image(tmp_path / "i64.npy"), ramp / 65535.0, rtol=1e-6)  # was flat 0.5
    Image.fromarray(ramp.astype(np.int32), mode="I").save(tmp_path / "i32.tif")  # Pillow's 32-bit grey
    np.testing.assert_allclose(read_image(tmp_path / "i32.tif"), ramp / 65535.0, rtol=1e-6)
    np.save(tmp_path / "big.npy", ramp * 1000)
    with pytest.raises(DataError, match=r"big\.npy: int64 image with values 0 to 4032000; integer images are read"):
        read_image(tmp_path / "big.npy")
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    Image.fromarray(grey).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert abs(float(read_image(tmp_path / "cmyk.jpg").mean()) - grey.mean() / 255) < 0.02  # was about 0


def test_a_narrow_value_range_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    from medadv.data.images import warn_narrow_range

    assert not warn_narrow_range(np.linspace(0.1, 0.9, 50), 5)
    assert warn_narrow_range(np.linspace(0.0, 0.048, 50), 5)
    assert "the 5 images sampled use 5% of the value range their files declare (grey levels 0.000 to 0.048" in (
        caplog.text
    )
