"""The served study's credentials: tokens kept only as digests in the database, and the instructor's own file.

A participant's link and the instructor page are opened by unguessable tokens (``secrets.token_urlsafe``: 128 bits
for a participant, 192 for the instructor). The answer database (``<run>/data/reader.sqlite``,
:mod:`medadv.reader_app.db`) goes with the run folder's ``data/`` to whoever analyses the study, so it holds only each
token's SHA-256 digest: a digest opens nothing, and a 128-bit random token cannot be found from its digest by trying.
The server compares the digest of a presented instructor token with the stored one in constant time
(``secrets.compare_digest``) and finds a participant by the digest of their token.

What the instructor must be able to read again (the instructor page's address, the participants' links and QR codes
to print) is kept in the **instructor file** beside the run folder, ``<parent>/<run>.instructor.json`` (for
``results/workshop``: ``results/workshop.instructor.json``), outside ``data/`` and outside the run folder itself. Only
the server writes it, always with mode 0600 (readable and writable by its owner alone on Linux and macOS; on
Windows the folder's permissions apply), replacing it whole so that a crash leaves the old or the new file, never a
torn one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from medadv.errors import DataError

INSTRUCTOR_FILE_SUFFIX = ".instructor.json"
FILE_MODE = 0o600

__all__ = ["INSTRUCTOR_FILE_SUFFIX", "InstructorFile", "instructor_file_path", "token_digest", "token_matches"]

LOG = logging.getLogger(__name__)


def token_digest(token: str) -> str:
    """The digest the database stores for a token.

    Returns:
        The SHA-256 of the token's UTF-8 bytes, as 64 hexadecimal digits.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, digest: str) -> bool:
    """Whether ``token`` is the token of the stored ``digest``, compared in constant time.

    Returns:
        True when the digest of ``token`` equals ``digest``.
    """
    return secrets.compare_digest(token_digest(token).encode(), digest.encode())


def instructor_file_path(run_dir: str | Path) -> Path:
    """Where the instructor file of a run folder lives: beside it, ``<parent>/<run name>.instructor.json``.

    Returns:
        The file's path (it may not exist yet).
    """
    run = Path(run_dir).resolve()
    return run.parent / f"{run.name}{INSTRUCTOR_FILE_SUFFIX}"


@dataclasses.dataclass
class InstructorFile:
    """The tokens the instructor reads again, in their file beside the run folder (module docstring).

    Attributes:
        path: the file.
        instructor_token: the instructor page's token, or None before the first start.
        links: each participant's token by reader id.
    """

    path: Path
    instructor_token: str | None = None
    links: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> InstructorFile:
        """Read the file, or start an empty one when there is none (nothing is written until :meth:`save`).

        Returns:
            The file's content.

        Raises:
            DataError: a file that is not the JSON the server writes.
        """
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            token, links = raw["instructor_token"], raw["links"]
            if (
                not (token is None or isinstance(token, str))
                or not isinstance(links, dict)
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in links.items())
            ):
                raise TypeError("unexpected types")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(
                f"instructor file {path}: cannot be read ({exc}); expected the JSON file that "
                "`medadv-reader serve` writes (instructor_token, links). Restore it, or move it away and "
                "start the server with --new-instructor-token."
            ) from exc
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            LOG.warning(
                f"instructor file {path}: readable by others (mode {stat.S_IMODE(path.stat().st_mode):o}); "
                f"set to {FILE_MODE:o}."
            )
            path.chmod(FILE_MODE)
        return cls(path, token, dict(links))

    def save(self) -> None:
        """Write the file whole, mode 0600, through a temporary file and an atomic rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.chmod(tmp, FILE_MODE)  # O_CREAT's mode does not apply to a file left by an earlier crash
            json.dump(
                {"instructor_token": self.instructor_token, "links": dict(sorted(self.links.items()))}, out, indent=1
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def add_links(self, made: Sequence[tuple[str, str]]) -> None:
        """Keep new participants' tokens ((reader, token) pairs) and save the file."""
        self.links.update(dict(made))
        self.save()

    def set_instructor(self, token: str) -> None:
        """Keep a new instructor token and save the file."""
        self.instructor_token = token
        self.save()

    def adopt(self, instructor_token: str | None, links: Mapping[str, str]) -> None:
        """Take the plain tokens of a database written by an earlier version of the kit (its upgrade,
        :class:`medadv.reader_app.db.ReaderDatabase`) and save the file."""
        if instructor_token is not None:
            self.instructor_token = instructor_token
        self.links.update(links)
        self.save()
