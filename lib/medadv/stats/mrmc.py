"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis's degrees of freedom.

The model (Obuchowski & Rockette, Commun Stat Simul Comput 24:285-308, 1995) treats the AUC of reader ``j`` under
treatment ``i``, ``theta_ij``, as a treatment effect plus reader and treatment-by-reader effects plus an error whose
covariance over the cases is described by four numbers, each an average over the ``t x r`` AUCs:

- ``var_error``: the variance of one AUC (same treatment, same reader);
- ``cov1``: same reader, different treatments;
- ``cov2``: different readers, same treatment;
- ``cov3``: different readers, different treatments.

They are estimated by the jackknife over cases (Hillis, Obuchowski, Schartz & Berbaum, Stat Med 24:1579-1607, 2005,
section 2.3: ``Cov(theta_a, theta_b) = (c-1)/c * sum_k (theta_a(k) - theta_a(.)) (theta_b(k) - theta_b(.))``, with
``theta(k)`` the AUC with case ``k`` left out), or by DeLong's method (:mod:`medadv.stats.auc`). With the mean squares

    MS(T)  = r * sum_i (theta_i. - theta_..)^2 / (t - 1)
    MS(TR) = sum_ij (theta_ij - theta_i. - theta_.j + theta_..)^2 / ((t - 1)(r - 1))

the three analyses of Hillis (Stat Med 26:596-619, 2007) are:

- random readers and cases (RRRC): ``F = MS(T) / [MS(TR) + r max(cov2 - cov3, 0)]`` on ``t - 1`` and
  ``ddf = [MS(TR) + r max(cov2 - cov3, 0)]^2 / [MS(TR)^2 / ((t-1)(r-1))]`` degrees of freedom (Hillis 2007, eq. 7-8);
  CI of a difference ``diff +- t_{ddf} sqrt(2/r [MS(TR) + r max(cov2 - cov3, 0)])``;
- fixed readers, random cases (FRRC): ``chi2 = (t-1) MS(T) / [var_error - cov1 + (r-1) max(cov2 - cov3, 0)]`` on
  ``t - 1`` df; CI ``diff +- z sqrt(2/r [var_error - cov1 + (r-1) max(cov2 - cov3, 0)])``;
- random readers, fixed cases (RRFC): ``F = MS(T) / MS(TR)`` on ``t - 1`` and ``(t-1)(r-1)`` df;
  CI ``diff +- t_{(t-1)(r-1)} sqrt(2 MS(TR) / r)``.

Designs: *paired* (every reader reads every case under every treatment: the classic factorial design) or *unpaired*
(each treatment has its own cases, every reader reads all of them, e.g. two reading sessions with different images).
In the unpaired design the AUCs of different treatments share no cases, so ``cov1 = cov3 = 0`` and the covariances
within a treatment are estimated from its own cases (Obuchowski & Rockette 1995); the formulas above are unchanged.

AUCs are trapezoidal (Mann-Whitney, ties 1/2). The jackknife AUCs come from the DeLong placements in closed form:
leaving out positive case ``i`` gives ``(m AUC - V10_i) / (m - 1)``, leaving out negative ``j`` gives
``(n AUC - V01_j) / (n - 1)``. Checked against the Van Dyke data analysed by OR-DBM MRMC 2.51 (tests/test_mrmc.py).

No well-kept Python package implements this analysis (it lives in the R packages RJafroc and MRMCaov), hence the
implementation here.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from medadv.errors import ConfigError, DataError
from medadv.stats.auc import check_binary_truth, delong_components

__all__ = ["ORHillisResult", "RATING_COLUMNS", "RatingsMatrix", "or_hillis", "ratings_matrix"]

RATING_COLUMNS = ("reader", "treatment", "case", "truth", "rating")
COV_METHODS = ("jackknife", "delong")


