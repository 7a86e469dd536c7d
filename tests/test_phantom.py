"""The in-silico cohort: determinism, exact masks, two views of one lesion, class balance, three modalities, and a
difficulty knob that moves a simple detector's AUC monotonically."""

from __future__ import annotations

import numpy as np
import pytest
from medadv import ConfigError, DataError
from medadv.config import DataConfig
from medadv.data.cohort import COHORT_COLUMNS, validate_cohort
from medadv.data.images import load_split, read_image, read_mask
from medadv.data.phantom import VIEWS, generate_cohort, phantom_labels, phantom_view, render_patient
from scipy import ndimage
from scipy.stats import mannwhitneyu

SIZE = (32, 32)


def _config(modality: str = "mammography", **kw: object) -> DataConfig:
    base = {
        "modality": modality,
        "n_patients": 12,
        "positive_fraction": 0.5,
        "image_size": SIZE,
        "lesion_contrast": 1.0,
    }
    return DataConfig(**{**base, **kw})


def _positives(config: DataConfig, seed: int, n: int, kind: str | None = None) -> list:
    out = []
    for index in range(200):
        patient = render_patient(config, seed, index, True)
        if kind is None or patient.source_label.startswith(kind):
            out.append(patient)
        if len(out) == n:
            return out
    raise AssertionError(f"no {kind} patient among 200 draws")


# ---- determinism -----------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_files_and_different_seed_differs(tmp_path):
    config = _config(n_patients=10)
    a = generate_cohort(config, 3, tmp_path / "a")
    b = generate_cohort(config, 3, tmp_path / "b")
    generate_cohort(config, 4, tmp_path / "c")  # its files are compared below
    assert a.equals(b)
    for rel in list(a["path"]) + [p for p in a["mask_path"] if p]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    differ = [(tmp_path / "a" / p).read_bytes() != (tmp_path / "c" / p).read_bytes() for p in a["path"]]
    assert all(differ)


def test_a_patient_does_not_depend_on_cohort_size():
    small, large = _config(n_patients=10), _config(n_patients=40)
    p_small, p_large = render_patient(small, 1, 7, True), render_patient(large, 1, 7, True)
    for v_small, v_large in zip(p_small.views, p_large.views, strict=True):
        np.testing.assert_array_equal(v_small.image, v_large.image)


# ---- labels and table ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "fraction", "expected"), [(600, 0.3, 180), (1284, 0.285, 366), (10, 0.01, 1), (10, 0.99, 9)]
)
def test_positive_count_is_exact(n, fraction, expected):
    labels = phantom_labels(_config(n_patients=n, positive_fraction=fraction), 0)
    assert labels.sum() == expected and len(labels) == n


def test_cohort_table_columns_views_and_masks(tmp_path):
    config = _config(n_patients=20, positive_fraction=0.3)
    cohort = validate_cohort(generate_cohort(config, 0, tmp_path / "run" / "phantom", relative_to=tmp_path / "run"))
    assert list(cohort.columns[: len(COHORT_COLUMNS)]) == list(COHORT_COLUMNS)
    assert len(cohort) == 40 and (cohort["split"] == "").all()
    views = cohort.groupby("patient_id")["view"].apply(lambda v: tuple(sorted(v)))
    assert set(views) == {tuple(sorted(VIEWS["mammography"]))}
    assert cohort.groupby("patient_id")["label"].first().sum() == 6
    assert (cohort["mask_path"] == "").eq(cohort["label"] == 0).all()
    assert cohort["path"].str.startswith("phantom/images/").all()
    for row in cohort.itertuples():
        image = read_image(tmp_path / "run" / row.path)
        assert image.shape == SIZE
        if row.label:
            mask = read_mask(tmp_path / "run" / row.mask_path, SIZE)
            assert 3 <= mask.sum() < 0.3 * mask.size
    # positives and negatives alike: lesion kinds recorded
    assert set(cohort.loc[cohort["label"] == 0, "source_label"]) == {"normal"}
    kinds = set(cohort.loc[cohort["label"] == 1, "source_label"])
    assert kinds <= {"mass_lobulated", "mass_spiculated", "calcification"}


def test_output_folder_must_lie_under_the_path_root(tmp_path):
    with pytest.raises(ConfigError, match="not inside"):
        generate_cohort(_config(n_patients=10), 0, tmp_path / "a", relative_to=tmp_path / "b")


