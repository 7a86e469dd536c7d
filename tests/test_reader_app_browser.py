"""The reader app in a real headless browser: Debian's Chromium driven by playwright, pages opened as file:// URLs.

Chromium must be installed (``apt-get install -y chromium``; never a browser downloaded by playwright). Where it is
missing the tests fail with that instruction rather than skip, so that CI cannot pass without running them. Set
``MEDADV_CHROMIUM`` to use another Chromium binary.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv.config import DataConfig
from medadv.data.phantom import render_patient
from medadv.reader_app.responses import validate_responses
from PIL import Image
from test_reader_packages import build

pytestmark = pytest.mark.browser

CHROMIUM = (
    os.environ.get("MEDADV_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator["playwright.sync_api.BrowserContext"]:  # noqa: F821
    """A fresh Chromium profile (its own user-data-dir, so its own localStorage) for one test."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the reader-app tests need a real browser. Install it with "
            "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu, as root) or point MEDADV_CHROMIUM "
            "at a Chromium binary."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            accept_downloads=True,
            viewport={"width": 1200, "height": 800},
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
    page.wait_for_selector("#screen-start:not([hidden])")  # the app has restored its state (as after the first reload)
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


# ---- the viewer: zoom, pan, window/level; the layout at phone to monitor sizes -------------------------------------
PORTRAIT = (1024, 832)  # (height, width) of a display image as large as the issue's
LAYOUT_SIZES = [(390, 844), (800, 500), (1280, 800), (2560, 1440)]
VIEW_STATE = """() => {
  const box = document.querySelector('.view-box').getBoundingClientRect();
  const imgs = [...document.querySelectorAll('#stage img')];
  const r = imgs[0].getBoundingClientRect();
  return {box: [box.left, box.top, box.width, box.height], img: [r.left, r.top, r.width, r.height],
          transforms: imgs.map(i => i.style.transform), filters: imgs.map(i => i.style.filter),
          rendering: imgs[0].style.imageRendering, readout: document.getElementById('view-readout').textContent};
}"""


def session_with_images(tmp_path: Path, pixels: np.ndarray) -> tuple[Path, Path]:
    """Sessions 3 (four images) and 4 (two triplets) whose every PNG is replaced by ``pixels`` (8-bit grey): the
    app shows whatever the package holds, so a large, known image tests what the reader sees."""
    packages, _ = build(tmp_path / "run", counts=(3, 3, 4, 2, 4))
    for session in (3, 4):
        for png in (packages.session_dir(session) / "images").glob("*.png"):
            Image.fromarray(pixels, mode="L").save(png)
    return packages.session_dir(3), packages.session_dir(4)


def start_reading(context, folder: Path, errors: list[str], size: tuple[int, int], reader: str = "V1"):
    page = open_session(context, folder, errors)
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.fill("#reader-id", reader)
    page.click("#start-button")
    wait_shown(page, 1)
    return page


