"""One workshop participant end to end in real headless Chromium (Debian's, driven by playwright, as
test_reader_app_browser.py): their link, a viewing session, a reading session with a reload and a lost network, every
answer in the server's database; and an answer sent again by the page after the database was busy (503)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _reader_server import Served
from medadv.layout import RunLayout
from test_reader_app_browser import answer, browser, wait_shown  # noqa: F401 (browser is a fixture)
from test_reader_packages import build
from test_reader_server_safety import HOLD_WRITE_LOCK

pytestmark = pytest.mark.browser


def status(page, text: str) -> None:
    """Wait (at most 30 s) until the server-status line of the page starts with ``text``."""
    page.locator("#remote-status", has_text=text).wait_for(timeout=30000)
    assert page.inner_text("#remote-status").startswith(text)


def stored(run_dir: Path) -> pd.DataFrame:
    with sqlite3.connect(RunLayout(run_dir).reader_db) as conn:
        return pd.read_sql_query('SELECT * FROM responses ORDER BY session, "order"', conn)


def test_participant_reads_two_sessions_through_a_reload_and_a_lost_network(browser, tmp_path: Path) -> None:  # noqa: F811
    run_dir = tmp_path / "run"
    packages, _ = build(run_dir, counts=(2, 4, 4, 2, 4))
    server = Served(run_dir)
    errors: list[str] = []
    try:
        ((reader, token),) = server.links(1)
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/p/{token}/")
        assert "participant P01" in page.inner_text("h1")
        page.click("text=start")
        page.wait_for_selector("#screen-start:not([hidden])")
        assert page.input_value("#reader-id") == reader and page.get_attribute("#reader-id", "readonly") is not None
        page.click("#start-button")
        for position in (1, 2):  # session 1: look, then Next
            wait_shown(page, position)
            page.keyboard.press("Enter")
        page.wait_for_selector("#screen-done:not([hidden])")
        status(page, "Stored on the server: 2 of 2")

        page.goto(f"{server.url}/p/{token}/")
        assert "done (2 of 2)" in page.inner_text("#sessions")
        page.click("text=start")
        page.click("#start-button")
        answer(page, 1, ["r", "4"])
        wait_shown(page, 2)
        status(page, "Stored on the server: 1 of 4")
        page.reload()  # in the middle of image 2: image 1 stays confirmed
        page.wait_for_selector("#screen-start:not([hidden])")
        page.click("#start-button")
        wait_shown(page, 2)
        assert page.inner_text("#progress") == "Image 2 of 4"

        browser.set_offline(True)  # the Wi-Fi drops: answers wait in the browser
        answer(page, 2, ["n", "2"])
        status(page, "No network")
        assert len(stored(run_dir)) == 3
        answer(page, 3, ["u"])
        browser.set_offline(False)
        answer(page, 4, ["r", "5"])
        page.wait_for_selector("#screen-done:not([hidden])")
        status(page, "Stored on the server: 4 of 4")
    finally:
        server.stop()
    table = stored(run_dir)
    ids2 = pd.read_csv(packages.session_dir(2) / "manifest.csv", dtype={"image_id": str})["image_id"].tolist()
    assert table["session"].tolist() == [1, 1, 2, 2, 2, 2]
    two = table[table["session"] == 2]
    assert two["image_id"].tolist() == ids2 and two["order"].tolist() == [1, 2, 3, 4]
    assert two["answer"].tolist() == ["real", "not_real", "unsure", "real"]
    assert two["confidence"].tolist()[:2] == [4, 2] and pd.isna(two["confidence"].iloc[2])
    assert (table["reader"] == reader).all()
    assert ((table["reading_seconds"] > 0) & (table["reading_seconds"] < 60)).all()
    assert errors == []


def test_a_busy_database_makes_the_page_send_the_answer_again_by_itself(browser, tmp_path: Path) -> None:  # noqa: F811
    """A second process holds SQLite's write lock: the confirmed answer gets 503 + Retry-After, the page says the
    server is busy, and sends it again by itself once the lock is free."""
    run_dir = tmp_path / "run"
    build(run_dir, counts=(2, 2, 2, 2, 2))
    server = Served(run_dir)
    holder = None
    try:
        ((_, token),) = server.links(1)
        page = browser.new_page()
        page.goto(f"{server.url}/p/{token}/session/1/")
        page.click("#start-button")
        wait_shown(page, 1)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(RunLayout(run_dir).reader_db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "locked"
        page.keyboard.press("Enter")
        status(page, "Server busy: 1 answer waiting")
        assert len(stored(run_dir)) == 0
        holder.stdin.close()
        holder.wait(timeout=10)
        status(page, "Stored on the server: 1 of 2")
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        server.stop()
    assert stored(run_dir)["order"].tolist() == [1]
