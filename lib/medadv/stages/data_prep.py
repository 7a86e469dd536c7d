"""Notebook 00, data preparation: the run's cohort table (the phantom or a real data set), its counts, the patient
leakage check and the example figures.

The domain work lives in :mod:`medadv.data` (:mod:`medadv.data.prepare` builds and summarises the cohort,
:mod:`medadv.data.splits` checks it, :mod:`medadv.data.plots` draws it); this module is what the notebook calls.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from medadv.config import DataConfig
from medadv.data.prepare import build_cohort, cohort_files, cohort_headline, leakage_table
from medadv.report import RunContext

__all__ = ["DataPrepConfig", "LeakageCheck", "PreparedCohort", "write_cohort"]


@dataclasses.dataclass(frozen=True)
class DataPrepConfig(DataConfig):
    """The profile's ``data`` section (:class:`medadv.config.DataConfig`), as the run resolved it."""

    @classmethod
    def from_profile(cls, profile: Any) -> DataPrepConfig:
        """The cohort settings of ``profile`` (``profile.data``, with the run's ``data_manifest`` and ``data_root``).

        Returns:
            the same values as ``profile.data``, as a :class:`DataPrepConfig`.
        """
        return cls(**{f.name: getattr(profile.data, f.name) for f in dataclasses.fields(DataConfig)})


@dataclasses.dataclass(frozen=True)
class LeakageCheck:
    """The patient leakage check of a cohort.

    Attributes:
        table: one row per split with its patient and image counts (``split_leakage_check.csv``).
        headline: notebook 00's numbers for ``summary.json`` (:func:`medadv.data.prepare.cohort_headline`).
    """

    table: pd.DataFrame
    headline: dict[str, object]


@dataclasses.dataclass(frozen=True)
class PreparedCohort:
    """The run's cohort as notebook 00 wrote it.

    Attributes:
        table: the split, validated cohort table, one row per image (``cohort.csv``).
        leakage: the patient leakage check that the cohort passed when it was built (a cohort that fails it stops
            the notebook with a DataError naming the patients before anything is written).
    """

    table: pd.DataFrame
    leakage: LeakageCheck


def write_cohort(ctx: RunContext) -> PreparedCohort:
    """Build the run's cohort (:func:`medadv.data.prepare.build_cohort`: split, validated and checked for patient
    leakage, each once), write it to ``cohort.csv`` and register it, with the phantom's rendered image and mask files
    when the cohort is the phantom.

    Returns:
        :class:`PreparedCohort`: the cohort table and its leakage check (counts per split, headline numbers).
    """
    cohort, counts = build_cohort(ctx.profile.data, ctx.profile.seed, ctx.layout)
    cohort.to_csv(ctx.layout.cohort, index=False, lineterminator="\n")
    ctx.register(ctx.layout.cohort)
    if ctx.profile.data.manifest is None:
        ctx.register_many(cohort_files(cohort, ctx.image_root))
    return PreparedCohort(cohort, LeakageCheck(leakage_table(counts), cohort_headline(cohort, counts)))
