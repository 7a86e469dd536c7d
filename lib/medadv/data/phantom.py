"""The embedded in-silico cohort: patients, two views each, lesions with exact masks.

The kit's default data set is synthetic so that every notebook runs anywhere, with nothing to download, and so that
the ground truth of every lesion is known to the pixel. It imitates the cohort of paper 001 (Zhou et al., Nat Commun
2021, "Dataset"): screening patients, each with two views (CC and MLO) of one breast; positives carry a malignant
lesion in both views (73% masses, 27% microcalcification clusters), negatives none; about 29% of patients positive
(366 of 1284). Two further modalities (breast ultrasound and bone X-ray with a fracture) let the later studies run on
three modalities as paper 002 does.

How an image is made (all three modalities):

* images are stored at the profile's ``image_size`` as 16-bit PNG. Smooth parts (textures, speckle, noise) are made
  on that grid; sharp parts (the breast outline, the bone, every lesion) are rendered at ``SUPERSAMPLE`` times the
  resolution and box-averaged down, so edges and 1-pixel details are anti-aliased;
* the lesion is a *compactly supported* signal (exactly zero outside its shape) added to (ultrasound: multiplied
  into) a lesion-free rendering computed first, which :class:`PhantomView` keeps. The lesion mask is the lesion's
  support reduced with "any": a stored pixel is in the mask exactly when the lesion changes it. Masses, ultrasound
  lesions and fracture lines thus have exact masks; a calcification cluster's mask is the convex hull of its specks
  (the outline a reader would draw), which contains every pixel the specks change; the posterior shadow or
  enhancement of an ultrasound lesion lies below its mask, not in it;
* the difficulty knob is ``DataConfig.lesion_contrast``: a lesion's peak contrast is ``lesion_contrast *
  conspicuity * REFERENCE_PEAK[kind]`` standard deviations of the lesion-free background (over the tissue the
  lesion lies in: the inner breast without the pectoral muscle, the ultrasound image, the bone). The patient's
  conspicuity factor (log-uniform over ``CONSPICUITY``) makes some lesions subtle and some obvious;
  ``REFERENCE_PEAK`` puts ``lesion_contrast`` near 1 in paper 001's regime (a good, not perfect classifier). Lower is
  harder; ``tests/test_phantom.py`` shows a matched-filter detector's AUC rising with it in every modality.

Modalities (``DataConfig.modality``):

* ``mammography``: a compressed-breast outline against a black background (half ellipse at the chest wall with a
  perturbed edge, a thinner darker periphery and a skin line; MLO is taller, tilted and shows the pectoral muscle),
  fibroglandular texture from a power-law (1/f^beta, ``TEXTURE_BETA`` = 3) Gaussian field made with the FFT;
  lobulated or spiculated masses (a plateau with a smooth margin; spicules taper to their tips) and clusters of
  1-2 pixel bright specks, all shown through a film-like characteristic curve (``MAMMO_DISPLAY_SCALE``) that keeps
  bright lesions below saturation. Views ``CC`` and ``MLO`` show the same lesion (same shape and size, turned, at
  the same depth from the chest wall, elsewhere across the breast). Left or right breast at random.
* ``ultrasound``: layered tissue echogenicity (skin, fat, glandular tissue, muscle) times fully developed speckle
  (the Rayleigh-distributed envelope of complex Gaussian scatterers blurred by an anisotropic point-spread
  function), log-compressed; a hypoechoic irregular lesion with posterior acoustic shadowing or enhancement. Views
  ``TRANS`` and ``LONG`` (same lesion and depth, turned, elsewhere across the image).
* ``xray``: a limb (soft tissue) with a long bone projected as a hollow cylinder (bright cortex, darker medulla); a
  thin complete or incomplete fracture line across the shaft. Views ``AP`` and ``LAT`` (same bone and fracture,
  another angle and position).

Everything is deterministic given ``seed``: patient ``i`` draws from its own ``numpy.random.Generator`` seeded by
``(seed, 1, i)``, so a patient's images do not depend on the cohort size. No well-kept library makes power-law
fields, speckle or these lesion shapes, so they are a few lines of numpy (FFT) here.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.morphology import convex_hull_image
from tqdm.auto import tqdm

from medadv.config import DataConfig
from medadv.core import in_notebook_progress
from medadv.data.cohort import COHORT_COLUMNS
from medadv.data.pixels import save_png16, save_png8
from medadv.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SUPERSAMPLE = 2
"""Render at this many times ``image_size`` per axis, then box-average: anti-aliased edges, exact reduced masks."""
TEXTURE_BETA = 3.0
"""Exponent of the power spectrum 1/f^beta of the mammographic background (measured near 3 in mammograms)."""
BACKGROUND_MARGIN = 0.1
"""The mammographic background's statistics are taken this far (a fraction of the image height) inside the breast,
away from the darker periphery, whose falloff would otherwise dominate them."""
MARGIN = 0.4
"""Width of a lesion's smooth margin, as a fraction of its radius (the inner part is a plateau)."""
MASS_FRACTION = 0.73
"""Share of masses among positive mammography patients (paper 001: 73% masses, 27% calcifications)."""
SPICULATED_FRACTION = 0.5
"""Share of spiculated (rather than lobulated) masses."""
MASS_DIAMETER = (0.07, 0.17)
"""Mass diameter range (before lobulation and spicules), fraction of the image height: 4.5 to 11 pixels at 64 x 64."""
CALC_CLUSTER_RADIUS = (0.05, 0.1)
"""Calcification cluster radius range as a fraction of the image height."""
CALC_SPECKS = (4, 10)
"""Number of specks per calcification cluster (inclusive range; fewer when the cluster is too small to hold them)."""
CALC_SPECK_RADIUS = (0.6, 1.0)
"""Radius of one calcification speck in stored pixels (a speck covers 1 to 2 pixels at any image size)."""
CALC_SPACING = 3.0
"""Least distance between two specks' centres, stored pixels (specks stay separate); a crowded cluster gets fewer."""
REFERENCE_PEAK = {"mass": 4.2, "calcification": 10.5, "ultrasound": 1.8, "fracture": 6.0}
"""Peak contrast of each lesion kind at ``lesion_contrast`` = 1 and conspicuity 1, in background standard
deviations. Chosen so that ``lesion_contrast`` near 1 gives paper 001's regime on the default profile (a classifier
trained for minutes at 64 x 64 is good, not perfect: notebook 01's ERM VGG reached a test AUC of 0.92 on
mammography at 0.8, the default profile's value, 0.96-0.99 at 1.0 and 0.999 at 1.5). Tiny calcification specks and
thin fracture lines need a higher peak than a mass to be as conspicuous (they carry far less total signal)."""
CONSPICUITY = (0.4, 2.5)
"""Range of a patient's lesion conspicuity factor (log-uniform, the same in both views), multiplying the peak
contrast: real lesions range from subtle to obvious, so a trained detector finds most but not all of them (paper
001's AUC of 0.82) instead of all or none."""
SPICULE_PEAK = 0.6
"""Peak of a spicule relative to the mass core's peak."""
US_LESION_DIAMETER = (0.12, 0.25)
"""Ultrasound lesion diameter range as a fraction of the image height."""
US_POSTERIOR_RATIO = 0.9
"""Posterior shadowing (or enhancement) strength relative to the lesion's echogenicity drop."""
XRAY_FRACTURE_WIDTH = 0.9
"""Half width of a fracture line in stored pixels."""
VIEWS = {"mammography": ("CC", "MLO"), "ultrasound": ("TRANS", "LONG"), "xray": ("AP", "LAT")}
"""The two views of each patient, per modality."""
NEGATIVE_LABEL = {"mammography": "normal", "ultrasound": "normal", "xray": "no_fracture"}


