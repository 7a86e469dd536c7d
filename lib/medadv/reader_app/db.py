"""The served reader study's answers: an SQLite database in the run folder (``data/reader.sqlite``).

Written by the workshop server (:mod:`medadv.reader_app.server`) and by the import of the offline app's CSV exports;
read by the instructor's live results and by notebook 05 (``responses_db``). The standard library's ``sqlite3`` is
the driver: one file, no service to run, safe under a crash.

* **WAL, one transaction per confirmed answer.** The database runs in write-ahead-log mode with ``synchronous=FULL``:
  an answer the server has acknowledged is on disk, and a server killed mid-session loses none. Every answer is one
  ``BEGIN IMMEDIATE ... COMMIT``; an import of CSV exports is one transaction too, so a refused import leaves nothing.
* **Reads never wait for a write.** Writes go through one connection, one at a time; reads (a participant's page,
  the live results) through another, which in WAL mode is not blocked by a writer, of this process or of another.
  A write waits at most :data:`BUSY_TIMEOUT_S` for SQLite's write lock (held, say, by another program that opened the
  file) and then gives up with :class:`DatabaseBusy`, which the server answers with 503 and ``Retry-After``.
* **No going back** (paper 001, "Human reader study"). An answer is accepted only for the next position of its
  reader's session (``order`` = answers stored + 1) and only for the image the package shows there; an answer for a
  confirmed position is refused (:class:`AnswerRefused`), unless it repeats the stored answer exactly (a browser's
  retry after a lost acknowledgement), which changes nothing.
* **Participants** are rows ``(reader, token_sha256)``: the token (``secrets.token_urlsafe``, 128 bits) is the
  participant's only credential, and the database keeps only its SHA-256 digest (:mod:`medadv.reader_app.credentials`;
  the tokens themselves go to the instructor file beside the run folder). Readers who come from an imported CSV have
  no token. A database of an earlier version of the kit, which kept the tokens in plain text, is upgraded when it is
  opened with a place for its tokens (``keep_plain_tokens``) and refused otherwise.

Tables: ``participants(reader, token_sha256, created, source)``, ``responses(reader, session, "order", image_id,
answer, confidence, reading_seconds, received, source)`` and ``meta(key, value)`` (``instructor_token_sha256``);
``PRAGMA user_version`` is :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from medadv.errors import DataError, MedadvError
from medadv.reader_app.config import READER_ID
from medadv.reader_app.credentials import token_digest
from medadv.reader_app.responses import RESPONSE_COLUMNS
from medadv.reader_app.simulate import SEEN

READ_ANSWERS = ("real", "not_real", "unsure")
TOKEN_BYTES = 16
SCHEMA_VERSION = 2
#: Seconds a write waits for SQLite's write lock (and for this process's other writes) before :class:`DatabaseBusy`.
BUSY_TIMEOUT_S = 2.0
INSTRUCTOR_DIGEST_KEY = "instructor_token_sha256"
#: ``(instructor token or None, {reader: token})`` of an earlier version's database, kept before it is upgraded.
PlainTokenKeeper = Callable[[str | None, dict[str, str]], None]

__all__ = [
    "BUSY_TIMEOUT_S",
    "INSTRUCTOR_DIGEST_KEY",
    "AnswerRefused",
    "DatabaseBusy",
    "ReaderDatabase",
    "SessionItems",
    "StoredAnswer",
]

_PARTICIPANTS = """CREATE TABLE IF NOT EXISTS participants (
    reader TEXT PRIMARY KEY, token_sha256 TEXT UNIQUE, created TEXT NOT NULL, source TEXT NOT NULL);"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{_PARTICIPANTS}
CREATE TABLE IF NOT EXISTS responses (
    reader TEXT NOT NULL REFERENCES participants(reader), session INTEGER NOT NULL, "order" INTEGER NOT NULL,
    image_id TEXT NOT NULL, answer TEXT NOT NULL, confidence INTEGER, reading_seconds REAL NOT NULL,
    received TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (reader, session, "order"), UNIQUE (reader, session, image_id));
