"""From a folder of response CSVs (the app's exports, or the simulated panel's) to the reader-study tables.

The responses are read and validated by :mod:`medadv.reader_app.responses`; the statistics themselves are
:mod:`medadv.stats.reader` (accuracy with exact intervals, paper 001's
sub-group p-values, Fleiss' kappa, reading times, MRMC ratings) and :mod:`medadv.stats.mrmc` (Obuchowski-Rockette
with Hillis's degrees of freedom); this module only routes the sessions to them:

* Sessions 2, 3 and 5 are *reading* sessions: validated against the answer key (every reader must have completed
  all three), accuracies, session tests (2 vs 3, 2 vs 5, 3 vs 5), agreement; the MRMC analysis compares Session 3
  (before the education) with Session 5 (after it) as two treatments on separate cases, when every real / not-real
  answer carries a confidence and at least two readers took part;
* Sessions 1 and 4 are *viewing* sessions (answer ``seen``): they count only in the reading times.

Every table gets a first column ``responses`` saying whether the reads are ``simulated`` or ``real``.

Before any statistic, :func:`check_reader_ids` and :func:`medadv.reader_app.responses.check_duplicate_reads`
(functions on a DataFrame, so that every source of responses - CSV exports, the workshop database - is checked alike;
the reading sessions' duplicates are checked once, inside ``validate_responses``) refuse: reader ids that differ only in
case or surrounding spaces (``r1`` / ``R1 ``: one reader under two spellings), ids outside the app's rule (1-40 letters,
digits, ``_`` and ``-``; an id such as ``../x`` or ``=cmd|...`` would reach file names and spreadsheets), and a read
given twice in any session, viewing sessions 1 and 4 included (it would inflate the reading times). A responses folder's
files are its ``*.csv`` files whatever the case of the suffix (``.CSV`` exports are read, and logged).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from medadv.errors import DataError
from medadv.reader_app.config import READER_ID, READING_SESSIONS, VIEWING_SESSIONS
from medadv.reader_app.db import read_answers
from medadv.reader_app.responses import check_duplicate_reads, files_note, read_responses, validate_responses
from medadv.reader_app.simulate import SEEN
from medadv.stats.mrmc import ORHillisResult, or_hillis
from medadv.stats.reader import (
    accuracy_table,
    agreement_table,
    has_confidence_ratings,
    ratings_from_responses,
    reading_times,
    session_tests,
)

log = logging.getLogger(__name__)

MRMC_TREATMENTS = (3, 5)

__all__ = [
    "MRMC_TREATMENTS",
    "READING_SESSIONS",
    "ReaderStudyResults",
    "analyse_responses",
    "check_reader_ids",
    "database_responses",
    "load_responses",
    "response_files",
]


def response_files(folder: str | Path) -> list[Path]:
    """The CSV files of a responses folder (suffix ``.csv`` in any case), sorted by name.

    Returns:
        The CSV paths, sorted by name.

    Raises:
        DataError: the folder does not exist or holds no CSV file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"responses_dir {folder}: no such folder; give the folder that holds the readers' CSV exports.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    upper = [p.name for p in files if p.suffix != ".csv"]
    if upper:
        log.info("responses_dir %s: reading %d file(s) with an upper-case suffix too: %s", folder, len(upper), upper)
    if not files:
        raise DataError(f"responses_dir {folder}: no *.csv files; put the CSVs downloaded from the reader app there.")
    return files


def load_responses(folder: str | Path) -> pd.DataFrame:
    """All response CSVs of a folder, concatenated (:func:`medadv.reader_app.responses.read_responses`).

    Returns:
        The responses, one row per read.
    """
    return read_responses(response_files(folder))


