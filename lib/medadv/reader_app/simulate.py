"""A simulated reader panel: stands in for paper 001's five radiologists when no real responses are at hand.

Each simulated reader answers every session of a built package (the answer key of
:func:`medadv.reader_app.packages.build_sessions`) in its reading order and writes exactly what the reader app exports
(:data:`medadv.reader_app.responses.RESPONSE_COLUMNS`), so the analysis of a simulated panel and of a real one is the
same code.

The model (equal-variance signal detection with an "unsure" band, one latent read per image):

* a read of a real image is ``x ~ N(0, 1)``, of a fake ``x ~ N(d, 1)``; the reader answers ``real`` when
  ``x < t_lo``, ``unsure`` when ``t_lo <= x <= t_hi`` and ``not_real`` when ``x > t_hi``;
* the three numbers follow from the documented skills (:class:`medadv.reader_app.config.ReaderSkill`):
  ``t_lo = Phi^-1(real_accuracy)``, ``t_hi = Phi^-1(real_accuracy + unsure_rate)`` and
  ``d = t_hi - Phi^-1(1 - fake_accuracy)``, so that P(real | real image) = ``real_accuracy``,
  P(unsure | real image) = ``unsure_rate`` and P(not real | fake) = ``fake_accuracy`` exactly (``d`` < 0 is a reader
  worse than chance, like paper 001's Reader 5 after the education);
* confidence (when the app asks for it) grows with the distance of the read from the threshold it passed:
  ``1 + floor(|x - t| / confidence_step)``, capped at 5; an ``unsure`` answer has no confidence;
* Session 5 (after the education) uses ``real_accuracy + education_real_delta`` and
  ``fake_accuracy + education_fake_delta``; Sessions 2 and 3 use the skills as given; the class of an image does
  not matter (paper 001 found the readers insensitive to it);
* reading times are log-normal, ``median_seconds * exp(seconds_sigma * z)``, times ``education_time_factor`` in
  Session 5; Sessions 1 and 4 (observation, education) record ``seen`` with their viewing times.

Every draw comes from ``numpy.random.default_rng([seed, reader number, session])``: the panel is deterministic given
the seed, and one reader's answers do not depend on the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from medadv.errors import ConfigError, DataError
from medadv.reader_app.config import ReaderSkill
from medadv.reader_app.responses import RESPONSE_COLUMNS

log = logging.getLogger(__name__)

READ_ANSWERS = ("real", "not_real", "unsure")
SEEN = "seen"
OBSERVE_SESSIONS = (1, 4)
EDUCATED_SESSION = 5
MAX_CONFIDENCE = 5

__all__ = [
    "RESPONSE_COLUMNS",
    "READ_ANSWERS",
    "SEEN",
    "exported_responses",
    "response_file_name",
    "simulate_panel",
    "simulate_reader",
    "write_responses",
]


def _thresholds(real_accuracy: float, fake_accuracy: float, unsure_rate: float) -> tuple[float, float, float]:
    """(t_lo, t_hi, d) of the latent model from the three skills (see the module docstring)."""
    t_lo = float(norm.ppf(real_accuracy))
    t_hi = float(norm.ppf(real_accuracy + unsure_rate))
    return t_lo, t_hi, t_hi - float(norm.ppf(1.0 - fake_accuracy))


def simulate_reader(
    answer_key: pd.DataFrame, skill: ReaderSkill, seed: int, reader_number: int, ask_confidence: bool = True
) -> pd.DataFrame:
    """One simulated reader's responses to every session of ``answer_key`` (columns :data:`RESPONSE_COLUMNS`).

    Args:
        answer_key: the packages' answer key (session, order, image_id, truth, ...).
        skill: the reader's skills.
        seed: the panel's seed.
        reader_number: the reader's position in the panel (part of its random stream).
        ask_confidence: whether confidence ratings 1-5 are given (as the app asks when ``reader.ask_confidence``).

    Returns:
        The responses, columns :data:`RESPONSE_COLUMNS`, one row per read.
    """
    missing = [c for c in ("session", "order", "image_id", "truth") if c not in answer_key.columns]
    if missing:
        raise DataError(f"answer key: missing columns {missing}; expected the answer key of build_sessions.")
    frames = []
    for session, items in answer_key.sort_values(["session", "order"]).groupby("session", sort=True):
        rng = np.random.default_rng([seed, reader_number, int(session)])
        n = len(items)
        educated = int(session) == EDUCATED_SESSION
        seconds = skill.median_seconds * np.exp(skill.seconds_sigma * rng.standard_normal(n))
        if educated:
            seconds = seconds * skill.education_time_factor
        answers = np.full(n, SEEN, dtype=object)
        confidence = pd.array([pd.NA] * n, dtype="Int64")
        if int(session) not in OBSERVE_SESSIONS:
            answers, confidence = _read(items["truth"].to_numpy(), skill, educated, ask_confidence, rng)
        frames.append(
            pd.DataFrame(
                {
                    "reader": skill.reader,
                    "session": int(session),
                    "image_id": items["image_id"].astype(str).to_numpy(),
                    "answer": answers,
                    "confidence": confidence,
                    "reading_seconds": np.round(seconds, 3),
                    "order": items["order"].to_numpy(int),
                },
                columns=list(RESPONSE_COLUMNS),
            )
        )
    return pd.concat(frames, ignore_index=True)


def _read(
    truth: np.ndarray, skill: ReaderSkill, educated: bool, ask_confidence: bool, rng: np.random.Generator
) -> tuple[np.ndarray, pd.api.extensions.ExtensionArray]:
    bad = sorted(set(truth) - {"real", "fake"})
    if bad:
        raise DataError(f"answer key: truth values {bad} in a reading session; expected 'real' or 'fake'.")
    real_acc = skill.real_accuracy + (skill.education_real_delta if educated else 0.0)
    fake_acc = skill.fake_accuracy + (skill.education_fake_delta if educated else 0.0)
    t_lo, t_hi, d = _thresholds(real_acc, fake_acc, skill.unsure_rate)
    x = rng.standard_normal(len(truth)) + np.where(truth == "fake", d, 0.0)
    answers = np.where(x < t_lo, "real", np.where(x > t_hi, "not_real", "unsure")).astype(object)
    distance = np.where(answers == "real", t_lo - x, x - t_hi)
    levels = np.minimum(MAX_CONFIDENCE, 1 + np.floor(np.maximum(distance, 0.0) / skill.confidence_step)).astype(int)
    confidence = pd.array(
        [pd.NA if (a == "unsure" or not ask_confidence) else int(c) for a, c in zip(answers, levels, strict=True)],
        dtype="Int64",
    )
    return answers, confidence


def simulate_panel(
    answer_key: pd.DataFrame, readers: Sequence[ReaderSkill], seed: int, ask_confidence: bool = True
) -> pd.DataFrame:
    """Responses of a simulated panel to every session (one block of rows per reader, in panel order).

    Returns:
        The responses of every reader, columns :data:`RESPONSE_COLUMNS`.

    Raises:
        ConfigError: an empty panel.
    """
    if not readers:
        raise ConfigError("reader.simulated_readers is empty; the profile must describe at least one simulated reader.")
    log.info("simulating %d readers on %d items", len(readers), len(answer_key))
    frames = [simulate_reader(answer_key, skill, seed, i, ask_confidence) for i, skill in enumerate(readers, start=1)]
    return pd.concat(frames, ignore_index=True)


def response_file_name(reader: str, session: int) -> str:
    """The file name the reader app gives its export: ``responses_session<N>_<reader>.csv``.

    Returns:
        The file name.
    """
    return f"responses_session{int(session)}_{reader}.csv"


def _export_files(responses: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The reader app's export files of ``responses``: one per reader and session, in file-name order, each reader's
    images in reading order and reading times to the millisecond (as the app records them).

    Returns:
        (file name, its rows with :data:`RESPONSE_COLUMNS`), sorted by file name.
    """
    missing = [c for c in RESPONSE_COLUMNS if c not in responses.columns]
    if missing:
        raise DataError(f"responses: missing columns {missing}; expected {list(RESPONSE_COLUMNS)}.")
    files = []
    for (reader, session), rows in responses.groupby(["reader", "session"], sort=True):
        out = rows.sort_values("order").loc[:, list(RESPONSE_COLUMNS)]
        out = out.assign(reading_seconds=out["reading_seconds"].map(lambda s: float(f"{s:.3f}")))
        files.append((response_file_name(str(reader), int(session)), out))
    return sorted(files, key=lambda file: file[0])


def exported_responses(responses: pd.DataFrame) -> pd.DataFrame:
    """``responses`` as the analysis reads them back from the files :func:`write_responses` writes (the files in name
    order, as :func:`medadv.reader_app.analysis.response_files` lists them; the rows of each in reading order; reading
    times to the millisecond), so that a simulated panel is analysed in memory exactly as its exports would be.

    Returns:
        The responses, columns :data:`RESPONSE_COLUMNS`, one row per read.
    """
    return pd.concat([rows for _, rows in _export_files(responses)], ignore_index=True)


def write_responses(responses: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Write one CSV per reader and session into ``folder``, byte for byte in the app's export format.

    Earlier ``responses_session*.csv`` files in ``folder`` are removed first, so the folder holds this panel only.

    Returns:
        The paths written, one per reader and session, in file-name order.
    """
    files = _export_files(responses)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("responses_session*.csv")):
        old.unlink()
    paths = []
    for name, rows in files:
        path = folder / name
        rows.assign(reading_seconds=rows["reading_seconds"].map(lambda s: f"{s:.3f}")).to_csv(
            path, index=False, lineterminator="\n"
        )
        paths.append(path)
    return paths
