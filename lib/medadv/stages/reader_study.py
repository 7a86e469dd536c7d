"""Notebook 05, the human reader study of paper 001: the five session packages built from notebook 02's adversarial
and education sets, the reads (a folder of the app's CSV exports, a workshop's database, or the profile's simulated
panel), and their analysis: accuracy by session and reader, the session tests, agreement, reading times and the
Session 3 vs 5 MRMC analysis.

The domain work lives in :mod:`medadv.reader_app` (:mod:`~medadv.reader_app.packages` builds the packages,
:mod:`~medadv.reader_app.simulate` lets the simulated panel read them, :mod:`~medadv.reader_app.analysis` analyses the
reads, :mod:`~medadv.reader_app.figures` draws them) and :mod:`medadv.stats.reader`; this module does that inside a
run folder, registering every file with the run context, and is what the notebook calls.

Files: ``data/reader_packages/`` (``answer_key.csv`` and ``session1`` ... ``session5``, see
:mod:`medadv.reader_app.packages`) and ``data/reader_responses/``: the reads analysed, whoever made them (one CSV per
reader and session, the app's export format, and ``panel.json`` saying whose), which notebook 06 reads. A folder whose
notebook 05 analysed real readers is not silently given back to the simulated panel: a rerun without
``responses_dir`` or ``responses_db`` is refused while ``data/reader_responses/`` holds the readers' reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from medadv.core import write_json
from medadv.data.adversarial import read_adversarial_index
from medadv.errors import ConfigError, RunError
from medadv.reader_app.analysis import ReaderStudyResults, analyse_responses, database_responses, load_responses
from medadv.reader_app.config import ReaderConfig, kept_readers
from medadv.reader_app.packages import SessionPackages, build_sessions
from medadv.reader_app.simulate import exported_responses, simulate_panel, write_responses
from medadv.report import RunContext

GAN_NOTEBOOK = "02_gan_training"

SESSION_TEST_COLUMNS = [
    "reader",
    "truth",
    "session_a",
    "session_b",
    "accuracy_a",
    "accuracy_b",
    "diff",
    "sd_avg",
    "p_value",
    "note",
]
"""The columns of the session tests the notebook shows."""

__all__ = [
    "MRMC_ANALYSES",
    "ReaderStudy",
    "ReaderStudyConfig",
    "accuracy_by_session",
    "build_run_packages",
    "mrmc_table",
    "packages_headline",
    "read_and_analyse",
    "run_responses",
    "session_changes",
    "simulate_run_responses",
]


@dataclasses.dataclass(frozen=True)
class ReaderStudyConfig(ReaderConfig):
    """The profile's ``reader`` section (:class:`medadv.reader_app.config.ReaderConfig`)."""


def _education_index(ctx: RunContext) -> pd.DataFrame:
    path = ctx.require(ctx.layout.education_index, made_by=GAN_NOTEBOOK)
    return pd.read_csv(path, dtype={"image_id": str}, keep_default_na=False)


def cohort_modality(cohort: pd.DataFrame) -> str:
    """The modality the readers' instructions name: the cohort's own (a real data set's, from its manifest; the
    profile's ``data.modality`` is the phantom's), or ``medical`` for a cohort of several.

    Returns:
        ``mammography``, ``ultrasound``, ``xray``, or ``medical``.
    """
    modalities = sorted(set(cohort["modality"]))
    return modalities[0] if len(modalities) == 1 else "medical"


def build_run_packages(ctx: RunContext, config: ReaderConfig) -> SessionPackages:
    """Build the five sessions of the run under ``data/reader_packages`` and register their files.

    The seed is the profile's seed plus ``config.seed_offset``; images are shown at the profile's image size.

    Returns:
        The packages, registered.
    """
    data, cohort = ctx.profile.data, ctx.cohort()
    packages = build_sessions(
        cohort=cohort,
        image_root=ctx.image_root,
        run_dir=ctx.run_dir,
        adversarial_index=read_adversarial_index(ctx.layout.adversarial_index),
        education_index=_education_index(ctx),
        out_dir=ctx.layout.reader_packages,
        counts=config.session_counts,
        seed=ctx.profile.seed + config.seed_offset,
        image_size=tuple(data.image_size),
        modality=cohort_modality(cohort),
        ask_confidence=config.ask_confidence,
    )
    ctx.register_many(list(packages.files))
    return packages


def simulate_run_responses(ctx: RunContext, packages: SessionPackages, config: ReaderConfig) -> pd.DataFrame:
    """Let the profile's simulated panel read every session; write and register its CSVs (the app's exports, in
    ``data/reader_responses/``, which notebook 06 reads) and hand the same reads on in memory.

    Returns:
        The simulated responses as their exports hold them (:func:`medadv.reader_app.simulate.exported_responses`).
    """
    responses = simulate_panel(
        packages.answer_key, config.simulated_readers, ctx.profile.seed + config.seed_offset, config.ask_confidence
    )
    ctx.register_many(write_responses(responses, ctx.layout.panel_responses))
    return exported_responses(responses)


