"""Statistics of the human reader study of paper 001 ("Human reader study", Tables 3 and 4).

Readers label each image ``real``, ``not_real`` or ``unsure``. A read is *correct* when a real image is called
``real`` or a fake image ``not_real``; ``unsure`` is never correct (paper 001 reports the "accuracy of correctly
identifying real/fake images", so an unsure answer is a failure to identify; the number of unsure answers is reported
beside each accuracy).

Functions, each returning a tidy DataFrame:

- :func:`validate_responses` joins a responses table with the answer key and rejects unknown image ids, duplicated
  reads, missing answers, unknown or absent readers and bad answer values with clear errors;
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

Clopper-Pearson intervals (:mod:`medadv.stats.binomial`) and the exact binomial test come from scipy; Fleiss' kappa (Fleiss, Psychol Bull
76:378-382, 1971) is a few lines of numpy, as the kit does not depend on statsmodels.
"""
from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from medadv.errors import ConfigError, DataError
from medadv.stats.binomial import check_level, clopper_pearson

log = logging.getLogger(__name__)

__all__ = [
    "ANSWERS",
    "KEY_COLUMNS",
    "OPTIONAL_RESPONSE_COLUMNS",
    "REQUIRED_RESPONSE_COLUMNS",
    "RESPONSE_COLUMNS",
    "TRUTHS",
    "accuracy_table",
    "agreement_table",
    "answer_to_rating",
    "clopper_pearson",
    "fleiss_kappa",
    "has_confidence_ratings",
    "mcnemar_exact",
    "read_response_file",
    "read_responses",
    "reader_pair_tests",
    "ratings_from_responses",
    "reading_times",
    "repeated_read_tests",
    "session_tests",
    "subgroup_accuracies",
    "validate_responses",
]

ANSWERS = ("real", "not_real", "unsure")
TRUTHS = ("real", "fake")
# The reader app's CSV export, in its column order: what the app (app.js, the workshop database), the simulated panel
# and this module's reading of responses share. Confidence is optional (a panel that was not asked for it).
RESPONSE_COLUMNS = ("reader", "session", "image_id", "answer", "confidence", "reading_seconds", "order")
OPTIONAL_RESPONSE_COLUMNS = ("confidence",)
REQUIRED_RESPONSE_COLUMNS = tuple(c for c in RESPONSE_COLUMNS if c not in OPTIONAL_RESPONSE_COLUMNS)
NUMERIC_RESPONSE_COLUMNS = ("session", "confidence", "reading_seconds", "order")
KEY_COLUMNS = ("image_id", "session", "truth", "source_label")
_CORRECT_ANSWER = {"real": "real", "fake": "not_real"}
#: The longest reading time of one image taken as a reading time (a day); a longer one is a unit or export error.
MAX_READING_SECONDS = 86_400.0
ZERO_SPREAD_NOTE = (
    "zero spread: all {n_groups} sub-group accuracies are equal in every session compared, so the standard deviation "
    "is 0 and the test is undefined (use fewer sub-groups or more reads)"
)


# ---------------------------------------------------------------- reading and validation


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} is a {type(df).__name__}; expected a pandas DataFrame with columns {list(columns)}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; expected {list(columns)}. Seen: {list(df.columns)}.")


def _as_int(series: pd.Series, what: str) -> pd.Series:
    num = pd.to_numeric(series, errors="coerce")
    bad = num.isna() | (num != np.round(num))
    if bad.any():
        raise DataError(f"{what} holds {series[bad].iloc[0]!r} ({int(bad.sum())} bad value(s)); expected integers.")
    return num.astype(int)


def _normalise_answer(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)


