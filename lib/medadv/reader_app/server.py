"""The workshop server: a run's reader-study sessions served to a room of participants (``medadv-reader serve``).

A web application on FastAPI (Starlette) and uvicorn. The instructor starts it on a laptop in the room's network::

    medadv-reader serve results/<run> --host 0.0.0.0 --port 8000

and opens the instructor page printed at start (``/instructor#token=...``; the fragment never leaves the browser).
There they create participant links (each with its own unguessable token, ``secrets.token_urlsafe``, shown as a
list and as QR codes, :mod:`segno`) and watch the class's results come in. A participant's link opens their session
list; each session is the same reader app as the offline packages (:mod:`medadv.reader_app.page`) with
``remote.js``, which sends every confirmed answer to the server. Answers go into ``<run>/data/reader.sqlite``
(:mod:`medadv.reader_app.db`: WAL, one transaction per answer); the database keeps only the tokens' digests, the
tokens themselves are in the instructor file beside the run folder (:mod:`medadv.reader_app.credentials`).

Rules the server enforces (docs/workshop.md):

* every API call carries a token (``Authorization: Bearer``): the instructor's for ``/api/instructor/*``, a
  participant's for ``/api/session/*``; a missing or wrong one is 403. A participant reads and writes only their own
  answers; no route serves the answer key, a label, or a file that is not one of a session's images;
* sessions open in order (1 to 5, paper 001): a session's page, its images and its API refuse (409) until the
  previous one is done, so Session 4's education panels (real, fake, difference) stay closed before Session 3;
* an answer for a confirmed image is refused (409, paper 001's no going back), an unknown image is 404, a malformed
  body 422, an oversized one 413; none of them changes the database;
* the offline packages' CSV exports can be imported into the same database (``medadv-reader import`` or
  ``POST /api/instructor/import``), each import in one transaction, so readers without network still count;
* the database is used from the thread pool, never on the event loop: a write that finds the database locked by
  another program for :data:`~medadv.reader_app.db.BUSY_TIMEOUT_S` gets 503 with ``Retry-After`` (the participant's
  page sends it again by itself), and meanwhile ``/healthz`` and every other participant's page answer at once;
* every response says ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; every API response
  and every page ``Cache-Control: no-store`` (they carry tokens); requests whose ``Host`` is not the ``--public-url``'s
  host, the ``--host`` address or a loopback name are refused (400), against DNS rebinding.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
import secrets
import socket
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import segno
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medadv.console import console_logger
from medadv.errors import ConfigError, DataError, MedadvError
from medadv.layout import RunLayout
from medadv.reader_app.credentials import InstructorFile, instructor_file_path, token_digest, token_matches
from medadv.reader_app.db import INSTRUCTOR_DIGEST_KEY, AnswerRefused, DatabaseBusy, ReaderDatabase, StoredAnswer
from medadv.reader_app.page import render_page
from medadv.reader_app.responses import read_response_file, response_table
from medadv.reader_app.served_study import ServedStudy, live_results, load_study

MAX_ANSWER_BYTES = 2048
MAX_IMPORT_BYTES = 5 * 1024 * 1024
#: Seconds a client is asked to wait (``Retry-After``) after a 503 for a busy database.
RETRY_AFTER_S = 2
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
PAGE_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
BUSY_PAGE = (
    f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" '
    f'content="{RETRY_AFTER_S}"><title>Reader study: one moment</title></head><body><p>The reader study\'s '
    f"server is busy for a moment; this page reloads itself in {RETRY_AFTER_S} seconds.</p></body></html>"
)

__all__ = ["WorkshopServer", "create_app", "main"]

LOG = logging.getLogger(__name__)


class HTTPRefusal(Exception):
    """A request refused with a status and a message for the person who sent it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class AnswerIn(BaseModel):
    """The body of ``POST /api/session/{n}/answers``: one confirmed answer, as the app records it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    order: int = Field(ge=1, le=100000)
    image_id: str = Field(min_length=1, max_length=64)
    answer: str = Field(min_length=1, max_length=16)
    confidence: int | None = None
    reading_seconds: float = Field(ge=0, lt=86400)


class LinksIn(BaseModel):
    """The body of ``POST /api/instructor/links``: how many participant links to make, and their reader-id prefix."""

    model_config = ConfigDict(extra="forbid", strict=True)
    count: int = Field(ge=1, le=500)
    prefix: str = Field(default="P", pattern=r"^[A-Za-z0-9_-]{1,30}$")


class WorkshopServer:
    """What the routes share: the study, its database, the instructor file and the addresses the server answers to.

    Args:
        study: the run's packages (:func:`medadv.reader_app.served_study.load_study`).
        db: the run's answer database.
        credentials: the instructor file (its instructor token is the one whose digest ``db`` holds).
        public_url: the address participants' links start with (``http://192.168.1.20:8000``).
        bind_host: the address the server listens on (``--host``).
    """

    def __init__(
        self, study: ServedStudy, db: ReaderDatabase, credentials: InstructorFile, public_url: str, bind_host: str
    ) -> None:
        if credentials.instructor_token is None:
            raise DataError(
                f"instructor file {credentials.path}: no instructor token; start the server with "
                "open_server, which makes one."
            )
        self.study, self.db, self.credentials = study, db, credentials
        self.instructor_token = credentials.instructor_token
        self._instructor_digest = token_digest(self.instructor_token)
        self.public_url = public_url.rstrip("/")
        self.allowed_hosts = allowed_hosts(bind_host, self.public_url)

    def instructor(self, request: Request) -> None:
        """Refuse (403) a request without the instructor's token (its digest compared in constant time)."""
        if not token_matches(_bearer(request), self._instructor_digest):
            raise HTTPRefusal(
                403,
                "this needs the instructor token (Authorization: Bearer <token>); see the line "
                "the server printed at start.",
            )

    def participant(self, token: str) -> str:
        """The reader id of a participant token (a database read: call it from the thread pool); 403 for an
        unknown one.

        Returns:
            The reader id.
        """
        reader = self.db.reader_of(token) if token else None
        if reader is None:
            raise HTTPRefusal(403, "unknown participant token; use the link the instructor gave you.")
        return reader

    def open_session(self, reader: str, session: int) -> None:
        """404 for a session the study lacks; 409 while an earlier session of the reader is unfinished."""
        if session not in self.study.payloads:
            raise HTTPRefusal(404, f"no session {session}; this study has sessions {sorted(self.study.payloads)}.")
        done = self.db.progress().get(reader, {})
        for earlier in sorted(s for s in self.study.payloads if s < session):
            if done.get(earlier, 0) < len(self.study.payloads[earlier]["items"]):
                raise HTTPRefusal(409, f"finish session {earlier} first: sessions are read in order.")

    def link(self, token: str) -> str:
        """A participant's link.

        Returns:
            The link, under :attr:`public_url`.
        """
        return f"{self.public_url}/p/{token}/"

    def make_links(self, count: int, prefix: str = "P") -> list[tuple[str, str]]:
        """New participants; their tokens go to the instructor file before the database commits their digests.

        Returns:
            (reader id, token) of each new participant.
        """
        return self.db.create_participants(count, prefix, keep=self.credentials.add_links)

    def links(self) -> list[dict[str, Any]]:
        """Every participant who came by a link: reader id, link and QR code (``None`` for a participant whose token
        the instructor file does not hold), and answers per session.

        Returns:
            One dict per participant, in reader order.
        """
        progress = self.db.progress()
        out = []
        for reader, digest in self.db.participants():
            if digest is None:
                continue  # imported from a CSV export: no link
            token = self.credentials.links.get(reader)
            url = self.link(token) if token is not None and token_matches(token, digest) else None
            out.append(
                {
                    "reader": reader,
                    "url": url,
                    "qr": None if url is None else _qr_data_uri(url),
                    "answers": progress.get(reader, {}),
                }
            )
        return out


