"""Tests of medadv.stats.mrmc: the published Van Dyke analysis, brute-force covariances, the Hillis floor, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv.errors import ConfigError, DataError
from medadv.stats.auc import delong_covariance, delong_test, roc_auc
from medadv.stats.mrmc import or_hillis, ratings_matrix
from scipy import stats

VANDYKE = Path(__file__).with_name("data") / "vandyke.csv"


@pytest.fixture(scope="module")
def vandyke() -> pd.DataFrame:
    return pd.read_csv(VANDYKE, comment="#")


def _digits(x: float, printed: str) -> None:
    """``x`` rounds to the printed value (same number of decimals)."""
    decimals = len(printed.split(".")[1])
    assert round(x, decimals) == pytest.approx(float(printed), abs=10 ** (-decimals) / 1e3), (x, printed)


def test_vandyke_reproduces_published_or_dbm_mrmc_251(vandyke: pd.DataFrame) -> None:
    res = or_hillis(vandyke, cov="jackknife")
    published = {
        0: ["0.91964573", "0.85877617", "0.90386473", "0.97310789", "0.82979066"],
        1: ["0.94782609", "0.90531401", "0.92173913", "0.99935588", "0.92995169"],
    }
    for trt, values in published.items():
        for reader, printed in zip(range(1, 6), values, strict=True):
            _digits(res.auc.loc[trt, reader], printed)
    _digits(res.treatment_means[0], "0.89703704")
    _digits(res.treatment_means[1], "0.94083736")
    _digits(res.diff, "-0.04380032")
    _digits(res.var_error, "0.00080229")
    _digits(res.cov1, "0.00034661")
    _digits(res.cov2, "0.00034407")
    _digits(res.cov3, "0.00023903")
    _digits(res.ms_t, "0.00479617")
    _digits(res.ms_tr, "0.00055103")
    # random readers and cases
    assert res.df_num == 1
    _digits(res.f_stat, "4.4563")
    _digits(res.df_den, "15.2597")
    _digits(res.p_value, "0.0517")
    _digits(res.ci_low, "-0.08796")
    _digits(res.ci_high, "0.00036")
    # fixed readers
    _digits(res.frrc_chi2, "5.47595")
    assert res.frrc_df == 1
    _digits(res.frrc_p_value, "0.0193")
    _digits(res.frrc_ci_low, "-0.08049")
    _digits(res.frrc_ci_high, "-0.00711")
    # fixed cases
    assert (res.rrfc_df_num, res.rrfc_df_den) == (1, 4)
    _digits(res.rrfc_f_stat, "8.70")
    _digits(res.rrfc_p_value, "0.0420")
    _digits(res.rrfc_ci_low, "-0.08502")
    _digits(res.rrfc_ci_high, "-0.00258")


def test_vandyke_to_frame_rows(vandyke: pd.DataFrame) -> None:
    table = or_hillis(vandyke).to_frame()
    assert list(table["analysis"]) == ["RRRC", "FRRC", "RRFC"]
    assert (table["treatment_a"] == 0).all() and (table["treatment_b"] == 1).all()
    rrrc = table.iloc[0]
    # for two treatments the pair's t statistic squared is the F statistic, and the p-values agree
    assert (rrrc["diff"] / rrrc["std_err"]) ** 2 == pytest.approx(rrrc["test_statistic"])
    assert rrrc["p_value"] == pytest.approx(rrrc["test_p_value"])
    assert table.iloc[1]["p_value"] == pytest.approx(table.iloc[1]["test_p_value"])
    assert np.isinf(table.iloc[1]["df"])


def _random_study(seed: int, t: int = 2, r: int = 3, c: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = np.r_[np.zeros(c // 2), np.ones(c - c // 2)].astype(int)
    rows = []
    for trt in range(t):
        for rdr in range(r):
            score = rng.integers(1, 6, c) + truth
            rows += [(rdr, trt, k, truth[k], score[k]) for k in range(c)]
    return pd.DataFrame(rows, columns=["reader", "treatment", "case", "truth", "rating"])


def _brute_jackknife(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Jackknife covariance by recomputing every AUC with each case removed (Hillis et al. 2005, sec. 2.3)."""
    keys = sorted({(t, r) for t, r in zip(df["treatment"], df["reader"], strict=True)})
    cases = sorted(df["case"].unique())
    full = np.array([roc_auc(g["truth"], g["rating"]) for _, g in df.groupby(["treatment", "reader"])])
    jack = np.array(
        [
            [roc_auc(g["truth"], g["rating"]) for _, g in df[df["case"] != k].groupby(["treatment", "reader"])]
            for k in cases
        ]
    )  # (c, t*r)
    c = len(cases)
    dev = jack - jack.mean(axis=0)
    assert len(keys) == full.size
    return full, (c - 1) / c * dev.T @ dev


