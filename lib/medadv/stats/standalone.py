"""A standalone algorithm against a panel of readers on the same cases: is its AUC the panel's mean AUC?

The method is the single-treatment Obuchowski-Rockette analysis with Hillis's degrees of freedom applied to the
readers' differences from the algorithm (Hillis, Stat Med 26:596-619, 2007, section 5.3; Chakraborty, *Observer
Performance Methods for Diagnostic Imaging*, CRC Press 2017, chapter "Standalone CAD vs. radiologists", where it is
called 1T-RRRC and used by Hupse et al., Eur Radiol 23:93-100, 2013, to compare a mammography CAD with radiologists;
the R package RJafroc implements it as ``StSignificanceTestingCadVsRad``). Readers and cases are both random; the
algorithm is fixed (it would give the same ratings again).

For readers ``j = 1..J`` with AUCs ``theta_j`` and the algorithm's AUC ``theta_0`` on the same ``c`` cases, let
``psi_j = theta_j - theta_0``. With ``var`` and ``cov2`` the average jackknife variance of one ``psi_j`` and the
average jackknife covariance of two different readers' ``psi``,

    MS(R)  = sum_j (psi_j - psi_.)^2 / (J - 1)
    den    = MS(R) + J max(cov2, 0)
    t      = psi_. / sqrt(den / J),   ddf = den^2 / (MS(R)^2 / (J - 1))

and the CI of the mean difference is ``psi_. +- t_{ddf, 1 - alpha/2} sqrt(den / J)`` (two-sided p from Student's t
on ``ddf``). The fixed-cases variant (1T-RRFC, readers random only) is the one-sample t-test of the ``psi_j``.

The jackknife covariances come from :func:`medadv.stats.mrmc` (the same leave-one-case-out AUCs as the kit's
Obuchowski-Rockette analysis); the covariance of the differences is ``A C A^T`` with ``A = [-1 | I]``, exact because
the jackknife covariance is bilinear. No well-kept Python package implements this (it lives in R's RJafroc), hence
the few lines here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats

from medadv.errors import DataError
from medadv.stats.auc import check_binary_truth
from medadv.stats.mrmc import _block_covariance

__all__ = ["StandaloneResult", "standalone_vs_readers"]


@dataclasses.dataclass(frozen=True)
class StandaloneResult:
    """The comparison of one algorithm with a reader panel (see the module docstring).

    Attributes:
        algorithm_auc: ``theta_0``.
        reader_auc: each reader's AUC, indexed by reader.
        mean_reader_auc: ``theta_.`` (the panel's mean AUC).
        diff: mean reader AUC minus the algorithm's AUC, ``psi_.``.
        ci_low, ci_high: its CI under random readers and cases (1T-RRRC).
        t_stat, df, p_value: the RRRC t statistic, Hillis's degrees of freedom, two-sided p.
        var_error, cov2, ms_r: the variance components.
        rrfc_ci_low, rrfc_ci_high, rrfc_p_value: the fixed-cases analysis (one-sample t-test of the ``psi_j``).
        n_readers, n_cases, level: the study's size and the CI level.
    """

    algorithm_auc: float
    reader_auc: pd.Series
    mean_reader_auc: float
    diff: float
    ci_low: float
    ci_high: float
    t_stat: float
    df: float
    p_value: float
    var_error: float
    cov2: float
    ms_r: float
    rrfc_ci_low: float
    rrfc_ci_high: float
    rrfc_p_value: float
    n_readers: int
    n_cases: int
    level: float

    def row(self) -> dict[str, float]:
        """The result as one flat table row (the reader AUCs left out).

        Returns:
            ``{field: value}``.
        """
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "reader_auc"}


def _check(reader_ratings: np.ndarray, algorithm: np.ndarray, truth: np.ndarray) -> None:
    if reader_ratings.ndim != 2 or reader_ratings.shape[0] < 2:
        raise DataError(f"reader ratings have shape {reader_ratings.shape}; expected (readers >= 2, cases).")
    if algorithm.shape != (reader_ratings.shape[1],) or truth.shape != algorithm.shape:
        raise DataError(
            f"algorithm scores {algorithm.shape}, truth {truth.shape} and reader ratings "
            f"{reader_ratings.shape}: expected one score and one truth per case of the ratings."
        )
    if not (np.isfinite(reader_ratings).all() and np.isfinite(algorithm).all()):
        raise DataError(
            "ratings or algorithm scores hold missing or non-finite values; every reader and the "
            "algorithm must rate every case."
        )


def standalone_vs_readers(
    reader_ratings: np.ndarray,
    algorithm: np.ndarray,
    truth: np.ndarray,
    readers: list[str] | None = None,
    level: float = 0.95,
) -> StandaloneResult:
    """Compare a standalone algorithm's AUC with a reader panel's mean AUC on the same cases (1T-RRRC).

    Args:
        reader_ratings: (readers, cases) ratings, larger = more likely abnormal (any ordinal scale).
        algorithm: (cases,) the algorithm's scores on the same cases.
        truth: (cases,) 1 = abnormal; at least two cases of each class.
        readers: reader names (default ``R1..RJ``).
        level: CI level.

    Returns:
        :class:`StandaloneResult`.

    Raises:
        DataError: shapes that do not fit, fewer than two readers, missing ratings, unusable truth.
    """
    ratings = np.asarray(reader_ratings, dtype=float)
    algo = np.asarray(algorithm, dtype=float)
    y = check_binary_truth(truth, "truth", min_per_class=2)
    _check(ratings, algo, y)
    n_readers = ratings.shape[0]
    auc, cov = _block_covariance(y, np.vstack([algo[None, :], ratings]), "jackknife")
    a = np.hstack([-np.ones((n_readers, 1)), np.eye(n_readers)])
    psi, cov_psi = a @ auc, a @ cov @ a.T
    off = ~np.eye(n_readers, dtype=bool)
    var_error, cov2 = float(np.mean(np.diag(cov_psi))), float(cov_psi[off].mean())
    mean_psi = float(psi.mean())
    ms_r = float(np.var(psi, ddof=1))
    den = ms_r + n_readers * max(cov2, 0.0)
    se = float(np.sqrt(den / n_readers))
    df = den**2 / (ms_r**2 / (n_readers - 1)) if ms_r > 0 else float("inf")
    t_stat = mean_psi / se if se > 0 else (0.0 if mean_psi == 0 else float(np.copysign(np.inf, mean_psi)))
    q = float(stats.t.ppf(0.5 + level / 2, df))
    rrfc_se = float(np.sqrt(ms_r / n_readers))
    q_rrfc = float(stats.t.ppf(0.5 + level / 2, n_readers - 1))
    rrfc_t = mean_psi / rrfc_se if rrfc_se > 0 else (0.0 if mean_psi == 0 else float(np.copysign(np.inf, mean_psi)))
    names = readers if readers is not None else [f"R{j + 1}" for j in range(n_readers)]
    return StandaloneResult(
        algorithm_auc=float(auc[0]),
        reader_auc=pd.Series(auc[1:], index=list(names), name="auc"),
        mean_reader_auc=float(auc[1:].mean()),
        diff=mean_psi,
        ci_low=mean_psi - q * se,
        ci_high=mean_psi + q * se,
        t_stat=float(t_stat),
        df=float(df),
        p_value=float(2 * stats.t.sf(abs(t_stat), df)),
        var_error=var_error,
        cov2=cov2,
        ms_r=ms_r,
        rrfc_ci_low=mean_psi - q_rrfc * rrfc_se,
        rrfc_ci_high=mean_psi + q_rrfc * rrfc_se,
        rrfc_p_value=float(2 * stats.t.sf(abs(rrfc_t), n_readers - 1)),
        n_readers=n_readers,
        n_cases=int(y.size),
        level=float(level),
    )