def allowed_hosts(bind_host: str, public_url: str) -> list[str]:
    """The ``Host`` names the server answers to: the public address's host, the bound address unless it is a wildcard,
    and the loopback names (a page on another name, such as an attacker's domain resolved to this laptop, is refused).

    Returns:
        The host names (IPv6 addresses in brackets, as a ``Host`` header writes them), sorted.
    """
    names = {urlsplit(public_url).hostname or "", *LOOPBACK_HOSTS}
    if bind_host not in WILDCARD_HOSTS:
        names.add(bind_host)
    return sorted(f"[{n}]" if ":" in n and not n.startswith("[") else n.lower() for n in names if n)


class SecurityHeaders:
    """ASGI middleware: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` on every response,
    ``Cache-Control: no-store`` on every API response (each carries a token or what a token opens)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if api:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (announced or actual)."""
    announced = request.headers.get("content-length")
    if announced is not None and (not announced.isdigit() or int(announced) > limit):
        raise HTTPRefusal(413, f"request body of {announced} bytes; at most {limit} bytes are accepted.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPRefusal(413, f"request body over {limit} bytes; at most {limit} bytes are accepted.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        fields = ", ".join(model.model_fields)
        raise HTTPRefusal(422, f"malformed request body ({problems}); expected a JSON object with {fields}.") from exc


def _qr_data_uri(url: str) -> str:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=4, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _asset(name: str) -> str:
    return resources.files("medadv.reader_app").joinpath(name).read_text(encoding="utf-8")


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(
        text, status, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store", **(headers or {})}
    )


def _participant_home(server: WorkshopServer, reader: str) -> str:
    """The participant's page: their sessions in order, each done / open / locked, with a link to the open one."""
    done = server.db.progress().get(reader, {})
    rows, open_found = [], False
    for session, payload in sorted(server.study.payloads.items()):
        n, k = len(payload["items"]), done.get(session, 0)
        if k >= n:
            state = f"done ({n} of {n})"
        elif not open_found:
            open_found = True
            state = f'<a href="session/{session}/">{"continue" if k else "start"}</a> ({k} of {n})'
        else:
            state = "opens after the previous session"
        rows.append(f"<tr><td>Session {session}</td><td>{state}</td></tr>")
    end = "" if open_found else "<p><strong>You have finished every session. Thank you!</strong></p>"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>Reader study: {html.escape(reader)}</title>'
        f"<style>{_asset('app.css')}</style></head><body><main><h1>Reader study: participant "
        f"{html.escape(reader)}</h1><p>Read the sessions in order. Keep this link; it brings you back to where "
        f'you stopped.</p><table id="sessions">{"".join(rows)}</table>{end}</main></body></html>'
    )


