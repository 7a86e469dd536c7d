"""The served reader study's answers: an SQLite database in the run folder (``data/reader.sqlite``).

Written by the workshop server (:mod:`medadv.reader_app.server`) and by the import of the offline app's CSV exports;
read by the instructor's live results and by notebook 05 (``responses_db``). The standard library's ``sqlite3`` is
the driver: one file, no service to run, safe under a crash.

* **WAL, one transaction per confirmed answer.** The database runs in write-ahead-log mode with ``synchronous=FULL``:
  an answer the server has acknowledged is on disk, and a server killed mid-session loses none. Every answer is one
  ``BEGIN IMMEDIATE ... COMMIT``.
* **No going back** (paper 001, "Human reader study"). An answer is accepted only for the next position of its
  reader's session (``order`` = answers stored + 1) and only for the image the package shows there; an answer for a
  confirmed position is refused (:class:`AnswerRefused`), unless it repeats the stored answer exactly (a browser's
  retry after a lost acknowledgement), which changes nothing.
* **Participants** are rows ``(reader, token)``: the token (``secrets.token_urlsafe``, 128 bits) is the participant's
  only credential. Readers who come from an imported CSV have no token.

Tables: ``participants(reader, token, created, source)``, ``responses(reader, session, "order", image_id, answer,
confidence, reading_seconds, received, source)`` and ``meta(key, value)``.
"""
from __future__ import annotations

import dataclasses
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from medadv.errors import DataError
from medadv.reader_app.config import READER_ID
from medadv.reader_app.simulate import SEEN
from medadv.stats.reader import RESPONSE_COLUMNS

DB_FILE = "reader.sqlite"
READ_ANSWERS = ("real", "not_real", "unsure")
TOKEN_BYTES = 16

__all__ = ["DB_FILE", "AnswerRefused", "ReaderDatabase", "SessionItems", "StoredAnswer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    reader TEXT PRIMARY KEY, token TEXT UNIQUE, created TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS responses (
    reader TEXT NOT NULL REFERENCES participants(reader), session INTEGER NOT NULL, "order" INTEGER NOT NULL,
    image_id TEXT NOT NULL, answer TEXT NOT NULL, confidence INTEGER, reading_seconds REAL NOT NULL,
    received TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (reader, session, "order"), UNIQUE (reader, session, image_id));
"""


class AnswerRefused(DataError):
    """An answer the study's rules do not allow (a confirmed image, a position out of turn); nothing was stored.

    Attributes:
        status: the HTTP status the server answers with (404 unknown image, 409 conflict, 422 bad value).
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class SessionItems:
    """What the database needs to know of one session package: its mode and its image ids in reading order.

    Attributes:
        session: 1-5.
        mode: ``observe`` / ``read`` / ``educate`` (:data:`medadv.reader_app.packages.SESSION_MODES`).
        image_ids: the package's image codes, position 1 first.
        ask_confidence: whether a real / not-real answer carries a confidence 1-5.
    """

    session: int
    mode: str
    image_ids: tuple[str, ...]
    ask_confidence: bool


@dataclasses.dataclass(frozen=True)
class StoredAnswer:
    """One confirmed answer (the columns of the app's CSV export, :data:`RESPONSE_COLUMNS`)."""

    reader: str
    session: int
    order: int
    image_id: str
    answer: str
    confidence: int | None
    reading_seconds: float

    def row(self) -> dict[str, object]:
        """The answer as a row of the app's CSV export (confidence ``None`` when none was given).

        Returns:
            ``{column: value}`` for the columns of :data:`RESPONSE_COLUMNS`.
        """
        return {c: getattr(self, c) for c in RESPONSE_COLUMNS}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_answer(items: SessionItems, answer: str, confidence: int | None, reading_seconds: float) -> None:
    """Check one answer's values against its session's mode (the app's rules).

    Raises:
        AnswerRefused (422): ``seen`` expected in a viewing session; real / not_real / unsure in a reading session; a
            confidence 1-5 with every real / not-real answer when the session asks for one and none otherwise; a
            finite reading time >= 0 seconds.
    """
    where = f"session {items.session}"
    if items.mode == "read":
        if answer not in READ_ANSWERS:
            raise AnswerRefused(f"{where}: answer {answer!r}; expected one of {READ_ANSWERS}.", 422)
        wants = items.ask_confidence and answer != "unsure"
        if wants and confidence not in (1, 2, 3, 4, 5):
            raise AnswerRefused(f"{where}: answer {answer!r} needs a confidence 1-5; got {confidence!r}.", 422)
        if not wants and confidence is not None:
            raise AnswerRefused(f"{where}: answer {answer!r} takes no confidence; got {confidence!r}.", 422)
    elif answer != SEEN or confidence is not None:
        raise AnswerRefused(f"{where} is a viewing session: expected answer {SEEN!r} without confidence; got "
                            f"{answer!r}, {confidence!r}.", 422)
    if not (isinstance(reading_seconds, (int, float)) and 0 <= reading_seconds < 86400):
        raise AnswerRefused(f"{where}: reading_seconds {reading_seconds!r}; expected seconds in [0, 86400).", 422)