def test_stored_mask_and_image_match_the_rendering(tmp_path):
    config = _config(n_patients=10)
    cohort = generate_cohort(config, 5, tmp_path)
    for _, row in cohort[cohort["label"] == 1].head(3).iterrows():
        view = phantom_view(config, 5, row["image_id"])
        np.testing.assert_array_equal(read_mask(tmp_path / row["mask_path"]), view.mask)
        np.testing.assert_allclose(read_image(tmp_path / row["path"]), view.image, atol=0.5 / 65535 + 1e-7)
    negative = cohort[cohort["label"] == 0].iloc[0]
    assert not phantom_view(config, 5, negative["image_id"]).mask.any()
    for bad in ("P00010_CC", "P00001_LAT", "X1_CC", "P00001"):
        with pytest.raises(DataError, match="not in this phantom cohort"):
            phantom_view(config, 5, bad)


# ---- exact masks -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("modality", "kind"), [("mammography", "mass"), ("xray", "fracture")])
def test_mask_is_exactly_where_the_lesion_changes_the_image(modality, kind):
    for patient in _positives(_config(modality, image_size=(48, 48)), 2, 4, kind):
        for view in patient.views:
            changed = view.image != view.lesion_free
            assert view.mask.any()
            np.testing.assert_array_equal(changed, view.mask)


def test_calcification_mask_outlines_every_speck():
    counts = []
    for patient in _positives(_config(image_size=(64, 64)), 2, 5, "calcification"):
        for view in patient.views:
            changed = view.image != view.lesion_free
            assert changed.any() and not (changed & ~view.mask).any()
            assert view.mask.sum() > 1.5 * changed.sum()  # the cluster outline, not just the specks
            counts.append(ndimage.label(changed, np.ones((3, 3)))[1])
    assert min(counts) >= 3 and np.median(counts) >= 4, counts  # several separate bright specks


def test_ultrasound_changes_only_the_lesion_and_the_column_below_it():
    for patient in _positives(_config("ultrasound", image_size=(48, 48)), 2, 4):
        for view in patient.views:
            changed = view.image != view.lesion_free
            outside = changed & ~view.mask
            assert view.mask.any() and (changed & view.mask).sum() >= 0.9 * view.mask.sum()
            rows = np.arange(view.mask.shape[0])[:, None]
            bottom = np.where(view.mask.any(0), view.mask.shape[0] - 1 - np.argmax(view.mask[::-1], 0), -1)
            assert not (outside & (rows <= bottom[None, :])).any()  # posterior shadow/enhancement only below
            assert outside.any()  # and it is there
            assert not (outside & ~view.mask.any(0)[None, :]).any()
            assert patient.source_label in ("hypoechoic_shadowing", "hypoechoic_enhancement")
            lesion_mean = view.image[view.mask].mean()
            assert lesion_mean < view.lesion_free[view.mask].mean()  # hypoechoic


# ---- two views of one lesion -----------------------------------------------------------------------------------
@pytest.mark.parametrize("modality", ["mammography", "ultrasound", "xray"])
def test_two_views_show_the_same_lesion_elsewhere(modality):
    config = _config(modality, image_size=(64, 64))
    for patient in _positives(config, 11, 6):
        first, second = patient.views
        assert (first.view, second.view) == VIEWS[modality]
        area_a, area_b = first.mask.sum(), second.mask.sum()
        assert abs(area_a - area_b) <= 0.2 * max(area_a, area_b) + 4, (patient.source_label, area_a, area_b)
        assert not np.array_equal(first.mask, second.mask)  # different projection / position
        assert not np.allclose(first.lesion_free, second.lesion_free)


def test_negative_patients_carry_no_lesion():
    for modality in VIEWS:
        patient = render_patient(_config(modality), 0, 3, False)
        assert patient.label == 0
        for view in patient.views:
            assert not view.mask.any()
            np.testing.assert_array_equal(view.image, view.lesion_free)


