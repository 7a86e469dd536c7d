"""How faithful the GAN's fakes are, and where the GAN changed them (paper 001, "GAN model generator and
discriminator": the identity loss exists "to improve the fidelity of the generator", lesions being small).

* :func:`pair_fidelity`: SSIM (Wang et al., IEEE TIP 2004) and PSNR between each real image and its fake, both from
  scikit-image with ``data_range=1``. An identical pair has PSNR = +inf (MSE 0); :func:`mean_ci` summarises the
  finite values and counts the identical pairs apart, so one untouched image never turns a mean into inf.
* :func:`mean_ci`: mean with a two-sided Student-t confidence interval.
* :func:`change_localisation`: where the change ``real - fake`` lies.
  - ``lesion_share``: share of the squared change that falls inside the lesion mask (removal on annotated
    positives); to be read against ``mask_area_share``, the share a change spread uniformly would put there
    (higher is better: the edit is on the lesion).
  - ``peak_row`` / ``peak_col``: the pixel of largest squared change after a Gaussian smoothing (sigma 1 pixel)
    (insertion: where the new lesion appears), ``peak_in_breast`` whether it lies in the breast region (Otsu threshold
    of the real image, scikit-image) and ``peak_breast_distance_px`` its Euclidean distance to the nearest breast pixel
    (0 inside).
  - ``evidence_peak_distance_px``: distance between the change peak and the peak of the classifier's positive
    evidence on the fake (a map per image, smoothed the same way); small means the classifier's evidence moved to
    where the GAN edited.
* :func:`discriminator_auc`: a discriminator's real-vs-fake AUC (DeLong CI) via :mod:`medadv.stats.auc`.

Numbers only: no network runs here. The classifier's evidence maps (captum ``Saliency``) and the discriminator's
scores come from :mod:`medadv.explain.gan_evidence`, which also builds notebook 02's localisation table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy import stats as sps
from skimage.filters import threshold_otsu
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medadv.errors import DataError
from medadv.stats.auc import delong_ci

__all__ = [
    "change_localisation",
    "discriminator_auc",
    "fidelity_summary",
    "localisation_summary",
    "mean_ci",
    "pair_fidelity",
]


def _check_pairs(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.shape != fake.shape or real.ndim != 4 or real.shape[1] != 1:
        raise DataError(
            f"real {real.shape} and fake {fake.shape} images; expected two arrays of the same (N, 1, H, W) shape."
        )
    return real, fake


def pair_fidelity(real: np.ndarray, fake: np.ndarray) -> pd.DataFrame:
    """SSIM and PSNR (dB) of each real / fake pair (N, 1, H, W) in [0, 1]; PSNR is +inf for identical pairs.

    Returns:
        One row per pair: ssim, psnr_db.
    """
    real, fake = _check_pairs(real, fake)
    win = min(7, *real.shape[2:])
    win -= 1 - win % 2  # odd window no larger than the image
    rows = []
    for r, f in zip(real[:, 0], fake[:, 0], strict=True):
        ssim = structural_similarity(r, f, data_range=1.0, win_size=win)
        psnr = math.inf if np.array_equal(r, f) else peak_signal_noise_ratio(r, f, data_range=1.0)
        rows.append({"ssim": float(ssim), "psnr_db": float(psnr)})
    return pd.DataFrame(rows, columns=["ssim", "psnr_db"])


def mean_ci(values: ArrayLike, level: float = 0.95) -> dict[str, float]:
    """Mean of the finite values with a Student-t ``level`` CI; ``n`` finite values, ``n_infinite`` +inf values.

    With one finite value the CI is that value; with none the mean and CI are +inf if there were infinite values
    (every pair identical), NaN otherwise.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n", "n_infinite"}``.
    """
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    n_inf = int(np.isposinf(arr).sum())
    if len(finite) == 0:
        fill = math.inf if n_inf else math.nan
        return {"mean": fill, "ci_low": fill, "ci_high": fill, "n": 0, "n_infinite": n_inf}
    mean = float(finite.mean())
    if len(finite) == 1 or float(finite.std()) == 0.0:
        low = high = mean
    else:
        sem = float(finite.std(ddof=1)) / math.sqrt(len(finite))
        half = float(sps.t.ppf(0.5 + level / 2.0, len(finite) - 1)) * sem
        low, high = mean - half, mean + half
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": len(finite), "n_infinite": n_inf}


def fidelity_summary(per_pair: pd.DataFrame, group: str = "generator", level: float = 0.95) -> pd.DataFrame:
    """Mean and CI of SSIM and PSNR per ``group`` value: columns group, metric, mean, ci_low, ci_high, n, n_infinite.

    Returns:
        One row per group value and metric.
    """
    rows = []
    for key, part in per_pair.groupby(group, sort=True):
        for metric in ("ssim", "psnr_db"):
            rows.append({group: key, "metric": metric, **mean_ci(part[metric], level)})
    return pd.DataFrame(rows)


def discriminator_auc(score_real: ArrayLike, score_fake: ArrayLike, level: float = 0.95) -> dict[str, float]:
    """Real-vs-fake AUC of a discriminator's scores (real = class 1) with DeLong's CI.

    0.5 means the discriminator cannot tell the fakes from real images; 1 that it always can.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n", "n_infinite"}`` (the AUC as the mean, in the shape of
        :func:`mean_ci`).
    """
    real = np.asarray(score_real, dtype=np.float64).ravel()
    fake = np.asarray(score_fake, dtype=np.float64).ravel()
    truth = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    auc, low, high = delong_ci(truth, np.r_[real, fake], level=level)
    return {"mean": float(auc), "ci_low": float(low), "ci_high": float(high), "n": len(truth), "n_infinite": 0}


def _smooth(arr: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(arr, sigma=1.0, mode="constant")


def _peak(arr: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(arr)), arr.shape)
    return int(r), int(c)


def change_localisation(
    real: np.ndarray,
    fake: np.ndarray,
    masks: np.ndarray,
    has_mask: ArrayLike,
    evidence: np.ndarray | None = None,
) -> pd.DataFrame:
    """Where the change ``real - fake`` lies, one row per image (measures in the module docstring).

    Args:
        real, fake: (N, 1, H, W) images in [0, 1].
        masks: (N, 1, H, W) bool lesion masks; ``has_mask`` (N,) says which images are annotated (``lesion_share``
            and ``mask_area_share`` are NaN elsewhere).
        evidence: (N, H, W) maps of the classifier's positive evidence on the fakes
            (:func:`medadv.explain.gan_evidence.evidence_maps`); when given, they fill the
            ``evidence_peak_distance_px`` column (NaN otherwise).

    Returns:
        columns lesion_share, mask_area_share, change_energy, peak_row, peak_col, peak_in_breast,
        peak_breast_distance_px, evidence_peak_distance_px.
    """
    real, fake = _check_pairs(real, fake)
    masks = np.asarray(masks, dtype=bool)
    has_mask = np.asarray(has_mask, dtype=bool)
    if masks.shape != real.shape or has_mask.shape != (len(real),):
        raise DataError(f"masks {masks.shape} / has_mask {has_mask.shape}; expected {real.shape} and ({len(real)},).")
    sq = (real - fake)[:, 0] ** 2
    if evidence is not None and np.shape(evidence) != sq.shape:
        raise DataError(f"evidence maps {np.shape(evidence)}; expected one (H, W) map per image, {sq.shape}.")
    rows = []
    for i in range(len(real)):
        energy = float(sq[i].sum())
        row: dict[str, float | int | bool] = {"change_energy": energy}
        if has_mask[i]:
            m = masks[i, 0]
            row["lesion_share"] = float(sq[i][m].sum() / energy) if energy > 0 else math.nan
            row["mask_area_share"] = float(m.mean())
        else:
            row["lesion_share"] = row["mask_area_share"] = math.nan
        pr, pc = _peak(_smooth(sq[i]))
        img = real[i, 0]
        breast = img > threshold_otsu(img) if img.max() > img.min() else np.ones_like(img, bool)
        dist = ndimage.distance_transform_edt(~breast)
        row.update(
            peak_row=pr, peak_col=pc, peak_in_breast=bool(breast[pr, pc]), peak_breast_distance_px=float(dist[pr, pc])
        )
        if evidence is not None:
            er, ec = _peak(_smooth(evidence[i]))
            row["evidence_peak_distance_px"] = float(math.hypot(er - pr, ec - pc))
        else:
            row["evidence_peak_distance_px"] = math.nan
        rows.append(row)
    cols = [
        "lesion_share",
        "mask_area_share",
        "change_energy",
        "peak_row",
        "peak_col",
        "peak_in_breast",
        "peak_breast_distance_px",
        "evidence_peak_distance_px",
    ]
    return pd.DataFrame(rows, columns=cols)


def localisation_summary(table: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of a :func:`localisation_table`: for removal on annotated images the mean lesion share of the
    squared change against the mean mask area share; for insertion the share of change peaks inside the breast and
    the median distance between the change peak and the classifier's evidence peak.

    Returns:
        The headline numbers (NaN where a generator has no image).
    """
    rem = table[(table["generator"] == "remove") & table["lesion_share"].notna()]
    ins = table[table["generator"] == "insert"]
    return {
        "remove_lesion_share_mean": float(rem["lesion_share"].mean()) if len(rem) else math.nan,
        "remove_mask_area_share_mean": float(rem["mask_area_share"].mean()) if len(rem) else math.nan,
        "insert_peak_in_breast_share": float(ins["peak_in_breast"].astype(float).mean()) if len(ins) else math.nan,
        "insert_evidence_peak_distance_px_median": float(ins["evidence_peak_distance_px"].median())
        if len(ins)
        else math.nan,
    }
