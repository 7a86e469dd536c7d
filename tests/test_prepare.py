"""Notebook 00's library: building the cohort of a run (phantom or manifest), its summary, and its figures."""

from __future__ import annotations

import dataclasses

import medadv.data
import numpy as np
import pandas as pd
import pytest
from medadv import DataError
from medadv.config import load_profile
from medadv.data.cohort import COHORT_COLUMNS, SPLITS
from medadv.data.images import load_split
from medadv.data.plots import pick_examples, plot_examples, plot_intensity_histograms
from medadv.data.prepare import build_cohort, cohort_files, cohort_headline, cohort_summary, leakage_table
from medadv.data.splits import check_leakage
from medadv.layout import RunLayout


@pytest.fixture(scope="module")
def tiny_profile():
    return load_profile("smoke", {"data": {"n_patients": 24, "image_size": [32, 32], "positive_fraction": 0.5}})


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory, tiny_profile):
    run_dir = tmp_path_factory.mktemp("run")
    cohort, counts = build_cohort(tiny_profile.data, tiny_profile.seed, RunLayout(run_dir))
    assert counts == check_leakage(cohort)  # the counts of the one leakage check, on the split table
    return run_dir, cohort


def test_phantom_cohort_is_split_and_lives_in_the_run_folder(phantom_run, tiny_profile):
    run_dir, cohort = phantom_run
    assert list(cohort.columns) == list(COHORT_COLUMNS)
    assert set(cohort["split"]) == set(SPLITS) and len(cohort) == 48
    assert cohort["path"].str.startswith("data/phantom/images/").all()
    files = cohort_files(cohort, run_dir)
    assert len(files) == 48 + 24 and all(p.is_file() for p in files)
    test = load_split(cohort, run_dir, tiny_profile.data.image_size, "test")
    assert set(test.labels.tolist()) == {0, 1} and test.has_mask.sum() == (test.labels == 1).sum()


def test_same_profile_gives_same_cohort(phantom_run, tiny_profile, tmp_path):
    _, cohort = phantom_run
    again, _ = build_cohort(tiny_profile.data, tiny_profile.seed, RunLayout(tmp_path))
    pd.testing.assert_frame_equal(cohort, again)


def test_summary_counts_split_label_view(phantom_run):
    _, cohort = phantom_run
    summary = cohort_summary(cohort)
    assert list(summary.columns) == ["split", "label", "view", "images", "patients"]
    assert summary["images"].sum() == len(cohort)
    assert summary["split"].tolist()[0] == "train" and summary["split"].tolist()[-1] == "test"
    assert (summary["images"] == summary["patients"]).all()  # one image per patient and view
    counts = check_leakage(cohort)
    table = leakage_table(counts)
    assert table["patients"].sum() == 24 and table["split"].tolist() == list(SPLITS)
    headline = cohort_headline(cohort, counts)
    assert headline["n_patients"] == 24 and headline["positive_patient_fraction"] == 0.5 and headline["leakage_ok"]


def test_manifest_cohort_keeps_its_official_split(monkeypatch, tmp_path, tiny_profile):
    rows = [
        {
            "image_id": f"i{i}",
            "patient_id": f"p{i // 2}",
            "path": f"x/{i}.png",
            "label": int(i % 4 < 2),
            "mask_path": "",
            "view": "CC",
            "split": SPLITS[(i // 2) % 3],
            "modality": "mammography",
            "source_label": "BENIGN",
        }
        for i in range(24)
    ]
    seen = {}

    def fake_load(manifest, root):
        seen["args"] = (manifest, root)
        return pd.DataFrame(rows)

    monkeypatch.setattr(medadv.data, "load_cohort", fake_load)
    data = dataclasses.replace(tiny_profile.data, manifest="m.yaml", root=str(tmp_path))
    profile = dataclasses.replace(tiny_profile, data=data)
    cohort, _ = build_cohort(profile.data, profile.seed, RunLayout(tmp_path / "run"))
    assert seen["args"] == ("m.yaml", str(tmp_path))
    assert cohort["split"].tolist() == [r["split"] for r in rows]
    assert not (tmp_path / "run" / "data" / "phantom").exists()

    rows[5]["split"] = "train"  # patient p2 (official split: test) now in two splits
    with pytest.raises(DataError, match="p2"):
        build_cohort(profile.data, profile.seed, RunLayout(tmp_path / "run"))


def test_example_grid_and_histograms(phantom_run):
    run_dir, cohort = phantom_run
    picked = pick_examples(cohort, 3, seed=0)
    assert picked["label"].tolist() == [1, 1, 1, 0, 0, 0]
    fig = plot_examples(cohort, run_dir, n=3, seed=0)
    axes = fig.get_axes()
    assert len(axes) == 6 and all(ax.images for ax in axes)
    assert sum(len(ax.collections) for ax in axes[:3]) >= 3  # positive masks outlined
    assert sum(len(ax.collections) for ax in axes[3:]) == 0
    fig = plot_intensity_histograms(cohort, run_dir, max_images=10, seed=0)
    pixel_ax = fig.get_axes()[0]
    assert len(pixel_ax.patches) == 2 and pixel_ax.get_yscale() == "log"
    heights = [np.asarray(p.get_data()[0]) for p in pixel_ax.patches]
    assert all(h.sum() > 0 for h in heights)