@dataclasses.dataclass(frozen=True)
class RatingsMatrix:
    """Ratings arranged for analysis.

    Attributes:
        ratings: ``ratings[i, j, k]`` of treatment ``i``, reader ``j``, case ``k``; NaN where case ``k`` is not
            part of treatment ``i`` (unpaired designs only).
        truth: ``(c,)`` boolean truth per case (True = abnormal).
        treatments, readers, cases: the labels of the three axes, sorted.
        paired: True when every treatment uses every case; False when each treatment has its own cases.
    """

    ratings: np.ndarray
    truth: np.ndarray
    treatments: tuple
    readers: tuple
    cases: tuple
    paired: bool

    def treatment_cases(self, i: int) -> np.ndarray:
        """Boolean mask of the cases that treatment ``i`` uses.

        Returns:
            The mask (n_cases,), bool.
        """
        return ~np.isnan(self.ratings[i, 0])


@dataclasses.dataclass(frozen=True)
class ORHillisResult:
    """Obuchowski-Rockette / Hillis analysis of a treatments x readers x cases rating study.

    The top-level test fields are the random-readers-and-cases (RRRC) analysis; ``diff``, ``ci_low`` and ``ci_high``
    are for the first minus the second treatment (in sorted order) and are NaN when there are more than two
    treatments (see ``pairs`` then). ``frrc_*`` are the fixed-readers analysis (chi-square), ``rrfc_*`` the
    fixed-cases analysis (F). ``pairs`` holds every pair's difference, standard error, df, CI and two-sided p under
    all three analyses (one row per analysis and pair), each pair using the study-wide mean squares, covariances and
    degrees of freedom. ``frrc_per_reader`` is the fixed-readers analysis of each reader alone (Hillis 2007, sec. 4):
    for reader ``j`` and treatments ``a``, ``b``, ``z = (theta_aj - theta_bj) / sqrt(V_aj + V_bj - 2 C_ab,j)`` from that
    reader's own variances and covariance, with a normal CI and two-sided p (with DeLong covariances: DeLong's test).

    ``auc`` is the treatment x reader table of trapezoidal AUCs, ``treatment_means`` its row means, ``design``
    ``"paired"`` or ``"unpaired"``, ``cov_method`` ``"jackknife"`` or ``"delong"``, ``level`` the CI level.
    """

    auc: pd.DataFrame
    treatment_means: pd.Series
    design: str
    cov_method: str
    level: float
    var_error: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_tr: float
    f_stat: float
    df_num: float
    df_den: float
    p_value: float
    diff: float
    ci_low: float
    ci_high: float
    frrc_chi2: float
    frrc_df: float
    frrc_p_value: float
    frrc_ci_low: float
    frrc_ci_high: float
    rrfc_f_stat: float
    rrfc_df_num: float
    rrfc_df_den: float
    rrfc_p_value: float
    rrfc_ci_low: float
    rrfc_ci_high: float
    pairs: pd.DataFrame
    frrc_per_reader: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """One row per analysis (RRRC, FRRC, RRFC) and treatment pair, with the global test and the variance
        components repeated on each row: the table a notebook saves as ``mrmc.csv``.

        Returns:
            The table.
        """
        tests = pd.DataFrame(
            {
                "analysis": ["RRRC", "FRRC", "RRFC"],
                "test": ["F", "chi2", "F"],
                "test_statistic": [self.f_stat, self.frrc_chi2, self.rrfc_f_stat],
                "test_df_num": [self.df_num, self.frrc_df, self.rrfc_df_num],
                "test_df_den": [self.df_den, np.inf, self.rrfc_df_den],
                "test_p_value": [self.p_value, self.frrc_p_value, self.rrfc_p_value],
            }
        )
        out = self.pairs.merge(tests, on="analysis", how="left")
        for name in ("var_error", "cov1", "cov2", "cov3", "ms_t", "ms_tr"):
            out[name] = getattr(self, name)
        out["design"] = self.design
        out["cov_method"] = self.cov_method
        out["level"] = self.level
        return out