@pytest.mark.parametrize("modality", ["ultrasound", "xray"])
def test_other_modalities_write_a_loadable_cohort(tmp_path, modality):
    config = _config(modality, n_patients=10)
    cohort = validate_cohort(generate_cohort(config, 1, tmp_path))
    assert set(cohort["view"]) == set(VIEWS[modality]) and set(cohort["modality"]) == {modality}
    arrays = load_split(cohort, tmp_path, SIZE)
    assert arrays.images.shape == (20, 1, *SIZE) and arrays.images.dtype == np.float32
    assert 0.0 <= arrays.images.min() and arrays.images.max() <= 1.0 and arrays.images.std() > 0.02
    assert (arrays.masks.reshape(20, -1).any(1) == (arrays.labels == 1)).all()


def test_mass_size_in_pixels_at_64():
    """Masses of roughly 5 to 12 pixels across at 64 x 64 (equivalent diameter of the mask; spicules reach further)."""
    masses = _positives(_config(image_size=(64, 64)), 4, 16, "mass")
    diameters = [2.0 * np.sqrt(p.views[0].mask.sum() / np.pi) for p in masses]
    assert 4.0 <= min(diameters) and max(diameters) <= 17.0 and 6.0 <= np.median(diameters) <= 12.0, diameters


# ---- the difficulty knob ------------------------------------------------------------------------------------------
def baseline_score(image: np.ndarray, modality: str) -> float:
    """A simple lesion detector per modality, the maximum of a matched filter over the image:
    mammography: difference of Gaussians (sigma 1 - 3 px), bright blobs and specks;
    ultrasound: dark blobs after removing each row's median (depth attenuation, layers), Gaussian sigma 2 px;
    X-ray: morphological black top-hat (3 x 3), thin dark lines narrower than the medullary canal."""
    if modality == "mammography":
        return float((ndimage.gaussian_filter(image, 1.0) - ndimage.gaussian_filter(image, 3.0)).max())
    if modality == "ultrasound":
        flat = image - np.median(image, axis=1, keepdims=True)
        return float(-ndimage.gaussian_filter(flat, 2.0)[4:-4, 4:-4].min())
    return float(ndimage.black_tophat(image, size=3)[2:-2, 2:-2].max())


def baseline_auc(modality: str, contrast: float, n: int = 40) -> float:
    config = _config(modality, n_patients=n, image_size=(48, 48), lesion_contrast=contrast)
    labels = phantom_labels(config, 9)
    scores = {0: [], 1: []}
    for index in range(n):
        patient = render_patient(config, 9, index, bool(labels[index]))
        scores[patient.label] += [baseline_score(v.image, modality) for v in patient.views]
    u = mannwhitneyu(scores[1], scores[0]).statistic
    return float(u / (len(scores[0]) * len(scores[1])))


@pytest.mark.parametrize("modality", ["mammography", "ultrasound", "xray"])
def test_lesion_contrast_moves_a_detector_auc_monotonically(modality):
    aucs = [baseline_auc(modality, c) for c in (0.25, 1.0, 4.0)]
    assert aucs[0] < aucs[1] < aucs[2], aucs
    assert aucs[2] - aucs[0] > 0.2 and aucs[2] > 0.85, aucs


# every public name of the former single module data/phantom.py, which the package must keep importable
FORMER_PUBLIC_NAMES = (
    "BACKGROUND_MARGIN",
    "CALC_CLUSTER_RADIUS",
    "CALC_SPACING",
    "CALC_SPECKS",
    "CALC_SPECK_RADIUS",
    "CONSPICUITY",
    "Frame",
    "MAMMO_DISPLAY_SCALE",
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
    "US_LOG_GAIN",
    "US_POSTERIOR_RATIO",
    "VIEWS",
    "XRAY_FRACTURE_WIDTH",
    "background_std",
    "cluster_signal",
    "fracture_signal",
    "generate_cohort",
    "patient_id",
    "phantom_labels",
    "phantom_view",
    "posterior_profile",
    "powerlaw_field",
    "rayleigh_speckle",
    "render_coords",
    "render_patient",
    "shape_signal",
    "stored_coords",
)


def test_the_package_keeps_every_name_of_the_former_module() -> None:
    import medadv.data.phantom as phantom

    missing = [name for name in FORMER_PUBLIC_NAMES if not hasattr(phantom, name)]
    assert not missing
    assert set(FORMER_PUBLIC_NAMES) <= set(phantom.__all__)
    assert phantom.SUPERSAMPLE == 2 and phantom.VIEWS["xray"] == ("AP", "LAT")
    # one object, wherever it is imported from
    from medadv.data.phantom.generate import render_patient as from_module

    assert phantom.render_patient is from_module
