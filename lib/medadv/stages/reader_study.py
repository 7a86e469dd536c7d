"""Notebook 05, the human reader study of paper 001: the five session packages built from notebook 02's adversarial
and education sets, the reads (a folder of the app's CSV exports, a workshop's database, or the profile's simulated
panel), and their analysis: accuracy by session and reader, the session tests, agreement, reading times and the
Session 3 vs 5 MRMC analysis.

The domain work lives in :mod:`medadv.reader_app` (:mod:`~medadv.reader_app.run` builds the packages and gathers the
reads inside a run folder, :mod:`~medadv.reader_app.analysis` analyses them, :mod:`~medadv.reader_app.figures` draws
them) and :mod:`medadv.stats.reader`; this module is what the notebook calls.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from medadv.reader_app.analysis import ReaderStudyResults, analyse_responses
from medadv.reader_app.config import ReaderConfig
from medadv.reader_app.figures import accuracy_figure, reading_time_figure
from medadv.reader_app.packages import SessionPackages
from medadv.reader_app.run import build_run_packages, run_responses
from medadv.report import RunContext

SESSION_TEST_COLUMNS = ["reader", "truth", "session_a", "session_b", "accuracy_a", "accuracy_b", "diff", "sd_avg",
                        "p_value", "note"]
"""The columns of the session tests the notebook shows."""

__all__ = ["ReaderStudy", "ReaderStudyConfig", "accuracy_by_session", "accuracy_figure", "build_run_packages",
           "packages_headline", "read_and_analyse", "reading_time_figure", "session_changes"]


@dataclasses.dataclass(frozen=True)
class ReaderStudyConfig(ReaderConfig):
    """The profile's ``reader`` section (:class:`medadv.reader_app.config.ReaderConfig`)."""


def packages_headline(ctx: RunContext, packages: SessionPackages) -> dict[str, object]:
    """The packages' numbers for ``summary.json``.

    Returns:
        ``sessions_built`` (session number as text -> whether it was built) and ``packages`` (their folder,
        relative to the run folder).
    """
    sessions = packages.sessions
    return {"sessions_built": dict(zip(sessions["session"].astype(str), sessions["built"].tolist(), strict=True)),
            "packages": str(packages.root.relative_to(ctx.run_dir))}


@dataclasses.dataclass(frozen=True)
class ReaderStudy:
    """The analysed reads.

    Attributes:
        results: :class:`medadv.reader_app.analysis.ReaderStudyResults`.
        tables: its tables to save, by file name, each with the ``responses`` column first.
        source: where the reads came from (a folder or a database file).
        left_out: readers of a database left out as unfinished.
    """

    results: ReaderStudyResults
    tables: dict[str, pd.DataFrame]
    source: str
    left_out: list[str]

    def description(self) -> str:
        """Who read, as one Markdown sentence.

        Returns:
            the kind of readers, their number, the number of reads, their source and any readers left out.
        """
        results = self.results
        return (f"**{results.label.capitalize()} readers**: {results.reads['reader'].nunique()} readers, "
                f"{len(results.reads)} reads in sessions 2, 3 and 5, from `{self.source}`."
                + (f" Left out, unfinished: {', '.join(self.left_out)}." if self.left_out else ""))


def read_and_analyse(ctx: RunContext, packages: SessionPackages, config: ReaderConfig,
                     responses_dir: str | Path | None, responses_db: str | Path | None) -> ReaderStudy:
    """Gather the reads (:func:`medadv.reader_app.run.run_responses`: the CSV exports in ``responses_dir``, the
    database ``responses_db``, or with neither the simulated panel) and analyse them against the answer key.

    Returns:
        :class:`ReaderStudy`.

    Raises:
        ConfigError: both ``responses_dir`` and ``responses_db`` are given.
    """
    simulated = responses_dir is None and responses_db is None
    responses, source, left_out = run_responses(ctx, packages, config, responses_dir, responses_db)
    results = analyse_responses(responses, packages.answer_key, config.n_subgroups, simulated)
    return ReaderStudy(results, results.tables(), source, left_out)


def accuracy_by_session(study: ReaderStudy) -> pd.DataFrame:
    """Each reader's accuracy over all images, by truth (real, fake) and session.

    Returns:
        a pivot table: one row per reader, columns (truth, session).
    """
    accuracy = study.tables["reader_accuracy"]
    return accuracy.query("label == 'all'").pivot_table(index="reader", columns=["truth", "session"],
                                                        values="accuracy")


def session_changes(study: ReaderStudy) -> pd.DataFrame:
    """The session tests over all images, by reader and truth (real, fake).

    Returns:
        those rows of ``reader_session_tests`` with :data:`SESSION_TEST_COLUMNS`.
    """
    tests = study.tables["reader_session_tests"]
    return tests.query("label == 'all' and truth != 'all'")[SESSION_TEST_COLUMNS]
