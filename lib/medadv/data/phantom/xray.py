"""Bone X-ray phantoms: a limb with a long bone projected as a hollow cylinder, and a fracture line across its shaft.

See :mod:`medadv.data.phantom` for how an image is made.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medadv.data.phantom.building_blocks import (
    NEGATIVE_LABEL,
    REFERENCE_PEAK,
    TEXTURE_BETA,
    VIEWS,
    XRAY_FRACTURE_WIDTH,
    PhantomView,
    _patch,
    _reduce,
    _view,
    background_std,
    powerlaw_field,
    render_coords,
    stored_coords,
)

Frame = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _limb_frame(size: tuple[int, int], angle: float, offset: float) -> Frame:
    """Map image coordinates to the bone's frame: ``along`` the shaft from the image centre, ``across`` it."""
    cy, cx = size[0] / 2.0, size[1] / 2.0 + offset

    def frame(yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xx - cx, yy - cy
        return dx * np.sin(angle) + dy * np.cos(angle), dx * np.cos(angle) - dy * np.sin(angle)

    return frame


def _bone_profile(across: np.ndarray, outer: float, inner: float) -> np.ndarray:
    """Projected path length through a hollow cylinder (cortex between radii ``inner`` and ``outer``), over ``outer``:
    bright cortical edges, a darker medullary canal."""
    return (np.sqrt(np.clip(outer**2 - across**2, 0, None)) - np.sqrt(np.clip(inner**2 - across**2, 0, None))) / outer


def fracture_signal(along: np.ndarray, across: np.ndarray, bone: dict[str, float]) -> np.ndarray:
    """A thin fracture line across the bone: cross-section (1 - (d / half width)^2), through the shaft at
    ``position`` with obliquity ``obliquity``; an incomplete fracture runs from one cortex over ``reach`` of the
    width. Weighted by the bone's projected thickness (the gap removes bone), exactly 0 outside the bone.

    Returns:
        The signal, the shape of ``along``; zero outside the line.
    """
    phi, outer = bone["obliquity"], bone["outer"]
    rel = along - bone["position"]
    t = across * np.cos(phi) + rel * np.sin(phi)
    perp = -across * np.sin(phi) + rel * np.cos(phi)
    section = np.clip(1.0 - (perp / XRAY_FRACTURE_WIDTH) ** 2, 0.0, None)
    span = outer / np.cos(phi)
    start = bone["side"] * t - (1.0 - 2.0 * bone["reach"]) * span
    extent = np.clip(start / (0.3 * span), 0.0, 1.0) if bone["reach"] < 1.0 else 1.0
    return section * extent * _bone_profile(across, outer, bone["inner"])


def render_xray(
    rng: np.random.Generator, size: tuple[int, int], positive: bool, contrast: float
) -> tuple[str, list[PhantomView]]:
    """Render one X-ray patient: the limb and bone in both views, with a fracture when ``positive``.

    Returns:
        The kind of lesion (``fracture_complete``, ``fracture_incomplete``, or ``no_fracture``) and the two
        views.
    """
    h, w = size
    outer = rng.uniform(0.08, 0.12) * h
    bone = {
        "outer": outer,
        "inner": outer * rng.uniform(0.5, 0.65),
        "position": rng.uniform(-0.2, 0.2) * h,
        "obliquity": rng.uniform(-0.6, 0.6),
        "side": float(rng.choice([-1.0, 1.0])),
        "reach": 1.0 if rng.uniform() < 0.6 else rng.uniform(0.45, 0.8),
    }
    limb = rng.uniform(0.28, 0.4) * w
    kind = NEGATIVE_LABEL["xray"]
    if positive:
        kind = "fracture_complete" if bone["reach"] == 1.0 else "fracture_incomplete"
    views = []
    for view in VIEWS["xray"]:
        frame = _limb_frame(size, rng.uniform(-0.35, 0.35), rng.uniform(-0.08, 0.08) * w)
        r_along, r_across = frame(*render_coords(0, 0, h, w))
        soft = _reduce(np.sqrt(np.clip(limb**2 - (r_across - 0.1 * limb) ** 2, 0, None)) / limb)
        cortex = _reduce(_bone_profile(r_across, bone["outer"], bone["inner"]))
        in_bone = _reduce(np.abs(r_across) < bone["outer"])
        lesion_free = 0.04 + 0.28 * soft * np.exp(0.05 * powerlaw_field(rng, size, TEXTURE_BETA)) + 0.5 * cortex
        lesion_free = lesion_free + 0.03 * in_bone * powerlaw_field(rng, size, 2.0) + rng.normal(0.0, 0.006, size=size)
        image, mask = lesion_free, np.zeros(size, bool)
        if positive:
            s_along, s_across = frame(*stored_coords(size))
            centre = np.unravel_index(int(np.argmin(np.hypot(s_along - bone["position"], s_across))), size)
            patch = _patch(
                size,
                (centre[0] + 0.5, centre[1] + 0.5),
                outer / np.cos(bone["obliquity"]) + 2.0,
                lambda yy, xx: fracture_signal(*frame(yy, xx), bone),
            )
            signal, mask = patch.full(size)
            std = background_std(lesion_free, in_bone > 0.99)
            image = lesion_free - contrast * REFERENCE_PEAK["fracture"] * std * signal
        views.append(_view(view, image, lesion_free, mask))
    return kind, views