def read_responses(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read and concatenate response CSVs (one per reader, or per reader and session), checking each file's columns.

    Every cell is read as text (:func:`read_response_file`): a reader id ``007``, ``01``, ``1e3`` or ``NA`` stays that
    id; the numeric columns are numbers where every cell parses (else :func:`validate_responses` names the bad one). Rows with every cell empty (a spreadsheet's
    trailing ``,,,,,,``) are left out and counted in the log.

    Returns:
        The responses, one row per read, in file order, with the file's name in ``source_file``.

    Raises:
        DataError: no file, an unreadable or empty file, a file that is not UTF-8 or UTF-16 text, or a file that
            lacks a response column (the file is named).
    """
    frames = []
    for path in map(Path, paths):
        df = read_response_file(path)
        _require_columns(df, REQUIRED_RESPONSE_COLUMNS, f"responses file {path}")
        frames.append(df.assign(source_file=path.name))
    if not frames:
        raise DataError("no responses files were given; expected one or more CSV exports of the reader app.")
    return pd.concat(frames, ignore_index=True)


def read_response_file(path: Path) -> pd.DataFrame:
    """One response CSV as text cells: UTF-8 (with or without a byte-order mark) or UTF-16 with its byte-order mark
    (a spreadsheet's "Unicode" export, tab-separated when its header holds tabs and no comma), rows whose every cell is
    empty left out.

    Returns:
        The table: the ids and answers as strings, :data:`NUMERIC_RESPONSE_COLUMNS` as numbers where every given cell
        is one (an empty confidence is NaN).

    Raises:
        DataError: the file cannot be read, is empty, is in another encoding, or does not parse as CSV.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"responses file {path} cannot be read: {exc}") from exc
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"responses file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
                        "'CSV UTF-8' (a spreadsheet's Save As), or export it from the reader app again.") from exc
    if not text.strip():
        raise DataError(f"responses file {path} is empty (no header, no rows); export the session from the reader "
                        "app again, or remove the file.")
    header = text.lstrip().splitlines()[0]
    sep = "\t" if "\t" in header and "," not in header else ","  # a spreadsheet's "Unicode text" is tab-separated
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    except pd.errors.ParserError as exc:
        raise DataError(f"responses file {path} cannot be read as CSV: {exc}") from exc
    blank = df.apply(lambda column: column.str.strip() == "").all(axis=1)
    if blank.any():
        log.info("responses file %s: %d row(s) with every cell empty left out", path, int(blank.sum()))
    df = df[~blank].reset_index(drop=True)
    for column in NUMERIC_RESPONSE_COLUMNS:
        if column in df.columns:
            empty = df[column].str.strip() == ""
            numbers = pd.to_numeric(df[column].mask(empty), errors="coerce")
            if numbers.notna().sum() == (~empty).sum():  # every given cell a number: typed (else checked as text)
                df[column] = numbers
    return df


