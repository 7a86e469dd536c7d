"""The reader app in a real headless browser: Debian's Chromium driven by playwright, pages opened as file:// URLs.

Chromium must be installed (``apt-get install -y chromium``; never a browser downloaded by playwright). Where it is
missing the tests fail with that instruction rather than skip, so that CI cannot pass without running them. Set
``MEDADV_CHROMIUM`` to use another Chromium binary.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from medadv.stats.reader import validate_responses
from test_reader_packages import build

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("MEDADV_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
    or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator["playwright.sync_api.BrowserContext"]:  # noqa: F821
    """A fresh Chromium profile (its own user-data-dir, so its own localStorage) for one test."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: the reader-app tests need a real browser. Install it with "
                    "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu, as root) or point MEDADV_CHROMIUM "
                    "at a Chromium binary.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            accept_downloads=True, viewport={"width": 1200, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()


def open_session(context, folder: Path, errors: list[str]):
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto((folder / "index.html").resolve().as_uri())
    page.wait_for_selector("#screen-start:not([hidden])")
    return page


def wait_shown(page, position: int) -> None:
    page.wait_for_selector(f'#stage[data-shown="{position}"]')
    page.wait_for_timeout(15)  # a reading time of a few milliseconds at least


def answer(page, position: int, keys: list[str]) -> None:
    wait_shown(page, position)
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press("Enter")


def download_csv(page, target: Path) -> pd.DataFrame:
    page.wait_for_selector("#screen-done:not([hidden])")
    with page.expect_download() as info:
        page.click("#download")
    assert info.value.suggested_filename == target.name
    info.value.save_as(target)
    return pd.read_csv(target, dtype={"image_id": str, "reader": str})


def test_reading_session_by_keyboard_survives_reload_and_closed_tab(browser, tmp_path: Path) -> None:
    packages, _ = build(tmp_path / "run", counts=(3, 3, 8, 2, 4))
    folder = packages.session_dir(3)
    manifest = pd.read_csv(folder / "manifest.csv", dtype={"image_id": str})
    n = len(manifest)
    errors: list[str] = []
    page = open_session(browser, folder, errors)
    assert "Session 3: 8 images" in page.inner_text("#start-title")
    page.fill("#reader-id", "R7")
    page.press("#reader-id", "Enter")
    answer(page, 1, ["r", "4"])
    wait_shown(page, 2)
    page.keyboard.press("Enter")  # nothing chosen yet: refused, still image 2
    assert "Choose" in page.inner_text("#hint")
    page.keyboard.press("n")
    page.keyboard.press("Enter")  # no confidence yet: refused
    assert "confidence" in page.inner_text("#hint")
    page.keyboard.press("r")  # an answer can be changed until it is confirmed
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    answer(page, 3, ["u"])
    wait_shown(page, 4)
    assert page.get_attribute("#stage img", "src") == manifest["file"][3]

    page.reload()  # in the middle of image 4: the three confirmed answers are kept, no way back to them
    page.wait_for_selector("#screen-start:not([hidden])")
    assert page.input_value("#reader-id") == "R7"
    assert "confirmed 3 of 8" in page.inner_text("#resume-note")
    page.click("#start-button")
    answer(page, 4, ["n", "5"])
    answer(page, 5, ["u"])
    wait_shown(page, 6)
    page.close()  # a closed tab loses nothing either

    page = open_session(browser, folder, errors)
    page.click("#start-button")
    assert page.inner_text("#progress") == f"Image 6 of {n}"
    assert page.get_attribute("#stage img", "src") == manifest["file"][5]
    for position in range(6, n + 1):
        answer(page, position, ["r", "3"])
    table = download_csv(page, tmp_path / "responses_session3_R7.csv")

    assert list(table.columns) == ["reader", "session", "image_id", "answer", "confidence", "reading_seconds", "order"]
    assert table["image_id"].tolist() == manifest["image_id"].tolist()
    assert table["order"].tolist() == list(range(1, n + 1))
    assert table["answer"].tolist() == ["real", "real", "unsure", "not_real", "unsure"] + ["real"] * (n - 5)
    assert table["confidence"].tolist()[:5] == pytest.approx([4, 2, float("nan"), 5, float("nan")], nan_ok=True)
    assert (table["reader"] == "R7").all() and (table["session"] == 3).all()
    assert (table["reading_seconds"] > 0).all() and (table["reading_seconds"] < 60).all()
    checked = validate_responses(table, packages.answer_key[packages.answer_key["session"] == 3])
    assert len(checked) == n

    page.reload()  # a finished session shows the download again, with the same answers
    page.fill("#reader-id", "R7")
    page.click("#start-button")
    again = download_csv(page, tmp_path / "again" / "responses_session3_R7.csv")
    assert again.equals(table)
    assert errors == []


def test_education_session_shows_triplets_and_only_needs_next(browser, tmp_path: Path) -> None:
    packages, _ = build(tmp_path / "run", counts=(3, 3, 4, 3, 4))
    folder = packages.session_dir(4)
    manifest = pd.read_csv(folder / "manifest.csv", dtype={"image_id": str})
    errors: list[str] = []
    page = open_session(browser, folder, errors)
    page.fill("#reader-id", "edu_1")
    page.click("#start-button")
    wait_shown(page, 1)
    assert page.locator("#answers").is_hidden() and page.locator("#confidence").is_hidden()
    srcs = [page.get_attribute(f"#stage figure:nth-child({k}) img", "src") for k in (1, 2, 3)]
    assert srcs == [manifest.loc[0, c] for c in ("real_file", "fake_file", "diff_file")]
    captions = page.locator("#stage figcaption").all_inner_texts()
    assert [c.split()[0] for c in captions] == ["Real", "Fake", "Difference"]
    page.keyboard.press("r")  # no answers in this session: the key does nothing
    page.keyboard.press("Enter")
    for position in range(2, len(manifest) + 1):
        wait_shown(page, position)
        page.click("#next-button")
    table = download_csv(page, tmp_path / "responses_session4_edu_1.csv")
    assert table["image_id"].tolist() == manifest["image_id"].tolist()
    assert (table["answer"] == "seen").all() and table["confidence"].isna().all()
    assert (table["reading_seconds"] > 0).all() and table["order"].tolist() == [1, 2, 3]
    assert errors == []