def test_jackknife_components_match_brute_force() -> None:
    df = _random_study(3)
    res = or_hillis(df, cov="jackknife")
    full, cov = _brute_jackknife(df)
    np.testing.assert_allclose(res.auc.to_numpy().ravel(), full)
    t, r = 2, 3
    pairs = list(itertools.product(range(t), range(r)))
    kinds: dict[str, list[float]] = {"var": [], "c1": [], "c2": [], "c3": []}
    for (a, (ta, ra)), (b, (tb, rb)) in itertools.product(enumerate(pairs), repeat=2):
        kind = "var" if a == b else "c1" if ra == rb else "c2" if ta == tb else "c3"
        kinds[kind].append(cov[a, b])
    assert res.var_error == pytest.approx(np.mean(kinds["var"]))
    assert res.cov1 == pytest.approx(np.mean(kinds["c1"]))
    assert res.cov2 == pytest.approx(np.mean(kinds["c2"]))
    assert res.cov3 == pytest.approx(np.mean(kinds["c3"]))


def test_delong_covariances_match_auc_module() -> None:
    df = _random_study(4)
    res = or_hillis(df, cov="delong")
    m = ratings_matrix(df)
    _, cov = delong_covariance(m.truth, m.ratings.reshape(6, -1))
    assert res.var_error == pytest.approx(np.mean(np.diag(cov)))
    assert res.cov1 == pytest.approx(np.mean([cov[j, 3 + j] for j in range(3)]))
    assert res.cov_method == "delong"


def test_hillis_floor_gives_ddf_of_fixed_cases() -> None:
    res = or_hillis(_random_study(0))
    assert res.cov2 < res.cov3
    assert res.df_den == pytest.approx((2 - 1) * (3 - 1))
    assert res.f_stat == pytest.approx(res.ms_t / res.ms_tr)  # the floor removes the covariance term
    assert res.frrc_chi2 == pytest.approx(res.ms_t / (res.var_error - res.cov1))


def test_three_treatments_f_test_and_pairs_by_hand() -> None:
    df = _random_study(5, t=3, r=4)
    res = or_hillis(df)
    theta = res.auc.to_numpy()
    means = theta.mean(axis=1)
    ms_t = 4 * np.sum((means - means.mean()) ** 2) / 2
    resid = theta - means[:, None] - theta.mean(axis=0) + theta.mean()
    ms_tr = np.sum(resid**2) / (2 * 3)
    assert res.ms_t == pytest.approx(ms_t) and res.ms_tr == pytest.approx(ms_tr)
    den = ms_tr + 4 * max(res.cov2 - res.cov3, 0)
    ddf = den**2 / (ms_tr**2 / 6)
    assert (res.df_num, res.df_den) == (2, pytest.approx(ddf))
    assert res.f_stat == pytest.approx(ms_t / den)
    assert res.p_value == pytest.approx(stats.f.sf(ms_t / den, 2, ddf))
    assert np.isnan(res.diff) and np.isnan(res.ci_low)
    rrrc = res.pairs[res.pairs["analysis"] == "RRRC"]
    assert list(zip(rrrc["treatment_a"], rrrc["treatment_b"], strict=True)) == [(0, 1), (0, 2), (1, 2)]
    half = stats.t.ppf(0.975, ddf) * np.sqrt(2 / 4 * den)
    np.testing.assert_allclose(
        rrrc["ci_low"], [means[0] - means[1] - half, means[0] - means[2] - half, means[1] - means[2] - half]
    )


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.drop(columns="truth"), "lacks column"),
        (lambda d: d.iloc[1:], "incomplete"),
        (lambda d: d.assign(truth=d["truth"] * 2), "binary"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "repeated"),
        (lambda d: d.assign(rating=d["rating"].astype(float).where(d.index != 3)), "non-finite"),
        (lambda d: d.assign(truth=np.where(d.index == 0, 1 - d["truth"], d["truth"])), "different truth"),
        (lambda d: d[d["reader"] == 0], "2 readers"),
        (lambda d: d[d["treatment"] == 0], "2 treatments"),
    ],
)
def test_bad_ratings_raise_data_error(mutate, match: str) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match=match):
        or_hillis(mutate(_random_study(1)))


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="cov"):
        or_hillis(_random_study(1), cov="bootstrap")
    with pytest.raises(ConfigError, match="level"):
        or_hillis(_random_study(1), level=95)