class ReaderDatabase:
    """The answers of one run's reader study (``<run>/data/reader.sqlite``), safe to share between threads.

    Args:
        path: the database file (created with its tables if absent).
        sessions: the run's session packages by number; answers are checked against them.
    """

    def __init__(self, path: str | Path, sessions: Mapping[int, SessionItems]) -> None:
        self.path = Path(path)
        self.sessions = dict(sessions)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"reader database {self.path}: {exc}; expected the SQLite file that `medadv-reader "
                            "serve` writes. Move the damaged file away to start a new one.") from exc

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the database file)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A stored setting (e.g. the instructor token), or ``default``.

        Returns:
            The stored value, or ``default``.
        """
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                         "excluded.value", (key, value))

    def create_participants(self, count: int, prefix: str = "P") -> list[tuple[str, str]]:
        """Create ``count`` participants with fresh tokens, numbered after the existing ones (``P01``, ``P02``, ...).

        Returns:
            (reader id, token) of each new participant.

        Raises:
            DataError: a count outside 1-500 or a prefix that would not make a valid reader id.
        """
        if not 1 <= count <= 500:
            raise DataError(f"count is {count}; expected 1-500 participant links at a time.")
        if not READER_ID.fullmatch(prefix) or len(prefix) > 30:
            raise DataError(f"prefix {prefix!r}; expected 1-30 letters, digits, '_' or '-'.")
        made = []
        with self._transaction() as conn:
            taken = {r for (r,) in conn.execute("SELECT reader FROM participants")}
            number = 1
            while len(made) < count:
                reader = f"{prefix}{number:02d}"
                number += 1
                if reader in taken:
                    continue
                token = secrets.token_urlsafe(TOKEN_BYTES)
                conn.execute("INSERT INTO participants VALUES (?, ?, ?, 'link')", (reader, token, _now()))
                made.append((reader, token))
        return made

    def participants(self) -> list[tuple[str, str | None]]:
        """(reader id, token or ``None`` for imported readers) of every participant, in reader order.

        Returns:
            (reader id, token or ``None``) pairs, in reader order.
        """
        with self._lock:
            return [(r, t) for r, t in self._conn.execute("SELECT reader, token FROM participants ORDER BY reader")]

    def reader_of(self, token: str) -> str | None:
        """The reader whose token this is, or ``None``.

        Returns:
            The reader id, or ``None`` for an unknown token.
        """
        with self._lock:
            row = self._conn.execute("SELECT reader FROM participants WHERE token = ?", (token,)).fetchone()
        return None if row is None else str(row[0])

    def answers(self, reader: str | None = None, session: int | None = None) -> list[StoredAnswer]:
        """Stored answers, in (reader, session, order) order; of one reader and/or session when given.

        Returns:
            The answers, in (reader, session, order) order.
        """
        sql = ('SELECT reader, session, "order", image_id, answer, confidence, reading_seconds FROM responses '
               "WHERE (? IS NULL OR reader = ?) AND (? IS NULL OR session = ?) ORDER BY reader, session, \"order\"")
        with self._lock:
            rows = self._conn.execute(sql, (reader, reader, session, session)).fetchall()
        return [StoredAnswer(*row) for row in rows]

    def _items(self, session: int) -> SessionItems:
        if session not in self.sessions:
            raise AnswerRefused(f"no session {session}; this study has sessions {sorted(self.sessions)}.", 404)
        return self.sessions[session]

    def record(self, answer: StoredAnswer, source: str = "server") -> bool:
        """Store one confirmed answer in its own transaction.

        Returns:
            ``True`` if stored; ``False`` if exactly this answer was already stored (a retry; nothing changes).

        Raises:
            AnswerRefused: an unknown session or image (404), an answer for a confirmed position or out of turn
                (409), a value the session does not take (422); nothing is stored.
        """
        items = self._items(answer.session)
        if answer.image_id not in items.image_ids:
            raise AnswerRefused(f"session {answer.session} has no image {answer.image_id!r}.", 404)
        check_answer(items, answer.answer, answer.confidence, answer.reading_seconds)
        with self._transaction() as conn:
            stored = conn.execute('SELECT "order", image_id, answer, confidence, reading_seconds FROM responses '
                                  "WHERE reader = ? AND session = ? ORDER BY \"order\"",
                                  (answer.reader, answer.session)).fetchall()
            done = {row[1]: row for row in stored}
            if answer.image_id in done:
                again = done[answer.image_id] == (answer.order, answer.image_id, answer.answer, answer.confidence,
                                                  answer.reading_seconds)
                if again:
                    return False
                raise AnswerRefused(f"reader {answer.reader}: image {answer.order} of session {answer.session} is "
                                    "already confirmed; there is no going back to a confirmed image.", 409)
            expected = len(stored) + 1  # <= the session's size: this image is one of it and not yet answered
            if answer.order != expected or items.image_ids[expected - 1] != answer.image_id:
                raise AnswerRefused(f"reader {answer.reader}: session {answer.session} expects the answer for image "
                                    f"{expected} ({items.image_ids[expected - 1]}); got image {answer.order} "
                                    f"({answer.image_id}).", 409)
            conn.execute("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (answer.reader, answer.session, answer.order, answer.image_id, answer.answer,
                          answer.confidence, float(answer.reading_seconds), _now(), source))
        return True

    def progress(self) -> dict[str, dict[int, int]]:
        """Answers stored per reader and session (every participant, 0 for a session not begun).

        Returns:
            ``{reader: {session: answers stored}}``.
        """
        with self._lock:
            readers = [r for (r,) in self._conn.execute("SELECT reader FROM participants ORDER BY reader")]
            counts = self._conn.execute("SELECT reader, session, COUNT(*) FROM responses GROUP BY reader, session")
            out = {r: {s: 0 for s in self.sessions} for r in readers}
            for reader, session, n in counts:
                out.setdefault(reader, {s: 0 for s in self.sessions})[int(session)] = int(n)
        return out

    def import_frame(self, table: pd.DataFrame, what: str) -> tuple[int, int]:
        """Import the rows of the offline app's CSV exports (one or many readers and sessions).

        Each (reader, session) must be the session's images in reading order from position 1 (a complete export, or
        the beginning of one); rows the database already holds identically are skipped; a reader id that the
        database does not know becomes a participant without a token.

        Returns:
            (rows stored, rows already present).

        Raises:
            DataError: a missing column, a bad reader id, or any row :meth:`record` refuses (named with ``what``, the
                file); rows of earlier (reader, session) groups stay stored, the refused group's rows are not.
        """
        missing = [c for c in RESPONSE_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"{what}: lacks column(s) {missing}; expected the reader app's export "
                            f"{list(RESPONSE_COLUMNS)}.")
        answers = [_answer_from_row(row, what) for row in table.to_dict("records")]
        stored = skipped = 0
        for reader in sorted({a.reader for a in answers}):
            self._ensure_reader(reader)
        for a in sorted(answers, key=lambda a: (a.reader, a.session, a.order)):
            try:
                if self.record(a, source="import"):
                    stored += 1
                else:
                    skipped += 1
            except AnswerRefused as exc:
                raise DataError(f"{what}: reader {a.reader}, session {a.session}, order {a.order}: {exc}") from exc
        return stored, skipped

    def _ensure_reader(self, reader: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO participants VALUES (?, NULL, ?, 'import')", (reader, _now()))


def _answer_from_row(row: Mapping[str, object], what: str) -> StoredAnswer:
    """One CSV row as a :class:`StoredAnswer` (types checked; the rules are :meth:`ReaderDatabase.record`'s)."""
    reader = str(row["reader"]).strip()
    if not READER_ID.fullmatch(reader):
        raise DataError(f"{what}: reader id {reader!r}; expected 1-40 letters, digits, '_' or '-'.")
    try:
        session, order = int(row["session"]), int(row["order"])
        seconds = float(row["reading_seconds"])
        conf = row.get("confidence")
        confidence = None if conf is None or pd.isna(conf) or str(conf).strip() == "" else int(float(conf))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: reader {reader}: a session, order, confidence or reading time is not a number "
                        f"({exc}).") from exc
    answer = str(row["answer"]).strip().lower().replace(" ", "_").replace("-", "_")
    return StoredAnswer(reader, session, order, str(row["image_id"]).strip(), answer, confidence, seconds)


def answers_frame(answers: Sequence[StoredAnswer]) -> pd.DataFrame:
    """Stored answers as the app's CSV export table (:data:`RESPONSE_COLUMNS`; confidence NaN when none).

    Returns:
        The table, columns :data:`RESPONSE_COLUMNS`.
    """
    return pd.DataFrame([a.row() for a in answers], columns=list(RESPONSE_COLUMNS)).astype(
        {"session": int, "order": int, "reading_seconds": float, "confidence": float})


def read_answers(path: str | Path) -> pd.DataFrame:
    """Every stored answer of a reader database, opened read-only (a running server may keep writing).

    Returns:
        The app's CSV export table (:func:`answers_frame`), sorted by reader, session and order.

    Raises:
        DataError: no such file, or a file that is not the server's SQLite database.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"responses_db {path}: no such file; give the run's data/{DB_FILE} that `medadv-reader serve` "
                        "writes.")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute('SELECT reader, session, "order", image_id, answer, confidence, reading_seconds '
                                'FROM responses ORDER BY reader, session, "order"').fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"responses_db {path}: {exc}; expected the SQLite database of `medadv-reader serve`.") from exc
    return answers_frame([StoredAnswer(*row) for row in rows])
