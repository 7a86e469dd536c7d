"""The workshop server over HTTP on the loopback interface: many participants at once, a killed server, tokens, the
answer key kept away, refused answers, imports of the offline app's CSVs, and notebook 05's reading of the database.

Each test starts its own server process (:class:`_reader_server.Served`) and stops it; every loop is bounded."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from _reader_server import Served
from medadv.errors import DataError
from medadv.layout import RunLayout
from medadv.reader_app.analysis import analyse_responses, database_responses
from medadv.reader_app.db import AnswerRefused, ReaderDatabase, StoredAnswer, read_answers
from medadv.reader_app.served_study import PAYLOAD_RE, load_study
from medadv.reader_app.server import import_files
from medadv.reader_app.simulate import write_responses
from test_reader_packages import build

COUNTS = (2, 3, 4, 2, 4)
N_PARTICIPANTS = 30


@pytest.fixture()
def run(tmp_path: Path):
    packages, _ = build(tmp_path / "run", counts=COUNTS)
    return tmp_path / "run", packages


@pytest.fixture()
def served(run) -> Iterator[Served]:
    server = Served(run[0])
    try:
        yield server
    finally:
        server.stop()


def manifest(packages, session: int) -> list[str]:
    return pd.read_csv(packages.session_dir(session) / "manifest.csv", dtype={"image_id": str})["image_id"].tolist()


def an_answer(session: int, order: int, image_id: str, rng: np.random.Generator) -> dict:
    if session in (1, 4):
        return {
            "order": order,
            "image_id": image_id,
            "answer": "seen",
            "confidence": None,
            "reading_seconds": round(float(rng.uniform(0.5, 9)), 3),
        }
    answer = str(rng.choice(["real", "not_real", "unsure"]))
    return {
        "order": order,
        "image_id": image_id,
        "answer": answer,
        "confidence": None if answer == "unsure" else int(rng.integers(1, 6)),
        "reading_seconds": round(float(rng.uniform(0.5, 9)), 3),
    }


def db_rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(RunLayout(run_dir).reader_db) as conn:
        return conn.execute(
            'SELECT reader, session, "order", image_id, answer, confidence, reading_seconds '
            'FROM responses ORDER BY reader, session, "order"'
        ).fetchall()


def participant_reads_all(url: str, token: str, packages, seed: int) -> list[tuple]:
    """One participant reading every session over HTTP, resending one answer as a retry would; what it sent."""
    rng = np.random.default_rng(seed)
    sent = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for session in range(1, 6):
            assert client.get(f"/api/session/{session}/answers").json()["answers"] == []
            for order, image_id in enumerate(manifest(packages, session), start=1):
                body = an_answer(session, order, image_id, rng)
                res = client.post(f"/api/session/{session}/answers", json=body)
                assert res.status_code == 201, res.text
                sent.append((session, order, image_id, body["answer"], body["confidence"], body["reading_seconds"]))
            again = client.post(f"/api/session/{session}/answers", json=body)  # a retry: accepted, nothing new
            assert again.status_code == 200 and again.json()["stored"] is False
    return sent


def test_thirty_participants_at_once_store_every_answer_once(served: Served, run) -> None:
    run_dir, packages = run
    links = served.links(N_PARTICIPANTS)
    assert len(links) == N_PARTICIPANTS and len({t for _, t in links}) == N_PARTICIPANTS
    assert all(len(t) >= 22 for _, t in links)  # 128-bit tokens
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=N_PARTICIPANTS) as pool:
        futures = {r: pool.submit(participant_reads_all, served.url, t, packages, k) for k, (r, t) in enumerate(links)}
        sent = {r: f.result(timeout=120) for r, f in futures.items()}
    seconds = time.monotonic() - start
    rows = db_rows(run_dir)
    expected = sorted((r, *s) for r, answers in sent.items() for s in answers)
    assert len(rows) == N_PARTICIPANTS * sum(COUNTS) == len(expected)
    assert sorted(rows) == expected  # every answer stored, once, as sent
    print(
        f"\n{N_PARTICIPANTS} participants, {len(rows)} answers (+{5 * N_PARTICIPANTS} retries) in {seconds:.2f} s: "
        f"{(len(rows) + 5 * N_PARTICIPANTS) / seconds:.0f} requests/s"
    )

    live = httpx.get(f"{served.url}/api/instructor/results", headers=served.instructor()).json()
    assert [s["finished"] for s in live["sessions"]] == [N_PARTICIPANTS] * 5
    table = read_answers(RunLayout(run_dir).reader_db)
    key = packages.answer_key
    truth = dict(zip(zip(key["session"], key["image_id"]), key["truth"], strict=True))
    table["truth"] = [truth[(s, i)] for s, i in zip(table["session"], table["image_id"], strict=True)]
    for row in live["accuracy"]:
        part = table[(table["session"] == row["session"]) & (table["truth"] == row["truth"])]
        right = "real" if row["truth"] == "real" else "not_real"
        assert row["answers"] == len(part) and row["correct"] == int((part["answer"] == right).sum())
    assert {(r["session"], r["truth"]) for r in live["accuracy"]} == {
        (2, "real"),
        (3, "real"),
        (3, "fake"),
        (5, "real"),
        (5, "fake"),
    }

    # notebook 05 reads the database as it reads CSV exports
    responses, left_out = database_responses(RunLayout(run_dir).reader_db, key)
    assert left_out == [] and responses["reader"].nunique() == N_PARTICIPANTS
    results = analyse_responses(responses, key, n_subgroups=2, simulated=False)
    assert results.reads["reader"].nunique() == N_PARTICIPANTS
    assert len(results.reads) == N_PARTICIPANTS * (COUNTS[1] + COUNTS[2] + COUNTS[4])


def test_killed_server_loses_no_confirmed_answer(run) -> None:
    run_dir, packages = run
    ids = manifest(packages, 1) + manifest(packages, 2)
    server = Served(run_dir)
    try:
        ((reader, token),) = server.links(1)
        first_token = server.token
        auth = {"Authorization": f"Bearer {token}"}
        rng = np.random.default_rng(3)
        for order, image_id in enumerate(ids[:2], start=1):
            assert (
                httpx.post(
                    f"{server.url}/api/session/1/answers", headers=auth, json=an_answer(1, order, image_id, rng)
                ).status_code
                == 201
            )
        body = an_answer(2, 1, ids[2], rng)
        assert httpx.post(f"{server.url}/api/session/2/answers", headers=auth, json=body).status_code == 201
    finally:
        server.kill()  # SIGKILL in the middle of session 2
    assert server.proc.returncode == -9
    server = Served(run_dir, port=server.port)
    try:
        assert server.token == first_token  # the instructor's page address survives the restart
        stored = httpx.get(f"{server.url}/api/session/2/answers", headers=auth).json()["answers"]
        assert stored == [dict(body, reader=reader, session=2)]
        again = httpx.post(
            f"{server.url}/api/session/2/answers",
            headers=auth,
            json=dict(body, answer="real", confidence=5, reading_seconds=1.0),
        )
        assert again.status_code == 409  # still no going back after the restart
        nxt = an_answer(2, 2, ids[3], rng)
        assert httpx.post(f"{server.url}/api/session/2/answers", headers=auth, json=nxt).status_code == 201
    finally:
        server.stop()
    assert len(db_rows(run_dir)) == 4


def test_tokens_are_required_and_checked(served: Served, run) -> None:
    ((reader, token),) = served.links(1)
    url = served.url
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {token}"},
    ):  # a participant's token is not the instructor's
        for method, path in (("GET", "links"), ("POST", "links"), ("GET", "results"), ("POST", "import")):
            res = httpx.request(method, f"{url}/api/instructor/{path}", headers=headers, json={"count": 1})
            assert res.status_code == 403, (headers, path, res.text)
            assert "instructor token" in res.json()["detail"]
    for headers in (
        {},
        {"Authorization": "Bearer " + token[:-1] + ("A" if token[-1] != "A" else "B")},
        {"Authorization": f"Bearer {served.token}"},
    ):  # nor is the instructor's a participant's
        assert httpx.get(f"{url}/api/session/1/answers", headers=headers).status_code == 403
        res = httpx.post(f"{url}/api/session/1/answers", headers=headers, json={"order": 1})
        assert res.status_code == 403 and "participant token" in res.json()["detail"]
    for path in ("/p/wrongtoken/", "/p/wrongtoken/session/1/", "/p/wrongtoken/session/1/images/0001.png"):
        assert httpx.get(url + path).status_code == 403
    assert httpx.get(f"{url}/p/{token}/session/1/images/0001.png").status_code == 200
    assert len(db_rows(served.run_dir)) == 0


def test_no_route_serves_the_answer_key_or_others_answers(served: Served, run) -> None:
    run_dir, packages = run
    (a, token_a), (b, token_b) = served.links(2)
    ids = manifest(packages, 1)
    rng = np.random.default_rng(0)
    body = an_answer(1, 1, ids[0], rng)
    assert (
        httpx.post(
            f"{served.url}/api/session/1/answers", json=body, headers={"Authorization": f"Bearer {token_a}"}
        ).status_code
        == 201
    )
    own_b = httpx.get(f"{served.url}/api/session/1/answers", headers={"Authorization": f"Bearer {token_b}"}).json()
    assert own_b["reader"] == b and own_b["answers"] == []  # b sees nothing of a's
    for path in (
        "/answer_key.csv",
        "/data/reader_packages/answer_key.csv",
        f"/p/{token_a}/answer_key.csv",
        f"/p/{token_a}/session/3/answer_key.csv",
        f"/p/{token_a}/session/1/manifest.csv",
        f"/p/{token_a}/session/1/images/%2e%2e%2f%2e%2e%2fanswer_key.csv",
        f"/p/{token_a}/session/1/images/..%2f..%2fanswer_key.csv",
        f"/p/{token_a}/session/1/index.html",
        f"/api/session/1/answers/{a}",
        f"/api/instructor/answers/{a}",
        "/docs",
        "/openapi.json",
        f"/p/{token_b}/session/1/images/9999.png",
    ):
        res = httpx.get(served.url + path, headers={"Authorization": f"Bearer {token_b}"})
        assert res.status_code in (403, 404), path
        assert "truth" not in res.text and "source_image_id" not in res.text
    page = httpx.get(f"{served.url}/p/{token_a}/session/1/")
    assert page.status_code == 200 and "medadvRemote" in page.text
    locked = httpx.get(f"{served.url}/p/{token_a}/session/3/")
    assert locked.status_code == 409 and "finish session 1 first" in locked.json()["detail"]
    key = packages.answer_key
    for session in range(1, 6):  # no page carries a label or a cohort id
        assert httpx.get(f"{served.url}/p/{token_a}/session/{session}/").status_code in (200, 409)
    text = page.text
    assert not any(str(i) in text for i in key["source_image_id"])
    payload = read_payload_text(text)
    assert set(payload) <= {
        "package_id",
        "session",
        "mode",
        "modality",
        "ask_confidence",
        "items",
        "instructions",
        "columns",
        "remote",
    }
    assert all(set(item) == {"image_id", "file"} for item in payload["items"])
    assert payload["remote"]["reader"] == a and payload["remote"]["token"] == token_a


def read_payload_text(page: str) -> dict:
    return json.loads(PAYLOAD_RE.search(page).group(1))


def test_refused_requests_change_nothing(served: Served, run) -> None:
    run_dir, packages = run
    ((reader, token),) = served.links(1)
    ids = manifest(packages, 2)
    auth = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(1)
    for order, image_id in enumerate(manifest(packages, 1), start=1):
        assert (
            httpx.post(
                f"{served.url}/api/session/1/answers", headers=auth, json=an_answer(1, order, image_id, rng)
            ).status_code
            == 201
        )
    good = {"order": 1, "image_id": ids[0], "answer": "real", "confidence": 4, "reading_seconds": 2.5}
    assert httpx.post(f"{served.url}/api/session/2/answers", headers=auth, json=good).status_code == 201
    before = db_rows(run_dir)
    post = "/api/session/2/answers"
    cases = [
        (404, {**good, "order": 2, "image_id": "i0000000000"}, "no image"),  # unknown image id
        (409, {**good, "answer": "not_real", "confidence": 2}, "already confirmed"),  # second answer
        (409, {**good, "order": 3, "image_id": ids[2]}, "expects the answer for image 2"),  # skipping ahead
        (422, {**good, "order": 2, "image_id": ids[1], "answer": "fake"}, "expected one of"),
        (422, {**good, "order": 2, "image_id": ids[1], "confidence": None}, "needs a confidence"),
        (422, {**good, "order": 2, "image_id": ids[1], "confidence": 9}, "confidence"),
        (422, {**good, "order": "2", "image_id": ids[1]}, "malformed"),  # wrong type
        (422, {**good, "order": 2, "image_id": ids[1], "truth": "real"}, "malformed"),  # extra field
        (422, {"order": 2}, "malformed"),
    ]
    for status, body, words in cases:
        res = httpx.post(served.url + post, headers=auth, json=body)
        assert res.status_code == status and words in res.json()["detail"], (body, res.text)
    for raw in (b"{not json", b"", b"[1, 2]", '{"order": 2, "image_id": "\u00e9"'.encode()):
        res = httpx.post(served.url + post, headers={**auth, "Content-Type": "application/json"}, content=raw)
        assert res.status_code == 422 and "malformed" in res.json()["detail"]
    huge = {**good, "order": 2, "image_id": ids[1], "pad": "x" * 5000}
    res = httpx.post(served.url + post, headers=auth, json=huge)
    assert res.status_code == 413 and "at most 2048 bytes" in res.json()["detail"]
    res = httpx.post(f"{served.url}/api/session/9/answers", headers=auth, json=good)
    assert res.status_code == 404 and "no session 9" in res.json()["detail"]
    assert db_rows(run_dir) == before


def test_offline_csv_exports_import_into_the_same_database(served: Served, run, tmp_path: Path) -> None:
    run_dir, packages = run
    key = packages.answer_key
    rng = np.random.default_rng(5)
    rows = [
        dict(an_answer(int(s), int(o), i, rng), reader="offline_1", session=int(s))
        for s, o, i in zip(key["session"], key["order"], key["image_id"], strict=True)
    ]
    table = pd.DataFrame(rows)[["reader", "session", "image_id", "answer", "confidence", "reading_seconds", "order"]]
    files = write_responses(table, tmp_path / "csv")
    half = table.copy()
    half.loc[half["confidence"].notna().idxmax(), "confidence"] = 3.5  # stored as 3 before
    write_responses(half, tmp_path / "half")
    with pytest.raises(DataError, match=r"reader offline_1, session \d, order \d+: column 'confidence' holds 3\.5"):
        import_files(run_dir, [tmp_path / "half"])
    assert db_rows(run_dir) == []
    (tmp_path / "utf16").mkdir()  # a spreadsheet's "Unicode text": UTF-16, tab-separated, as notebook 05 reads it
    for path in files:
        text = pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(sep="\t", index=False)
        (tmp_path / "utf16" / path.name).write_bytes(text.encode("utf-16"))
    assert import_files(run_dir, [tmp_path / "utf16"]) == (sum(COUNTS), 0)  # while the server runs
    assert import_files(run_dir, [tmp_path / "csv"]) == (0, sum(COUNTS))  # the same answers as UTF-8 CSV
    assert import_files(run_dir, files) == (0, sum(COUNTS))  # importing twice changes nothing
    upload = files[1].read_bytes()
    res = httpx.post(
        f"{served.url}/api/instructor/import",
        content=upload,
        headers={**served.instructor(), "Content-Type": "text/csv"},
    )
    assert res.status_code == 200 and res.json() == {"stored": 0, "already_present": COUNTS[1]}
    changed = pd.read_csv(files[2]).assign(answer="unsure", confidence=np.nan)
    changed.to_csv(tmp_path / "changed.csv", index=False)
    with pytest.raises(DataError, match="already confirmed"):
        import_files(run_dir, [tmp_path / "changed.csv"])
    res = httpx.post(
        f"{served.url}/api/instructor/import",
        content=b"reader,session\nx,1\n",
        headers={**served.instructor(), "Content-Type": "text/csv"},
    )
    assert res.status_code == 422 and "lacks column" in res.json()["detail"]
    assert len(db_rows(run_dir)) == sum(COUNTS)
    live = httpx.get(f"{served.url}/api/instructor/results", headers=served.instructor()).json()
    assert [s["finished"] for s in live["sessions"]] == [1] * 5


def test_database_reader_leaves_out_unfinished_readers_by_name(run, tmp_path: Path) -> None:
    run_dir, packages = run
    with pytest.raises(DataError, match="no such file"):
        database_responses(RunLayout(run_dir).reader_db, packages.answer_key)
    key = packages.answer_key
    rng = np.random.default_rng(2)
    rows = [
        dict(an_answer(int(s), int(o), i, rng), reader=r, session=int(s))
        for r in ("done1", "done2", "halfway")
        for s, o, i in zip(key["session"], key["order"], key["image_id"])
        if r != "halfway" or s < 3
    ]
    write_responses(pd.DataFrame(rows), tmp_path / "csv")
    import_files(run_dir, [tmp_path / "csv"])
    responses, left_out = database_responses(RunLayout(run_dir).reader_db, key)
    assert left_out == ["halfway"] and sorted(responses["reader"].unique()) == ["done1", "done2"]
    assert len(responses) == 2 * sum(COUNTS)


def test_concurrent_writers_in_threads_keep_the_database_consistent(run) -> None:
    """The database alone, from many threads at once (the server's thread pool): each answer lands once."""
    run_dir, packages = run
    study = load_study(run_dir)
    (run_dir / "data").mkdir(exist_ok=True)
    db = ReaderDatabase(study.db_path, study.items())
    readers = [r for r, _ in db.create_participants(8)]
    ids = manifest(packages, 1)
    outcomes: list[bool | str] = []
    lock = threading.Lock()

    def race(reader: str) -> None:  # every thread tries to confirm image 1 twice, with different answers
        for seconds in (1.0, 2.0):
            try:
                result: bool | str = db.record(StoredAnswer(reader, 1, 1, ids[0], "seen", None, seconds))
            except AnswerRefused as exc:
                result = f"refused {exc.status}"
            with lock:
                outcomes.append(result)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(race, readers + readers))
    db.close()
    assert outcomes.count(True) == 8 and len(outcomes) == 32
    assert all(o is True or o is False or o == "refused 409" for o in outcomes)
    assert len(db_rows(run_dir)) == 8


def test_notebook_05_takes_one_source_of_reads(run, tmp_path: Path) -> None:
    from medadv.errors import ConfigError
    from medadv.stages.reader_study import run_responses

    with pytest.raises(ConfigError, match="both set"):
        run_responses(None, run[1], None, tmp_path / "csv", RunLayout(run[0]).reader_db)