def test_unpaired_design_has_zero_cross_treatment_covariance(vandyke: pd.DataFrame) -> None:
    # Treatment 0 keeps the odd cases, treatment 1 the even ones: two separate case sets read by the same readers.
    split = vandyke[(vandyke["case"] % 2 == 1) == (vandyke["treatment"] == 0)]
    res = or_hillis(split)
    assert res.design == "unpaired"
    assert res.cov1 == 0.0 and res.cov3 == 0.0
    variances, cov2s = [], []
    for trt in (0, 1):
        _, cov = _brute_jackknife(split[split["treatment"] == trt])
        variances += list(np.diag(cov))
        cov2s += list(cov[~np.eye(5, dtype=bool)])
    assert res.var_error == pytest.approx(np.mean(variances))
    assert res.cov2 == pytest.approx(np.mean(cov2s))
    den = res.ms_tr + 5 * res.cov2
    assert res.df_den == pytest.approx(den**2 / (res.ms_tr**2 / 4))
    assert or_hillis(vandyke).design == "paired"


def test_partly_shared_cases_raise_data_error(vandyke: pd.DataFrame) -> None:
    mixed = vandyke[(vandyke["treatment"] == 0) | (vandyke["case"] > 10)]
    with pytest.raises(DataError, match="mixes designs"):
        or_hillis(mixed)


def test_identical_readers_give_infinite_ddf_and_chi_square_limit() -> None:
    df = _random_study(6, t=2, r=2)
    first = df[df["reader"] == 0]
    df = pd.concat([first, first.assign(reader=1)], ignore_index=True)  # reader 1 copies reader 0
    res = or_hillis(df)
    assert res.ms_tr == 0.0 and np.isinf(res.df_den)
    assert res.cov2 == pytest.approx(res.var_error) and res.cov3 == pytest.approx(res.cov1)
    assert res.f_stat == pytest.approx(res.frrc_chi2)  # both ms_t / (r (var - cov1))
    assert res.p_value == pytest.approx(stats.chi2.sf(res.f_stat, 1))
    assert np.isinf(res.rrfc_f_stat) and res.rrfc_p_value == 0.0


def test_per_reader_fixed_readers_with_delong_is_delongs_test(vandyke: pd.DataFrame) -> None:
    per = or_hillis(vandyke, cov="delong").frrc_per_reader
    assert list(per["reader"]) == [1, 2, 3, 4, 5]
    for _, row in per.iterrows():
        one = vandyke[vandyke["reader"] == row["reader"]].sort_values("case")
        a, b = (one[one["treatment"] == trt]["rating"].to_numpy() for trt in (0, 1))
        diff, z, p = delong_test(one[one["treatment"] == 0]["truth"].to_numpy(), a, b)
        assert (row["diff"], row["z"], row["p_value"]) == (pytest.approx(diff), pytest.approx(z), pytest.approx(p))
    jack = or_hillis(vandyke).frrc_per_reader
    assert jack["diff"].iloc[0] == pytest.approx(0.91964573 - 0.94782609, abs=1e-8)