def _participant_routes(server: WorkshopServer) -> APIRouter:
    """The participant's pages and images: plain ``def`` routes, run in the thread pool (they read the database)."""
    router = APIRouter()

    @router.get("/p/{token}/", response_class=HTMLResponse)
    def home(token: str) -> HTMLResponse:
        return _html(_participant_home(server, server.participant(token)))

    @router.get("/p/{token}/session/{session}/", response_class=HTMLResponse)
    def session_page(token: str, session: int) -> HTMLResponse:
        reader = server.participant(token)
        server.open_session(reader, session)
        remote = {"reader": reader, "token": token, "api": f"/api/session/{session}/answers"}
        return _html(render_page(server.study.payloads[session], remote=remote))

    @router.get("/p/{token}/session/{session}/images/{name}")
    def image(token: str, session: int, name: str) -> FileResponse:
        server.open_session(server.participant(token), session)
        if f"images/{name}" not in server.study.image_files(session):
            raise HTTPRefusal(404, f"no image {name!r} in session {session}.")
        return FileResponse(
            server.study.session_dir(session) / "images" / name,
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    return router


def _confirm(server: WorkshopServer, reader: str, session: int, body: AnswerIn) -> JSONResponse:
    server.open_session(reader, session)
    answer = StoredAnswer(
        reader, session, body.order, body.image_id, body.answer, body.confidence, body.reading_seconds
    )
    stored = server.db.record(answer)
    return JSONResponse({"stored": stored, "order": body.order}, status_code=201 if stored else 200)


def _session_api(server: WorkshopServer) -> APIRouter:
    router = APIRouter(prefix="/api/session")

    @router.get("/{session}/answers")
    def own_answers(session: int, request: Request) -> JSONResponse:
        reader = server.participant(_bearer(request))
        server.open_session(reader, session)
        answers = server.db.answers(reader, session)
        size = len(server.study.payloads[session]["items"])
        return JSONResponse(
            {"reader": reader, "session": session, "images": size, "answers": [a.row() for a in answers]}
        )

    @router.post("/{session}/answers")
    async def confirm(session: int, request: Request) -> JSONResponse:
        reader = await run_in_threadpool(server.participant, _bearer(request))
        body = _parse(AnswerIn, await _body(request, MAX_ANSWER_BYTES))
        return await run_in_threadpool(_confirm, server, reader, session, body)

    return router


def _import_upload(server: WorkshopServer, body: bytes) -> JSONResponse:
    try:
        table = response_table(body, "the uploaded file")  # as notebook 05 and `medadv reader import` read a file
    except DataError as exc:
        raise HTTPRefusal(422, f"{exc} Upload a CSV export of the reader app.") from exc
    stored, skipped = server.db.import_frames([(table, "uploaded CSV")])
    return JSONResponse({"stored": stored, "already_present": skipped})


def _instructor_api(server: WorkshopServer) -> APIRouter:
    router = APIRouter(prefix="/api/instructor")

    @router.get("/links")
    def list_links(request: Request) -> JSONResponse:
        server.instructor(request)
        return JSONResponse({"links": server.links()})

    @router.post("/links")
    async def make_links(request: Request) -> JSONResponse:
        server.instructor(request)
        body = _parse(LinksIn, await _body(request, MAX_ANSWER_BYTES))
        made = await run_in_threadpool(server.make_links, body.count, body.prefix)
        return JSONResponse({"created": [r for r, _ in made], "links": await run_in_threadpool(server.links)}, 201)

    @router.get("/results")
    def results(request: Request) -> JSONResponse:
        server.instructor(request)
        return JSONResponse(live_results(server.study, server.db.answers(), server.db.progress()))

    @router.post("/import")
    async def import_csv(request: Request) -> JSONResponse:
        server.instructor(request)
        return await run_in_threadpool(_import_upload, server, await _body(request, MAX_IMPORT_BYTES))

    return router


def _refusal_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPRefusal)
    async def refused(_: Request, exc: HTTPRefusal) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(AnswerRefused)
    async def answer_refused(_: Request, exc: AnswerRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(DataError)
    async def bad_data(_: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(DatabaseBusy)
    async def busy(request: Request, exc: DatabaseBusy) -> Response:
        LOG.warning(f"a {request.method} request answered 503: {exc}")  # its path may hold a token: not logged
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        path = request.url.path
        if path.startswith("/p/") and path.endswith("/"):
            return _html(BUSY_PAGE, 503, retry)
        return JSONResponse(
            {
                "detail": f"the study's database is busy (another program holds it); nothing was stored. "
                f"Send the request again in {RETRY_AFTER_S} s."
            },
            503,
            headers=retry,
        )


def create_app(server: WorkshopServer) -> FastAPI:
    """The web application (no docs or OpenAPI routes: nothing is served that the workshop does not need), behind
    the ``Host`` allow-list (:func:`allowed_hosts`) and the security headers (:class:`SecurityHeaders`).

    Returns:
        The FastAPI application.
    """
    app = FastAPI(title="medadv reader study", docs_url=None, redoc_url=None, openapi_url=None)
    _refusal_handlers(app)

    @app.get("/", response_class=HTMLResponse)
    async def root() -> HTMLResponse:
        return _html(
            "<!DOCTYPE html><title>Reader study</title><p>Reader study: open the personal link your "
            "instructor gave you.</p>"
        )

    @app.get("/instructor", response_class=HTMLResponse)
    async def instructor_page() -> HTMLResponse:
        return _html(_asset("instructor.html"))

    @app.get("/healthz")
    async def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    for router in (_participant_routes(server), _session_api(server), _instructor_api(server)):
        app.include_router(router)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=server.allowed_hosts, www_redirect=False)
    app.add_middleware(SecurityHeaders)  # outermost: the allow-list's own 400 carries the headers too
    return app


def _lan_address() -> str:
    """This machine's address on its local network (no packet is sent), or 127.0.0.1 without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def public_address(public_url: str | None, host: str, port: int) -> str:
    """The address participants' links start with: ``--public-url`` (checked), else this machine's address.

    Returns:
        ``http(s)://host[:port]`` without a trailing slash.

    Raises:
        ConfigError: a ``--public-url`` that is not ``http(s)://HOST[:PORT]``.
    """
    if public_url is None:
        address = _lan_address() if host in WILDCARD_HOSTS else host
        return f"http://{f'[{address}]' if ':' in address else address}:{port}"
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ConfigError(
            f"--public-url {public_url!r}: expected the address participants open, like "
            "http://192.168.1.20:8000 (http or https, a host, an optional port, no path)."
        )
    return public_url.rstrip("/")


def _settle_instructor_token(db: ReaderDatabase, credentials: InstructorFile, new_token: bool) -> None:
    """Make sure the instructor file holds the instructor token whose digest the database stores: a new one on the
    first start or with ``new_token``, the file's own when the database has none (a database started afresh)."""
    stored = db.meta(INSTRUCTOR_DIGEST_KEY)
    token = credentials.instructor_token
    if new_token or (stored is None and token is None):
        credentials.set_instructor(secrets.token_urlsafe(24))
    elif stored is not None and (token is None or not token_matches(token, stored)):
        problem = "does not exist" if not credentials.path.exists() else "holds another instructor token"
        raise DataError(
            f"{db.path} holds the digest of an instructor token, but the instructor file "
            f"{credentials.path} {problem}, so the instructor page's address cannot be shown again. Put "
            "that file back beside the run folder, or start with --new-instructor-token for a new "
            "instructor address (participants' links keep working; those not in the file cannot be "
            "listed again)."
        )
    digest = token_digest(str(credentials.instructor_token))
    if stored != digest:
        db.set_meta(INSTRUCTOR_DIGEST_KEY, digest)


def open_server(
    run_dir: str | Path, host: str, port: int, public_url: str | None = None, new_token: bool = False
) -> WorkshopServer:
    """Load a run's study, open its database (upgrading one of an earlier version) and its instructor file, and fix
    the instructor token (kept in the instructor file across restarts, its digest in the database).

    Returns:
        The :class:`WorkshopServer` to pass to :func:`create_app`.
    """
    study = load_study(run_dir)
    public = public_address(public_url, host, port)
    study.db_path.parent.mkdir(parents=True, exist_ok=True)
    credentials = InstructorFile.load(instructor_file_path(run_dir))
    db = ReaderDatabase(study.db_path, study.items(), keep_plain_tokens=credentials.adopt)
    try:
        _settle_instructor_token(db, credentials, new_token)
    except BaseException:
        db.close()
        raise
    return WorkshopServer(study, db, credentials, public, host)


def import_files(run_dir: str | Path, paths: Sequence[str | Path]) -> tuple[int, int]:
    """Import offline CSV exports (files, or folders of ``*.csv``) into a run's reader database, all in one
    transaction: when one row is refused, nothing is imported.

    Returns:
        (rows stored, rows already present).
    """
    study = load_study(run_dir)
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.csv")) if p.is_dir() else [p])]
    if not files:
        raise DataError(f"no CSV files in {[str(p) for p in paths]}; give the reader app's exported CSVs.")
    parts = [(read_response_file(path), str(path)) for path in files]  # notebook 05's reading: UTF-8 or UTF-16
    study.db_path.parent.mkdir(parents=True, exist_ok=True)
    credentials = InstructorFile.load(instructor_file_path(run_dir))
    db = ReaderDatabase(study.db_path, study.items(), keep_plain_tokens=credentials.adopt)
    try:
        return db.import_frames(parts)
    finally:
        db.close()


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The reader study of a run, served to a class ('medadv "
        "reader ...'; 'medadv-reader ...' is the same command).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the run's session packages to participants")
    serve.add_argument("run_dir", help="run folder whose notebook 05 built data/reader_packages")
    serve.add_argument(
        "--host",
        default="0.0.0.0",
        help="address to listen on (default 0.0.0.0: every network of this laptop, for the room)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--public-url",
        help="the address participants' links use (default: this machine's LAN "
        "address); requests naming another host than it, --host or loopback "
        "are refused",
    )
    serve.add_argument("--new-instructor-token", action="store_true", help="replace the stored instructor token")
    imp = commands.add_parser("import", help="import CSV exports of the offline app into the run's database")
    imp.add_argument(
        "run_dir",
        help="run folder whose notebook 05 built data/reader_packages; the answers go to its "
        "data/reader.sqlite, which notebook 05 reads with responses_db",
    )
    imp.add_argument("paths", nargs="+", help="CSV files or folders of them")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "medadv-reader") -> int:
    """``medadv reader serve RUN_DIR [--host --port]`` or ``medadv reader import RUN_DIR CSV...`` (``prog``, the name
    the usage shows: ``medadv reader`` from :mod:`medadv.cli`, ``medadv-reader`` as its own console script).

    Returns:
        The exit status: 0, or 2 when the run folder or the import is refused (the reason printed).
    """
    import uvicorn

    args = _parser(prog).parse_args(argv)
    console = console_logger()  # INFO lines on standard output, errors on standard error, each flushed
    try:
        if args.command == "import":
            stored, skipped = import_files(args.run_dir, args.paths)
            console.info(
                f"imported {stored} answers ({skipped} already present) into {RunLayout(args.run_dir).reader_db}"
            )
            return 0
        server = open_server(args.run_dir, args.host, args.port, args.public_url, args.new_instructor_token)
    except MedadvError as exc:
        console.error(f"{prog}: {exc}")
        return 2
    console.info(f"Answers go to {server.db.path}")
    console.info(f"Tokens and links (yours only, not for the analysis): {server.credentials.path}")
    console.info(f"Instructor page: {server.public_url}/instructor#token={server.instructor_token}")
    console.info(json.dumps({"instructor_token": server.instructor_token, "public_url": server.public_url}))
    try:
        uvicorn.run(create_app(server), host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        server.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
