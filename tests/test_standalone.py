"""The standalone-algorithm-vs-reader-panel comparison (1T-RRRC, Hillis 2007 sec. 5.3), against simulations of known
truth: under the null its test keeps its level, its CI covers the true difference, and it finds a real difference."""

from __future__ import annotations

import numpy as np
import pytest
from medadv.errors import DataError
from medadv.stats.auc import roc_auc
from medadv.stats.standalone import standalone_vs_readers
from scipy import stats

N_READERS, N_CASES, RHO = 5, 60, 0.5


def simulate(
    rng: np.random.Generator, mu: float, tau: float, d_algo: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binormal ratings with a shared case effect: reader j's separation d_j ~ N(mu, tau^2), AUC_j = Phi(d_j / sqrt 2);
    the population mean reader AUC is Phi(mu / sqrt(2 + tau^2)); the algorithm's AUC is Phi(d_algo / sqrt 2)."""
    truth = (np.arange(N_CASES) % 2).astype(int)
    case = rng.standard_normal(N_CASES)
    d = rng.normal(mu, tau, size=N_READERS)
    noise = rng.standard_normal((N_READERS + 1, N_CASES))
    seps = np.concatenate([[d_algo], d])[:, None]
    x = seps * truth + RHO * case + np.sqrt(1 - RHO**2) * noise
    return x[1:], x[0], truth


def true_diff(mu: float, tau: float, d_algo: float) -> float:
    return float(stats.norm.cdf(mu / np.sqrt(2 + tau**2)) - stats.norm.cdf(d_algo / np.sqrt(2)))


def null_algorithm(mu: float, tau: float) -> float:
    """The algorithm separation whose AUC equals the population mean reader AUC."""
    return float(mu * np.sqrt(2) / np.sqrt(2 + tau**2))


def test_matches_hand_computation_on_a_tiny_study() -> None:
    rng = np.random.default_rng(0)
    readers, algo, truth = simulate(rng, 1.5, 0.3, 1.5)
    res = standalone_vs_readers(readers, algo, truth)
    assert res.algorithm_auc == pytest.approx(roc_auc(truth, algo))
    assert res.mean_reader_auc == pytest.approx(np.mean([roc_auc(truth, r) for r in readers]))
    psi = np.array([roc_auc(truth, r) for r in readers]) - roc_auc(truth, algo)
    assert res.diff == pytest.approx(psi.mean())
    assert res.ms_r == pytest.approx(psi.var(ddof=1))
    # jackknife by brute force: leave one case out, recompute every psi
    jack = np.array(
        [
            [
                roc_auc(np.delete(truth, k), np.delete(r, k)) - roc_auc(np.delete(truth, k), np.delete(algo, k))
                for r in readers
            ]
            for k in range(N_CASES)
        ]
    )
    dev = jack - jack.mean(axis=0)
    cov = (N_CASES - 1) / N_CASES * dev.T @ dev
    assert res.var_error == pytest.approx(np.mean(np.diag(cov)))
    assert res.cov2 == pytest.approx(cov[~np.eye(N_READERS, dtype=bool)].mean())
    den = res.ms_r + N_READERS * max(res.cov2, 0)
    assert res.df == pytest.approx(den**2 / (res.ms_r**2 / (N_READERS - 1)))
    assert res.t_stat == pytest.approx(res.diff / np.sqrt(den / N_READERS))


def test_keeps_its_level_and_covers_the_truth_when_readers_and_cases_vary() -> None:
    rng = np.random.default_rng(1)
    mu, tau = 1.6, 0.5
    d0 = null_algorithm(mu, tau)
    reject, cover = 0, 0
    n_sim = 400
    for _ in range(n_sim):
        res = standalone_vs_readers(*simulate(rng, mu, tau, d0))
        reject += res.p_value < 0.05
        cover += res.ci_low <= true_diff(mu, tau, d0) <= res.ci_high
    assert 0.015 <= reject / n_sim <= 0.09
    assert 0.91 <= cover / n_sim <= 0.985


def test_fixed_cases_analysis_ignores_case_variance_and_is_liberal() -> None:
    """With little reader variability, the fixed-cases t-test forgets the case sampling and rejects too often under
    the null; the random-cases analysis does not (the reason to treat cases as random)."""
    rng = np.random.default_rng(2)
    mu, tau = 1.6, 0.05
    d0 = null_algorithm(mu, tau)
    rrrc = rrfc = 0
    n_sim = 300
    for _ in range(n_sim):
        res = standalone_vs_readers(*simulate(rng, mu, tau, d0))
        rrrc += res.p_value < 0.05
        rrfc += res.rrfc_p_value < 0.05
    assert rrrc / n_sim <= 0.09
    assert rrfc / n_sim >= 0.2


def test_finds_a_better_algorithm() -> None:
    rng = np.random.default_rng(3)
    mu, tau, d_algo = 1.0, 0.3, 3.0
    hits = sum(standalone_vs_readers(*simulate(rng, mu, tau, d_algo)).p_value < 0.05 for _ in range(100))
    assert hits >= 80
    res = standalone_vs_readers(*simulate(rng, mu, tau, d_algo))
    assert res.diff < 0 and res.ci_high < 0


def test_rejects_bad_input() -> None:
    rng = np.random.default_rng(4)
    readers, algo, truth = simulate(rng, 1.0, 0.3, 1.0)
    with pytest.raises(DataError, match="readers >= 2"):
        standalone_vs_readers(readers[:1], algo, truth)
    with pytest.raises(DataError, match="one score"):
        standalone_vs_readers(readers, algo[:-1], truth)
    bad = readers.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        standalone_vs_readers(bad, algo, truth)
