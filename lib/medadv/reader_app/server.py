"""The workshop server: a run's reader-study sessions served to a room of participants (``medadv-reader serve``).

A web application on FastAPI (Starlette) and uvicorn. The instructor starts it on a laptop in the room's network::

    medadv-reader serve results/<run> --host 0.0.0.0 --port 8000

and opens the instructor page printed at start (``/instructor#token=...``; the fragment never leaves the browser).
There they create participant links (each with its own unguessable token, ``secrets.token_urlsafe``, shown as a
list and as QR codes, :mod:`segno`) and watch the class's results come in. A participant's link opens their session
list; each session is the same reader app as the offline packages (:mod:`medadv.reader_app.page`) with
``remote.js``, which sends every confirmed answer to the server. Answers go into ``<run>/data/reader.sqlite``
(:mod:`medadv.reader_app.db`: WAL, one transaction per answer).

Rules the server enforces (docs/workshop.md):

* every API call carries a token (``Authorization: Bearer``): the instructor's for ``/api/instructor/*``, a
  participant's for ``/api/session/*``; a missing or wrong one is 403. A participant reads and writes only their own
  answers; no route serves the answer key, a label, or a file that is not one of a session's images;
* sessions open in order (1 to 5, paper 001): a session's page and API refuse (409) until the previous one is done;
* an answer for a confirmed image is refused (409, paper 001's no going back), an unknown image is 404, a malformed
  body 422, an oversized one 413; none of them changes the database;
* the offline packages' CSV exports can be imported into the same database (``medadv-reader import`` or
  ``POST /api/instructor/import``), so readers without network still count.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import secrets
import socket
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import segno
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from medadv.errors import DataError, MedadvError
from medadv.reader_app.db import AnswerRefused, ReaderDatabase, StoredAnswer
from medadv.reader_app.page import render_page
from medadv.reader_app.study import ServedStudy, live_results, load_study

MAX_ANSWER_BYTES = 2048
MAX_IMPORT_BYTES = 5 * 1024 * 1024
INSTRUCTOR_TOKEN_KEY = "instructor_token"
PAGE_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
               "connect-src 'self'; frame-ancestors 'none'")

__all__ = ["WorkshopServer", "create_app", "main"]


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
    """What the routes share: the study, its database, the instructor token and the address participants use.

    Args:
        study: the run's packages (:func:`medadv.reader_app.study.load_study`).
        db: the run's answer database.
        instructor_token: the token of the instructor page.
        public_url: the address participants' links start with (``http://192.168.1.20:8000``).
    """

    def __init__(self, study: ServedStudy, db: ReaderDatabase, instructor_token: str, public_url: str) -> None:
        self.study, self.db = study, db
        self.instructor_token = instructor_token
        self.public_url = public_url.rstrip("/")

    def instructor(self, request: Request) -> None:
        """Refuse (403) a request without the instructor's token."""
        if not secrets.compare_digest(_bearer(request).encode(), self.instructor_token.encode()):
            raise HTTPRefusal(403, "this needs the instructor token (Authorization: Bearer <token>); see the line "
                                   "the server printed at start.")

    def participant(self, token: str) -> str:
        """The reader id of a participant token; 403 for an unknown one.

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


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store",
                                               "Referrer-Policy": "no-referrer"})


def _participant_home(server: WorkshopServer, token: str, reader: str) -> str:
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
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>Reader study: {html.escape(reader)}</title>'
            f"<style>{_asset('app.css')}</style></head><body><main><h1>Reader study: participant "
            f"{html.escape(reader)}</h1><p>Read the sessions in order. Keep this link; it brings you back to where "
            f"you stopped.</p><table id=\"sessions\">{''.join(rows)}</table>{end}</main></body></html>")


def _participant_routes(server: WorkshopServer) -> APIRouter:
    router = APIRouter()

    @router.get("/p/{token}/", response_class=HTMLResponse)
    async def home(token: str) -> HTMLResponse:
        reader = server.participant(token)
        return _html(await run_in_threadpool(_participant_home, server, token, reader))

    @router.get("/p/{token}/session/{session}/", response_class=HTMLResponse)
    async def session_page(token: str, session: int) -> HTMLResponse:
        reader = server.participant(token)
        await run_in_threadpool(server.open_session, reader, session)
        remote = {"reader": reader, "token": token, "api": f"/api/session/{session}/answers"}
        return _html(render_page(server.study.payloads[session], remote=remote))

    @router.get("/p/{token}/session/{session}/images/{name}")
    async def image(token: str, session: int, name: str) -> FileResponse:
        server.participant(token)
        if session not in server.study.payloads or f"images/{name}" not in server.study.image_files(session):
            raise HTTPRefusal(404, f"no image {name!r} in session {session}.")
        return FileResponse(server.study.session_dir(session) / "images" / name, media_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})

    return router


def _session_api(server: WorkshopServer) -> APIRouter:
    router = APIRouter(prefix="/api/session")

    @router.get("/{session}/answers")
    async def own_answers(session: int, request: Request) -> JSONResponse:
        reader = server.participant(_bearer(request))
        await run_in_threadpool(server.open_session, reader, session)
        answers = await run_in_threadpool(server.db.answers, reader, session)
        size = len(server.study.payloads[session]["items"])
        return JSONResponse({"reader": reader, "session": session, "images": size,
                             "answers": [a.row() for a in answers]}, headers={"Cache-Control": "no-store"})

    @router.post("/{session}/answers")
    async def confirm(session: int, request: Request) -> JSONResponse:
        reader = server.participant(_bearer(request))
        body = _parse(AnswerIn, await _body(request, MAX_ANSWER_BYTES))
        await run_in_threadpool(server.open_session, reader, session)
        answer = StoredAnswer(reader, session, body.order, body.image_id, body.answer, body.confidence,
                              body.reading_seconds)
        stored = await run_in_threadpool(server.db.record, answer)
        return JSONResponse({"stored": stored, "order": body.order}, status_code=201 if stored else 200)

    return router


def _instructor_api(server: WorkshopServer) -> APIRouter:
    router = APIRouter(prefix="/api/instructor")

    def links() -> list[dict[str, Any]]:
        progress = server.db.progress()
        return [{"reader": r, "url": server.link(t), "qr": _qr_data_uri(server.link(t)), "answers": progress.get(r, {})}
                for r, t in server.db.participants() if t is not None]

    @router.get("/links")
    async def list_links(request: Request) -> JSONResponse:
        server.instructor(request)
        return JSONResponse({"links": await run_in_threadpool(links)})

    @router.post("/links")
    async def make_links(request: Request) -> JSONResponse:
        server.instructor(request)
        body = _parse(LinksIn, await _body(request, MAX_ANSWER_BYTES))
        made = await run_in_threadpool(server.db.create_participants, body.count, body.prefix)
        return JSONResponse({"created": [r for r, _ in made], "links": await run_in_threadpool(links)}, 201)

    @router.get("/results")
    async def results(request: Request) -> JSONResponse:
        server.instructor(request)
        answers = await run_in_threadpool(server.db.answers)
        progress = await run_in_threadpool(server.db.progress)
        return JSONResponse(live_results(server.study, answers, progress), headers={"Cache-Control": "no-store"})

    @router.post("/import")
    async def import_csv(request: Request) -> JSONResponse:
        server.instructor(request)
        body = await _body(request, MAX_IMPORT_BYTES)
        try:
            table = pd.read_csv(io.BytesIO(body), dtype={"image_id": str, "reader": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise HTTPRefusal(422, f"the uploaded file is not a CSV export of the reader app ({exc}).") from exc
        stored, skipped = await run_in_threadpool(server.db.import_frame, table, "uploaded CSV")
        return JSONResponse({"stored": stored, "already_present": skipped})

    return router


def create_app(server: WorkshopServer) -> FastAPI:
    """The web application (no docs or OpenAPI routes: nothing is served that the workshop does not need).

    Returns:
        The FastAPI application.
    """
    app = FastAPI(title="medadv reader study", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPRefusal)
    async def refused(_: Request, exc: HTTPRefusal) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(AnswerRefused)
    async def answer_refused(_: Request, exc: AnswerRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(DataError)
    async def bad_data(_: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    async def root() -> HTMLResponse:
        return _html("<!DOCTYPE html><title>Reader study</title><p>Reader study: open the personal link your "
                     "instructor gave you.</p>")

    @app.get("/instructor", response_class=HTMLResponse)
    async def instructor_page() -> HTMLResponse:
        return _html(_asset("instructor.html"))

    @app.get("/healthz")
    async def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    for router in (_participant_routes(server), _session_api(server), _instructor_api(server)):
        app.include_router(router)
    return app


def _lan_address() -> str:
    """This machine's address on its local network (no packet is sent), or 127.0.0.1 without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def open_server(run_dir: str | Path, host: str, port: int, public_url: str | None = None,
                new_token: bool = False) -> WorkshopServer:
    """Load a run's study, open its database and fix the instructor token (kept in the database across restarts).

    Returns:
        The :class:`WorkshopServer` to pass to :func:`create_app`.
    """
    study = load_study(run_dir)
    study.db_path.parent.mkdir(parents=True, exist_ok=True)
    db = ReaderDatabase(study.db_path, study.items())
    token = db.meta(INSTRUCTOR_TOKEN_KEY)
    if token is None or new_token:
        token = secrets.token_urlsafe(24)
        db.set_meta(INSTRUCTOR_TOKEN_KEY, token)
    address = _lan_address() if host in ("0.0.0.0", "::", "") else host
    return WorkshopServer(study, db, token, public_url or f"http://{address}:{port}")


