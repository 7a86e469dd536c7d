"""The reader study inside a run folder (notebook 05): build the packages from notebook 02's outputs, and write the
simulated panel's responses, registering every file with the run context.

Files: ``data/reader_packages/`` (``answer_key.csv`` and ``session1`` ... ``session5``, see
:mod:`medadv.reader_app.packages`) and ``data/reader_responses_simulated/`` (one CSV per reader and session, the app's
export format).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from medadv.data.adversarial import read_adversarial_index
from medadv.errors import ConfigError
from medadv.reader_app.analysis import database_responses, load_responses
from medadv.reader_app.config import ReaderConfig
from medadv.reader_app.packages import SessionPackages, build_sessions
from medadv.reader_app.simulate import simulate_panel, write_responses
from medadv.report import RunContext

PACKAGES_DIR = "reader_packages"
SIMULATED_DIR = "reader_responses_simulated"
GAN_NOTEBOOK = "02_gan_training"

__all__ = ["PACKAGES_DIR", "SIMULATED_DIR", "build_run_packages", "run_responses", "simulate_run_responses"]


def _education_index(ctx: RunContext) -> pd.DataFrame:
    path = ctx.require("tables/education_index.csv", made_by=GAN_NOTEBOOK)
    return pd.read_csv(path, dtype={"image_id": str}, keep_default_na=False)


def build_run_packages(ctx: RunContext, config: ReaderConfig) -> SessionPackages:
    """Build the five sessions of the run under ``data/reader_packages`` and register their files.

    The seed is the profile's seed plus ``config.seed_offset``; images are shown at the profile's image size.

    Returns:
        The packages, registered.
    """
    data = ctx.profile.data
    packages = build_sessions(
        cohort=ctx.cohort(),
        image_root=ctx.image_root,
        run_dir=ctx.run_dir,
        adversarial_index=read_adversarial_index(ctx.run_dir),
        education_index=_education_index(ctx),
        out_dir=ctx.data_dir / PACKAGES_DIR,
        counts=config.session_counts,
        seed=ctx.profile.seed + config.seed_offset,
        image_size=tuple(data.image_size),
        modality=data.modality,
        ask_confidence=config.ask_confidence,
    )
    ctx.register_many(list(packages.files))
    return packages


def simulate_run_responses(ctx: RunContext, packages: SessionPackages, config: ReaderConfig) -> Path:
    """Let the profile's simulated panel read every session; write and register its CSVs; return their folder.

    Returns:
        The folder of the simulated responses.
    """
    responses = simulate_panel(packages.answer_key, config.simulated_readers, ctx.profile.seed + config.seed_offset,
                               config.ask_confidence)
    paths = write_responses(responses, ctx.data_dir / SIMULATED_DIR)
    ctx.register_many(paths)
    return ctx.data_dir / SIMULATED_DIR


def run_responses(ctx: RunContext, packages: SessionPackages, config: ReaderConfig, responses_dir: str | Path | None,
                  responses_db: str | Path | None) -> tuple[pd.DataFrame, str, list[str]]:
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
        raise ConfigError(f"responses_dir ({responses_dir}) and responses_db ({responses_db}) are both set; give one "
                          "source of reads (import the CSV exports into the database with `medadv-reader import`).")
    if responses_db is not None:
        responses, left_out = database_responses(responses_db, packages.answer_key)
        return responses, str(responses_db), left_out
    folder = simulate_run_responses(ctx, packages, config) if responses_dir is None else responses_dir
    return load_responses(folder), str(folder), []
