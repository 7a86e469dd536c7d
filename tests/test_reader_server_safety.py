"""The workshop server under faults and attacks, over HTTP on the loopback interface: images of sessions not yet
reached, a database locked by another process, a refused import, tokens at rest (and a database of the earlier
version that kept them in plain text), security headers and the Host allow-list.

Each test starts its own server process (:class:`_reader_server.Served`) and stops it; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from _reader_server import Served
from medadv.errors import ConfigError, DataError
from medadv.layout import RunLayout
from medadv.reader_app.credentials import instructor_file_path, token_digest
from medadv.reader_app.db import BUSY_TIMEOUT_S, DatabaseBusy, ReaderDatabase
from medadv.reader_app.served_study import load_study
from medadv.reader_app.server import allowed_hosts, create_app, import_files, open_server, public_address
from medadv.reader_app.simulate import write_responses
from test_reader_server import COUNTS, an_answer, db_rows, manifest, run, served  # noqa: F401 (fixtures)

# A second process that takes SQLite's write lock on the database and holds it until its stdin closes.
HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_session(url: str, token: str, packages, session: int, rng: np.random.Generator) -> None:
    for order, image_id in enumerate(manifest(packages, session), start=1):
        res = httpx.post(
            f"{url}/api/session/{session}/answers", headers=bearer(token), json=an_answer(session, order, image_id, rng)
        )
        assert res.status_code == 201, res.text


def test_images_open_in_session_order_like_the_pages(served: Served, run) -> None:  # noqa: F811
    run_dir, packages = run
    ((_, token),) = served.links(1)
    study = load_study(run_dir)
    files = {s: sorted(study.image_files(s)) for s in range(1, 6)}
    assert {"images/0001_fake.png", "images/0001_real.png", "images/0001_diff.png"} <= set(files[4])

    def get(session: int, file: str) -> httpx.Response:
        return httpx.get(f"{served.url}/p/{token}/session/{session}/{file}")

    for file in files[1]:
        res = get(1, file)
        assert res.status_code == 200 and res.content.startswith(b"\x89PNG")
    for session in (2, 3, 4, 5):  # a fresh link: nothing of sessions 2-5, above all not the education panels
        for file in files[session]:
            res = get(session, file)
            assert res.status_code == 409 and "finish session 1 first" in res.json()["detail"], (session, file)
            assert b"PNG" not in res.content
    rng = np.random.default_rng(4)
    for session in (1, 2):
        read_session(served.url, token, packages, session, rng)
    assert all(get(3, f).status_code == 200 for f in files[3])
    assert all(get(4, f).json()["detail"] == "finish session 3 first: sessions are read in order." for f in files[4])
    read_session(served.url, token, packages, 3, rng)
    assert all(get(4, f).status_code == 200 for f in files[4])
    assert all(get(5, f).status_code == 409 for f in files[5])
    assert get(4, "images/0009_fake.png").status_code == 404 and get(9, "images/0001.png").status_code == 404


def test_a_locked_database_answers_503_and_stalls_nothing_else(served: Served, run) -> None:  # noqa: F811
    run_dir, packages = run
    (_, token_a), (_, token_b) = served.links(2)
    body = an_answer(1, 1, manifest(packages, 1)[0], np.random.default_rng(0))
    post = f"{served.url}/api/session/1/answers"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(RunLayout(run_dir).reader_db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with ThreadPoolExecutor(max_workers=1) as pool:
            start = time.monotonic()
            write = pool.submit(httpx.post, post, json=body, headers=bearer(token_a), timeout=30)
            time.sleep(0.3)  # the answer now waits for the write lock
            for path, headers in (
                ("/healthz", {}),
                (f"/p/{token_b}/", {}),
                (f"/p/{token_b}/session/1/", {}),
                (f"/p/{token_b}/session/1/images/0001.png", {}),
                ("/api/session/1/answers", bearer(token_b)),
                ("/api/instructor/results", served.instructor()),
            ):
                began = time.monotonic()
                res = httpx.get(served.url + path, headers=headers, timeout=30)
                took = time.monotonic() - began
                assert res.status_code == 200 and took < 1.5, (path, res.status_code, took)
            refused = write.result(timeout=30)
            waited = time.monotonic() - start
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "2" and refused.headers["cache-control"] == "no-store"
        assert "busy" in refused.json()["detail"] and "nothing was stored" in refused.json()["detail"]
        assert BUSY_TIMEOUT_S <= waited < 2 * BUSY_TIMEOUT_S + 2  # the lock's wait, not SQLite's old 30 s
        res = httpx.post(
            f"{served.url}/api/instructor/links", json={"count": 1}, headers=served.instructor(), timeout=30
        )
        assert res.status_code == 503 and res.headers["retry-after"] == "2"
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert db_rows(run_dir) == []
    assert httpx.post(post, json=body, headers=bearer(token_a)).status_code == 201  # the page's retry is stored
    assert len(served.links(1)) == 1


def test_a_busy_read_gives_a_page_that_reloads_itself(run, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """In WAL mode no other program can block a read, so SQLite's rare 'locked' on a read is simulated here."""
    server = open_server(run[0], "127.0.0.1", 8000)
    try:
        ((_, token),) = server.make_links(1)

        def busy(*_: object) -> None:
            raise DatabaseBusy("reader database: locked by another program")

        monkeypatch.setattr(server.db, "reader_of", busy)

        async def fetch() -> tuple[httpx.Response, httpx.Response]:
            transport = httpx.ASGITransport(app=create_app(server))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                return await client.get(f"/p/{token}/"), await client.get(
                    "/api/session/1/answers", headers=bearer(token)
                )

        page, api = asyncio.run(fetch())
    finally:
        server.db.close()
    assert page.status_code == 503 and page.headers["retry-after"] == "2"
    assert '<meta http-equiv="refresh" content="2">' in page.text and "reloads itself" in page.text
    assert api.status_code == 503 and "busy" in api.json()["detail"] and str(run[0]) not in api.text