def import_files(run_dir: str | Path, paths: Sequence[str | Path]) -> tuple[int, int]:
    """Import offline CSV exports (files, or folders of ``*.csv``) into a run's reader database.

    Returns:
        (rows stored, rows already present).
    """
    study = load_study(run_dir)
    study.db_path.parent.mkdir(parents=True, exist_ok=True)
    db = ReaderDatabase(study.db_path, study.items())
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.csv")) if p.is_dir() else [p])]
    if not files:
        raise DataError(f"no CSV files in {[str(p) for p in paths]}; give the reader app's exported CSVs.")
    stored = skipped = 0
    try:
        for path in files:
            try:
                table = pd.read_csv(path, dtype={"image_id": str, "reader": str})
            except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot be read as CSV ({exc}).") from exc
            new, old = db.import_frame(table, str(path))
            stored, skipped = stored + new, skipped + old
    finally:
        db.close()
    return stored, skipped


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medadv-reader", description="The reader study of a run, served to a class.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the run's session packages to participants")
    serve.add_argument("run_dir", help="run folder whose notebook 05 built data/reader_packages")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: the whole network)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--public-url", help="the address participants' links use (default: this machine's LAN address)")
    serve.add_argument("--new-instructor-token", action="store_true", help="replace the stored instructor token")
    imp = commands.add_parser("import", help="import CSV exports of the offline app into the run's database")
    imp.add_argument("run_dir")
    imp.add_argument("paths", nargs="+", help="CSV files or folders of them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``medadv-reader serve RUN_DIR [--host --port]`` or ``medadv-reader import RUN_DIR CSV...``.

    Returns:
        The exit status: 0, or 2 when the run folder or the import is refused (the reason printed).
    """
    import uvicorn

    args = _parser().parse_args(argv)
    try:
        if args.command == "import":
            stored, skipped = import_files(args.run_dir, args.paths)
            print(f"imported {stored} answers ({skipped} already present) into {Path(args.run_dir) / 'data'}")
            return 0
        server = open_server(args.run_dir, args.host, args.port, args.public_url, args.new_instructor_token)
    except MedadvError as exc:
        print(f"medadv-reader: {exc}", file=sys.stderr)
        return 2
    print(f"Answers go to {server.db.path}", flush=True)
    print(f"Instructor page: {server.public_url}/instructor#token={server.instructor_token}", flush=True)
    print(json.dumps({"instructor_token": server.instructor_token, "public_url": server.public_url}), flush=True)
    try:
        uvicorn.run(create_app(server), host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        server.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
