"""Screenshots of the workshop server's pages for docs/workshop.md, taken with headless Chromium (playwright).

    PYTHONPATH=lib python scripts/workshop_screenshots.py results/<run> docs/img

The run folder must hold notebook 05's packages (``--profile workshop``). The script copies the packages into a
temporary run folder (the run's own database is not touched), serves it on 127.0.0.1, lets twelve simulated
participants answer part of the study over HTTP (answers drawn at random: the numbers on the screenshot mean
nothing), and saves ``workshop_instructor.png`` and ``workshop_participant.png`` (palette PNGs, a few hundred KB).
Set ``MEDADV_CHROMIUM`` for a Chromium other than /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from medadv.layout import RunLayout
from medadv.reader_app.server import create_app, open_server
from PIL import Image

PORT = 8765
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def simulate_class(url: str, links: list[tuple[str, str]], payloads: dict, lasts: list[int], seed: int = 0) -> None:
    """Participants answering sessions 1 to ``lasts[k]`` at random, over HTTP."""
    rng = np.random.default_rng(seed)
    for (_, token), last in zip(links, lasts, strict=True):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            for session in range(1, last + 1):
                for order, item in enumerate(payloads[session]["items"], start=1):
                    read = payloads[session]["mode"] == "read"
                    answer = str(rng.choice(["real", "not_real", "unsure"], p=[0.5, 0.4, 0.1])) if read else "seen"
                    confidence = int(rng.integers(1, 6)) if read and answer != "unsure" else None
                    client.post(
                        f"/api/session/{session}/answers",
                        json={
                            "order": order,
                            "image_id": item["image_id"],
                            "answer": answer,
                            "confidence": confidence,
                            "reading_seconds": round(float(rng.uniform(2, 12)), 3),
                        },
                    ).raise_for_status()


def save_small(png: bytes, target: Path) -> None:
    """Write a screenshot as a 64-colour palette PNG."""
    tmp = target.with_suffix(".tmp.png")
    tmp.write_bytes(png)
    Image.open(tmp).convert("RGB").quantize(64).save(target, optimize=True)
    tmp.unlink()


def shoot(instructor_url: str, participant_url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("MEDADV_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(instructor_url)
        page.wait_for_selector("#links .link")
        page.wait_for_selector("#accuracy tbody tr")
        save_small(page.screenshot(full_page=False), out / "workshop_instructor.png")
        page = browser.new_page(viewport={"width": 900, "height": 800})
        page.goto(participant_url)
        page.click("text=start")
        page.click("#start-button")
        page.wait_for_selector("#stage[data-shown]")
        page.keyboard.press("r")
        page.keyboard.press("4")
        save_small(page.screenshot(), out / "workshop_participant.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(RunLayout(args.run_dir).reader_packages, RunLayout(run).reader_packages)
        server = open_server(run, "127.0.0.1", PORT)
        uv = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=PORT, log_level="warning"))
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        for _ in range(100):
            if uv.started:
                break
            time.sleep(0.1)
        try:
            links = server.make_links(12)
            simulate_class(server.public_url, links[:9], server.study.payloads, [5, 5, 5, 5, 5, 4, 3, 3, 2])
            shoot(f"{server.public_url}/instructor#token={server.instructor_token}", server.link(links[8][1]), args.out)
        finally:
            uv.should_exit = True
            thread.join(timeout=10)
            server.db.close()


if __name__ == "__main__":
    main()