def screen_grey(page) -> np.ndarray:
    """The page as the reader sees it, one grey level per CSS pixel (device scale factor 1)."""
    shot = np.array(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    assert (shot[..., 0] == shot[..., 1]).all() and (shot[..., 1] == shot[..., 2]).all()
    return shot[..., 0]


def shown_region(page, state: dict, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen pixels inside the view box (below the readout) and the image pixel each one shows at ``scale``."""
    grey = screen_grey(page)
    bl, bt, bw, bh = (
        int(np.ceil(state["box"][0])),
        int(np.ceil(state["box"][1]) + 20),
        int(state["box"][2]) - 1,
        int(state["box"][3]) - 21,
    )
    il, it = state["img"][0], state["img"][1]
    assert il == int(il) and it == int(it), "the image is not on the pixel grid"
    rows, cols = np.mgrid[bt : bt + bh, bl : bl + bw]
    si, sj = (rows - int(it)) // scale, (cols - int(il)) // scale
    inside = (si >= 0) & (si < PORTRAIT[0]) & (sj >= 0) & (sj < PORTRAIT[1])
    return grey[rows[inside], cols[inside]], si[inside], sj[inside]


def drag(
    page, start: tuple[float, float], delta: tuple[float, float], button: str = "left", shift: bool = False
) -> None:
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(*start)
    page.mouse.down(button=button)
    page.mouse.move(start[0] + delta[0], start[1] + delta[1], steps=4)
    page.mouse.up(button=button)
    if shift:
        page.keyboard.up("Shift")


def box_centre(page) -> tuple[float, float]:
    box = page.locator(".view-box").first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_viewer_shows_the_stored_pixels_and_windows_them_exactly(browser, tmp_path: Path) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, PORTRAIT).astype(np.uint8)
    folder, _ = session_with_images(tmp_path, pixels)
    errors: list[str] = []
    page = start_reading(browser, folder, errors, (2560, 1440))
    state = page.evaluate(VIEW_STATE)
    assert state["readout"].split()[0] == "100%" and state["img"][2:] == [832, 1024]  # native size: it fits
    assert state["rendering"] == "pixelated" and state["filters"] == ["none"]
    screen, si, sj = shown_region(page, state, 1)
    assert len(screen) == pixels.size and (screen == pixels[si, sj]).all()  # every stored pixel, unchanged

    centre = box_centre(page)
    drag(page, centre, (-155, 30), shift=True)  # window 255 -> 100, level 127.5 -> 157.5
    state = page.evaluate(VIEW_STATE)
    assert state["readout"].split()[1:] == ["W", "100", "L", "158"] and state["img"][:2] == [739, 225]
    screen, si, sj = shown_region(page, state, 1)
    expected = np.clip((pixels[si, sj] - (157.5 - 50)) / 100, 0, 1) * 255
    assert np.abs(screen - expected).max() <= 1.0  # the window's straight line, rounded once
    assert (screen[pixels[si, sj] <= 107] == 0).all() and (screen[pixels[si, sj] >= 208] == 255).all()
    drag(page, centre, (40, -20), button="right")  # a right-button drag sets the window too
    assert page.evaluate(VIEW_STATE)["readout"].split()[1:] == ["W", "140", "L", "138"]

    page.keyboard.press("0")  # reset: full window; then 1:1 and two zoom steps: exactly 2:1, nearest neighbour
    for key in ("a", "+", "+"):
        page.keyboard.press(key)
    state = page.evaluate(VIEW_STATE)
    assert state["readout"].split() == ["200%", "W", "255", "L", "128"] and state["img"][2:] == [1664, 2048]
    screen, si, sj = shown_region(page, state, 2)
    assert len(screen) > 2e6 and (screen == pixels[si, sj]).all()
    drag(page, centre, (37, -21))  # a pan moves the image by as many screen pixels as the pointer moved
    moved = page.evaluate(VIEW_STATE)
    assert [moved["img"][0] - state["img"][0], moved["img"][1] - state["img"][1]] == [37, -21]
    assert errors == []


def test_viewer_changes_the_view_and_not_the_answers(browser, tmp_path: Path) -> None:
    pixels = np.random.default_rng(6).integers(0, 256, PORTRAIT).astype(np.uint8)
    folder, folder4 = session_with_images(tmp_path, pixels)
    errors: list[str] = []
    page = start_reading(browser, folder, errors, (1280, 800), reader="V2")
    first = page.evaluate(VIEW_STATE)
    assert first["readout"].startswith("73%") and first["rendering"] == "auto"  # too tall for 1:1: fitted
    gestures = [
        lambda: page.mouse.wheel(0, -300),
        lambda: drag(page, box_centre(page), (60, 25)),
        lambda: drag(page, box_centre(page), (-80, 40), shift=True),
        lambda: (page.keyboard.press("w"), drag(page, box_centre(page), (30, 30)), page.keyboard.press("w")),
    ]
    answers = [["r", "4"], ["n", "2"], ["u"], ["n", "5"]]
    for position, keys in enumerate(answers, start=1):
        wait_shown(page, position)
        assert page.evaluate(VIEW_STATE) == first  # every image opens in the same view
        page.mouse.move(*box_centre(page))
        page.keyboard.press(keys[0])
        gestures[position - 1]()
        page.keyboard.press("a" if position % 2 else "f")
        page.keyboard.press("+")
        changed = page.evaluate(VIEW_STATE)
        assert changed["transforms"] != first["transforms"] or changed["filters"] != first["filters"]
        assert page.inner_text("#hint") == ""
        for key in keys[1:]:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
    table = download_csv(page, tmp_path / "responses_session3_V2.csv")
    assert table["answer"].tolist() == ["real", "not_real", "unsure", "not_real"]
    assert table["confidence"].tolist() == pytest.approx([4, 2, float("nan"), 5], nan_ok=True)
    saved = page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.endsWith('/V2')).map(k => JSON.parse(localStorage.getItem(k)))"
    )
    assert len(saved) == 1 and set(saved[0]) == {"version", "package_id", "session", "reader", "responses", "finished"}
    assert all(
        set(r) == {"order", "image_id", "answer", "confidence", "reading_seconds"} for r in saved[0]["responses"]
    )

    page = start_reading(browser, folder4, errors, (1280, 800), reader="V2")  # a triplet: one view for all three
    fitted = page.evaluate(VIEW_STATE)
    middle = page.locator(".view-box").nth(1).bounding_box()
    page.mouse.move(middle["x"] + middle["width"] / 2, middle["y"] + 200)
    page.mouse.wheel(0, -500)
    drag(page, (middle["x"] + 50, middle["y"] + 300), (-30, 10), shift=True)
    state = page.evaluate(VIEW_STATE)
    offsets = page.evaluate("""() => [...document.querySelectorAll('.view-box')].map(b => {
      const r = b.getBoundingClientRect(), i = b.querySelector('img').getBoundingClientRect();
      return [i.left - r.left, i.top - r.top, i.width, i.height]; })""")
    assert state["img"][2] == pytest.approx(fitted["img"][2] * np.exp(1.0), rel=0.01)  # wheel 500 px: e-fold
    assert all(o == pytest.approx(offsets[0], abs=1) for o in offsets)  # same place in each panel, to a pixel
    assert state["filters"] == ['url("#window-level")'] * 3
    assert errors == []


def test_viewer_pinch_zooms_and_drags_on_a_touch_screen(browser, tmp_path: Path) -> None:
    folder, _ = session_with_images(tmp_path, np.full(PORTRAIT, 128, np.uint8))
    errors: list[str] = []
    page = start_reading(browser, folder, errors, (390, 844))
    before = page.evaluate(VIEW_STATE)
    cdp = browser.new_cdp_session(page)
    x, y = box_centre(page)

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": px, "y": py, "id": k} for k, (px, py) in enumerate(points)]},
        )

    touch("touchStart", [(x - 40, y), (x + 40, y)])
    for step in range(1, 6):
        touch("touchMove", [(x - 40 - 16 * step, y), (x + 40 + 16 * step, y)])
    touch("touchEnd", [])
    pinched = page.evaluate(VIEW_STATE)
    assert pinched["img"][2] == pytest.approx(before["img"][2] * 240 / 80, rel=0.02)  # fingers 3x apart: 3x zoom
    touch("touchStart", [(x, y)])
    touch("touchMove", [(x + 30, y + 50)])
    touch("touchEnd", [])
    dragged = page.evaluate(VIEW_STATE)
    assert [dragged["img"][0] - pinched["img"][0], dragged["img"][1] - pinched["img"][1]] == pytest.approx(
        [30, 50], abs=1
    )
    assert errors == []


@pytest.fixture(scope="module")
def mammogram() -> np.ndarray:
    """A phantom mammogram (CC view with a mass) at the issue's size, 8-bit as the packages store it."""
    view = render_patient(DataConfig(image_size=PORTRAIT, n_patients=10), 0, 1, True).views[0]
    return np.round(view.image * 255).astype(np.uint8)


def assert_on_screen(page, selector: str, size: tuple[int, int]) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None and page.locator(selector).is_visible(), f"{selector} is not shown"
    assert (
        box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= size[0] and box["y"] + box["height"] <= size[1]
    ), f"{selector} at {box} is outside the {size} window"
    assert page.evaluate("""() => [document.scrollingElement.scrollWidth <= innerWidth,
        document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth]""") == [True, True], (
        "the page scrolls sideways"
    )


def assert_fitted(page) -> None:
    """Every image is whole in its box at the fit zoom: 1:1 or a whole multiple when it fits, else scaled to fit the
    boxes' whole pixels (the smallest box, for a triplet)."""
    rects = page.evaluate("""() => [...document.querySelectorAll('.view-box')].map(b => {
      const r = b.getBoundingClientRect(), i = b.querySelector('img').getBoundingClientRect();
      return [[r.left, r.top, r.right, r.bottom], [i.left, i.top, i.right, i.bottom]]; })""")
    fit = min(
        min((np.floor(b[2]) - np.ceil(b[0])) / PORTRAIT[1], (np.floor(b[3]) - np.ceil(b[1])) / PORTRAIT[0])
        for b, _ in rects
    )
    zoom = np.floor(fit) if fit >= 1 else fit
    for box, img in rects:
        assert img[2] - img[0] == pytest.approx(PORTRAIT[1] * zoom, abs=0.5)
        assert box[0] - 0.5 <= img[0] and box[1] - 0.5 <= img[1] and img[2] <= box[2] + 0.5 and img[3] <= box[3] + 0.5


@pytest.mark.parametrize("size", LAYOUT_SIZES, ids=[f"{w}x{h}" for w, h in LAYOUT_SIZES])
def test_layout_keeps_confirm_and_next_on_screen(
    browser, tmp_path: Path, mammogram: np.ndarray, size: tuple[int, int]
) -> None:
    folder3, folder4 = session_with_images(tmp_path, mammogram)
    name = f"{size[0]}x{size[1]}"
    errors: list[str] = []
    page = start_reading(browser, folder3, errors, size)
    page.keyboard.press("Enter")  # no answer yet: the hint shows, and Confirm stays on screen
    assert "Choose" in page.inner_text("#hint")
    for selector in ("#next-button", "#answers", "#confidence", "#view-tools", "#hint"):
        assert_on_screen(page, selector, size)
    assert page.inner_text("#next-button").split()[-1] == "Confirm"
    assert page.locator(".view-box").bounding_box()["height"] >= 0.4 * size[1]  # the image keeps most of the room
    assert_fitted(page)
    page.screenshot(path=tmp_path / f"read_{name}.png")
    page.keyboard.press("h")  # the list of keys fits too
    assert_on_screen(page, "#keys-help", size)
    page.screenshot(path=tmp_path / f"keys_{name}.png")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    wait_shown(page, 2)

    page.reload()  # the start screen offers Continue, on screen
    page.wait_for_selector("#screen-start:not([hidden])")
    # the page fills in the saved reader after it shows the start screen; wait for that (fails on a timeout if never).
    # A selector, not wait_for_function: the page's policy forbids eval, which a string predicate needs when it polls.
    page.wait_for_selector("#start-button:text-is('Continue')", timeout=10_000)
    assert_on_screen(page, "#start-button", size)
    page.screenshot(path=tmp_path / f"start_{name}.png")

    page = start_reading(browser, folder4, errors, size)  # the education triplets and Next
    assert page.inner_text("#next-button").split()[-1] == "Next"
    assert_on_screen(page, "#next-button", size)
    assert_fitted(page)
    page.screenshot(path=tmp_path / f"educate_{name}.png")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        f"{k}_{name}.png" for k in ("educate", "keys", "read", "start")
    )
    assert errors == []
