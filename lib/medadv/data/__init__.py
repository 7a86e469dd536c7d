"""Data: the in-silico phantom cohort, real-data loaders, DICOM reading, splits and image loading.

``load_cohort(manifest, root)`` is the one entry point for real data sets; ``medadv.data.phantom`` makes the
embedded synthetic cohort. Both give the cohort table described in :mod:`medadv.data.cohort`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def load_cohort(manifest: Any, root: Any) -> "pd.DataFrame":
    """Load a real data set described by a manifest YAML into the cohort table (see :mod:`medadv.data.sources`).

    Returns:
        The validated cohort table, as :func:`medadv.data.sources.load_cohort` returns it (an example is there).
    """
    from medadv.data.sources import load_cohort as _load

    return _load(manifest, root)


__all__ = ["load_cohort"]