def validate_responses(
    responses: pd.DataFrame,
    key: pd.DataFrame,
    readers: Sequence[str] | None = None,
    sessions: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Check a responses table against the answer key and join them.

    Args:
        responses: columns reader, session, image_id, answer (real / not_real / unsure; case, spaces and hyphens
            are normalised), reading_seconds, order (reading position within the reader's session), and optionally
            confidence (1-5, empty allowed).
        key: columns image_id, session, truth (real / fake), source_label (0/1, 1 = positive: the diagnosis label
            of the real image, or of the real image a fake was made from).
        readers: the expected readers; a response from another reader, or an expected reader without responses,
            is an error. ``None`` accepts whoever is in the responses.
        sessions: sessions every reader must have read completely. ``None``: each (reader, session) that appears
            must be complete.

    Returns:
        One row per read: reader (str), session (int), image_id (str), answer, confidence (float, NaN if none),
        reading_seconds, order, truth, source_label, correct (bool), sorted by reader, session, order.

    Raises:
        DataError: a missing column; a bad answer, confidence, reading time or order; an image id that the key
            does not hold for that session; a duplicated read or order; a (reader, session) with unanswered images;
            an unknown or absent reader; a bad key (duplicated image, truth not real/fake, source_label not 0/1).
    """
    _require_columns(responses, REQUIRED_RESPONSE_COLUMNS, "responses")
    _require_columns(key, KEY_COLUMNS, "answer key")
    k = _checked_key(key)
    r = _checked_reads(responses)
    _check_readers(r, readers)
    joined = _joined_with_key(r, k)
    _check_sessions_complete(joined, k, sessions)
    joined["truth"] = joined["truth"].astype(str)
    joined["correct"] = joined["answer"].astype(str) == joined["truth"].map(_CORRECT_ANSWER)
    joined["answer"] = joined["answer"].astype(str)
    cols = ["reader", "session", "image_id", "answer", "confidence", "reading_seconds", "order", "truth",
            "source_label", "correct"]
    return joined[cols].sort_values(["reader", "session", "order"], kind="stable").reset_index(drop=True)


def _checked_key(key: pd.DataFrame) -> pd.DataFrame:
    """The answer key's columns, typed and checked: truth real / fake, source_label 0 / 1, one row per image and session.

    Returns:
        A copy with columns image_id (str), session (int), truth (lower-case str), source_label (int).
    """
    k = key.loc[:, list(KEY_COLUMNS)].copy()
    k["image_id"] = k["image_id"].astype(str)
    k["session"] = _as_int(k["session"], "answer key column 'session'")
    k["truth"] = k["truth"].astype("string").str.strip().str.lower()
    if not k["truth"].isin(TRUTHS).all():
        bad = k.loc[~k["truth"].isin(TRUTHS), "truth"].iloc[0]
        raise DataError(f"answer key column 'truth' holds {bad!r}; expected one of {TRUTHS}.")
    k["source_label"] = _as_int(k["source_label"], "answer key column 'source_label'")
    if not k["source_label"].isin([0, 1]).all():
        raise DataError("answer key column 'source_label' holds values other than 0/1 (1 = positive).")
    if k.duplicated(["session", "image_id"]).any():
        first = k.loc[k.duplicated(["session", "image_id"]), ["session", "image_id"]].iloc[0].to_dict()
        raise DataError(f"answer key lists {first} more than once; each image appears once per session.")
    return k


def _checked_reads(responses: pd.DataFrame) -> pd.DataFrame:
    """The responses' columns, typed and checked one read at a time (reader, answer, confidence, reading time).

    Returns:
        A copy with reader, image_id (str), session, order (int), answer (normalised), confidence and
        reading_seconds (float; confidence NaN where empty or absent).
    """
    extra = [c for c in (*OPTIONAL_RESPONSE_COLUMNS, "source_file") if c in responses.columns]
    r = responses.loc[:, list(REQUIRED_RESPONSE_COLUMNS) + extra].copy()
    no_reader = r["reader"].isna() | (r["reader"].astype(str).str.strip() == "")
    if no_reader.any():
        raise DataError(f"responses has {int(no_reader.sum())} row(s) without a reader, first "
                        f"{_read_of(r, no_reader)}; every read needs its reader's id.")
    r["reader"] = r["reader"].astype(str)
    r["image_id"] = r["image_id"].astype(str)
    r["session"] = _as_int(r["session"], "responses column 'session'")
    r["order"] = _as_int(r["order"], "responses column 'order'")
    r["answer"] = _checked_answers(r)
    if "confidence" not in r.columns:
        r["confidence"] = np.nan
    given = r["confidence"].notna() & (r["confidence"].astype(str).str.strip() != "")
    conf = pd.to_numeric(r["confidence"].where(given), errors="coerce")
    bad_conf = (given & conf.isna()) | (conf.notna() & ~conf.isin([1, 2, 3, 4, 5]))
    if bad_conf.any():
        raise DataError(f"responses column 'confidence' holds {r.loc[bad_conf, 'confidence'].iloc[0]!r} "
                        f"({_read_of(r, bad_conf)}); expected an integer 1-5 or an empty cell.")
    r["confidence"] = conf.astype(float)
    secs = pd.to_numeric(r["reading_seconds"], errors="coerce").to_numpy(dtype=float)
    bad_secs = ~np.isfinite(secs) | (secs < 0) | (secs > MAX_READING_SECONDS)
    if bad_secs.any():
        raise DataError(f"responses column 'reading_seconds' holds {_shown(r['reading_seconds'][bad_secs].iloc[0])} "
                        f"({_read_of(r, pd.Series(bad_secs, index=r.index))}; {int(bad_secs.sum())} bad value(s)); "
                        f"expected the seconds spent on each image, from 0 to {MAX_READING_SECONDS:g} (a day). Check "
                        "the unit (milliseconds?) and the export.")
    r["reading_seconds"] = secs
    return r.drop(columns=["source_file"], errors="ignore")


def _shown(value: object) -> str:
    """A cell for a message: a number as written (``86400000``, ``-3``), text quoted.

    Returns:
        The text.
    """
    return f"{float(value):.12g}" if isinstance(value, (int, float, np.number)) else repr(value)


def _read_of(r: pd.DataFrame, bad: pd.Series) -> str:
    """The first read that ``bad`` marks, for a message: its reader, session, image and file.

    Returns:
        Text such as ``reader '007', session 3, image 's3_0', in r1.csv``.
    """
    row = r[bad].iloc[0]
    where = f", in {row['source_file']}" if "source_file" in r.columns else ""
    return f"reader {row['reader']!r}, session {row['session']}, image {row['image_id']!r}{where}"


def _checked_answers(r: pd.DataFrame) -> pd.Series:
    """The normalised answers of the reads ``r``, each present and one of :data:`ANSWERS`.

    Returns:
        The answer column, normalised (lower case, ``not_real`` for "not real" / "not-real").
    """
    answers = _normalise_answer(r["answer"])
    missing_answer = answers.fillna("") == ""
    if missing_answer.any():
        first = r.loc[missing_answer, ["reader", "session", "image_id"]].iloc[0].to_dict()
        raise DataError(f"responses has {int(missing_answer.sum())} read(s) without an answer, first {first}; "
                        f"every read needs one of {ANSWERS}.")
    bad_answer = ~answers.isin(ANSWERS)
    if bad_answer.any():
        raise DataError(f"responses column 'answer' holds {sorted(set(answers[bad_answer]))[:5]}; "
                        f"expected one of {ANSWERS}.")
    return answers


def _check_readers(r: pd.DataFrame, readers: Sequence[str] | None) -> None:
    """Raise :class:`DataError` when the reads come from a reader not in ``readers`` or miss one of them.

    Returns:
        None (``readers`` None accepts whoever read).
    """
    if readers is None:
        return
    expected = {str(x) for x in readers}
    unknown = sorted(set(r["reader"]) - expected)
    if unknown:
        raise DataError(f"responses come from unknown reader(s) {unknown}; expected only {sorted(expected)}. "
                        "Check the reader field of the exported files.")
    absent = sorted(expected - set(r["reader"]))
    if absent:
        raise DataError(f"reader(s) {absent} have no responses; expected responses from {sorted(expected)}.")


def _joined_with_key(r: pd.DataFrame, k: pd.DataFrame) -> pd.DataFrame:
    """Join the checked reads ``r`` to the checked key ``k`` on (session, image_id), each read once and in the key.

    Returns:
        ``r`` with the key's truth and source_label beside each read.
    """
    dup = r.duplicated(["reader", "session", "image_id"], keep=False)
    if dup.any():
        first = r.loc[dup, ["reader", "session", "image_id"]].iloc[0].to_dict()
        raise DataError(f"responses hold {int(dup.sum())} rows for repeated reads, e.g. {first}; each reader reads "
                        "each image of a session once. Remove the duplicated export.")
    joined = r.merge(k, on=["session", "image_id"], how="left", validate="many_to_one")
    unknown_img = joined["truth"].isna()
    if unknown_img.any():
        first = joined.loc[unknown_img, ["reader", "session", "image_id"]].iloc[0].to_dict()
        raise DataError(f"responses name {int(unknown_img.sum())} image id(s) that the answer key does not hold for "
                        f"their session, first {first}; check that the responses belong to this package.")
    dup_order = r.duplicated(["reader", "session", "order"], keep=False)
    if dup_order.any():
        first = r.loc[dup_order, ["reader", "session", "order"]].iloc[0].to_dict()
        raise DataError(f"responses give two images the same reading position, e.g. {first}; 'order' must be "
                        "unique within a reader's session.")
    return joined


def _check_sessions_complete(joined: pd.DataFrame, k: pd.DataFrame, sessions: Sequence[int] | None) -> None:
    """Raise :class:`DataError` when a reader left an image of a session they read (or of ``sessions``) unanswered.

    Returns:
        None.
    """
    required = {int(s) for s in sessions} if sessions is not None else set()
    for reader in sorted(set(joined["reader"])):
        done = set(joined.loc[joined["reader"] == reader, "session"])
        for session in sorted(done | required):
            want = set(k.loc[k["session"] == session, "image_id"])
            got = set(joined.loc[(joined["reader"] == reader) & (joined["session"] == session), "image_id"])
            if not want:
                raise DataError(f"session {session} is required but the answer key holds no image for it.")
            if want - got:
                raise DataError(f"reader {reader!r} left {len(want - got)} of {len(want)} images of session {session} "
                                f"unanswered (e.g. {sorted(want - got)[0]!r}); complete or re-export the session.")


# ---------------------------------------------------------------- accuracy


def _subsets(table: pd.DataFrame) -> Iterable[tuple[str, str, pd.Series]]:
    """(truth, label, row mask): real / fake / all crossed with all / positive / negative."""
    for truth in (*TRUTHS, "all"):
        t_mask = table["truth"] == truth if truth != "all" else pd.Series(True, index=table.index)
        for label, l_mask in (("all", t_mask), ("positive", t_mask & (table["source_label"] == 1)),
                              ("negative", t_mask & (table["source_label"] == 0))):
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
            rows.append({"reader": reader, "session": session, "truth": truth, "label": label, "n": n,
                         "n_correct": k, "n_unsure": int((sub["answer"] == "unsure").sum()), "accuracy": k / n,
                         "ci_low": low, "ci_high": high})
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
        sub-group SDs are all zero), note (empty, or why the test is undefined). A subset with fewer reads than ``n_groups`` in a session is left out of that session.
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
                rows.append({
                    "reader": reader, "truth": truth, "label": label, "session_a": a, "session_b": b,
                    "n_a": per[a][0], "n_b": per[b][0], "accuracy_a": per[a][1], "accuracy_b": per[b][1],
                    "diff": diff, "sd_a": per[a][2], "sd_b": per[b][2], "sd_avg": sd_avg, "n_groups": int(n_groups),
                    "statistic": stat, "df": df,
                    "direction": "increase" if diff > 0 else "decrease" if diff < 0 else "none",
                    "p_value": float(p), "note": note,
                })
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
    return {"n": len(both), "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()), "n_both": int((a & b).sum()),
            "n_a_only": n10, "n_b_only": n01, "n_neither": int((~a & ~b).sum()), "p_value": p}


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
                row = _paired_row(sub[sub["reader"] == ra][["image_id", "correct"]],
                                  sub[sub["reader"] == rb][["image_id", "correct"]])
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
    columns = ["reader", "session_a", "session_b", "n", "accuracy_a", "accuracy_b", "n_both", "n_a_only",
               "n_b_only", "n_neither", "p_value"]
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
            rows.append({"session": session, "truth": truth, "n_images": len(counts), "n_readers": n_readers,
                         "kappa": fleiss_kappa(counts.to_numpy())})
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
    _require_columns(table, ("reader", "session", "reading_seconds"), "reading-time table")
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
        raise DataError("ratings_from_responses needs a confidence (1-5) with every real / not_real answer; these "
                        "responses have none or some are missing. Collect confidence ratings or skip the MRMC table.")
    rating = [answer_to_rating(a, c) for a, c in zip(sub["answer"], sub["confidence"], strict=True)]
    return pd.DataFrame({"reader": sub["reader"].to_numpy(), "treatment": sub["session"].to_numpy(),
                         "case": sub["image_id"].to_numpy(), "truth": (sub["truth"] == "fake").astype(int).to_numpy(),
                         "rating": rating})