def database_responses(path: str | Path, answer_key: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The answers of a workshop's database (``<run>/data/reader.sqlite``, :mod:`medadv.reader_app.db`) for the
    analysis, which then validates them as it validates CSV exports.

    Only readers who have answered every image of the reading sessions 2, 3 and 5 are kept (in a class some leave
    early); the others are returned by name so that the notebook can say who was left out.

    Returns:
        (responses in the CSV exports' format, reader ids left out because unfinished).

    Raises:
        DataError: no database at ``path``, or no reader who finished Sessions 2, 3 and 5.
    """
    table = read_answers(path)
    sizes = answer_key[answer_key["session"].isin(READING_SESSIONS)].groupby("session").size()
    done = table[table["session"].isin(READING_SESSIONS)].groupby(["reader", "session"]).size()
    finished = sorted(r for r in set(table["reader"]) if all(done.get((r, int(s)), 0) >= n for s, n in sizes.items()))
    left_out = sorted(set(table["reader"]) - set(finished))
    if not finished:
        raise DataError(
            f"responses_db {path}: no reader has finished sessions {READING_SESSIONS} yet "
            f"({len(left_out)} readers began); wait for the class or analyse the CSV exports instead."
        )
    if left_out:
        log.warning("responses_db %s: %d unfinished reader(s) left out: %s", path, len(left_out), left_out)
    return table[table["reader"].isin(finished)].reset_index(drop=True), left_out


@dataclasses.dataclass(frozen=True)
class ReaderStudyResults:
    """The analysed reader study.

    Attributes:
        simulated: whether the reads come from the simulated panel.
        reads: validated reads of the reading sessions (:func:`medadv.reader_app.responses.validate_responses`).
        accuracy, session_tests, agreement, times: the tables of :mod:`medadv.stats.reader`.
        mrmc: the Session 3 vs Session 5 MRMC analysis, or ``None`` without confidence ratings or with one reader.
    """

    simulated: bool
    reads: pd.DataFrame
    accuracy: pd.DataFrame
    session_tests: pd.DataFrame
    agreement: pd.DataFrame
    times: pd.DataFrame
    mrmc: ORHillisResult | None

    @property
    def label(self) -> str:
        """``simulated`` or ``real``: what the titles and the ``responses`` column say."""
        return "simulated" if self.simulated else "real"

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables to save, by file name, each with the ``responses`` column first.

        Returns:
            ``{file name: table}``.
        """
        out = {
            "reader_accuracy": self.accuracy,
            "reader_session_tests": self.session_tests,
            "reader_agreement": self.agreement,
            "reader_times": self.times,
        }
        if self.mrmc is not None:
            out["mrmc"] = self.mrmc.to_frame()
        return {name: table.assign(responses=self.label)[["responses", *table.columns]] for name, table in out.items()}

    def summary(self) -> dict[str, object]:
        """Headline numbers for ``summary.json``: who read, and the mean accuracy on real and fake images per session
        (over readers), plus the MRMC test of Session 3 vs 5 when there is one.

        Returns:
            The headline numbers, JSON-able.
        """
        acc = self.accuracy[self.accuracy["label"] == "all"]
        means = acc.groupby(["truth", "session"])["accuracy"].mean()
        out: dict[str, object] = {
            "responses": self.label,
            "simulated": self.simulated,
            "n_readers": int(self.reads["reader"].nunique()),
            "n_reads": int(len(self.reads)),
            "mean_accuracy": {
                f"{truth}_session{session}": float(v)
                for (truth, session), v in means.items()
                if truth in ("real", "fake")
            },
        }
        if self.mrmc is not None:
            out["mrmc_auc_session3"] = float(self.mrmc.treatment_means.loc[MRMC_TREATMENTS[0]])
            out["mrmc_auc_session5"] = float(self.mrmc.treatment_means.loc[MRMC_TREATMENTS[1]])
            out["mrmc_p_value"] = float(self.mrmc.p_value)
        return out


def _check_viewing(responses: pd.DataFrame, answer_key: pd.DataFrame) -> None:
    """Viewing-session rows must name images of their session and carry the answer ``seen``."""
    view = responses[responses["session"].isin(VIEWING_SESSIONS)]
    known = set(zip(answer_key["session"].astype(int), answer_key["image_id"].astype(str), strict=True))
    strangers = [
        (s, i) for s, i in zip(view["session"], view["image_id"].astype(str), strict=True) if (s, i) not in known
    ]
    if strangers:
        raise DataError(
            f"responses name images {strangers[:3]} that the answer key does not hold for their session; "
            "check that the responses belong to this package."
        )
    answers = set(view["answer"].astype(str).str.strip().str.lower())
    if answers - {SEEN}:
        raise DataError(f"sessions {VIEWING_SESSIONS} are viewing sessions (answer '{SEEN}'); seen {sorted(answers)}.")


def check_reader_ids(responses: pd.DataFrame) -> None:
    """Refuse reader ids that differ only in case or surrounding spaces, and ids outside the app's rule
    (:data:`medadv.reader_app.config.READER_ID`).

    Raises:
        DataError: naming the ids and the files they came from.
    """
    ids = responses["reader"].astype(str)
    spellings = pd.DataFrame({"id": ids, "folded": ids.str.strip().str.casefold()}).drop_duplicates("id")
    for folded, group in spellings.groupby("folded"):
        if len(group) > 1:
            raise DataError(
                f"reader ids {sorted(group['id'])} differ only in case or spacing"
                f"{files_note(responses[ids.isin(group['id'])])}; "
                "they look like one reader under two spellings. Use one spelling in every file of that reader."
            )
    bad = sorted(i for i in set(ids) if not READER_ID.fullmatch(i))
    if bad:
        raise DataError(
            f"reader id(s) {bad[:3]}{files_note(responses[ids.isin(bad)])} break the reader app's rule: 1-40 letters, "
            "digits, '_' and '-'. Rename the reader in the file (the id reaches file names and tables)."
        )


def analyse_responses(
    responses: pd.DataFrame, answer_key: pd.DataFrame, n_subgroups: int, simulated: bool
) -> ReaderStudyResults:
    """Validate and analyse a panel's responses to the five sessions.

    Args:
        responses: the app's export format (:data:`medadv.reader_app.responses.RESPONSE_COLUMNS`), all readers and
            sessions together (:func:`load_responses`).
        answer_key: the packages' answer key (:class:`medadv.reader_app.packages.SessionPackages`).
        n_subgroups: sub-groups per session for paper 001's p-values (``reader.n_subgroups``).
        simulated: whether the responses come from the simulated panel (it only labels the results).

    Returns:
        :class:`ReaderStudyResults`: the validated reads and every table of notebook 05.

    Raises:
        DataError: responses to sessions other than 1-5, anything :func:`check_reader_ids`,
            :func:`~medadv.reader_app.responses.check_duplicate_reads` or
            :func:`~medadv.reader_app.responses.validate_responses` rejects.
    """
    sessions = pd.to_numeric(responses["session"], errors="coerce")
    unknown = sorted(set(sessions.dropna().astype(int)) - set(READING_SESSIONS) - set(VIEWING_SESSIONS))
    if sessions.isna().any() or unknown:
        raise DataError(f"responses hold session numbers {unknown or 'that are not integers'}; expected 1-5.")
    responses = responses.assign(session=sessions.astype(int))
    _check_viewing(responses, answer_key)
    check_reader_ids(responses)
    check_duplicate_reads(
        responses[responses["session"].isin(VIEWING_SESSIONS)]
    )  # the reading ones: validate_responses
    reading = responses[responses["session"].isin(READING_SESSIONS)]
    key = answer_key[answer_key["session"].isin(READING_SESSIONS)]
    reads = validate_responses(reading, key, sessions=READING_SESSIONS)
    mrmc = None
    treated = reads[reads["session"].isin(MRMC_TREATMENTS)]
    if has_confidence_ratings(treated) and treated["reader"].nunique() >= 2:
        mrmc = or_hillis(ratings_from_responses(reads, MRMC_TREATMENTS))
    else:
        log.info("no MRMC analysis: it needs confidence ratings with every answer and at least two readers")
    return ReaderStudyResults(
        simulated=simulated,
        reads=reads,
        accuracy=accuracy_table(reads),
        session_tests=session_tests(reads, READING_SESSIONS, n_groups=n_subgroups),
        agreement=agreement_table(reads),
        times=reading_times(responses),
        mrmc=mrmc,
    )
