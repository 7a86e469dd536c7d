"""The reader app as one self-contained HTML page per session (``index.html``).

The page is the template ``app.html`` with ``app.css``, ``viewer.js``, ``app.js`` and the session's data (a JSON
block) inlined: it needs no server and no network, and runs from its folder as a ``file://`` URL; the images are
referenced relatively (``images/0001.png``). What the app does (one image at a time, real / not real / unsure,
optional confidence, reading times, no going back, progress kept in the browser's localStorage, CSV export) is
described in ``app.js``, how the images are shown (zoom, pan, window/level) in ``viewer.js``, and both in
docs/reader_study.md.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from medadv.errors import DataError
from medadv.reader_app.responses import RESPONSE_COLUMNS

__all__ = ["instructions", "render_page"]

MODES = ("observe", "read", "educate")
IMAGE_NAMES = {"mammography": "mammogram image", "ultrasound": "ultrasound image", "xray": "X-ray image"}


def instructions(session: int, mode: str, modality: str) -> str:
    """The text a reader sees before a session starts (paper 001: only Session 1 says the images are real; Sessions
    2, 3 and 5 say nothing about real or fake proportions; Session 4 shows labelled triplets).

    Returns:
        The instructions.
    """
    kind = IMAGE_NAMES.get(modality, f"{modality} image")
    if mode == "observe":
        return (
            f"All images in this session are real {kind}s. Look at each one to become familiar with the images of "
            "this study, then go on with Next (Enter)."
        )
    if mode == "educate":
        return (
            f"Each screen shows a real {kind}, a computer-generated fake made from it, and their difference (real "
            "minus fake; mid-grey means no change). Study them, then go on with Next (Enter)."
        )
    if mode == "read":
        return (
            f"For each image, say whether it is a real {kind}: Real (R), Not real (N) or Unsure (U). You can change "
            "your answer until you confirm it with Enter; after that you cannot go back to it."
        )
    raise DataError(f"session {session}: mode {mode!r}; expected one of {MODES}.")


def _asset(name: str) -> str:
    return resources.files("medadv.reader_app").joinpath(name).read_text(encoding="utf-8")


def render_page(payload: dict[str, Any], remote: dict[str, Any] | None = None) -> str:
    """The HTML page of one session.

    Args:
        payload: ``package_id``, ``session`` (1-5), ``mode`` (``observe`` / ``read`` / ``educate``), ``modality``,
            ``ask_confidence`` and ``items`` (``image_id`` and ``file``, or ``real_file`` / ``fake_file`` /
            ``diff_file`` in ``educate`` mode), in reading order.
        remote: for the workshop server only (:mod:`medadv.reader_app.server`): ``reader`` and ``api`` (the URL of
            the participant's session API); the page then also sends every confirmed answer there (``remote.js``)
            and may connect to its own origin.

    Returns:
        The page's text (UTF-8), identical for identical payloads. Its data block also carries ``columns``, the
        CSV export's columns (:data:`medadv.reader_app.responses.RESPONSE_COLUMNS`), which ``app.js`` writes.
    """
    for field in ("package_id", "session", "mode", "modality", "ask_confidence", "items"):
        if field not in payload:
            raise DataError(f"reader app payload: missing field {field!r}.")
    if not payload["items"]:
        raise DataError(f"session {payload['session']}: no items; a session needs at least one image.")
    data = dict(
        payload,
        instructions=instructions(payload["session"], payload["mode"], payload["modality"]),
        columns=list(RESPONSE_COLUMNS),
    )
    script = _asset("app.js")
    if remote is not None:
        data["remote"] = remote
        script = _asset("remote.js") + "\n" + script
    blob = json.dumps(data, sort_keys=True, ensure_ascii=True).replace("</", "<\\/")
    page = _asset("app.html")
    for marker, value in (
        ("__TITLE__", html.escape(f"Reader study - session {payload['session']}")),
        ("/*__APP_CSS__*/", _asset("app.css")),
        ("/*__VIEWER_JS__*/", _asset("viewer.js")),
        ("/*__APP_JS__*/", script),
        ("__SESSION_JSON__", blob),
    ):
        if marker not in page:
            raise DataError(f"reader app template app.html lacks the marker {marker}; the package is damaged.")
        page = page.replace(marker, value, 1)
    if remote is not None:
        page = _allow_own_origin(page)
    return page


def _allow_own_origin(page: str) -> str:
    """The served page's content security policy also lets it talk to its own server (``connect-src 'self'``)."""
    policy = "default-src 'none';"
    if page.count(policy) != 1:
        raise DataError(f"reader app template app.html: its content security policy lacks {policy!r}.")
    return page.replace(policy, policy + " connect-src 'self';", 1)
