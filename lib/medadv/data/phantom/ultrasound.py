"""Breast-ultrasound phantoms: layered echogenicity times speckle, log-compressed, with a hypoechoic lesion and its
posterior shadow or enhancement.

See :mod:`medadv.data.phantom` for how an image is made.
"""

from __future__ import annotations

import numpy as np

from medadv.data.phantom.building_blocks import (
    NEGATIVE_LABEL,
    REFERENCE_PEAK,
    US_LESION_DIAMETER,
    US_POSTERIOR_RATIO,
    VIEWS,
    PhantomView,
    _draw_shape,
    _patch,
    _view,
    background_std,
    powerlaw_field,
    rayleigh_speckle,
    shape_signal,
    stored_coords,
)

US_LOG_GAIN = 20.0
"""Log compression of the echo envelope: display = log(1 + g e) / log(1 + 4 g), clipped to [0, 1]."""


def _log_compress(envelope: np.ndarray) -> np.ndarray:
    return np.log1p(US_LOG_GAIN * envelope) / np.log1p(4.0 * US_LOG_GAIN)


def _echogenicity(rng: np.random.Generator, size: tuple[int, int], layers: np.ndarray) -> np.ndarray:
    """Mean echo level of layered breast tissue (skin, subcutaneous fat, fibroglandular tissue, pectoral muscle with
    striations), with wavy interfaces, a power-law texture and depth attenuation."""
    h, w = size
    yy, xx = stored_coords(size)
    skin, fat_bottom, gland_bottom, fat, gland, muscle = layers
    echo = np.full(size, 0.9)
    for bottom, below in ((skin, fat), (fat_bottom, gland), (gland_bottom, muscle)):
        wave = 0.03 * h * np.sin(2 * np.pi * xx / w * rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * np.pi))
        step = 1.0 / (1.0 + np.exp(-(yy - bottom * h - wave) / 0.7))
        echo = echo + (below - echo) * step
    echo = echo + 0.08 * np.cos(2 * np.pi * yy / (0.05 * h)) * (yy > gland_bottom * h)
    return echo * np.exp(0.15 * powerlaw_field(rng, size, 2.5)) * np.exp(-0.4 * yy / h)


def posterior_profile(signal: np.ndarray, strength: float, decay: float) -> np.ndarray:
    """Posterior acoustic shadowing (``strength`` < 0) or enhancement (> 0): a factor on the echo level of every
    pixel below the lesion in its columns, scaled by the lesion's lateral profile and fading with depth (``decay``
    pixels). It starts strictly below the lesion, so the lesion mask never includes it.

    Returns:
        The factor, the shape of ``signal``.
    """
    rows = np.arange(signal.shape[0])[:, None]
    inside = signal > 0
    bottom = np.where(inside.any(axis=0), signal.shape[0] - 1 - np.argmax(inside[::-1], axis=0), signal.shape[0])
    lateral = signal.max(axis=0)
    below = rows > bottom[None, :]
    return 1.0 + strength * lateral[None, :] * below * np.exp(-(rows - bottom[None, :]) / decay)


def render_ultrasound(
    rng: np.random.Generator, size: tuple[int, int], positive: bool, contrast: float
) -> tuple[str, list[PhantomView]]:
    """Render one ultrasound patient: both views, with a lesion when ``positive``.

    Returns:
        The kind of lesion (``hypoechoic_shadowing``, ``hypoechoic_enhancement``, or ``normal``) and the two
        views.
    """
    h, w = size
    # interfaces (skin, fat bottom, gland bottom, fractions of the height), then echo levels (fat, gland, muscle)
    interfaces = [0.04, rng.uniform(0.2, 0.32), rng.uniform(0.65, 0.8)]
    layers = np.array(interfaces + list(rng.uniform((0.25, 0.6, 0.35), (0.4, 0.85, 0.5))))
    kind, shape, sign = NEGATIVE_LABEL["ultrasound"], None, 0.0
    if positive:
        shadow = rng.uniform() < 0.5
        kind, sign = ("hypoechoic_shadowing", -1.0) if shadow else ("hypoechoic_enhancement", 1.0)
        shape = _draw_shape(rng, rng.uniform(*US_LESION_DIAMETER) * h / 2.0, 0.3, 0)
        low, high = layers[1] * h + shape.extent, layers[2] * h - shape.extent
        cy = rng.uniform(low, high) if high > low else 0.5 * (layers[1] + layers[2]) * h
        rotation = rng.uniform(0, 2 * np.pi)
    views = []
    for index, view in enumerate(VIEWS["ultrasound"]):
        echo = _echogenicity(rng, size, layers)
        speckle = rayleigh_speckle(rng, size)
        lesion_free = _log_compress(echo * speckle)
        image, mask = lesion_free, np.zeros(size, bool)
        if positive:
            cx = rng.uniform(shape.extent + 1.0, w - shape.extent - 1.0)
            turn = rotation + index * rng.uniform(0.3, 0.8)
            patch = _patch(size, (cy, cx), shape.extent, lambda yy, xx: shape_signal(yy, xx, cy, cx, turn, shape))
            signal, mask = patch.full(size)
            std = background_std(lesion_free, np.ones(size, bool))
            # log compression turns the echo factor (1 - drop) into a shift of log(1 - drop) / log(1 + 4 g) for echoes
            # well above 1 / g: this drop makes the lesion's peak darkening the asked number of background stds.
            peak = contrast * REFERENCE_PEAK["ultrasound"] * std
            drop = min(1.0 - np.exp(-peak * np.log1p(4.0 * US_LOG_GAIN)), 0.95)
            posterior = posterior_profile(signal, sign * US_POSTERIOR_RATIO * drop, 0.5 * h)
            image = _log_compress(echo * (1.0 - drop * signal) * posterior * speckle)
        views.append(_view(view, image, lesion_free, mask))
    return kind, views
