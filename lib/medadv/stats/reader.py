"""Statistics of the human reader study of paper 001 ("Human reader study", Tables 3 and 4).

Readers label each image ``real``, ``not_real`` or ``unsure``. A read is *correct* when a real image is called
``real`` or a fake image ``not_real``; ``unsure`` is never correct (paper 001 reports the "accuracy of correctly
identifying real/fake images", so an unsure answer is a failure to identify; the number of unsure answers is reported
beside each accuracy).

Functions on the validated reads (:func:`medadv.reader_app.responses.validate_responses`: the responses joined with
the answer key, one row per read, with ``correct``), each returning a tidy DataFrame:

- :func:`accuracy_table`: accuracy per reader, session, truth (real / fake / all) and label (all / positive /
  negative) with exact Clopper-Pearson intervals (``reader_accuracy.csv``);
- :func:`session_tests`: paper 001's p-values between sessions 2, 3 and 5 (``reader_session_tests.csv``, see below);
- :func:`mcnemar_exact`, :func:`reader_pair_tests`, :func:`repeated_read_tests`: exact McNemar tests where the
  same images are read twice (two readers on a session's images; one reader meeting an image in two sessions);
- :func:`fleiss_kappa`, :func:`agreement_table`: agreement of the readers on the three answers per session;
- :func:`reading_times`: minutes per reader and session, as paper 001 Table 4 (``reader_times.csv``);
- :func:`ratings_from_responses`: an ordinal "fake" rating from answer + confidence, in the long format of
  :func:`medadv.stats.mrmc.or_hillis` (``mrmc.csv``).

Paper 001's session test, as implemented (:func:`session_tests`). The paper: "we split the samples in each session
according to the reading order into several non-overlapped sub-groups of equal size to estimate the standard
deviations, and the average of the standard deviations estimated for the three sessions was used to calculate
one-sided p-values". For one reader and one subset of images (e.g. the real images), in each session ``s``:

1. the reads of the subset, sorted by reading order, are cut into ``G`` consecutive sub-groups of ``floor(n_s / G)``
   reads (the last ``n_s mod G`` reads join no sub-group; they still count in the accuracy);
2. ``sd_s`` is the sample standard deviation (divisor ``G - 1``) of the ``G`` sub-group accuracies;
3. ``sd = mean(sd_s)`` over the sessions of the comparison set (2, 3, 5) that hold the subset;
4. for sessions ``a`` then ``b``: ``z = (acc_b - acc_a) / (sd * sqrt(2 / G))``, the two-sample statistic of the
   sub-group means with the common SD ``sd``; the one-sided p-value in the direction of the observed change is
   ``P(Z >= |z|)`` under N(0, 1) (``distribution="normal"``) or under Student's t with ``len(sessions) * (G - 1)``
   degrees of freedom (``distribution="t"``, the degrees of freedom of the pooled SD).
5. when ``sd = 0`` (every sub-group of every session of the subset has the same accuracy, e.g. all reads correct)
   the statistic is undefined: ``statistic`` and ``p_value`` are NaN and ``note`` says why (a zero spread is a
   sub-group split too coarse to estimate it, not evidence of a certain difference, so no p = 0 is reported).

Under no change the one-sided p in the observed direction falls below alpha with probability 2 alpha. The SD of a
sub-group accuracy shrinks with the sub-group size, so averaging the SDs of sessions of unequal size (paper 001:
100 real images in session 2, 218 in session 3) understates the smaller session's SD and makes comparisons with it
liberal; comparisons of equal-size sessions (3 and 5) keep their level. This is the paper's method, kept as
published; read the session-2 comparisons with that in mind.

Clopper-Pearson intervals (:mod:`medadv.stats.binomial`) and the exact binomial test come from scipy; Fleiss' kappa
(Fleiss, Psychol Bull 76:378-382, 1971) is a few lines of numpy, as the kit does not depend on statsmodels.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from medadv.errors import ConfigError, DataError
from medadv.stats.binomial import check_level, clopper_pearson

log = logging.getLogger(__name__)

__all__ = [
    "ANSWERS",
    "TRUTHS",
    "accuracy_table",
    "agreement_table",
    "answer_to_rating",
    "clopper_pearson",
    "fleiss_kappa",
    "has_confidence_ratings",
    "mcnemar_exact",
    "reader_pair_tests",
    "ratings_from_responses",
    "reading_times",
    "repeated_read_tests",
    "session_tests",
    "subgroup_accuracies",
    "require_columns",
]

ANSWERS = ("real", "not_real", "unsure")
TRUTHS = ("real", "fake")
ZERO_SPREAD_NOTE = (
    "zero spread: all {n_groups} sub-group accuracies are equal in every session compared, so the standard deviation "
    "is 0 and the test is undefined (use fewer sub-groups or more reads)"
)


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`DataError` when ``df`` is not a DataFrame holding ``columns`` (``what`` names it)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} is a {type(df).__name__}; expected a pandas DataFrame with columns {list(columns)}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; expected {list(columns)}. Seen: {list(df.columns)}.")


# ---------------------------------------------------------------- accuracy


def _subsets(table: pd.DataFrame) -> Iterable[tuple[str, str, pd.Series]]:
    """(truth, label, row mask): real / fake / all crossed with all / positive / negative."""
    for truth in (*TRUTHS, "all"):
        t_mask = table["truth"] == truth if truth != "all" else pd.Series(True, index=table.index)
        for label, l_mask in (
            ("all", t_mask),
            ("positive", t_mask & (table["source_label"] == 1)),
            ("negative", t_mask & (table["source_label"] == 0)),
        ):
            yield truth, label, l_mask


def accuracy_table(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Accuracy of correctly identifying real / fake images per reader and session (paper 001, Table 3).

    Args:
        table: output of :func:`validate_responses`.
        level: confidence level of the exact Clopper-Pearson intervals.

    Returns:
        Columns reader, session, truth (real / fake / all), label (all / positive / negative: the key's
        source_label), n, n_correct, n_unsure, accuracy, ci_low, ci_high. Subsets without reads are left out
        (e.g. fake images in session 2).
    """
    check_level(level)
    rows = []
    for (reader, session), g in table.groupby(["reader", "session"], sort=True):
        for truth, label, mask in _subsets(g):
            sub = g[mask]
            if sub.empty:
                continue
            n, k = len(sub), int(sub["correct"].sum())
            low, high = clopper_pearson(k, n, level)
            rows.append(
                {
                    "reader": reader,
                    "session": session,
                    "truth": truth,
                    "label": label,
                    "n": n,
                    "n_correct": k,
                    "n_unsure": int((sub["answer"] == "unsure").sum()),
                    "accuracy": k / n,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- paper 001's session tests


def subgroup_accuracies(correct_in_order: Sequence[bool], n_groups: int) -> np.ndarray:
    """Accuracies of ``n_groups`` consecutive, equal, non-overlapping sub-groups of reads in reading order.

    Each sub-group has ``floor(n / n_groups)`` reads; the last ``n mod n_groups`` reads join none.

    Returns:
        The ``n_groups`` accuracies.
    """
    c = np.asarray(correct_in_order, dtype=float)
    size = c.size // n_groups
    if size < 1:
        raise DataError(f"{c.size} reads cannot form {n_groups} sub-groups; use fewer sub-groups (n_groups).")
    return c[: size * n_groups].reshape(n_groups, size).mean(axis=1)


def session_tests(
    table: pd.DataFrame,
    sessions: Sequence[int] = (2, 3, 5),
    n_groups: int = 5,
    distribution: str = "normal",
) -> pd.DataFrame:
    """Paper 001's one-sided p-values between sessions with sub-group standard deviations (module docstring).

    Args:
        table: output of :func:`validate_responses`.
        sessions: the sessions compared pairwise (in the given order) whose SDs are averaged (paper 001: 2, 3, 5).
        n_groups: sub-groups per session (at least 2).
        distribution: ``"normal"`` or ``"t"`` (``len(sessions) * (n_groups - 1)`` degrees of freedom).

    Returns:
        One row per reader, truth (real / fake / all), label (all / positive / negative) and session pair:
        reader, truth, label, session_a, session_b, n_a, n_b, accuracy_a, accuracy_b, diff (b - a), sd_a, sd_b,
        sd_avg (mean SD over the sessions that hold the subset), n_groups, statistic, df (inf for normal),
        direction (increase / decrease / none), p_value (one-sided, in the direction of the change; NaN when the
        sub-group SDs are all zero), note (empty, or why the test is undefined). A subset with fewer reads than
        ``n_groups`` in a session is left out of that session.
    """
    if int(n_groups) < 2:
        raise ConfigError(f"n_groups is {n_groups}; the SD needs at least 2 sub-groups per session.")
    if distribution not in ("normal", "t"):
        raise ConfigError(f"distribution is {distribution!r}; expected 'normal' or 't'.")
    sessions = [int(s) for s in sessions]
    if len(sessions) < 2 or len(set(sessions)) != len(sessions):
        raise ConfigError(f"sessions is {sessions}; expected two or more distinct sessions.")
    df = float(len(sessions) * (n_groups - 1)) if distribution == "t" else float("inf")
    rows = []
    for reader, g in table[table["session"].isin(sessions)].groupby("reader", sort=True):
        for truth, label, mask in _subsets(g):
            per: dict[int, tuple[int, float, float]] = {}
            for s in sessions:
                sub = g[mask & (g["session"] == s)].sort_values("order")
                if len(sub) >= n_groups:
                    acc_groups = subgroup_accuracies(sub["correct"].to_numpy(), n_groups)
                    per[s] = (len(sub), float(sub["correct"].mean()), float(np.std(acc_groups, ddof=1)))
            if len(per) < 2:
                continue
            sd_avg = float(np.mean([v[2] for v in per.values()]))
            se = sd_avg * np.sqrt(2.0 / n_groups)
            for a, b in itertools.combinations([s for s in sessions if s in per], 2):
                diff = per[b][1] - per[a][1]
                stat = diff / se if se > 0 else float("nan")
                p = stats.norm.sf(abs(stat)) if np.isinf(df) else stats.t.sf(abs(stat), df)
                note = "" if se > 0 else ZERO_SPREAD_NOTE.format(n_groups=int(n_groups))
                rows.append(
                    {
                        "reader": reader,
                        "truth": truth,
                        "label": label,
                        "session_a": a,
                        "session_b": b,
                        "n_a": per[a][0],
                        "n_b": per[b][0],
                        "accuracy_a": per[a][1],
                        "accuracy_b": per[b][1],
                        "diff": diff,
                        "sd_a": per[a][2],
                        "sd_b": per[b][2],
                        "sd_avg": sd_avg,
                        "n_groups": int(n_groups),
                        "statistic": stat,
                        "df": df,
                        "direction": "increase" if diff > 0 else "decrease" if diff < 0 else "none",
                        "p_value": float(p),
                        "note": note,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- paired reads: McNemar


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> tuple[int, int, float]:
    """Exact McNemar test on paired reads of the same images.

    Returns:
        ``(n_a_only, n_b_only, p)``: reads correct for a but not b, for b but not a, and the two-sided exact
        binomial p-value of the discordant pairs, ``min(1, 2 P(X <= min(n_a_only, n_b_only)))`` with
        ``X ~ Bin(n_a_only + n_b_only, 1/2)``; 1 when there is no discordant pair.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"correct_a has shape {a.shape} and correct_b {b.shape}; expected paired 1-D arrays.")
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if n10 + n01 == 0 else float(stats.binomtest(n10, n10 + n01, 0.5).pvalue)
    return n10, n01, p


def _paired_row(pa: pd.DataFrame, pb: pd.DataFrame) -> dict[str, float]:
    both = pa.merge(pb, on="image_id", suffixes=("_a", "_b"))
    a, b = both["correct_a"].to_numpy(dtype=bool), both["correct_b"].to_numpy(dtype=bool)
    n10, n01, p = mcnemar_exact(a, b)
    return {
        "n": len(both),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "n_both": int((a & b).sum()),
        "n_a_only": n10,
        "n_b_only": n01,
        "n_neither": int((~a & ~b).sum()),
        "p_value": p,
    }


def reader_pair_tests(table: pd.DataFrame) -> pd.DataFrame:
    """Exact McNemar test for every pair of readers on the images of each session, per truth (real / fake / all).

    Returns:
        Columns session, truth, reader_a, reader_b, n, accuracy_a, accuracy_b, n_both, n_a_only, n_b_only,
        n_neither, p_value (two-sided, exact).
    """
    rows = []
    for session, g in table.groupby("session", sort=True):
        for truth in (*TRUTHS, "all"):
            sub = g if truth == "all" else g[g["truth"] == truth]
            if sub.empty:
                continue
            for ra, rb in itertools.combinations(sorted(set(sub["reader"])), 2):
                row = _paired_row(
                    sub[sub["reader"] == ra][["image_id", "correct"]], sub[sub["reader"] == rb][["image_id", "correct"]]
                )
                rows.append({"session": session, "truth": truth, "reader_a": ra, "reader_b": rb, **row})
    return pd.DataFrame(rows)


def repeated_read_tests(table: pd.DataFrame) -> pd.DataFrame:
    """Exact McNemar test for a reader who met the same images in two sessions, on those shared images.

    Returns:
        Columns reader, session_a, session_b, n, accuracy_a, accuracy_b, n_both, n_a_only, n_b_only, n_neither,
        p_value; empty when no image was read twice (the usual design: no image appears in two sessions).
    """
    rows = []
    for reader, g in table.groupby("reader", sort=True):
        for sa, sb in itertools.combinations(sorted(set(g["session"])), 2):
            pa = g[g["session"] == sa][["image_id", "correct"]]
            pb = g[g["session"] == sb][["image_id", "correct"]]
            if pa["image_id"].isin(pb["image_id"]).any():
                rows.append({"reader": reader, "session_a": sa, "session_b": sb, **_paired_row(pa, pb)})
    columns = [
        "reader",
        "session_a",
        "session_b",
        "n",
        "accuracy_a",
        "accuracy_b",
        "n_both",
        "n_a_only",
        "n_b_only",
        "n_neither",
        "p_value",
    ]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- agreement: Fleiss' kappa


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa (Fleiss 1971, eq. 1-9) from an ``(n_subjects, n_categories)`` table of rater counts.

    Every subject must be rated by the same number of raters (at least 2). NaN when the expected agreement is 1
    (every rating in one category).

    Returns:
        Kappa, or NaN.
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or c.shape[0] < 1:
        raise DataError(f"counts has shape {c.shape}; expected (n_subjects, n_categories).")
    raters = c.sum(axis=1)
    if not np.all(raters == raters[0]) or raters[0] < 2:
        raise DataError("counts needs the same number (at least 2) of raters for every subject.")
    n = raters[0]
    p_i = (np.sum(c**2, axis=1) - n) / (n * (n - 1))
    p_j = c.sum(axis=0) / c.sum()
    p_bar, p_e = float(p_i.mean()), float(np.sum(p_j**2))
    return float("nan") if p_e >= 1.0 else (p_bar - p_e) / (1.0 - p_e)


def agreement_table(table: pd.DataFrame) -> pd.DataFrame:
    """Fleiss' kappa of the readers' three answers per session and truth (real / fake / all).

    Returns:
        Columns session, truth, n_images, n_readers, kappa; sessions with fewer than two readers are left out.
    """
    rows = []
    for session, g in table.groupby("session", sort=True):
        for truth in (*TRUTHS, "all"):
            sub = g if truth == "all" else g[g["truth"] == truth]
            n_readers = sub["reader"].nunique()
            if sub.empty or n_readers < 2:
                continue
            counts = pd.crosstab(sub["image_id"], sub["answer"]).reindex(columns=list(ANSWERS), fill_value=0)
            rows.append(
                {
                    "session": session,
                    "truth": truth,
                    "n_images": len(counts),
                    "n_readers": n_readers,
                    "kappa": fleiss_kappa(counts.to_numpy()),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- reading times


def reading_times(table: pd.DataFrame) -> pd.DataFrame:
    """Time spent per reader and session (paper 001, Table 4: minutes per session).

    Args:
        table: any table with columns reader, session and reading_seconds: the output of
            :func:`validate_responses`, or raw responses that also hold view-only sessions (session 4's education
            triplets, which have no answers to validate).

    Returns:
        Columns reader, session, n_images, total_minutes, mean_seconds, median_seconds.
    """
    require_columns(table, ("reader", "session", "reading_seconds"), "reading-time table")
    secs = pd.to_numeric(table["reading_seconds"], errors="coerce")
    if not (np.isfinite(secs.to_numpy(dtype=float)) & (secs >= 0)).all():
        raise DataError("column 'reading_seconds' holds a missing, negative or non-numeric value; expected seconds.")
    g = table.assign(reading_seconds=secs.astype(float)).groupby(["reader", "session"], sort=True)["reading_seconds"]
    out = g.agg(n_images="size", total_minutes="sum", mean_seconds="mean", median_seconds="median").reset_index()
    out["total_minutes"] = out["total_minutes"] / 60.0
    return out


# ---------------------------------------------------------------- ratings for MRMC


def answer_to_rating(answer: str, confidence: float) -> float:
    """Ordinal "this image is fake" rating from a three-way answer and a 1-5 confidence in it.

    ``real`` with confidence c gives ``6 - c`` (1 = surely real ... 5 = unsure-leaning real), ``unsure`` gives 6
    (its confidence is ignored), ``not_real`` with confidence c gives ``6 + c`` (7 ... 11 = surely fake): an
    11-point scale on which larger means more confident the image is fake.

    Returns:
        The rating, 1 to 11.
    """
    if answer == "unsure":
        return 6.0
    if answer not in ("real", "not_real"):
        raise DataError(f"answer is {answer!r}; expected one of {ANSWERS}.")
    if not np.isfinite(confidence) or confidence not in (1, 2, 3, 4, 5):
        raise DataError(f"confidence is {confidence!r} for answer {answer!r}; expected an integer 1-5.")
    return 6.0 - confidence if answer == "real" else 6.0 + confidence


def has_confidence_ratings(table: pd.DataFrame, sessions: Sequence[int] | None = None) -> bool:
    """True when every real / not_real answer (of the given sessions, or of all) carries a confidence rating.

    Returns:
        True when every decided answer has a confidence.
    """
    sub = table if sessions is None else table[table["session"].isin([int(s) for s in sessions])]
    decided = sub["answer"] != "unsure"
    return bool(decided.any() and sub.loc[decided, "confidence"].notna().all())


def ratings_from_responses(table: pd.DataFrame, treatments: Sequence[int] = (3, 5)) -> pd.DataFrame:
    """MRMC ratings (the input of :func:`medadv.stats.mrmc.or_hillis`) from the reads of the given sessions.

    Each session is a treatment, each image a case, truth = 1 for a fake image (detecting fakes is the task), and
    the rating is :func:`answer_to_rating`. Sessions with different images (paper 001's sessions 3 and 5) make an
    unpaired design, which ``or_hillis`` analyses with zero covariance between treatments.

    Returns:
        Columns reader, treatment, case, truth, rating.

    Raises:
        DataError: a treatment session without reads, or a real / not_real answer without a confidence.
    """
    sessions = [int(s) for s in treatments]
    sub = table[table["session"].isin(sessions)]
    absent = [s for s in sessions if s not in set(sub["session"])]
    if absent:
        raise DataError(f"session(s) {absent} have no reads; the MRMC treatments need reads in every session.")
    if not has_confidence_ratings(sub, sessions):
        raise DataError(
            "ratings_from_responses needs a confidence (1-5) with every real / not_real answer; these "
            "responses have none or some are missing. Collect confidence ratings or skip the MRMC table."
        )
    rating = [answer_to_rating(a, c) for a, c in zip(sub["answer"], sub["confidence"], strict=True)]
    return pd.DataFrame(
        {
            "reader": sub["reader"].to_numpy(),
            "treatment": sub["session"].to_numpy(),
            "case": sub["image_id"].to_numpy(),
            "truth": (sub["truth"] == "fake").astype(int).to_numpy(),
            "rating": rating,
        }
    )
