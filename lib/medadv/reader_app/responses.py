"""The reader study's responses as the kit reads them: the app's CSV export format, reading the files, and the
validation that joins them with the answer key (paper 001, "Human reader study").

:data:`RESPONSE_COLUMNS` are the export's columns, shared by the app (``app.js``, the workshop database), the
simulated panel and this module. :func:`read_responses` reads the CSV files (every cell as text, UTF-8 or a
spreadsheet's UTF-16); :func:`validate_responses` joins a responses table with the answer key and rejects unknown
image ids, duplicated reads (:func:`check_duplicate_reads`, the one duplicate check), missing answers, unknown or
absent readers and bad answer values with clear errors. The statistics of the validated reads are
:mod:`medadv.stats.reader`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medadv.errors import DataError
from medadv.stats.reader import ANSWERS, TRUTHS, require_columns

log = logging.getLogger(__name__)

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
#: A reader's median reading time above which the responses are taken to be in another unit (ten minutes an image;
#: paper 001's readers took seconds): the reading-time tables would otherwise be off by a factor of 1000 unseen.
MAX_MEDIAN_READING_SECONDS = 600.0


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
    id; the numeric columns are numbers where every cell parses (else :func:`validate_responses` names the bad one).
    Rows with every cell empty (a spreadsheet's trailing ``,,,,,,``) are left out and counted in the log.

    Returns:
        The responses, one row per read, in file order, with the file's name in ``source_file``.

    Raises:
        DataError: no file, an unreadable or empty file, a file that is not UTF-8 or UTF-16 text, or a file that
            lacks a response column (the file is named).
    """
    frames = []
    for path in map(Path, paths):
        df = read_response_file(path)
        require_columns(df, REQUIRED_RESPONSE_COLUMNS, f"responses file {path}")
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
    return response_table(raw, f"responses file {path}")


def response_table(raw: bytes, what: str) -> pd.DataFrame:
    """The bytes of a response CSV (a file's, or an upload's) as :func:`read_response_file` reads them.

    Returns:
        The table, as :func:`read_response_file` returns it.

    Raises:
        DataError: empty, in another encoding than UTF-8 or UTF-16, or not CSV; ``what`` names the source.
    """
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
            "'CSV UTF-8' (a spreadsheet's Save As), or export it from the reader app again."
        ) from exc
    if not text.strip():
        raise DataError(
            f"{what} is empty (no header, no rows); export the session from the reader app again, or remove the file."
        )
    header = text.lstrip().splitlines()[0]
    sep = "\t" if "\t" in header and "," not in header else ","  # a spreadsheet's "Unicode text" is tab-separated
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    except pd.errors.ParserError as exc:
        raise DataError(f"{what} cannot be read as CSV: {exc}") from exc
    blank = df.apply(lambda column: column.str.strip() == "").all(axis=1)
    if blank.any():
        log.info("%s: %d row(s) with every cell empty left out", what, int(blank.sum()))
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
    require_columns(responses, REQUIRED_RESPONSE_COLUMNS, "responses")
    require_columns(key, KEY_COLUMNS, "answer key")
    k = _checked_key(key)
    r = _checked_reads(responses)
    _check_readers(r, readers)
    joined = _joined_with_key(r, k)
    _check_sessions_complete(joined, k, sessions)
    joined["truth"] = joined["truth"].astype(str)
    joined["correct"] = joined["answer"].astype(str) == joined["truth"].map(_CORRECT_ANSWER)
    joined["answer"] = joined["answer"].astype(str)
    cols = [
        "reader",
        "session",
        "image_id",
        "answer",
        "confidence",
        "reading_seconds",
        "order",
        "truth",
        "source_label",
        "correct",
    ]
    return joined[cols].sort_values(["reader", "session", "order"], kind="stable").reset_index(drop=True)


