"""A run's reader study as the workshop server serves it: the session packages, their answer key, the live results.

The packages are the ones notebook 05 built (``<run>/data/reader_packages``, :mod:`medadv.reader_app.packages`);
each session's app payload is read back from its ``index.html``, so the served app shows exactly what the offline
package shows. The answer key stays on the server: only :func:`live_results` reads it, to count correct answers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from medadv.errors import DataError
from medadv.layout import RunLayout
from medadv.reader_app.db import SessionItems, StoredAnswer
from medadv.reader_app.packages import APP_FILE, session_dir_name

PAYLOAD_RE = re.compile(r'<script type="application/json" id="session-data">(.*?)</script>', re.S)
BEFORE_AFTER = {2: "real images only", 3: "before the education", 5: "after the education"}

__all__ = ["ServedStudy", "live_results", "load_study"]


@dataclasses.dataclass(frozen=True)
class ServedStudy:
    """The packages of one run, ready to serve.

    Attributes:
        run_dir: the run folder.
        packages: its ``data/reader_packages`` folder.
        payloads: the app payload of each session (as in its ``index.html``), by session number.
        answer_key: the packages' answer key (never served).
    """

    run_dir: Path
    packages: Path
    payloads: dict[int, dict[str, Any]]
    answer_key: pd.DataFrame

    @property
    def db_path(self) -> Path:
        """``<run>/data/reader.sqlite`` (``RunLayout.reader_db``)."""
        return RunLayout(self.run_dir).reader_db

    def session_dir(self, session: int) -> Path:
        """The folder of one session package.

        Returns:
            The folder's path.
        """
        return self.packages / session_dir_name(session)

    def items(self) -> dict[int, SessionItems]:
        """What the database checks answers against, by session.

        Returns:
            ``{session: SessionItems}``.
        """
        return {
            s: SessionItems(s, p["mode"], tuple(i["image_id"] for i in p["items"]), bool(p["ask_confidence"]))
            for s, p in self.payloads.items()
        }

    def image_files(self, session: int) -> frozenset[str]:
        """The image files (``images/0001.png``, ...) a session's app may load.

        Returns:
            The relative paths of the session's image files.
        """
        return frozenset(v for item in self.payloads[session]["items"] for k, v in item.items() if k.endswith("file"))


def read_payload(page: Path) -> dict[str, Any]:
    """The session data block of a package's ``index.html`` (:func:`medadv.reader_app.page.render_page`).

    Returns:
        The session data, as the page holds it.
    """
    try:
        match = PAYLOAD_RE.search(page.read_text(encoding="utf-8"))
        payload = json.loads(match.group(1)) if match else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{page}: cannot read the session data of the reader app ({exc}); rerun notebook 05.") from exc
    if not isinstance(payload, dict) or not payload.get("items"):
        raise DataError(f"{page}: no session data block with items; expected a page built by notebook 05.")
    return payload


def load_study(run_dir: str | Path) -> ServedStudy:
    """Read the session packages and answer key of a run folder.

    Returns:
        The study: its folders, session payloads and answer key.

    Raises:
        DataError: no ``data/reader_packages`` with an answer key and five session pages (run notebook 05 first).
    """
    run_dir = Path(run_dir)
    packages = RunLayout(run_dir).reader_packages
    key_path = RunLayout(run_dir).answer_key
    if not key_path.is_file():
        raise DataError(
            f"{run_dir}: no {key_path.relative_to(run_dir)}; run the pipeline up to notebook 05 "
            "(05_reader_study) for this run folder first, e.g. ./run_all.sh --profile workshop."
        )
    key = pd.read_csv(key_path, dtype={"image_id": str, "source_image_id": str}, keep_default_na=False)
    payloads = {}
    for session in sorted(key["session"].astype(int).unique()):
        page = packages / session_dir_name(session) / APP_FILE
        if not page.is_file():
            raise DataError(f"{page}: missing; the packages of {run_dir} are incomplete. Rerun notebook 05.")
        payloads[int(session)] = read_payload(page)
        wanted = key.loc[key["session"] == session].sort_values("order")["image_id"].tolist()
        if [i["image_id"] for i in payloads[int(session)]["items"]] != wanted:
            raise DataError(f"{page}: its images differ from {key_path.name}'s session {session}; rerun notebook 05.")
    return ServedStudy(run_dir=run_dir, packages=packages, payloads=payloads, answer_key=key)


def live_results(
    study: ServedStudy, answers: list[StoredAnswer], progress: dict[str, dict[int, int]]
) -> dict[str, Any]:
    """The class's results so far, for the instructor page.

    Args:
        study: the served study (its answer key).
        answers: every stored answer (:meth:`medadv.reader_app.db.ReaderDatabase.answers`).
        progress: answers per reader and session (:meth:`~medadv.reader_app.db.ReaderDatabase.progress`).

    Returns:
        ``sessions``: per session its size, participants who began and who finished it; ``accuracy``: per reading
        session (2, 3 = before the education, 5 = after it) and truth (real / fake) the answers so far, how many
        were correct (a real image called real, a fake called not real; unsure is not correct) and their share.
    """
    sizes = {s: len(p["items"]) for s, p in study.payloads.items()}
    sessions = [
        {
            "session": s,
            "mode": study.payloads[s]["mode"],
            "images": n,
            "started": sum(1 for p in progress.values() if p.get(s, 0) > 0),
            "finished": sum(1 for p in progress.values() if p.get(s, 0) >= n),
        }
        for s, n in sizes.items()
    ]
    truth = dict(
        zip(
            zip(study.answer_key["session"].astype(int), study.answer_key["image_id"]),
            study.answer_key["truth"],
            strict=True,
        )
    )
    reading = {s for s, p in study.payloads.items() if p["mode"] == "read"}
    tally: dict[tuple[int, str], list[int]] = {}
    for a in answers:
        kind = truth.get((a.session, a.image_id))
        if a.session in reading and kind in ("real", "fake"):
            counts = tally.setdefault((a.session, kind), [0, 0])
            counts[0] += 1
            counts[1] += int(a.answer == ("real" if kind == "real" else "not_real"))
    accuracy = [
        {
            "session": s,
            "when": BEFORE_AFTER.get(s, ""),
            "truth": t,
            "answers": n,
            "correct": k,
            "accuracy": k / n if n else None,
        }
        for (s, t), (n, k) in sorted(tally.items())
    ]
    return {"participants": len(progress), "sessions": sessions, "accuracy": accuracy}