@dataclass(frozen=True)
class PhantomView:
    """One rendered view at the stored resolution: the image, the same image without its lesion, the lesion mask
    (all False for a negative patient), all (H, W); images float64 in [0, 1]."""

    view: str
    image: np.ndarray
    lesion_free: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class PhantomPatient:
    """One phantom patient: id, label (1 = lesion), the kind of lesion (``source_label``), the lesion's contrast
    (``lesion_contrast`` times the patient's conspicuity factor; 0 for a negative patient) and its views."""

    patient_id: str
    label: int
    source_label: str
    contrast: float
    views: tuple[PhantomView, ...]


# ---- shared building blocks ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def stored_coords(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) of the stored grid, in pixels (read-only, cached)."""
    h, w = size
    return _frozen(np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij"))


@functools.lru_cache(maxsize=64)
def render_coords(y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the render sub-pixel centres covering stored pixels [y0, y0 + h) x [x0, x0 + w), in stored
    pixel units, so sizes read the same at any ``SUPERSAMPLE`` (read-only, cached)."""
    ys = y0 + (np.arange(h * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = x0 + (np.arange(w * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    return _frozen(np.meshgrid(ys, xs, indexing="ij"))


def _frozen(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    for arr in arrays:
        arr.flags.writeable = False
    return arrays[0], arrays[1]


def _reduce(arr: np.ndarray) -> np.ndarray:
    """Box-average the render grid down to the stored grid (strided sums: far faster than a reshaped mean)."""
    out = sum(arr[i::SUPERSAMPLE, j::SUPERSAMPLE] for i in range(SUPERSAMPLE) for j in range(SUPERSAMPLE))
    return out * (1.0 / SUPERSAMPLE**2)


def _reduce_any(mask: np.ndarray) -> np.ndarray:
    """A stored pixel is in the mask when any of its render sub-pixels is."""
    parts = (mask[i::SUPERSAMPLE, j::SUPERSAMPLE] for i in range(SUPERSAMPLE) for j in range(SUPERSAMPLE))
    return functools.reduce(np.logical_or, parts)


def powerlaw_field(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """A Gaussian random field with power spectrum 1/f^beta (zero mean, unit standard deviation), via the FFT.

    White complex noise is shaped by the amplitude f^(-beta/2) in the Fourier domain and transformed back; the
    zero-frequency term is dropped. With beta about 3 this is the standard model of mammographic parenchymal texture
    (Burgess et al., Med Phys 2001).
    """
    h, w = shape
    freq = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    freq[0, 0] = np.inf
    amplitude = freq ** (-beta / 2.0)
    spectrum = (rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape)) * amplitude
    field = np.fft.irfft2(spectrum, s=shape)
    return (field - field.mean()) / field.std()


def rayleigh_speckle(
    rng: np.random.Generator, shape: tuple[int, int], axial: float = 0.6, lateral: float = 1.2
) -> np.ndarray:
    """Fully developed speckle: the envelope of complex Gaussian scatterers blurred by a Gaussian point-spread
    function (standard deviations ``axial`` along y and ``lateral`` along x, pixels), scaled to unit mean square.
    Its amplitude is Rayleigh distributed (Wagner et al., IEEE Trans Sonics Ultrason 1983)."""
    h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    transfer = np.exp(-2.0 * np.pi**2 * ((axial * fy) ** 2 + (lateral * fx) ** 2))
    scatter = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    envelope = np.abs(np.fft.ifft2(np.fft.fft2(scatter) * transfer))
    return envelope / np.sqrt(np.mean(envelope**2))


def background_std(image: np.ndarray, region: np.ndarray) -> float:
    """The background's standard deviation: of the lesion-free ``image`` over the tissue ``region`` the lesion lies
    in (the inner breast without pectoral muscle, the whole ultrasound image, the bone)."""
    if not region.any():
        raise DataError("phantom: no background tissue left around the lesion at this image size; use a larger "
                        "data.image_size (at least 32 x 32 is advised).")
    return float(image[region].std())


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of ``region`` (stored grid) from its edge and from the image border, in pixels."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def _place(
    rng: np.random.Generator, dist: np.ndarray, margin: float, preferred: np.ndarray | None = None
) -> tuple[float, float]:
    """A random point of the region whose :func:`_depth` is ``dist``, at least ``margin`` pixels inside it, within
    ``preferred`` where possible; the deepest pixels of the region when it is too small for the margin."""
    candidates = dist > margin
    if preferred is not None and (candidates & preferred).any():
        candidates &= preferred
    elif not candidates.any():
        candidates = dist >= dist.max() - 0.5
    idx = np.flatnonzero(candidates)
    row, col = np.unravel_index(int(idx[rng.integers(len(idx))]), candidates.shape)
    return float(row + rng.uniform(0.25, 0.75)), float(col + rng.uniform(0.25, 0.75))


@dataclass(frozen=True)
class _Patch:
    """A lesion rendered on a crop of the image: its stored-grid signal (>= 0) and mask, and where they go."""

    rows: slice
    cols: slice
    signal: np.ndarray
    mask: np.ndarray

    def full(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Signal and mask on the whole stored grid."""
        signal, mask = np.zeros(size), np.zeros(size, bool)
        signal[self.rows, self.cols], mask[self.rows, self.cols] = self.signal, self.mask
        return signal, mask


def _patch(
    size: tuple[int, int],
    centre: tuple[float, float],
    half: float,
    render: Callable[[np.ndarray, np.ndarray], np.ndarray],
    outline: bool = False,
) -> _Patch:
    """Render ``render(yy, xx)`` (render grid, zero outside the lesion) on the crop of half side ``half`` around
    ``centre``, and reduce it to the stored grid. The mask is the signal's support, or its convex hull when
    ``outline`` is set (calcification clusters)."""
    h, w = size
    y0, y1 = max(int(np.floor(centre[0] - half)) - 1, 0), min(int(np.ceil(centre[0] + half)) + 1, h)
    x0, x1 = max(int(np.floor(centre[1] - half)) - 1, 0), min(int(np.ceil(centre[1] + half)) + 1, w)
    signal = render(*render_coords(y0, x0, y1 - y0, x1 - x0))
    support = signal > 0
    if outline and support.any():
        support = convex_hull_image(support)
    return _Patch(slice(y0, y1), slice(x0, x1), _reduce(signal), _reduce_any(support))


@dataclass(frozen=True)
class _Shape:
    """An irregular closed shape: mean radius, low-order radial harmonics (lobulation) and optional spicules, all in
    the shape's own frame (turned per view), in stored pixels."""

    radius: float
    harmonics: np.ndarray  # (K, 3): order k, amplitude, phase
    spicules: np.ndarray  # (S, 3): angle, length, half width

    def boundary(self, theta: np.ndarray) -> np.ndarray:
        r = np.ones_like(theta)
        for k, amp, phase in self.harmonics:
            r = r + amp * np.cos(k * theta + phase)
        return self.radius * r

    @property
    def extent(self) -> float:
        """Largest distance from the centre that the shape reaches (boundary or spicule tip)."""
        reach = float(self.boundary(np.linspace(0.0, 2.0 * np.pi, 256, endpoint=False)).max())
        if len(self.spicules):
            reach = max(reach, float((self.boundary(self.spicules[:, 0]) + self.spicules[:, 1]).max()))
        return reach


def _draw_shape(rng: np.random.Generator, radius: float, lobulation: float, n_spicules: int) -> _Shape:
    orders = np.arange(2, 6, dtype=float)
    amps = rng.uniform(0.0, lobulation, size=len(orders)) / np.sqrt(orders - 1.0)
    harmonics = np.stack([orders, amps, rng.uniform(0, 2 * np.pi, size=len(orders))], axis=1)
    spicules = np.zeros((0, 3))
    if n_spicules:
        spicules = np.stack(
            [
                np.sort(rng.uniform(0, 2 * np.pi, size=n_spicules)),
                rng.uniform(0.6, 1.4, size=n_spicules) * radius,
                rng.uniform(0.3, 0.5, size=n_spicules),
            ],
            axis=1,
        )
    return _Shape(radius=radius, harmonics=harmonics, spicules=spicules)


def shape_signal(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, rotation: float, shape: _Shape) -> np.ndarray:
    """The lesion profile of ``shape`` centred at (cy, cx) and turned by ``rotation``: a plateau of 1 with a smooth
    margin, smoothstep((1 - d) / ``MARGIN``), d = distance over the boundary radius in that direction; spicules
    tapering linearly to their tips (peak ``SPICULE_PEAK``); exactly 0 outside."""
    dy, dx = yy - cy, xx - cx
    d = np.hypot(dy, dx) / shape.boundary(np.arctan2(dy, dx) - rotation)
    t = np.clip((1.0 - d) / MARGIN, 0.0, 1.0)
    signal = t * t * (3.0 - 2.0 * t)
    for angle, length, half_width in shape.spicules:
        world = angle + rotation
        along = dx * np.cos(world) + dy * np.sin(world)
        across = -dx * np.sin(world) + dy * np.cos(world)
        base = float(shape.boundary(np.array([angle]))[0])
        taper = np.clip((base + length - along) / length, 0.0, 1.0) * (along > 0.5 * base)
        spicule = SPICULE_PEAK * np.clip(1.0 - (across / half_width) ** 2, 0.0, None) * np.minimum(taper, 1.0)
        signal = np.maximum(signal, spicule)
    return signal


@dataclass(frozen=True)
class _Cluster:
    """A microcalcification cluster: speck offsets (n, 2) as (dy, dx) from its centre, speck radii, cluster radius."""

    offsets: np.ndarray
    radii: np.ndarray
    radius: float


def _draw_cluster(rng: np.random.Generator, image_height: int) -> _Cluster:
    radius = max(rng.uniform(*CALC_CLUSTER_RADIUS) * image_height, 0.65 * CALC_SPACING * np.sqrt(CALC_SPECKS[0]))
    room = int((radius / (0.65 * CALC_SPACING)) ** 2)  # specks that fit at CALC_SPACING (random packing)
    n = min(int(rng.integers(CALC_SPECKS[0], CALC_SPECKS[1] + 1)), max(room, CALC_SPECKS[0]))
    offsets: list[np.ndarray] = []
    for _ in range(50 * n):
        if len(offsets) == n:
            break
        r, t = radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        cand = np.array([r * np.sin(t), r * np.cos(t)])
        if all(np.hypot(*(cand - o)) >= CALC_SPACING for o in offsets):
            offsets.append(cand)
    return _Cluster(np.array(offsets), rng.uniform(*CALC_SPECK_RADIUS, size=len(offsets)), radius)


def cluster_signal(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, rotation: float, cluster: _Cluster
) -> np.ndarray:
    """The specks of ``cluster`` turned by ``rotation`` about (cy, cx): peak 1, profile 1 - d^2, 0 outside."""
    signal = np.zeros_like(yy)
    c, s = np.cos(rotation), np.sin(rotation)
    for (oy, ox), r in zip(cluster.offsets, cluster.radii, strict=True):
        py, px = cy + s * ox + c * oy, cx + c * ox - s * oy
        signal = np.maximum(signal, np.clip(1.0 - ((yy - py) ** 2 + (xx - px) ** 2) / r**2, 0.0, None))
    return signal


def _view(view: str, image: np.ndarray, lesion_free: np.ndarray, mask: np.ndarray, flip: bool = False) -> PhantomView:
    if flip:
        image, lesion_free, mask = image[:, ::-1], lesion_free[:, ::-1], mask[:, ::-1]
    return PhantomView(
        view=view,
        image=np.ascontiguousarray(np.clip(image, 0.0, 1.0)),
        lesion_free=np.ascontiguousarray(np.clip(lesion_free, 0.0, 1.0)),
        mask=np.ascontiguousarray(mask),
    )


# ---- mammography ---------------------------------------------------------------------------------------------------
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


def _render_mammography(
    rng: np.random.Generator, size: tuple[int, int], positive: bool, contrast: float
) -> tuple[str, list[PhantomView]]:
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


# ---- ultrasound ----------------------------------------------------------------------------------------------------
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
    pixels). It starts strictly below the lesion, so the lesion mask never includes it."""
    rows = np.arange(signal.shape[0])[:, None]
    inside = signal > 0
    bottom = np.where(inside.any(axis=0), signal.shape[0] - 1 - np.argmax(inside[::-1], axis=0), signal.shape[0])
    lateral = signal.max(axis=0)
    below = rows > bottom[None, :]
    return 1.0 + strength * lateral[None, :] * below * np.exp(-(rows - bottom[None, :]) / decay)


def _render_ultrasound(
    rng: np.random.Generator, size: tuple[int, int], positive: bool, contrast: float
) -> tuple[str, list[PhantomView]]:
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


# ---- X-ray fracture ------------------------------------------------------------------------------------------------
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
    width. Weighted by the bone's projected thickness (the gap removes bone), exactly 0 outside the bone."""
    phi, outer = bone["obliquity"], bone["outer"]
    rel = along - bone["position"]
    t = across * np.cos(phi) + rel * np.sin(phi)
    perp = -across * np.sin(phi) + rel * np.cos(phi)
    section = np.clip(1.0 - (perp / XRAY_FRACTURE_WIDTH) ** 2, 0.0, None)
    span = outer / np.cos(phi)
    start = bone["side"] * t - (1.0 - 2.0 * bone["reach"]) * span
    extent = np.clip(start / (0.3 * span), 0.0, 1.0) if bone["reach"] < 1.0 else 1.0
    return section * extent * _bone_profile(across, outer, bone["inner"])


def _render_xray(
    rng: np.random.Generator, size: tuple[int, int], positive: bool, contrast: float
) -> tuple[str, list[PhantomView]]:
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
            patch = _patch(size, (centre[0] + 0.5, centre[1] + 0.5), outer / np.cos(bone["obliquity"]) + 2.0,
                           lambda yy, xx: fracture_signal(*frame(yy, xx), bone))
            signal, mask = patch.full(size)
            std = background_std(lesion_free, in_bone > 0.99)
            image = lesion_free - contrast * REFERENCE_PEAK["fracture"] * std * signal
        views.append(_view(view, image, lesion_free, mask))
    return kind, views


# ---- cohort ---------------------------------------------------------------------------------------------------------
_RENDERERS = {"mammography": _render_mammography, "ultrasound": _render_ultrasound, "xray": _render_xray}


def phantom_labels(config: DataConfig, seed: int) -> np.ndarray:
    """Labels of the cohort's patients: exactly ``round(n_patients * positive_fraction)`` positives (at least one, and
    at least one negative), in a seeded random order."""
    n = config.n_patients
    n_pos = min(max(int(round(n * config.positive_fraction)), 1), n - 1)
    labels = np.zeros(n, np.int64)
    labels[:n_pos] = 1
    return np.random.default_rng([seed, 0]).permutation(labels)


def patient_id(index: int) -> str:
    """The id of phantom patient ``index``."""
    return f"P{index:05d}"


def render_patient(config: DataConfig, seed: int, index: int, positive: bool) -> PhantomPatient:
    """Render phantom patient ``index`` of the cohort made with ``seed`` (both views, lesion-free copies, masks).

    The patient draws from its own generator seeded by ``(seed, 1, index)``: the same patient comes out the same
    whatever the cohort size, and at another ``lesion_contrast`` only the lesion's amplitude changes. The lesion's
    peak is ``lesion_contrast`` times a conspicuity factor drawn log-uniformly from ``CONSPICUITY`` times
    ``REFERENCE_PEAK`` of its kind, in background standard deviations.
    """
    rng = np.random.default_rng([seed, 1, index])
    contrast = config.lesion_contrast * float(np.exp(rng.uniform(*np.log(CONSPICUITY))))
    kind, views = _RENDERERS[config.modality](rng, tuple(config.image_size), positive, contrast)
    return PhantomPatient(
        patient_id=patient_id(index),
        label=int(positive),
        source_label=kind,
        contrast=contrast if positive else 0.0,
        views=tuple(views),
    )


def phantom_view(config: DataConfig, seed: int, image_id: str) -> PhantomView:
    """Re-render one image of the cohort made by :func:`generate_cohort` with ``config`` and ``seed``, with its
    lesion-free version and its mask: the ground truth of a lesion removal (``lesion_free``), for example.

    Raises:
        DataError: ``image_id`` is not one of this cohort's images (``P<index>_<view>``).
    """
    patient, _, view = image_id.partition("_")
    index = int(patient[1:]) if patient[:1] == "P" and patient[1:].isdigit() else -1
    if not 0 <= index < config.n_patients or view not in VIEWS[config.modality]:
        raise DataError(
            f"image id {image_id!r} is not in this phantom cohort ({config.n_patients} {config.modality} patients, "
            f"ids {patient_id(0)}_{VIEWS[config.modality][0]} ...); pass an id from its cohort table."
        )
    rendered = render_patient(config, seed, index, bool(phantom_labels(config, seed)[index]))
    return next(v for v in rendered.views if v.view == view)


def generate_cohort(
    config: DataConfig, seed: int, out_dir: str | Path, relative_to: str | Path | None = None
) -> pd.DataFrame:
    """Render the phantom cohort of ``config`` into ``out_dir`` and return its cohort table.

    Images are 16-bit grey PNGs in ``out_dir/images`` (``<patient>_<view>.png``), lesion masks 8-bit PNGs (0 or 255)
    in ``out_dir/masks``, both at ``config.image_size``. Negative patients have no mask file and an empty
    ``mask_path`` (no annotation; :func:`medadv.data.images.load_split` gives them an all-False mask).

    Args:
        config: the profile's ``data`` section (modality, n_patients, positive_fraction, image_size, lesion_contrast).
        seed: the cohort's seed (the profile's seed); the same seed gives byte-identical files.
        out_dir: folder to write into (created if missing).
        relative_to: folder that the table's ``path`` and ``mask_path`` are relative to (``out_dir`` or a parent of
            it); ``out_dir`` when None. Notebook 00 passes the run folder, the root of a phantom run's cohort paths.

    Returns:
        The cohort table (:data:`medadv.data.cohort.COHORT_COLUMNS`) with an empty ``split`` column, one row per image
        in patient order.

    Raises:
        ConfigError: ``out_dir`` does not lie inside ``relative_to``.
    """
    out_dir = Path(out_dir).resolve()
    base = Path(relative_to).resolve() if relative_to is not None else out_dir
    if not out_dir.is_relative_to(base):
        raise ConfigError(
            f"phantom output folder {out_dir} is not inside {base}; the cohort's paths are relative to it."
        )
    images_dir, masks_dir = out_dir / "images", out_dir / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    labels = phantom_labels(config, seed)
    rows = []
    log.info("rendering %d %s phantom patients into %s", config.n_patients, config.modality, out_dir)
    for index in tqdm(range(config.n_patients), desc="phantom", disable=not in_notebook_progress()):
        patient = render_patient(config, seed, index, bool(labels[index]))
        for view in patient.views:
            image_id = f"{patient.patient_id}_{view.view}"
            image_path = images_dir / f"{image_id}.png"
            save_png16(image_path, view.image)
            mask_rel = ""
            if patient.label:
                mask_path = masks_dir / f"{image_id}.png"
                save_png8(mask_path, view.mask)
                mask_rel = mask_path.relative_to(base).as_posix()
            rows.append(
                {
                    "image_id": image_id,
                    "patient_id": patient.patient_id,
                    "path": image_path.relative_to(base).as_posix(),
                    "label": patient.label,
                    "mask_path": mask_rel,
                    "view": view.view,
                    "split": "",
                    "modality": config.modality,
                    "source_label": patient.source_label,
                }
            )
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))
