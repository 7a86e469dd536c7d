"""The phantom's parameters, its two records (:class:`PhantomView`, :class:`PhantomPatient`) and the building blocks
every modality uses: coordinates on the stored and render grids, super-sampled rendering, power-law fields, speckle,
lesion shapes and calcification clusters.

See :mod:`medadv.data.phantom` for how an image is made.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from medadv.errors import DataError

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


@functools.lru_cache(maxsize=8)
def stored_coords(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) of the stored grid, in pixels (read-only, cached).

    Returns:
        (y, x), each an (H, W) read-only array.
    """
    h, w = size
    return _frozen(np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij"))


@functools.lru_cache(maxsize=64)
def render_coords(y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the render sub-pixel centres covering stored pixels [y0, y0 + h) x [x0, x0 + w), in stored
    pixel units, so sizes read the same at any ``SUPERSAMPLE`` (read-only, cached).

    Returns:
        (y, x), each a (h * SUPERSAMPLE, w * SUPERSAMPLE) read-only array.
    """
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

    Returns:
        The field, float64 of ``shape``, zero mean and unit standard deviation.
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
    Its amplitude is Rayleigh distributed (Wagner et al., IEEE Trans Sonics Ultrason 1983).

    Returns:
        The speckle envelope, float64 of ``shape``, unit mean square.
    """
    h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    transfer = np.exp(-2.0 * np.pi**2 * ((axial * fy) ** 2 + (lateral * fx) ** 2))
    scatter = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    envelope = np.abs(np.fft.ifft2(np.fft.fft2(scatter) * transfer))
    return envelope / np.sqrt(np.mean(envelope**2))


def background_std(image: np.ndarray, region: np.ndarray) -> float:
    """The background's standard deviation: of the lesion-free ``image`` over the tissue ``region`` the lesion lies
    in (the inner breast without pectoral muscle, the whole ultrasound image, the bone).

    Returns:
        The standard deviation.
    """
    if not region.any():
        raise DataError(
            "phantom: no background tissue left around the lesion at this image size; use a larger "
            "data.image_size (at least 32 x 32 is advised)."
        )
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
    tapering linearly to their tips (peak ``SPICULE_PEAK``); exactly 0 outside.

    Returns:
        The signal, the shape of ``yy``, in [0, 1]; zero outside the shape.
    """
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
    """The specks of ``cluster`` turned by ``rotation`` about (cy, cx): peak 1, profile 1 - d^2, 0 outside.

    Returns:
        The signal, the shape of ``yy``, in [0, 1]; zero outside the specks.
    """
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