def _checked_rating_rows(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The rows of a long ratings table, checked one at a time: columns, keys, ratings, duplicates, truth per case.

    Returns:
        The table's :data:`RATING_COLUMNS` and its ratings as numbers.
    """
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"ratings is a {type(ratings).__name__}; expected a pandas DataFrame with {RATING_COLUMNS}.")
    missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
    if missing:
        raise DataError(
            f"ratings lacks column(s) {missing}; expected columns {list(RATING_COLUMNS)} (one row per reader, "
            f"treatment and case). Seen: {list(ratings.columns)}."
        )
    df = ratings.loc[:, list(RATING_COLUMNS)]
    if df[["reader", "treatment", "case"]].isna().any().any():
        raise DataError("ratings has empty reader, treatment or case cells; every row needs all three.")
    rating = pd.to_numeric(df["rating"], errors="coerce")
    bad = df.loc[~np.isfinite(rating.to_numpy(dtype=float)), ["reader", "treatment", "case"]]
    if len(bad):
        raise DataError(
            f"ratings has {len(bad)} missing, non-numeric or non-finite rating(s), first at "
            f"{bad.iloc[0].to_dict()}; every row needs a numeric rating."
        )
    dup = df.duplicated(["reader", "treatment", "case"], keep=False)
    if dup.any():
        first = df.loc[dup, ["reader", "treatment", "case"]].iloc[0].to_dict()
        raise DataError(
            f"ratings has {int(dup.sum())} rows for repeated (reader, treatment, case), e.g. {first}; "
            "keep one rating per reader, treatment and case."
        )
    truth_per_case = df.groupby("case")["truth"].nunique(dropna=False)
    if (truth_per_case > 1).any():
        case = truth_per_case.index[truth_per_case > 1][0]
        raise DataError(
            f"ratings gives case {case!r} different truth values in different rows; truth is a property "
            "of the case and must agree across readers and treatments."
        )
    return df, rating


def _design(
    arr: np.ndarray, treatments: tuple[object, ...], readers: tuple[object, ...], cases: tuple[object, ...]
) -> tuple[np.ndarray, bool]:
    """Check that every reader rated every case of a treatment and that the treatments share all cases or none.

    Returns:
        The (treatments, cases) mask of the cases each treatment uses, and whether the design is paired.
    """
    used = ~np.isnan(arr).all(axis=1)  # (t, c): cases that any reader rated under each treatment
    holes = used[:, None, :] & np.isnan(arr)  # (t, r, c): a case of the treatment that this reader did not rate
    if holes.any():
        i, j = np.argwhere(holes.any(axis=2))[0]
        raise DataError(
            f"ratings is incomplete: {int(holes.any(axis=2).sum())} reader/treatment combination(s) lack cases, e.g. "
            f"reader {readers[j]!r} under treatment {treatments[i]!r} lacks {int(holes[i, j].sum())} of the "
            f"{int(used[i].sum())} cases that other readers rated (first: case {cases[int(np.argmax(holes[i, j]))]!r})."
            " Every reader must rate every case of a treatment."
        )
    shared = used.astype(int) @ used.astype(int).T  # (t, t): cases shared by two treatments
    paired = bool(used.all())
    if not paired and np.any(shared[~np.eye(len(treatments), dtype=bool)] > 0):
        raise DataError(
            "ratings mixes designs: some cases are rated under several treatments but not under all. Use either the "
            "same cases for every treatment (paired) or separate cases per treatment (unpaired)."
        )
    return used, paired


def ratings_matrix(ratings: pd.DataFrame) -> RatingsMatrix:
    """Validate a long ratings table (columns reader, treatment, case, truth, rating) and arrange it as an array.

    Either every treatment uses the same cases (paired) or each treatment has its own cases (unpaired); in both,
    every reader rates every case of a treatment.

    Returns:
        :class:`RatingsMatrix`: ratings (treatments, readers, cases), NaN where a treatment does not use a case.

    Raises:
        DataError: a missing column, a missing or non-finite rating, non-binary or inconsistent truth, a duplicated
            (reader, treatment, case), a reader that lacks some cases of a treatment, treatments that share only some
            cases, fewer than two treatments or readers, fewer than two cases of a class in a treatment.
    """
    df, rating = _checked_rating_rows(ratings)
    truth_series = df.groupby("case")["truth"].first().sort_index()
    truth = check_binary_truth(truth_series.to_numpy(), "ratings['truth']", min_per_class=2)
    treatments = tuple(sorted(df["treatment"].unique()))
    readers = tuple(sorted(df["reader"].unique()))
    cases = tuple(truth_series.index)
    if len(treatments) < 2 or len(readers) < 2:
        raise DataError(
            f"ratings has {len(treatments)} treatment(s) and {len(readers)} reader(s); the analysis "
            "compares at least 2 treatments read by at least 2 readers."
        )
    full = pd.MultiIndex.from_product([treatments, readers, cases], names=["treatment", "reader", "case"])
    cube = df.assign(rating=rating).set_index(["treatment", "reader", "case"])["rating"].reindex(full)
    arr = cube.to_numpy(dtype=float).reshape(len(treatments), len(readers), len(cases))
    used, paired = _design(arr, treatments, readers, cases)
    for i, trt in enumerate(treatments):
        check_binary_truth(truth[used[i]], f"ratings['truth'] of treatment {trt!r}", min_per_class=2)
    return RatingsMatrix(arr, truth, treatments, readers, cases, paired)


def _block_covariance(truth: np.ndarray, scores: np.ndarray, cov: str) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(k,)`` and ``(k, k)`` covariance of ``k`` score rows on the same cases, by jackknife or DeLong."""
    comp = delong_components(truth, scores)
    if cov == "delong":
        return comp.auc, comp.covariance
    n_pos, n_neg = comp.v10.shape[1], comp.v01.shape[1]
    c = n_pos + n_neg
    auc = comp.auc[:, None]
    jack = np.concatenate(
        [(n_pos * auc - comp.v10) / (n_pos - 1), (n_neg * auc - comp.v01) / (n_neg - 1)], axis=1
    )  # (k, c): AUC with each case left out
    dev = jack - jack.mean(axis=1, keepdims=True)
    return comp.auc, (c - 1) / c * (dev @ dev.T)


def _auc_and_covariance(m: RatingsMatrix, cov: str) -> tuple[np.ndarray, np.ndarray]:
    """AUCs, flattened treatment-major to ``(t*r,)``, and their ``(t*r, t*r)`` covariance matrix.

    Paired design: one covariance over all cases. Unpaired design: each treatment's block from its own cases, and
    zero covariance between treatments (independent cases, so Cov1 = Cov3 = 0; Obuchowski & Rockette 1995).
    """
    t, r, c = m.ratings.shape
    if m.paired:
        return _block_covariance(m.truth, m.ratings.reshape(t * r, c), cov)
    auc = np.empty(t * r)
    covmat = np.zeros((t * r, t * r))
    for i in range(t):
        cases = m.treatment_cases(i)
        block = slice(i * r, (i + 1) * r)
        auc[block], covmat[block, block] = _block_covariance(m.truth[cases], m.ratings[i][:, cases], cov)
    return auc, covmat


def _average_covariances(cov: np.ndarray, t: int, r: int) -> tuple[float, float, float, float]:
    """Var(error), Cov1, Cov2, Cov3: averages of the covariance matrix over the four kinds of pairs."""
    trt = np.repeat(np.arange(t), r)
    rdr = np.tile(np.arange(r), t)
    same_t = trt[:, None] == trt[None, :]
    same_r = rdr[:, None] == rdr[None, :]
    return (
        float(np.mean(np.diag(cov))),
        float(cov[~same_t & same_r].mean()),
        float(cov[same_t & ~same_r].mean()),
        float(cov[~same_t & ~same_r].mean()),
    )


def _per_reader(theta: np.ndarray, covmat: np.ndarray, m: RatingsMatrix, level: float) -> pd.DataFrame:
    """Single-reader fixed-readers comparisons of every treatment pair (see :class:`ORHillisResult`)."""
    t, r = theta.shape
    q = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for j, (a, b) in itertools.product(range(r), itertools.combinations(range(t), 2)):
        ia, ib = a * r + j, b * r + j
        se = float(np.sqrt(max(covmat[ia, ia] + covmat[ib, ib] - 2 * covmat[ia, ib], 0.0)))
        d = float(theta[a, j] - theta[b, j])
        z = d / se if se > 0 else (0.0 if d == 0 else float(np.copysign(np.inf, d)))
        rows.append(
            {
                "reader": m.readers[j],
                "treatment_a": m.treatments[a],
                "treatment_b": m.treatments[b],
                "auc_a": float(theta[a, j]),
                "auc_b": float(theta[b, j]),
                "diff": d,
                "std_err": se,
                "z": z,
                "ci_low": d - q * se,
                "ci_high": d + q * se,
                "p_value": float(2 * stats.norm.sf(abs(z))),
            }
        )
    return pd.DataFrame(rows)


def _ratio(num: float, den: float) -> float:
    """num / den, with +inf for a positive number over zero and NaN for 0 / 0 (identical readers, say)."""
    if den > 0:
        return num / den
    return float("inf") if num > 0 else float("nan")


def _f_sf(f: float, df_num: float, df_den: float) -> float:
    """Upper tail of F(df_num, df_den); the chi-square limit ``chi2(df_num) / df_num`` when df_den is infinite."""
    if np.isinf(df_den):
        return float(stats.chi2.sf(f * df_num, df_num))
    return float(stats.f.sf(f, df_num, df_den))


def _pairwise_differences(
    means_t: np.ndarray, treatments: Sequence[str], analyses: dict[str, tuple[float, float]], r: int, level: float
) -> pd.DataFrame:
    """Each pair of treatments' AUC difference under each analysis ``name: (D, df)``, Var(diff) = 2 D / r.

    Returns:
        One row per analysis and pair: analysis, treatment_a, treatment_b, auc_a, auc_b, diff, std_err, df, ci_low,
        ci_high, p_value (a normal reference where df is infinite, Student's t otherwise).
    """
    rows = []
    for name, (den, df) in analyses.items():
        q = stats.norm.ppf(0.5 + level / 2) if np.isinf(df) else stats.t.ppf(0.5 + level / 2, df)
        se = float(np.sqrt(2.0 / r * den))
        for a, b in itertools.combinations(range(len(treatments)), 2):
            d = float(means_t[a] - means_t[b])
            stat = d / se if se > 0 else (0.0 if d == 0 else np.copysign(np.inf, d))
            p = 2 * (stats.norm.sf(abs(stat)) if np.isinf(df) else stats.t.sf(abs(stat), df))
            rows.append(
                {
                    "analysis": name,
                    "treatment_a": treatments[a],
                    "treatment_b": treatments[b],
                    "auc_a": float(means_t[a]),
                    "auc_b": float(means_t[b]),
                    "diff": d,
                    "std_err": se,
                    "df": float(df),
                    "ci_low": d - q * se,
                    "ci_high": d + q * se,
                    "p_value": float(p),
                }
            )
    return pd.DataFrame(rows)


def _mean_squares(theta: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The treatment means and the two mean squares of a treatments x readers AUC table (Obuchowski-Rockette).

    Returns:
        (per-treatment mean AUC, MS(T) the treatment mean square, MS(T*R) the treatment-by-reader mean square).
    """
    t, r = theta.shape
    means_t = theta.mean(axis=1)
    grand = theta.mean()
    ms_t = float(r * np.sum((means_t - grand) ** 2) / (t - 1))
    inter = theta - means_t[:, None] - theta.mean(axis=0)[None, :] + grand
    ms_tr = float(np.sum(inter**2) / ((t - 1) * (r - 1)))
    return means_t, ms_t, ms_tr


def _check_settings(cov: str, level: float) -> None:
    """Refuse an unknown covariance method or a confidence level outside (0, 1).

    Returns:
        None; a ConfigError naming the setting, what was given and what is expected.
    """
    if cov not in COV_METHODS:
        raise ConfigError(f"cov is {cov!r}; expected one of {COV_METHODS}.")
    if not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level is {level}; expected a confidence level in (0, 1), e.g. 0.95.")


def or_hillis(ratings: pd.DataFrame, cov: str = "jackknife", level: float = 0.95) -> ORHillisResult:
    """Obuchowski-Rockette analysis with Hillis's denominator degrees of freedom (see the module docstring).

    Args:
        ratings: long table with columns reader, treatment, case, truth (0/1, 1 = abnormal) and rating (larger =
            more confident the case is abnormal); every reader rates every case of every treatment, and the
            treatments use either the same cases (paired) or separate cases (unpaired).
        cov: how the error covariances are estimated: ``"jackknife"`` (as OR-DBM MRMC) or ``"delong"``.
        level: confidence level of the intervals.

    Returns:
        :class:`ORHillisResult`: the AUCs, the RRRC test and CI (and the FRRC and RRFC analyses), every pair.

    Raises:
        ConfigError: an unknown ``cov`` or a ``level`` outside (0, 1); DataError: a ratings table that is not a full
            treatments x readers x cases design (see :func:`ratings_matrix`).

    Example:
        Four readers rate the same 20 cases (10 abnormal) under two treatments; under B the abnormal cases stand out
        more:

        >>> import numpy as np
        >>> import pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> truth = np.repeat([0, 1], 10)
        >>> rows = [(f"R{r}", trt, case, truth[case], rng.normal(shift * truth[case]))
        ...         for trt, shift in (("A", 0.5), ("B", 2.0)) for r in range(4) for case in range(20)]
        >>> ratings = pd.DataFrame(rows, columns=["reader", "treatment", "case", "truth", "rating"])
        >>> result = or_hillis(ratings)
        >>> result.treatment_means.round(3).to_dict(), result.design
        ({'A': 0.542, 'B': 0.94}, 'paired')
        >>> round(result.diff, 3), round(result.ci_low, 3), round(result.ci_high, 3), round(result.p_value, 4)
        (-0.397, -0.689, -0.106, 0.0177)
    """
    _check_settings(cov, level)
    m = ratings_matrix(ratings)
    t, r = len(m.treatments), len(m.readers)
    auc_flat, covmat = _auc_and_covariance(m, cov)
    theta = auc_flat.reshape(t, r)
    var_error, cov1, cov2, cov3 = _average_covariances(covmat, t, r)

    means_t, ms_t, ms_tr = _mean_squares(theta)
    df_num = float(t - 1)
    df_tr = float((t - 1) * (r - 1))
    floor = max(cov2 - cov3, 0.0)

    den_rrrc = ms_tr + r * floor
    ddf = den_rrrc**2 / (ms_tr**2 / df_tr) if ms_tr > 0 else np.inf  # Hillis 2007, eq. 8
    f_stat = _ratio(ms_t, den_rrrc)
    den_frrc = var_error - cov1 + (r - 1) * floor
    chi2 = df_num * _ratio(ms_t, den_frrc)
    f_rrfc = _ratio(ms_t, ms_tr)

    # Per analysis (D, df): Var(theta_a. - theta_b.) = 2 D / r (Hillis 2007); df = inf means a normal reference.
    analyses = {"RRRC": (den_rrrc, ddf), "FRRC": (den_frrc, np.inf), "RRFC": (ms_tr, df_tr)}
    pairs = _pairwise_differences(means_t, m.treatments, analyses, r, float(level))

    def two(name: str, col: str) -> float:
        row = pairs[pairs["analysis"] == name]
        return float(row[col].iloc[0]) if t == 2 else float("nan")

    auc_df = pd.DataFrame(
        theta, index=pd.Index(m.treatments, name="treatment"), columns=pd.Index(m.readers, name="reader")
    )
    return ORHillisResult(
        auc=auc_df,
        treatment_means=pd.Series(means_t, index=auc_df.index, name="auc"),
        design="paired" if m.paired else "unpaired",
        cov_method=cov,
        level=float(level),
        var_error=var_error,
        cov1=cov1,
        cov2=cov2,
        cov3=cov3,
        ms_t=ms_t,
        ms_tr=ms_tr,
        f_stat=float(f_stat),
        df_num=df_num,
        df_den=float(ddf),
        p_value=_f_sf(f_stat, df_num, ddf),
        diff=two("RRRC", "diff"),
        ci_low=two("RRRC", "ci_low"),
        ci_high=two("RRRC", "ci_high"),
        frrc_chi2=float(chi2),
        frrc_df=df_num,
        frrc_p_value=float(stats.chi2.sf(chi2, df_num)),
        frrc_ci_low=two("FRRC", "ci_low"),
        frrc_ci_high=two("FRRC", "ci_high"),
        rrfc_f_stat=float(f_rrfc),
        rrfc_df_num=df_num,
        rrfc_df_den=df_tr,
        rrfc_p_value=_f_sf(f_rrfc, df_num, df_tr),
        rrfc_ci_low=two("RRFC", "ci_low"),
        rrfc_ci_high=two("RRFC", "ci_high"),
        pairs=pairs,
        frrc_per_reader=_per_reader(theta, covmat, m, float(level)),
    )
