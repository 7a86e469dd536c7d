"""Data: the in-silico phantom cohort, real-data loaders, DICOM reading, splits and image loading.

``load_cohort(manifest, root)`` is the one entry point for real data sets; ``medadv.data.phantom`` makes the
embedded synthetic cohort. Both give the cohort table described in :mod:`medadv.data.cohort`.
"""

from __future__ import annotations

from medadv.data.sources import load_cohort

__all__ = ["load_cohort"]