def _checked_key(key: pd.DataFrame) -> pd.DataFrame:
    """The answer key's columns, typed and checked: truth real / fake, source_label 0 / 1, one row per image and
    session.

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
        raise DataError(
            f"responses has {int(no_reader.sum())} row(s) without a reader, first "
            f"{_read_of(r, no_reader)}; every read needs its reader's id."
        )
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
        raise DataError(
            f"responses column 'confidence' holds {r.loc[bad_conf, 'confidence'].iloc[0]!r} "
            f"({_read_of(r, bad_conf)}); expected an integer 1-5 or an empty cell."
        )
    r["confidence"] = conf.astype(float)
    secs = pd.to_numeric(r["reading_seconds"], errors="coerce").to_numpy(dtype=float)
    bad_secs = ~np.isfinite(secs) | (secs < 0) | (secs > MAX_READING_SECONDS)
    if bad_secs.any():
        raise DataError(
            f"responses column 'reading_seconds' holds {_shown(r['reading_seconds'][bad_secs].iloc[0])} "
            f"({_read_of(r, pd.Series(bad_secs, index=r.index))}; {int(bad_secs.sum())} bad value(s)); "
            f"expected the seconds spent on each image, from 0 to {MAX_READING_SECONDS:g} (a day). Check "
            "the unit (milliseconds?) and the export."
        )
    r["reading_seconds"] = secs
    medians = r.groupby("reader")["reading_seconds"].median()
    slow = medians[medians > MAX_MEDIAN_READING_SECONDS]
    if not slow.empty:
        raise DataError(
            f"responses of reader {slow.index[0]}: median reading time {slow.iloc[0]:.0f} s an image "
            f"({len(slow)} reader(s) above {MAX_MEDIAN_READING_SECONDS:g} s); the column 'reading_seconds' holds "
            "seconds (the reader app's export does): were these milliseconds? Divide them by 1000 in the files."
        )
    check_duplicate_reads(r)
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
        raise DataError(
            f"responses has {int(missing_answer.sum())} read(s) without an answer, first {first}; "
            f"every read needs one of {ANSWERS}."
        )
    bad_answer = ~answers.isin(ANSWERS)
    if bad_answer.any():
        raise DataError(
            f"responses column 'answer' holds {sorted(set(answers[bad_answer]))[:5]}; expected one of {ANSWERS}."
        )
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
        raise DataError(
            f"responses come from unknown reader(s) {unknown}; expected only {sorted(expected)}. "
            "Check the reader field of the exported files."
        )
    absent = sorted(expected - set(r["reader"]))
    if absent:
        raise DataError(f"reader(s) {absent} have no responses; expected responses from {sorted(expected)}.")


def _joined_with_key(r: pd.DataFrame, k: pd.DataFrame) -> pd.DataFrame:
    """Join the checked reads ``r`` (each read once: :func:`check_duplicate_reads`) to the checked key ``k`` on
    (session, image_id), each read in the key.

    Returns:
        ``r`` with the key's truth and source_label beside each read.
    """
    joined = r.merge(k, on=["session", "image_id"], how="left", validate="many_to_one")
    unknown_img = joined["truth"].isna()
    if unknown_img.any():
        first = joined.loc[unknown_img, ["reader", "session", "image_id"]].iloc[0].to_dict()
        raise DataError(
            f"responses name {int(unknown_img.sum())} image id(s) that the answer key does not hold for "
            f"their session, first {first}; check that the responses belong to this package."
        )
    dup_order = r.duplicated(["reader", "session", "order"], keep=False)
    if dup_order.any():
        first = r.loc[dup_order, ["reader", "session", "order"]].iloc[0].to_dict()
        raise DataError(
            f"responses give two images the same reading position, e.g. {first}; 'order' must be "
            "unique within a reader's session."
        )
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
                raise DataError(
                    f"reader {reader!r} left {len(want - got)} of {len(want)} images of session {session} "
                    f"unanswered (e.g. {sorted(want - got)[0]!r}); complete or re-export the session."
                )


def files_note(rows: pd.DataFrame) -> str:
    """The files that ``rows`` came from, for a message (their ``source_file`` column, :func:`read_responses`).

    Returns:
        `` (in [...])`` with up to three file names, or ``""`` when the rows carry no file names.
    """
    if "source_file" not in rows.columns:
        return ""
    return f" (in {sorted(set(rows['source_file'].astype(str)))[:3]})"


def check_duplicate_reads(responses: pd.DataFrame) -> None:
    """Refuse a read given twice: the same reader, session and image in two rows of any session (viewing too).

    Raises:
        DataError: naming the first repeated read and the files it came from.
    """
    dup = responses.duplicated(["reader", "session", "image_id"], keep=False)
    if dup.any():
        first = responses.loc[dup, ["reader", "session", "image_id"]].iloc[0].to_dict()
        raise DataError(
            f"responses hold {int(dup.sum())} rows for repeated reads, e.g. {first}{files_note(responses[dup])}; each "
            "reader reads (or views) each image of a session once, and a repeat would inflate the counts and "
            "reading times. Remove the duplicated rows or export."
        )