def test_a_refused_import_leaves_no_participant_behind(served: Served, run, tmp_path: Path) -> None:  # noqa: F811
    run_dir, packages = run
    key = packages.answer_key
    rng = np.random.default_rng(6)
    good = [
        dict(an_answer(int(s), int(o), i, rng), reader="offline_1", session=int(s))
        for s, o, i in zip(key["session"], key["order"], key["image_id"], strict=True)
        if s == 1
    ]
    bad = [dict(row, reader="newcomer", answer="maybe") for row in good]  # a viewing session answered 'maybe'
    before = httpx.get(f"{served.url}/api/instructor/results", headers=served.instructor()).json()["participants"]
    upload = pd.DataFrame(bad).to_csv(index=False).encode()
    res = httpx.post(
        f"{served.url}/api/instructor/import",
        content=upload,
        headers={**served.instructor(), "Content-Type": "text/csv"},
    )
    assert res.status_code == 422 and "newcomer" in res.json()["detail"]
    with sqlite3.connect(RunLayout(run_dir).reader_db) as conn:
        assert conn.execute("SELECT reader FROM participants").fetchall() == []  # the refused reader is not kept
    assert "Nothing of this import was stored" in res.json()["detail"]
    write_responses(pd.DataFrame(good), tmp_path / "good")
    write_responses(pd.DataFrame(bad), tmp_path / "bad")
    with pytest.raises(DataError, match="newcomer.*Nothing of this import was stored"):
        import_files(run_dir, [tmp_path / "good", tmp_path / "bad"])  # one good file and one refused: neither
    with sqlite3.connect(RunLayout(run_dir).reader_db) as conn:
        assert conn.execute("SELECT reader FROM participants").fetchall() == []
    assert db_rows(run_dir) == []
    after = httpx.get(f"{served.url}/api/instructor/results", headers=served.instructor()).json()["participants"]
    assert before == after == 0
    assert import_files(run_dir, [tmp_path / "good"]) == (len(good), 0)


def test_an_imported_row_of_a_session_the_study_lacks_is_named_as_such(run, tmp_path: Path) -> None:  # noqa: F811
    """Not as the gap it leaves in its reader's reading order of the session it was taken from."""
    run_dir, packages = run
    key = packages.answer_key[packages.answer_key["session"] == 2]
    rng = np.random.default_rng(7)
    rows = [
        dict(an_answer(2, int(o), i, rng), reader="offline_2", session=2)
        for o, i in zip(key["order"], key["image_id"], strict=True)
    ]
    rows[1]["session"] = 9
    pd.DataFrame(rows).to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(
        DataError,
        match=r"reader offline_2, session 9, order 2: no session 9; this study has sessions \[1, 2, 3, 4, 5\]",
    ):
        import_files(run_dir, [tmp_path / "mixed.csv"])
    assert db_rows(run_dir) == []


