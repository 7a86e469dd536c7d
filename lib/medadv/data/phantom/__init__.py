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

The package follows these parts: :mod:`~medadv.data.phantom.building_blocks` (the parameters above, the records and the
building blocks every modality uses), one module per modality (:mod:`~medadv.data.phantom.mammography`,
:mod:`~medadv.data.phantom.ultrasound`, :mod:`~medadv.data.phantom.xray`), and
:mod:`~medadv.data.phantom.generate` (the cohort: labels, patients, files and table). Every public name of these
modules is importable from ``medadv.data.phantom`` itself.
"""

from __future__ import annotations

from medadv.data.phantom.building_blocks import (
    BACKGROUND_MARGIN,
    CALC_CLUSTER_RADIUS,
    CALC_SPACING,
    CALC_SPECK_RADIUS,
    CALC_SPECKS,
    CONSPICUITY,
    MARGIN,
    MASS_DIAMETER,
    MASS_FRACTION,
    NEGATIVE_LABEL,
    REFERENCE_PEAK,
    SPICULATED_FRACTION,
    SPICULE_PEAK,
    SUPERSAMPLE,
    TEXTURE_BETA,
    US_LESION_DIAMETER,
    US_POSTERIOR_RATIO,
    VIEWS,
    XRAY_FRACTURE_WIDTH,
    PhantomPatient,
    PhantomView,
    background_std,
    cluster_signal,
    powerlaw_field,
    rayleigh_speckle,
    render_coords,
    shape_signal,
    stored_coords,
)
from medadv.data.phantom.generate import (
    generate_cohort,
    patient_id,
    phantom_labels,
    phantom_view,
    render_arrays,
    render_patient,
)
from medadv.data.phantom.mammography import MAMMO_DISPLAY_SCALE, render_mammography
from medadv.data.phantom.ultrasound import US_LOG_GAIN, posterior_profile, render_ultrasound
from medadv.data.phantom.xray import Frame, fracture_signal, render_xray

__all__ = [
    "BACKGROUND_MARGIN",
    "CALC_CLUSTER_RADIUS",
    "CALC_SPACING",
    "CALC_SPECKS",
    "CALC_SPECK_RADIUS",
    "CONSPICUITY",
    "MARGIN",
    "MASS_DIAMETER",
    "MASS_FRACTION",
    "NEGATIVE_LABEL",
    "PhantomPatient",
    "PhantomView",
    "REFERENCE_PEAK",
    "SPICULATED_FRACTION",
    "SPICULE_PEAK",
    "SUPERSAMPLE",
    "TEXTURE_BETA",
    "US_LESION_DIAMETER",
    "US_POSTERIOR_RATIO",
    "VIEWS",
    "XRAY_FRACTURE_WIDTH",
    "background_std",
    "cluster_signal",
    "powerlaw_field",
    "rayleigh_speckle",
    "render_coords",
    "shape_signal",
    "stored_coords",
    "MAMMO_DISPLAY_SCALE",
    "render_mammography",
    "US_LOG_GAIN",
    "posterior_profile",
    "render_ultrasound",
    "Frame",
    "fracture_signal",
    "render_xray",
    "generate_cohort",
    "patient_id",
    "phantom_labels",
    "phantom_view",
    "render_arrays",
    "render_patient",
]
