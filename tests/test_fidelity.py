"""Fidelity of the GAN's fakes: SSIM / PSNR on known pairs, the CI summary, change localisation, discriminator AUC."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from medadv.errors import DataError
from medadv.explain.gan_evidence import evidence_maps, gan_discriminator_auc, localisation_table
from medadv.stats.fidelity import change_localisation, discriminator_auc, fidelity_summary, mean_ci, pair_fidelity
from torch import nn


def test_identical_pairs_give_ssim_one_and_infinite_psnr() -> None:
    real = np.random.default_rng(0).random((3, 1, 16, 16))
    out = pair_fidelity(real, real.copy())
    assert np.allclose(out["ssim"], 1.0)
    assert np.isposinf(out["psnr_db"]).all()
    summary = mean_ci(out["psnr_db"])
    assert summary["n"] == 0 and summary["n_infinite"] == 3 and math.isinf(summary["mean"])


def test_psnr_of_a_known_offset() -> None:
    real = np.full((2, 1, 8, 8), 0.5)
    fake = real + 0.1  # MSE 0.01 -> PSNR 20 dB
    out = pair_fidelity(real, fake)
    assert out["psnr_db"].to_numpy() == pytest.approx([20.0, 20.0])
    assert (out["ssim"] < 1.0).all()
    with pytest.raises(DataError, match="same"):
        pair_fidelity(real, fake[:1])


def test_mean_ci_matches_t_interval_and_skips_infinities() -> None:
    vals = [1.0, 2.0, 3.0, math.inf]
    out = mean_ci(vals)
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert out["mean"] == 2.0 and out["n"] == 3 and out["n_infinite"] == 1
    assert out["ci_low"] == pytest.approx(2.0 - half) and out["ci_high"] == pytest.approx(2.0 + half)
    assert mean_ci([5.0])["ci_low"] == 5.0


def test_fidelity_summary_per_generator() -> None:
    pairs = pd.DataFrame(
        {"generator": ["insert", "insert", "remove"], "ssim": [0.9, 0.8, 1.0], "psnr_db": [30.0, 40.0, math.inf]}
    )
    out = fidelity_summary(pairs)
    assert list(out["generator"]) == ["insert", "insert", "remove", "remove"]
    assert out.iloc[0]["mean"] == pytest.approx(0.85) and out.iloc[1]["mean"] == pytest.approx(35.0)
    assert out.iloc[3]["n_infinite"] == 1


def test_discriminator_auc() -> None:
    assert discriminator_auc([3.0, 4.0], [1.0, 2.0])["mean"] == 1.0
    assert discriminator_auc([1.0, 2.0], [1.0, 2.0])["mean"] == 0.5


class _PixelPick(nn.Module):
    """Positive logit = the pixel (2, 5): the saliency peaks there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, 2, 5]
        return torch.stack([-v, v], dim=1)


def test_change_localisation_on_known_masks() -> None:
    real = np.zeros((2, 1, 12, 12))
    real[:, :, 2:10, 2:10] = 0.5  # the "breast" (Otsu foreground)
    fake = real.copy()
    fake[0, 0, 4, 4] = 0.0  # change of 0.25 inside the mask
    fake[0, 0, 8, 8] = 0.4  # change of 0.01 outside it
    fake[1, 0, 0, 11] = 0.3  # a change in the background, outside the breast
    masks = np.zeros_like(real, bool)
    masks[0, 0, 3:6, 3:6] = True
    evidence = evidence_maps(_PixelPick(), fake.astype(np.float32), torch.device("cpu"))
    out = change_localisation(real, fake, masks, np.array([True, False]), evidence=evidence)
    assert out.loc[0, "lesion_share"] == pytest.approx(0.25 / 0.26)
    assert out.loc[0, "mask_area_share"] == pytest.approx(9 / 144)
    assert np.isnan(out.loc[1, "lesion_share"])
    assert (out.loc[0, "peak_row"], out.loc[0, "peak_col"]) == (4, 4) and bool(out.loc[0, "peak_in_breast"])
    assert (out.loc[1, "peak_row"], out.loc[1, "peak_col"]) == (0, 11)
    assert not bool(out.loc[1, "peak_in_breast"]) and out.loc[1, "peak_breast_distance_px"] > 0
    assert out.loc[0, "evidence_peak_distance_px"] == pytest.approx(math.hypot(2 - 4, 5 - 4))
    assert change_localisation(real, fake, masks, np.array([True, False]))["evidence_peak_distance_px"].isna().all()
    with pytest.raises(DataError, match="evidence maps"):
        change_localisation(real, fake, masks, np.array([True, False]), evidence=evidence[:1])
    rows = pd.DataFrame({"image_id": ["a", "b"], "split": ["test", "test"], "label": [1, 0]})
    table = localisation_table(rows, real, fake, masks, np.array([True, False]), _PixelPick())
    assert table["generator"].tolist() == ["remove", "insert"]
    pd.testing.assert_frame_equal(table.drop(columns=["image_id", "split", "generator"]), out)


class _Brightness(nn.Module):
    """A discriminator whose score is the image's mean brightness, with a dropout that eval mode must switch off."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x).mean(dim=(1, 2, 3))


def test_gan_discriminator_auc_scores_real_targets_against_source_fakes() -> None:
    images = np.stack([np.full((1, 4, 4), v, np.float32) for v in (0.9, 0.8, 0.1, 0.2)])  # labels 0, 0, 1, 1
    fakes = images[::-1].copy()
    labels = np.array([0, 0, 1, 1])
    disc = _Brightness().train()
    # remove: the real negatives (0.9, 0.8) against the fakes of the positives (0.8, 0.9): AUC 0.5 (dropout is off)
    assert gan_discriminator_auc(disc, "remove", images, fakes, labels, torch.device("cpu"))["mean"] == 0.5
    out = gan_discriminator_auc(disc, "remove", images, fakes * 0.1, labels, torch.device("cpu"))  # dark fakes
    assert out["mean"] == 1.0 and out["n"] == 4
    assert disc.training  # the training flag is restored