def run_responses(
    ctx: RunContext,
    packages: SessionPackages,
    config: ReaderConfig,
    responses_dir: str | Path | None,
    responses_db: str | Path | None,
) -> tuple[pd.DataFrame, str, list[str]]:
    """The reads notebook 05 analyses: a folder of CSV exports, a workshop's database, or the simulated panel.

    Args:
        responses_dir: folder of the reader app's CSV exports, or ``None``.
        responses_db: the workshop server's ``data/reader.sqlite`` (:mod:`medadv.reader_app.db`), or ``None``.
            Readers who have not finished Sessions 2, 3 and 5 are left out (and named).
        With neither, the simulated panel reads (:func:`simulate_run_responses`).

    Returns:
        (responses in the CSV exports' format, where they came from, reader ids left out as unfinished).

    Raises:
        ConfigError: both ``responses_dir`` and ``responses_db`` given.
    """
    if responses_dir is not None and responses_db is not None:
        raise ConfigError(
            f"responses_dir ({responses_dir}) and responses_db ({responses_db}) are both set; give one "
            "source of reads (import the CSV exports into the database with `medadv-reader import`)."
        )
    if responses_db is not None:
        responses, left_out = database_responses(responses_db, packages.answer_key)
        return responses, str(responses_db), left_out
    if responses_dir is None:
        return simulate_run_responses(ctx, packages, config), str(ctx.layout.panel_responses), []
    return load_responses(responses_dir), str(responses_dir), []


def packages_headline(ctx: RunContext, packages: SessionPackages) -> dict[str, object]:
    """The packages' numbers for ``summary.json``.

    Returns:
        ``sessions_built`` (session number as text -> whether it was built) and ``packages`` (their folder,
        relative to the run folder).
    """
    sessions = packages.sessions
    return {
        "sessions_built": dict(zip(sessions["session"].astype(str), sessions["built"].tolist(), strict=True)),
        "packages": str(packages.root.relative_to(ctx.run_dir)),
    }


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
        return (
            f"**{results.label.capitalize()} readers**: {results.reads['reader'].nunique()} readers, "
            f"{len(results.reads)} reads in sessions 2, 3 and 5, from `{self.source}`."
            + (f" Left out, unfinished: {', '.join(self.left_out)}." if self.left_out else "")
        )


def read_and_analyse(
    ctx: RunContext,
    packages: SessionPackages,
    config: ReaderConfig,
    responses_dir: str | Path | None,
    responses_db: str | Path | None,
) -> ReaderStudy:
    """Gather the reads (:func:`run_responses`: the CSV exports in ``responses_dir``, the
    database ``responses_db``, or with neither the simulated panel) and analyse them against the answer key.

    Returns:
        :class:`ReaderStudy`.

    Raises:
        ConfigError: both ``responses_dir`` and ``responses_db`` are given.
    """
    simulated = responses_dir is None and responses_db is None
    if simulated:
        check_panel_kept(ctx)
    responses, source, left_out = run_responses(ctx, packages, config, responses_dir, responses_db)
    results = analyse_responses(responses, packages.answer_key, config.n_subgroups, simulated)
    if not simulated:  # checked by the analysis: notebook 06 reads the panel from the run folder
        ctx.register_many(write_responses(responses, ctx.layout.panel_responses))
    given_as = None if simulated else "responses_db" if responses_db is not None else "responses_dir"
    record = {"readers": results.label, "source": source, "given_as": given_as, "left_out": left_out}
    write_json(ctx.layout.panel_record, record)
    ctx.register(ctx.layout.panel_record)
    return ReaderStudy(results, results.tables(), source, left_out)


def check_panel_kept(ctx: RunContext) -> None:
    """Refuse to let the simulated panel replace the real readers' reads that this folder's notebook 05 analysed
    last (:func:`medadv.reader_app.config.kept_readers`): a rerun that forgot ``responses_db`` or ``responses_dir``
    (a resume without ``--param``, the notebook opened by hand) would otherwise swap the class's results for
    simulated ones.

    Raises:
        RunError: the folder holds real readers' reads, naming their source and the two ways on.
    """
    problem = kept_readers(ctx.run_dir)
    if problem is not None:
        raise RunError(problem)


def accuracy_by_session(study: ReaderStudy) -> pd.DataFrame:
    """Each reader's accuracy over all images, by truth (real, fake) and session.

    Returns:
        a pivot table: one row per reader, columns (truth, session).
    """
    accuracy = study.tables["reader_accuracy"]
    return accuracy.query("label == 'all'").pivot_table(index="reader", columns=["truth", "session"], values="accuracy")


def session_changes(study: ReaderStudy) -> pd.DataFrame:
    """The session tests over all images, by reader and truth (real, fake).

    Returns:
        those rows of ``reader_session_tests`` with :data:`SESSION_TEST_COLUMNS`.
    """
    tests = study.tables["reader_session_tests"]
    return tests.query("label == 'all' and truth != 'all'")[SESSION_TEST_COLUMNS]


#: What each MRMC analysis (Obuchowski-Rockette with Hillis's degrees of freedom) lets one generalise to.
MRMC_ANALYSES = {
    "RRRC": "RRRC: other readers and other images",
    "FRRC": "FRRC: these readers, other images",
    "RRFC": "RRFC: other readers, these images",
}


def mrmc_table(mrmc: pd.DataFrame) -> pd.DataFrame:
    """``mrmc.csv`` as a reader reads it: the analysis named by what it generalises to, the sessions compared, the
    readers' mean ROC AUC in each (``auc_a``, ``auc_b`` of the file), their difference with its 95% CI, and the p-value.

    Returns:
        One row per analysis and pair of sessions, with spelled-out column names.
    """
    names = {
        "analysis": "analysis (generalises to)",
        "treatment_a": "session A",
        "treatment_b": "session B",
        "auc_a": "mean reader AUC, session A",
        "auc_b": "mean reader AUC, session B",
        "diff": "difference (A - B)",
        "ci_low": "95% CI low",
        "ci_high": "95% CI high",
        "p_value": "p",
    }
    out = mrmc[list(names)].rename(columns=names)
    out[names["analysis"]] = out[names["analysis"]].map(lambda a: MRMC_ANALYSES.get(a, a))
    return out.reset_index(drop=True)