"""


class DatabaseBusy(MedadvError):
    """SQLite's write lock stayed taken for :data:`BUSY_TIMEOUT_S` (another program holds the database); nothing
    was stored, and the same request may be sent again (the server answers 503 with ``Retry-After``)."""


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
        raise AnswerRefused(
            f"{where} is a viewing session: expected answer {SEEN!r} without confidence; got "
            f"{answer!r}, {confidence!r}.",
            422,
        )
    if not (isinstance(reading_seconds, (int, float)) and 0 <= reading_seconds < 86400):
        raise AnswerRefused(f"{where}: reading_seconds {reading_seconds!r}; expected seconds in [0, 86400).", 422)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)


def _locked(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up waiting for a lock (``database is locked`` / ``database table is locked``; the primary
    code of an extended one such as ``SQLITE_BUSY_SNAPSHOT``)."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class ReaderDatabase:
    """The answers of one run's reader study (``<run>/data/reader.sqlite``), safe to share between threads.

    Args:
        path: the database file (created with its tables if absent).
        sessions: the run's session packages by number; answers are checked against them.
        keep_plain_tokens: for a database of an earlier version that holds plain tokens: called with them (the
            instructor token or None, ``{reader: token}``) inside the upgrade's transaction, before its commit (the
            server saves them in the instructor file, :class:`medadv.reader_app.credentials.InstructorFile`); the
            upgrade then keeps only their digests, and rewrites the file so that no plain token stays in it. Without
            it such a database is refused.

    Raises:
        DataError: a file that is not this database, one locked by another program, one of a newer version, or one
            with plain tokens and no ``keep_plain_tokens``.
    """

    def __init__(
        self, path: str | Path, sessions: Mapping[int, SessionItems], keep_plain_tokens: PlainTokenKeeper | None = None
    ) -> None:
        self.path = Path(path)
        self.sessions = dict(sessions)
        self._write_lock, self._read_lock = threading.Lock(), threading.Lock()
        try:
            self._conn = _connect(self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA secure_delete=ON")
            if self._version() != SCHEMA_VERSION:
                if "token" in {row[1] for row in self._conn.execute("PRAGMA table_info(participants)")}:
                    self._upgrade(keep_plain_tokens)
                self._conn.executescript(_SCHEMA)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._reads = _connect(self.path)
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                raise DataError(
                    f"reader database {self.path}: locked by another program for {BUSY_TIMEOUT_S} s "
                    f"({exc}); close the program that holds it (an open `sqlite3` shell, a second server) "
                    "and start again."
                ) from exc
            raise DataError(
                f"reader database {self.path}: {exc}; expected the SQLite file that `medadv-reader "
                "serve` writes, in a folder this user can write."
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"reader database {self.path}: {exc}; expected the SQLite file that `medadv-reader "
                "serve` writes. Move the damaged file away to start a new one."
            ) from exc

    def _version(self) -> int:
        """The file's schema version (0: new, or written by the first version, which did not set one)."""
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DataError(
                f"reader database {self.path}: schema version {version}, written by a newer version of "
                f"the kit (this one reads up to {SCHEMA_VERSION}); update the kit to serve it."
            )
        return version

    def _upgrade(self, keep: PlainTokenKeeper | None) -> None:
        """Replace an earlier version's plain tokens by their digests, after ``keep`` has saved them; then rewrite the
        file (``VACUUM`` with ``secure_delete``, the WAL emptied) so that no freed page still holds a token."""
        if keep is None:
            raise DataError(
                f"reader database {self.path}: written by an earlier version of the kit, which kept the "
                "participants' and the instructor's tokens in plain text; open it once with `medadv-reader "
                "serve RUN_DIR` or `medadv-reader import RUN_DIR ...`, which move the tokens into the "
                "instructor file beside the run folder and keep only their digests."
            )
        self._conn.execute("PRAGMA foreign_keys=OFF")  # the table is rebuilt under the responses that refer to it
        with self._transaction() as conn:
            rows = conn.execute("SELECT reader, token, created, source FROM participants").fetchall()
            old = conn.execute("SELECT value FROM meta WHERE key = 'instructor_token'").fetchone()
            conn.execute(_PARTICIPANTS.replace("participants", "participants_digest", 1))
            conn.executemany(
                "INSERT INTO participants_digest VALUES (?, ?, ?, ?)",
                [(r, None if t is None else token_digest(t), c, s) for r, t, c, s in rows],
            )
            conn.execute("DROP TABLE participants")
            conn.execute("ALTER TABLE participants_digest RENAME TO participants")
            conn.execute("DELETE FROM meta WHERE key = 'instructor_token'")
            if old is not None:
                conn.execute("INSERT INTO meta VALUES (?, ?)", (INSTRUCTOR_DIGEST_KEY, token_digest(old[0])))
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            keep(None if old is None else str(old[0]), {r: t for r, t, _, _ in rows if t is not None})
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close the connections (the WAL is checkpointed into the database file)."""
        with self._write_lock, self._read_lock:
            self._reads.close()
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), waiting at most :data:`BUSY_TIMEOUT_S` for this process's
        other writes and as long again for SQLite's write lock; :class:`DatabaseBusy` when either stays taken."""
        if not self._write_lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise DatabaseBusy(
                f"reader database {self.path}: other writes held it for {BUSY_TIMEOUT_S} s; nothing "
                "was stored, send it again."
            )
        try:
            self._execute_or_busy("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._execute_or_busy("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        finally:
            self._write_lock.release()

    def _execute_or_busy(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                raise DatabaseBusy(
                    f"reader database {self.path}: locked by another program for {BUSY_TIMEOUT_S} s "
                    f"({exc}); nothing was stored, send it again."
                ) from exc
            raise

    def _read(self, *queries: tuple[str, tuple[object, ...]]) -> list[list[tuple]]:
        """The rows of each query, read together in one read transaction of the read connection (not blocked by a
        writer in WAL mode); :class:`DatabaseBusy` if SQLite still says it is locked after the busy timeout."""
        with self._read_lock:
            try:
                self._reads.execute("BEGIN")
                try:
                    return [self._reads.execute(sql, params).fetchall() for sql, params in queries]
                finally:
                    self._reads.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if _locked(exc):
                    raise DatabaseBusy(
                        f"reader database {self.path}: locked by another program for "
                        f"{BUSY_TIMEOUT_S} s ({exc}); try again."
                    ) from exc
                raise

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A stored setting (e.g. the instructor token's digest), or ``default``.

        Returns:
            The stored value, or ``default``.
        """
        (rows,) = self._read(("SELECT value FROM meta WHERE key = ?", (key,)))
        return default if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def create_participants(
        self, count: int, prefix: str = "P", keep: Callable[[list[tuple[str, str]]], None] | None = None
    ) -> list[tuple[str, str]]:
        """Create ``count`` participants with fresh tokens, numbered after the existing ones (``P01``, ``P02``, ...);
        the database stores each token's digest only.

        Args:
            count: how many, 1-500.
            prefix: the reader ids' prefix.
            keep: called with the new (reader id, token) pairs before the transaction commits (the server saves them
                in the instructor file); if it raises, no participant is created.

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
                conn.execute("INSERT INTO participants VALUES (?, ?, ?, 'link')", (reader, token_digest(token), _now()))
                made.append((reader, token))
            if keep is not None:
                keep(made)
        return made

    def participants(self) -> list[tuple[str, str | None]]:
        """(reader id, token digest or ``None`` for imported readers) of every participant, in reader order.

        Returns:
            (reader id, SHA-256 hex digest of the token or ``None``) pairs, in reader order.
        """
        (rows,) = self._read(("SELECT reader, token_sha256 FROM participants ORDER BY reader", ()))
        return [(str(r), None if d is None else str(d)) for r, d in rows]

    def reader_of(self, token: str) -> str | None:
        """The reader whose token this is (found by the token's digest), or ``None``.

        Returns:
            The reader id, or ``None`` for an unknown token.
        """
        (rows,) = self._read(("SELECT reader FROM participants WHERE token_sha256 = ?", (token_digest(token),)))
        return None if not rows else str(rows[0][0])

    def answers(self, reader: str | None = None, session: int | None = None) -> list[StoredAnswer]:
        """Stored answers, in (reader, session, order) order; of one reader and/or session when given.

        Returns:
            The answers, in (reader, session, order) order.
        """
        sql = (
            'SELECT reader, session, "order", image_id, answer, confidence, reading_seconds FROM responses '
            'WHERE (? IS NULL OR reader = ?) AND (? IS NULL OR session = ?) ORDER BY reader, session, "order"'
        )
        (rows,) = self._read((sql, (reader, reader, session, session)))
        return [StoredAnswer(*row) for row in rows]

    def _items(self, answer: StoredAnswer) -> SessionItems:
        """The session of an answer, with the answer's image and values checked against it (before any lock)."""
        if answer.session not in self.sessions:
            raise AnswerRefused(f"no session {answer.session}; this study has sessions {sorted(self.sessions)}.", 404)
        items = self.sessions[answer.session]
        if answer.image_id not in items.image_ids:
            raise AnswerRefused(f"session {answer.session} has no image {answer.image_id!r}.", 404)
        check_answer(items, answer.answer, answer.confidence, answer.reading_seconds)
        return items

    def record(self, answer: StoredAnswer, source: str = "server") -> bool:
        """Store one confirmed answer in its own transaction.

        Returns:
            ``True`` if stored; ``False`` if exactly this answer was already stored (a retry; nothing changes).

        Raises:
            AnswerRefused: an unknown session or image (404), an answer for a confirmed position or out of turn
                (409), a value the session does not take (422); nothing is stored.
            DatabaseBusy: the write lock stayed taken (nothing is stored).
        """
        items = self._items(answer)
        with self._transaction() as conn:
            return _store(conn, items, answer, source)

    def progress(self) -> dict[str, dict[int, int]]:
        """Answers stored per reader and session (every participant, 0 for a session not begun).

        Returns:
            ``{reader: {session: answers stored}}``.
        """
        readers, counts = self._read(
            ("SELECT reader FROM participants ORDER BY reader", ()),
            ("SELECT reader, session, COUNT(*) FROM responses GROUP BY reader, session", ()),
        )
        out = {r: {s: 0 for s in self.sessions} for (r,) in readers}
        for reader, session, n in counts:
            out.setdefault(reader, {s: 0 for s in self.sessions})[int(session)] = int(n)
        return out

    def import_frames(self, parts: Sequence[tuple[pd.DataFrame, str]]) -> tuple[int, int]:
        """Import the rows of the offline app's CSV exports (one or many readers and sessions), all in one
        transaction: every row is stored, or, when one is refused, none (and no new participant either).

        Each (reader, session) must be the session's images in reading order from position 1 (a complete export, or
        the beginning of one); rows the database already holds identically are skipped; a reader id that the
        database does not know becomes a participant without a token.

        Args:
            parts: (table, what) pairs: a CSV export's rows and the file (or upload) it came from, for messages.

        Returns:
            (rows stored, rows already present).

        Raises:
            DataError: a missing column, a bad reader id, or any row :meth:`record` refuses (named with its file);
                nothing of the import is stored.
            DatabaseBusy: the write lock stayed taken (nothing is stored).
        """
        answers = [(_answer_from_row(row, what), what) for table, what in parts for row in _rows(table, what)]
        # Each row on its own first (its session, image and values), so that a row of a session the study lacks is
        # named as such rather than as the gap it leaves in its reader's reading order.
        checked = []
        for a, what in answers:
            try:
                checked.append((a, what, self._items(a)))
            except AnswerRefused as exc:
                raise _import_refused(a, what, exc) from exc
        stored = skipped = 0
        with self._transaction() as conn:
            for reader in sorted({a.reader for a, _ in answers}):
                conn.execute("INSERT OR IGNORE INTO participants VALUES (?, NULL, ?, 'import')", (reader, _now()))
            for a, what, items in sorted(checked, key=lambda row: (row[0].reader, row[0].session, row[0].order)):
                try:
                    new = _store(conn, items, a, "import")
                except AnswerRefused as exc:
                    raise _import_refused(a, what, exc) from exc
                stored, skipped = stored + int(new), skipped + int(not new)
        return stored, skipped


def _import_refused(answer: StoredAnswer, what: str, exc: AnswerRefused) -> DataError:
    """The error of an imported row the database refuses, named with its file, reader, session and order.

    Returns:
        The :class:`DataError` to raise.
    """
    return DataError(
        f"{what}: reader {answer.reader}, session {answer.session}, order {answer.order}: {exc} Nothing of this "
        "import was stored."
    )


def _store(conn: sqlite3.Connection, items: SessionItems, answer: StoredAnswer, source: str) -> bool:
    """Store one checked answer inside the caller's write transaction (:meth:`ReaderDatabase.record`'s rules).

    Returns:
        ``True`` if stored, ``False`` for an identical retry.
    """
    stored = conn.execute(
        'SELECT "order", image_id, answer, confidence, reading_seconds FROM responses '
        'WHERE reader = ? AND session = ? ORDER BY "order"',
        (answer.reader, answer.session),
    ).fetchall()
    done = {row[1]: row for row in stored}
    if answer.image_id in done:
        if done[answer.image_id] == (
            answer.order,
            answer.image_id,
            answer.answer,
            answer.confidence,
            answer.reading_seconds,
        ):
            return False
        raise AnswerRefused(
            f"reader {answer.reader}: image {answer.order} of session {answer.session} is already "
            "confirmed; there is no going back to a confirmed image.",
            409,
        )
    expected = len(stored) + 1  # <= the session's size: this image is one of it and not yet answered
    if answer.order != expected or items.image_ids[expected - 1] != answer.image_id:
        raise AnswerRefused(
            f"reader {answer.reader}: session {answer.session} expects the answer for image {expected} "
            f"({items.image_ids[expected - 1]}); got image {answer.order} ({answer.image_id}).",
            409,
        )
    conn.execute(
        "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            answer.reader,
            answer.session,
            answer.order,
            answer.image_id,
            answer.answer,
            answer.confidence,
            float(answer.reading_seconds),
            _now(),
            source,
        ),
    )
    return True


def _rows(table: pd.DataFrame, what: str) -> list[dict[str, object]]:
    """The rows of one CSV export, after checking its columns."""
    missing = [c for c in RESPONSE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{what}: lacks column(s) {missing}; expected the reader app's export {list(RESPONSE_COLUMNS)}."
        )
    return table.to_dict("records")


def _cell_number(row: Mapping[str, object], column: str, where: str, whole: bool) -> float:
    """The number in ``row[column]``, a whole one when ``whole`` (``3.5`` is no confidence, ``2.0`` is session 2).

    Returns:
        The number (as a float; the caller makes an ``int`` of a whole one).

    Raises:
        DataError: the cell is not a number, not finite, or not whole where a whole number is asked for, named with
            ``where``, the column and the value.
    """
    value = row[column]
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise DataError(f"{where}: column {column!r} holds {value!r}; expected {kind}.")
    return number


def _answer_from_row(row: Mapping[str, object], what: str) -> StoredAnswer:
    """One CSV row as a :class:`StoredAnswer` (types checked; the rules are :meth:`ReaderDatabase.record`'s)."""
    reader = str(row["reader"]).strip()
    if not READER_ID.fullmatch(reader):
        raise DataError(f"{what}: reader id {reader!r}; expected 1-40 letters, digits, '_' or '-'.")
    where = f"{what}: reader {reader}"
    session, order = (int(_cell_number(row, column, where, whole=True)) for column in ("session", "order"))
    where = f"{where}, session {session}, order {order}"
    seconds = _cell_number(row, "reading_seconds", where, whole=False)
    conf = row.get("confidence")
    empty = conf is None or pd.isna(conf) or str(conf).strip() == ""
    confidence = None if empty else int(_cell_number(row, "confidence", where, whole=True))
    answer = str(row["answer"]).strip().lower().replace(" ", "_").replace("-", "_")
    return StoredAnswer(reader, session, order, str(row["image_id"]).strip(), answer, confidence, seconds)


def answers_frame(answers: Sequence[StoredAnswer]) -> pd.DataFrame:
    """Stored answers as the app's CSV export table (:data:`RESPONSE_COLUMNS`; confidence NaN when none).

    Returns:
        The table, columns :data:`RESPONSE_COLUMNS`.
    """
    return pd.DataFrame([a.row() for a in answers], columns=list(RESPONSE_COLUMNS)).astype(
        {"session": int, "order": int, "reading_seconds": float, "confidence": float}
    )


def read_answers(path: str | Path) -> pd.DataFrame:
    """Every stored answer of a reader database, opened read-only (a running server may keep writing).

    Returns:
        The app's CSV export table (:func:`answers_frame`), sorted by reader, session and order.

    Raises:
        DataError: no such file, or a file that is not the server's SQLite database.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"responses_db {path}: no such file; give the answer database that `medadv-reader serve` writes in the "
            "run folder (data/reader.sqlite)."
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                'SELECT reader, session, "order", image_id, answer, confidence, reading_seconds '
                'FROM responses ORDER BY reader, session, "order"'
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"responses_db {path}: {exc}; expected the SQLite database of `medadv-reader serve`.") from exc
    return answers_frame([StoredAnswer(*row) for row in rows])
