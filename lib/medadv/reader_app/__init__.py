"""The reader study of paper 001 ("Human reader study"): session packages, the browser reader app, a simulated panel.

- :mod:`medadv.reader_app.config`: the profile's ``reader`` section (:class:`ReaderConfig`, :class:`ReaderSkill`).
- :mod:`medadv.reader_app.packages`: :func:`build_sessions` writes the five session folders and the answer key.
- :mod:`medadv.reader_app.page`: the self-contained ``index.html`` of a session (``app.html``, ``app.css``, the viewer
  ``viewer.js``: zoom, pan, window/level, and ``app.js``: answers, times, progress, CSV).
- :mod:`medadv.reader_app.simulate`: a simulated reader panel that answers like the app exports.
- :mod:`medadv.reader_app.analysis`: a folder of response CSVs to the study's tables; :mod:`~medadv.reader_app.figures`
  its figures; building and simulating inside a run folder is notebook 05's stage, :mod:`medadv.stages.reader_study`.

The statistics of the responses live in :mod:`medadv.stats.reader` and :mod:`medadv.stats.mrmc`.
"""

from __future__ import annotations

from medadv.reader_app.config import ReaderConfig, ReaderSkill
from medadv.reader_app.packages import SessionPackages, build_sessions, plan_sessions
from medadv.reader_app.responses import RESPONSE_COLUMNS
from medadv.reader_app.simulate import simulate_panel, write_responses

__all__ = [
    "RESPONSE_COLUMNS",
    "ReaderConfig",
    "ReaderSkill",
    "SessionPackages",
    "build_sessions",
    "plan_sessions",
    "simulate_panel",
    "write_responses",
]
