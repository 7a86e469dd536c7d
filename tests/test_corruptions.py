"""The corruption suite: pure, deterministic given a seed, in [0, 1], and harsher at every severity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medadv import ConfigError, DataError
from medadv.attacks.corruptions import CORRUPTIONS, SEVERITIES, corrupt


def _phantom(n: int = 3, size: int = 32) -> torch.Tensor:
    """Grey images with a smooth background, a bright blob and fine texture."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = 0.35 + 0.15 * xx + 0.3 * torch.exp(-((xx - 0.2) ** 2 + (yy + 0.1) ** 2) / 0.05)
    texture = 0.08 * torch.rand(n, 1, size, size, generator=gen)
    return (base + texture).clamp(0, 1)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_is_monotone_and_stays_in_range(name):
    x = _phantom()
    distances = []
    for severity in SEVERITIES:
        out = corrupt(x, name, severity, seed=3)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        distances.append(float((out - x).abs().mean()))
    assert distances[0] > 1e-3, distances
    assert all(b > a for a, b in zip(distances, distances[1:], strict=False)), distances


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_given_seed_and_pure(name):
    x = _phantom()
    before = x.clone()
    a, b = corrupt(x, name, 3, seed=1), corrupt(x, name, 3, seed=1)
    assert torch.equal(a, b)
    assert torch.equal(x, before)  # the input is left alone
    if name in ("gaussian_noise", "speckle_noise", "motion_blur"):
        assert not torch.equal(a, corrupt(x, name, 3, seed=2))


def test_numpy_in_numpy_out_and_single_images():
    x = _phantom(1).numpy()
    out = corrupt(x, "defocus_blur", 2)
    assert isinstance(out, np.ndarray) and out.shape == x.shape
    single = corrupt(x[0, 0], "defocus_blur", 2)
    assert single.shape == x[0, 0].shape
    np.testing.assert_allclose(single, out[0, 0], atol=1e-6)


def test_known_values():
    x = torch.full((1, 1, 8, 8), 0.5)
    assert torch.allclose(corrupt(x, "brightness", 2), torch.full_like(x, 0.7))
    assert torch.allclose(corrupt(x, "gamma", 5), torch.full_like(x, 0.5**1.6))
    assert torch.allclose(corrupt(x, "contrast", 1), x)  # a flat image has no contrast to lose
    assert torch.allclose(corrupt(x, "defocus_blur", 5), x)  # blur keeps a flat image
    noisy = corrupt(torch.full((1, 1, 64, 64), 0.5), "gaussian_noise", 1)
    assert float((noisy - 0.5).std()) == pytest.approx(0.04, rel=0.1)


def test_bad_arguments_are_named():
    x = _phantom()
    with pytest.raises(ConfigError, match="corruption 'fog'"):
        corrupt(x, "fog", 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt(x, "jpeg", 6)
    with pytest.raises(DataError, match="span"):
        corrupt(x * 2, "jpeg", 1)
    with pytest.raises(DataError, match="shape"):
        corrupt(torch.zeros(2, 3, 8, 8), "jpeg", 1)
