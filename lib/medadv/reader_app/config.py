"""The ``reader`` section of a profile: session sizes, sub-groups, seed offset and the simulated reader panel.

Paper 001 ("Human reader study", Table 2) read 100 / 100 / 436 / 100 / 440 images in its five sessions; a profile
gives its own five counts (``session_counts``), the number of equal sub-groups each session's reads are split into
for the standard deviations of the session p-values (``n_subgroups``), the offset added to the profile's seed for the
reader study's random draws (``seed_offset``), whether the app asks for a confidence rating 1-5 with each answer
(``ask_confidence``), and the skills of the simulated readers that stand in for a real panel (``simulated_readers``,
see :class:`ReaderSkill` and :mod:`medadv.reader_app.simulate`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medadv.config import ProfileSection, section_config
from medadv.core import read_json
from medadv.errors import ConfigError
from medadv.layout import RunLayout

SESSIONS = (1, 2, 3, 4, 5)
READER_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")  # the app's rule for a reader id (use with fullmatch)
#: Paper 001's sessions 2, 3 and 5 are read (each answer scored); 1 and 4 are viewed (Session 4 educates).
READING_SESSIONS = (2, 3, 5)
VIEWING_SESSIONS = (1, 4)


@dataclasses.dataclass(frozen=True)
class ReaderSkill:
    """One simulated reader (:mod:`medadv.reader_app.simulate` gives the model these numbers drive).

    Attributes:
        reader: the reader id written into the responses (letters, digits, ``_`` and ``-``).
        real_accuracy: probability of answering "real" to a real image (Sessions 2 and 3).
        fake_accuracy: probability of answering "not real" to a fake image (Session 3).
        unsure_rate: probability of answering "unsure" to a real image (fakes get the rate the model implies).
        education_real_delta: change of ``real_accuracy`` after the education session (Session 5 minus Session 3).
        education_fake_delta: change of ``fake_accuracy`` after the education session.
        confidence_step: width of one confidence level on the reader's latent scale, in units of its standard
            deviation: a read that lands ``k`` steps beyond the decision threshold gets confidence ``k + 1`` (capped at
            5). Smaller steps make a more confident reader.
        median_seconds: median reading time per image (log-normal).
        seconds_sigma: standard deviation of the log reading time.
        education_time_factor: multiplies the reading times of Session 5 (paper 001, Table 4: some readers slowed
            down after the education, others sped up).
    """

    reader: str
    real_accuracy: float
    fake_accuracy: float
    unsure_rate: float = 0.05
    education_real_delta: float = 0.0
    education_fake_delta: float = 0.0
    confidence_step: float = 0.5
    median_seconds: float = 8.0
    seconds_sigma: float = 0.4
    education_time_factor: float = 1.0

    def __post_init__(self) -> None:
        where = f"reader.simulated_readers[{self.reader!r}]"
        if not READER_ID.fullmatch(self.reader):
            raise ConfigError(
                f"{where}: reader id {self.reader!r}; use 1-40 letters, digits, '_' and '-' (as the app)."
            )
        pairs = (("real_accuracy", self.education_real_delta), ("fake_accuracy", self.education_fake_delta))
        for name, delta in pairs:
            for value in (getattr(self, name), getattr(self, name) + delta):
                if not 0.0 < value < 1.0:
                    raise ConfigError(
                        f"{where}: {name} (+ its education delta) is {value:g}; expected a value in (0, 1)."
                    )
        if not 0.0 <= self.unsure_rate < 1.0:
            raise ConfigError(f"{where}: unsure_rate is {self.unsure_rate}; expected a value in [0, 1).")
        worst = max(self.real_accuracy, self.real_accuracy + self.education_real_delta) + self.unsure_rate
        if worst >= 1.0:
            raise ConfigError(
                f"{where}: real_accuracy + unsure_rate reaches {worst:g}; the two are probabilities of different "
                "answers to a real image and must sum to less than 1."
            )
        for name in ("confidence_step", "median_seconds", "education_time_factor"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}: {name} is {getattr(self, name)}; expected a positive number.")
        if self.seconds_sigma < 0:
            raise ConfigError(f"{where}: seconds_sigma is {self.seconds_sigma}; expected a non-negative number.")


@dataclasses.dataclass(frozen=True)
class ReaderConfig(ProfileSection, section="reader"):
    """The reader study of a profile (section ``reader``).

    Attributes:
        session_counts: images per session 1-5 (Session 4: education triplets); Sessions 3 and 5 must be even (half
            real, half fake). Paper 001: (100, 100, 436, 100, 440).
        n_subgroups: equal sub-groups (in reading order) per session for the p-values' standard deviations.
        seed_offset: added to the profile's seed for every random draw of the reader study.
        ask_confidence: whether the app asks for a confidence rating 1-5 with each "real" / "not real" answer (paper
            001 asked none, and the full profile follows it; the ratings make the MRMC analysis possible).
        simulated_readers: the simulated panel (a list of :class:`ReaderSkill` mappings in the profile).
    """

    session_counts: tuple[int, ...] = (100, 100, 436, 100, 440)
    n_subgroups: int = 4  # kit: paper 001 used several sub-groups without saying how many
    seed_offset: int = 500  # kit
    ask_confidence: bool = True  # kit: paper 001 asked none (the full profile follows it); the ratings allow MRMC
    simulated_readers: tuple[ReaderSkill, ...] = ()  # kit: no simulated panel unless the profile gives one

    def __post_init__(self) -> None:
        counts = tuple(self.session_counts)
        if len(counts) != 5 or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in counts):
            raise ConfigError(
                f"reader.session_counts is {list(counts)}; expected five positive integers (sessions 1-5)."
            )
        odd = [s for s in (3, 5) if counts[s - 1] % 2]
        if odd:
            raise ConfigError(
                f"reader.session_counts: session(s) {odd} have an odd count {[counts[s - 1] for s in odd]}; sessions 3 "
                "and 5 are half real, half fake, so their counts must be even."
            )
        smallest = min(counts[s - 1] for s in READING_SESSIONS)
        if not 2 <= self.n_subgroups <= smallest:
            raise ConfigError(
                f"reader.n_subgroups is {self.n_subgroups}; a standard deviation needs at least 2 sub-groups, and "
                f"each needs a read of the smallest reading session ({smallest} images, reader.session_counts): "
                f"expected 2 to {smallest} (the default: 5)."
            )
        if self.seed_offset < 0:
            raise ConfigError(f"reader.seed_offset is {self.seed_offset}; expected a non-negative integer.")
        skills = tuple(s if isinstance(s, ReaderSkill) else _skill(s, i) for i, s in enumerate(self.simulated_readers))
        names = [s.reader for s in skills]
        if len(set(names)) != len(names):
            raise ConfigError(f"reader.simulated_readers: reader ids {names} repeat; every reader needs its own id.")
        object.__setattr__(self, "session_counts", counts)
        object.__setattr__(self, "simulated_readers", skills)


def _skill(raw: Any, index: int) -> ReaderSkill:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"reader.simulated_readers[{index}] is {type(raw).__name__}; expected a mapping of skills.")
    return section_config(ReaderSkill, raw, f"reader.simulated_readers[{index}]")


def kept_readers(run_dir: str | Path) -> str | None:
    """Whether the run folder keeps real readers' reads that a run without ``responses_dir`` or ``responses_db``
    would replace with the simulated panel's (``data/reader_responses/panel.json``, written by notebook 05).

    Returns:
        The refusal in words (their source, the parameter to give again, how to go back to the simulated panel), or
        None when the folder keeps no real readers' reads.
    """
    layout = RunLayout(Path(run_dir))
    record = read_json(layout.panel_record, default={})
    if record.get("readers") != "real":
        return None
    source, option = record.get("source", "?"), record.get("given_as", "responses_dir")
    return (
        f"{layout.panel_responses} holds the real readers' reads that notebook 05 analysed last (from {source}); "
        f"with neither responses_dir nor responses_db this run would replace them with the simulated panel's. Give "
        f"{option}={source} again (medadv run: --param {option}={source}; by hand: in the parameters cell), or, to "
        f"go back to the simulated panel, delete {layout.panel_responses} first."
    )
