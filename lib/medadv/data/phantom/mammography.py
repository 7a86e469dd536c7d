"""Mammography phantoms: the compressed-breast outline, fibroglandular texture, masses and calcification clusters, shown
through a film-like curve.

See :mod:`medadv.data.phantom` for how an image is made.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medadv.data.phantom.building_blocks import (
    BACKGROUND_MARGIN,
    CALC_SPECK_RADIUS,
    MASS_DIAMETER,
    MASS_FRACTION,
    NEGATIVE_LABEL,
    REFERENCE_PEAK,
    SPICULATED_FRACTION,
    SUPERSAMPLE,
    TEXTURE_BETA,
    VIEWS,
    PhantomView,
    _depth,
    _draw_cluster,
    _draw_shape,
    _patch,
    _place,
    _reduce,
    _view,
    background_std,
    cluster_signal,
    powerlaw_field,
    render_coords,
    shape_signal,
    stored_coords,
)


@dataclass(frozen=True)
class _Breast:
    coverage: np.ndarray  # share of each stored pixel inside the breast
    tissue: np.ndarray  # share inside the breast and outside the pectoral muscle (where lesions go)
    along: np.ndarray  # distance from the chest wall along the nipple axis (stored pixels)
    depth: float  # nipple-axis length of the breast


def _breast(rng: np.random.Generator, size: tuple[int, int], view: str, depth: float) -> _Breast:
    """The compressed-breast outline of one view: a half ellipse at the chest wall (x = 0) with a perturbed edge; MLO
    is taller, tilted and carries the pectoral muscle in its upper chest-wall corner."""
    h, w = size
    if view == "CC":
        half_height, centre, tilt = rng.uniform(0.36, 0.45) * h, h * (0.5 + rng.uniform(-0.04, 0.04)), 0.0
    else:
        half_height, centre = rng.uniform(0.43, 0.5) * h, h * (0.5 + rng.uniform(0.0, 0.06))
        tilt = rng.uniform(0.15, 0.35)
    depth = depth * rng.uniform(0.95, 1.05) * w

    def frame(yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return xx * np.cos(tilt) + (yy - centre) * np.sin(tilt), -xx * np.sin(tilt) + (yy - centre) * np.cos(tilt)

    along, across = frame(*stored_coords(size))
    psi = np.arctan2(across / half_height, along / depth)
    edge = np.ones_like(psi)
    for k in (2, 3, 4):
        edge = edge + rng.uniform(0.0, 0.03) * np.cos(k * psi + rng.uniform(0, 2 * np.pi))
    ry, rx = render_coords(0, 0, h, w)
    r_along, r_across = frame(ry, rx)
    fine_edge = np.repeat(np.repeat(edge, SUPERSAMPLE, 0), SUPERSAMPLE, 1)
    region = np.hypot(r_along / depth, r_across / half_height) < fine_edge
    coverage = _reduce(region)
    tissue = coverage
    if view == "MLO":
        pect_w, pect_h = rng.uniform(0.18, 0.32) * w, rng.uniform(0.3, 0.55) * h
        tissue = _reduce(region & (rx / pect_w + ry / pect_h >= 1.0))
    return _Breast(coverage=coverage, tissue=tissue, along=along, depth=depth)


def _mammo_background(rng: np.random.Generator, breast: _Breast, density: float) -> np.ndarray:
    """Lesion-free mammogram: log-normal fibroglandular texture (power-law field) thinning towards the periphery,
    the pectoral muscle, a skin line, detector offset and quantum noise."""
    h = breast.coverage.shape[0]
    dist = ndimage.distance_transform_edt(breast.coverage > 0)
    thickness = 1.0 - np.exp(-dist / (0.06 * h))
    texture = powerlaw_field(rng, breast.coverage.shape, TEXTURE_BETA)
    gland = 0.28 * np.exp(0.2 * density * texture)
    muscle = 0.6 * np.exp(0.05 * texture)
    image = thickness * (breast.tissue * gland + (breast.coverage - breast.tissue) * muscle)
    image += breast.coverage * (dist <= 1.0) * 0.05
    return image + 0.015 + rng.normal(0.0, 0.004, size=image.shape)


def render_mammography(
    rng: np.random.Generator, size: tuple[int, int], positive: bool, contrast: float
) -> tuple[str, list[PhantomView]]:
    """Render one mammography patient: both views of one breast, a mass or calcification cluster when ``positive``.

    Returns:
        The kind of lesion (``mass_spiculated``, ``mass_lobulated``, ``calcification``, or ``normal``) and the
        two views.
    """
    density, depth, flip = rng.uniform(0.7, 1.3), rng.uniform(0.6, 0.88), bool(rng.integers(2))
    kind, shape, cluster = NEGATIVE_LABEL["mammography"], None, None
    if positive:
        if rng.uniform() < MASS_FRACTION:
            spiculated = rng.uniform() < SPICULATED_FRACTION
            kind = "mass_spiculated" if spiculated else "mass_lobulated"
            radius = rng.uniform(*MASS_DIAMETER) * size[0] / 2.0
            shape = _draw_shape(rng, radius, 0.35, int(rng.integers(6, 13)) if spiculated else 0)
        else:
            kind, cluster = "calcification", _draw_cluster(rng, size[0])
    lesion_depth = rng.uniform(0.25, 0.7)
    views = []
    for view in VIEWS["mammography"]:
        breast = _breast(rng, size, view, depth)
        lesion_free = _mammo_background(rng, breast, density)
        image, mask = lesion_free, np.zeros(size, bool)
        if positive:
            extent = shape.extent if shape is not None else cluster.radius + CALC_SPECK_RADIUS[1]
            dist = _depth(breast.tissue > 0.99)
            near = np.abs(breast.along - lesion_depth * breast.depth) < 1.5
            cy, cx = _place(rng, dist, extent + 1.0, near)
            rotation = rng.uniform(0, 2 * np.pi)
            if shape is not None:
                render = functools.partial(shape_signal, cy=cy, cx=cx, rotation=rotation, shape=shape)
                patch = _patch(size, (cy, cx), extent, render)
                peak = REFERENCE_PEAK["mass"]
            else:
                render = functools.partial(cluster_signal, cy=cy, cx=cx, rotation=rotation, cluster=cluster)
                patch = _patch(size, (cy, cx), extent, render, outline=True)
                peak = REFERENCE_PEAK["calcification"]
            std = background_std(lesion_free, dist > BACKGROUND_MARGIN * size[0])
            signal, mask = patch.full(size)
            image = lesion_free + contrast * peak * std * signal
        views.append(_view(view, _mammo_display(image), _mammo_display(lesion_free), mask, flip))
    return kind, views


MAMMO_DISPLAY_SCALE = 0.75
"""The mammogram's characteristic curve, 1 - exp(-x / scale), maps the linear signal (where lesion contrast is set)
into [0, 1): strictly increasing, so masks stay exact, and bright calcifications are compressed instead of clipped."""


def _mammo_display(linear: np.ndarray) -> np.ndarray:
    return 1.0 - np.exp(-linear / MAMMO_DISPLAY_SCALE)
