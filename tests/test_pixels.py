"""The kit's one PNG writer per bit depth: levels, round trips through read_image, masks, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medadv.data.images import read_image, read_mask
from medadv.data.pixels import luminance, quantize, save_png8, save_png16
from medadv.errors import DataError
from PIL import Image


def test_quantize_rounds_to_the_nearest_level_after_clipping() -> None:
    values = np.array([-0.2, 0.0, 0.5 / 255, 0.49 / 255, 0.5, 1.0, 1.3])
    assert quantize(values, 8).tolist() == [0, 0, 0, 0, 128, 255, 255]  # 0.5 / 255 rounds half to even
    assert quantize(values, 16).tolist() == [0, 0, 128, 126, 32768, 65535, 65535]
    assert quantize(values, 8).dtype == np.uint8 and quantize(values, 16).dtype == np.uint16
    assert quantize(np.array([True, False]), 8).tolist() == [255, 0]
    with pytest.raises(DataError, match="bits is 12"):
        quantize(values, 12)


@pytest.mark.parametrize(("bits", "writer", "mode"), [(8, save_png8, "L"), (16, save_png16, "I;16")])
def test_png_round_trip(tmp_path: Path, bits: int, writer, mode: str) -> None:  # noqa: ANN001
    rng = np.random.default_rng(bits)
    image = rng.random((7, 5))
    path = writer(tmp_path / "nested" / "a.png", image)
    assert path == tmp_path / "nested" / "a.png"
    with Image.open(path) as img:
        assert img.mode == mode and img.size == (5, 7)
        stored = np.array(img)
    np.testing.assert_array_equal(stored, quantize(image, bits))
    back = read_image(path)
    top = 2**bits - 1
    np.testing.assert_allclose(back, np.round(image * top) / top, atol=1e-7)
    assert np.abs(back - image).max() <= 0.5 / top + 1e-7
    again = writer(tmp_path / "b.png", image)
    assert again.read_bytes() == path.read_bytes()  # no timestamps: the bytes depend on the pixels only


def test_a_mask_is_written_as_0_or_255_and_read_back(tmp_path: Path) -> None:
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    path = save_png8(tmp_path / "m.png", mask)
    with Image.open(path) as img:
        assert sorted(np.unique(np.array(img)).tolist()) == [0, 255]
    np.testing.assert_array_equal(read_mask(path, (4, 6)), mask)


def test_not_a_2d_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"b\.png: image of shape \(1, 4, 4\); expected \(H, W\)"):
        save_png16(tmp_path / "b.png", np.zeros((1, 4, 4)))


def test_luminance_uses_bt601_weights() -> None:
    assert luminance(np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]])).tolist() == pytest.approx(
        [0.299 * 255, 0.587 * 255, 0.114 * 255]
    )