def raw_bytes(run_dir: Path) -> bytes:
    db = RunLayout(run_dir).reader_db
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def test_tokens_are_stored_as_digests_and_links_beside_the_run_folder(run) -> None:  # noqa: F811
    run_dir, packages = run
    server = Served(run_dir)
    try:
        links = server.links(3)
        tokens = [t for _, t in links] + [server.token]
        urls = httpx.get(f"{server.url}/api/instructor/links", headers=server.instructor()).json()["links"]
    finally:
        server.stop()
    data = raw_bytes(run_dir)
    assert len(data) > 0 and not any(t.encode() in data for t in tokens)  # nothing in data/ opens the study
    with sqlite3.connect(RunLayout(run_dir).reader_db) as conn:
        stored = dict(conn.execute("SELECT reader, token_sha256 FROM participants").fetchall())
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert stored == {r: token_digest(t) for r, t in links} and meta == {
        "instructor_token_sha256": token_digest(server.token)
    }
    secret = instructor_file_path(run_dir)
    assert secret == run_dir.parent / "run.instructor.json" and not secret.is_relative_to(run_dir)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert json.loads(secret.read_text()) == {"instructor_token": server.token, "links": dict(links)}
    again = Served(run_dir, port=server.port)  # the instructor page and the links survive a restart
    try:
        assert again.token == server.token
        assert httpx.get(f"{again.url}/api/instructor/links", headers=again.instructor()).json()["links"] == urls
        assert httpx.get(f"{again.url}/api/session/1/answers", headers=bearer(links[0][1])).status_code == 200
    finally:
        again.stop()
    secret.unlink()  # the instructor file lost: the address cannot be shown again, and the server says so
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medadv.reader_app.server",
            "serve",
            str(run_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "lib")),
    )
    assert proc.returncode == 2 and "--new-instructor-token" in proc.stderr and "does not exist" in proc.stderr
    fresh = Served(run_dir, port=server.port, extra=["--new-instructor-token"])
    try:
        assert fresh.token != server.token
        listed = httpx.get(f"{fresh.url}/api/instructor/links", headers=fresh.instructor()).json()["links"]
        assert [(x["reader"], x["url"]) for x in listed] == [(r, None) for r, _ in links]
        assert httpx.get(f"{fresh.url}/p/{links[0][1]}/").status_code == 200  # the links handed out still work
    finally:
        fresh.stop()


OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE participants (reader TEXT PRIMARY KEY, token TEXT UNIQUE, created TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE responses (
    reader TEXT NOT NULL REFERENCES participants(reader), session INTEGER NOT NULL, "order" INTEGER NOT NULL,
    image_id TEXT NOT NULL, answer TEXT NOT NULL, confidence INTEGER, reading_seconds REAL NOT NULL,
    received TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (reader, session, "order"), UNIQUE (reader, session, image_id));
"""


def test_a_database_of_the_earlier_version_is_upgraded_on_open(run) -> None:  # noqa: F811
    run_dir, packages = run
    study = load_study(run_dir)
    (run_dir / "data").mkdir(exist_ok=True)
    path = RunLayout(run_dir).reader_db
    old_instructor, old_tokens = "I" * 32, {"P01": "a" * 22, "P02": "b" * 22}
    first = manifest(packages, 1)[0]
    with sqlite3.connect(path) as conn:  # what the earlier version wrote: plain tokens, WAL
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(OLD_SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('instructor_token', ?)", (old_instructor,))
        conn.executemany("INSERT INTO participants VALUES (?, ?, '2026-01-01', 'link')", old_tokens.items())
        conn.execute("INSERT INTO participants VALUES ('offline_1', NULL, '2026-01-01', 'import')")
        conn.execute(
            "INSERT INTO responses VALUES ('P01', 1, 1, ?, 'seen', NULL, 1.5, '2026-01-01', 'server')", (first,)
        )
    with pytest.raises(DataError, match="earlier version of the kit.*plain text.*medadv-reader serve"):
        ReaderDatabase(path, study.items())
    server = Served(run_dir)
    try:
        assert server.token == old_instructor  # the instructor page's address is kept
        res = httpx.get(f"{server.url}/api/session/1/answers", headers=bearer(old_tokens["P01"]))
        assert res.status_code == 200 and [a["image_id"] for a in res.json()["answers"]] == [first]
        listed = httpx.get(f"{server.url}/api/instructor/links", headers=server.instructor()).json()["links"]
        assert [x["url"].rsplit("/", 2)[1] for x in listed] == [old_tokens["P01"], old_tokens["P02"]]
    finally:
        server.stop()
    data = raw_bytes(run_dir)
    assert not any(t.encode() in data for t in [old_instructor, *old_tokens.values()])
    assert json.loads(instructor_file_path(run_dir).read_text()) == {
        "instructor_token": old_instructor,
        "links": old_tokens,
    }
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert len(conn.execute("SELECT * FROM responses").fetchall()) == 1


def test_every_response_says_nosniff_api_responses_no_store_and_foreign_hosts_are_refused(served: Served, run) -> None:  # noqa: F811
    ((_, token),) = served.links(1)
    url = served.url
    responses = {
        "root": httpx.get(url + "/"),
        "health": httpx.get(url + "/healthz"),
        "missing": httpx.get(url + "/nothing"),
        "page": httpx.get(f"{url}/p/{token}/session/1/"),
        "image": httpx.get(f"{url}/p/{token}/session/1/images/0001.png"),
        "locked": httpx.get(f"{url}/p/{token}/session/3/"),
        "forbidden": httpx.get(url + "/api/instructor/links"),
        "links": httpx.get(url + "/api/instructor/links", headers=served.instructor()),
        "new links": httpx.post(url + "/api/instructor/links", json={"count": 1}, headers=served.instructor()),
        "results": httpx.get(url + "/api/instructor/results", headers=served.instructor()),
        "answers": httpx.get(url + "/api/session/1/answers", headers=bearer(token)),
        "malformed": httpx.post(url + "/api/session/1/answers", headers=bearer(token), content=b"{"),
        "foreign host": httpx.get(url + "/healthz", headers={"Host": "attacker.example"}),
        "foreign host api": httpx.get(
            url + "/api/instructor/links", headers={**served.instructor(), "Host": f"attacker.example:{served.port}"}
        ),
    }
    assert responses["links"].status_code == 200 and token in responses["links"].text
    assert responses["new links"].status_code == 201 and responses["image"].status_code == 200
    for name, res in responses.items():
        assert res.headers.get("x-content-type-options") == "nosniff", name
        assert res.headers.get("referrer-policy") == "no-referrer", name
    for name in ("page", "links", "new links", "results", "answers", "malformed", "forbidden", "foreign host api"):
        assert responses[name].headers.get("cache-control") == "no-store", name
    for name in ("foreign host", "foreign host api"):
        assert responses[name].status_code == 400 and token not in responses[name].text
    for host in ("localhost", f"localhost:{served.port}", f"127.0.0.1:{served.port}", f"[::1]:{served.port}"):
        assert httpx.get(url + "/healthz", headers={"Host": host}).status_code == 200, host


def test_the_host_allow_list_and_public_address() -> None:
    assert allowed_hosts("0.0.0.0", "http://192.168.1.20:8000") == ["127.0.0.1", "192.168.1.20", "[::1]", "localhost"]
    assert allowed_hosts("10.0.0.5", "https://Workshop.Local") == [
        "10.0.0.5",
        "127.0.0.1",
        "[::1]",
        "localhost",
        "workshop.local",
    ]
    assert allowed_hosts("::", "http://[fe80::1]:8000") == ["127.0.0.1", "[::1]", "[fe80::1]", "localhost"]
    assert public_address("http://192.168.1.20:8000/", "0.0.0.0", 8000) == "http://192.168.1.20:8000"
    assert public_address(None, "127.0.0.1", 8123) == "http://127.0.0.1:8123"
    for bad in ("192.168.1.20:8000", "ftp://host", "http://host/study", "http://"):
        with pytest.raises(ConfigError, match="--public-url"):
            public_address(bad, "0.0.0.0", 8000)


def test_a_damaged_instructor_file_or_a_newer_database_is_refused(run) -> None:  # noqa: F811
    run_dir, _ = run
    secret = instructor_file_path(run_dir)
    secret.write_text("{not json")
    with pytest.raises(DataError, match="instructor file .*cannot be read.*--new-instructor-token"):
        open_server(run_dir, "127.0.0.1", 8000)
    secret.write_text(json.dumps({"instructor_token": "x" * 32, "links": {}}))
    secret.chmod(0o644)
    open_server(run_dir, "127.0.0.1", 8000).db.close()  # a file others could read is made private again
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    with sqlite3.connect(RunLayout(run_dir).reader_db) as conn:
        conn.execute("PRAGMA user_version=3")
    with pytest.raises(DataError, match="schema version 3, written by a newer version of the kit"):
        open_server(run_dir, "127.0.0.1", 8000)
