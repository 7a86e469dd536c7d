"""Reader-study session packages (paper 001, Table 2): selection, disjointness, balance, files, answer key, config.

The run folder here is hand-made: a tiny cohort of 32x32 PNGs and notebook 02's two index tables written with the
same writers notebook 02 uses (:mod:`medadv.data.adversarial`); the fakes are the reals shifted in grey level, so a
displayed image can be traced back to its source file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv.config import load_profile
from medadv.data.adversarial import write_adversarial_set, write_education_set
from medadv.data.cohort import validate_cohort
from medadv.data.images import read_image
from medadv.data.pixels import save_png16
from medadv.errors import ConfigError, DataError, RunError
from medadv.layout import ANSWER_KEY_FILE, RunLayout
from medadv.reader_app import ReaderConfig, build_sessions, plan_sessions
from medadv.reader_app.analysis import load_responses
from medadv.reader_app.packages import ANSWER_KEY_COLUMNS
from medadv.reader_app.page import render_page
from medadv.report import RunContext
from medadv.stages.input_detection import panel_folder
from medadv.stages.reader_study import build_run_packages, cohort_modality, read_and_analyse, simulate_run_responses
from PIL import Image

SIZE = (32, 32)


def make_reader_run(
    root: Path, n_train: int = 24, n_heldout: int = 24, n_education: int = 6, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A run folder with a cohort (half val, half test among the held-out images; labels alternate) and notebook
    02's adversarial and education indexes. Fakes are ``clip(real + 0.2)``; returns (cohort, adversarial, education)."""
    rng = np.random.default_rng(seed)
    rows, images = [], {}
    splits = ["train"] * n_train + ["val", "test"] * (n_heldout // 2)
    for k, split in enumerate(splits):
        image_id = f"img{k:03d}"
        images[image_id] = rng.uniform(0.1, 0.7, SIZE)
        rel = f"data/phantom/{image_id}.png"
        save_png16(root / rel, images[image_id])
        rows.append(
            {
                "image_id": image_id,
                "patient_id": f"p{k:03d}",
                "path": rel,
                "label": k % 2,
                "mask_path": "",
                "view": "CC",
                "split": split,
                "modality": "mammography",
                "source_label": "x",
            }
        )
    cohort = validate_cohort(pd.DataFrame(rows), require_split=True)
    held = cohort[cohort["split"] != "train"].reset_index(drop=True)
    real = np.stack([images[i] for i in held["image_id"]])[:, None]
    adversarial, _ = write_adversarial_set(RunLayout(root), held, real, np.clip(real + 0.2, 0, 1))
    train_ids = list(cohort.loc[cohort["split"] == "train", "image_id"][:n_education])
    treal = np.stack([images[i] for i in train_ids])[:, None]
    education, _ = write_education_set(RunLayout(root), train_ids, treal, np.clip(treal + 0.2, 0, 1))
    return cohort, adversarial, education


def build(root: Path, counts=(5, 6, 8, 4, 10), seed: int = 11, **tables):
    cohort, adversarial, education = tables.get("tables") or make_reader_run(root)
    return build_sessions(
        cohort, root, root, adversarial, education, root / "data" / "reader_packages", counts, seed, SIZE
    ), cohort


def as_uint8(path: Path) -> np.ndarray:
    return np.round(read_image(path) * 255).astype(np.uint8)


def test_sessions_follow_the_paper_design(tmp_path: Path) -> None:
    packages, cohort = build(tmp_path)
    key = packages.answer_key
    assert list(key.columns) == list(ANSWER_KEY_COLUMNS)
    assert packages.sessions["built"].tolist() == [5, 6, 8, 4, 10]
    ids = {s: set(key.loc[key["session"] == s, "source_image_id"]) for s in range(1, 6)}
    split = dict(zip(cohort["image_id"], cohort["split"], strict=True))
    label = dict(zip(cohort["image_id"], cohort["label"], strict=True))
    assert {split[i] for i in ids[1] | ids[2] | ids[4]} == {"train"}
    assert {split[i] for i in ids[3] | ids[5]} <= {"val", "test"}
    # no image twice (Session 4 aside); an image and its own fake never both appear in Sessions 3 and 5
    assert not ids[1] & ids[2] and not ids[3] & ids[5]
    assert key[key["session"] != 4].duplicated("source_image_id").sum() == 0
    for s in (3, 5):
        part = key[key["session"] == s]
        assert (part["truth"] == "real").sum() == (part["truth"] == "fake").sum() == len(part) // 2
        for lab in (0, 1):  # each class split evenly between real and fake (to one image)
            cls = part[part["source_label"] == lab]
            assert abs((cls["truth"] == "real").sum() - (cls["truth"] == "fake").sum()) <= 1
        fakes = part[part["truth"] == "fake"]
        assert (fakes["shown_label"] == 1 - fakes["source_label"]).all()
    assert (key.loc[key["session"].isin([1, 2]), "truth"] == "real").all()
    assert (key.loc[key["session"] == 4, "truth"] == "triplet").all()
    for s in range(1, 6):
        assert key.loc[key["session"] == s, "order"].tolist() == list(range(1, len(ids[s]) + 1))
    assert all(label[i] == lab for i, lab in zip(key["source_image_id"], key["source_label"], strict=True))
    # readers see codes, not cohort ids (which may carry the class); one image keeps its code across sessions
    assert not set(key["image_id"]) & set(cohort["image_id"])
    assert (key.groupby("source_image_id")["image_id"].nunique() == 1).all()
    assert (key.groupby("image_id")["source_image_id"].nunique() == 1).all()


def test_session_folders_hold_no_answers_and_show_the_right_pixels(tmp_path: Path) -> None:
    packages, cohort = build(tmp_path)
    key = packages.answer_key
    assert (packages.root / ANSWER_KEY_FILE).is_file()
    assert pd.read_csv(packages.root / ANSWER_KEY_FILE, dtype={"image_id": str, "source_image_id": str}).equals(key)
    paths = dict(zip(cohort["image_id"], cohort["path"], strict=True))
    for s in range(1, 6):
        folder = packages.session_dir(s)
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert "index.html" in names and "manifest.csv" in names
        assert all(re.fullmatch(r"images/\d{4}(_(real|fake|diff))?\.png", n) for n in names if n.startswith("images/"))
        manifest = pd.read_csv(folder / "manifest.csv", dtype={"image_id": str})
        assert not {"truth", "source_label", "shown_label", "label", "split"} & set(manifest.columns)
        rows = key[key["session"] == s]
        assert manifest["image_id"].tolist() == rows["image_id"].tolist()
        assert manifest["order"].tolist() == rows["order"].tolist()
        if s == 4:
            assert len(names) == 2 + 3 * len(rows)
            continue
        assert len(names) == 2 + len(rows)
        for row, file in zip(rows.itertuples(), manifest["file"], strict=True):
            with Image.open(folder / file) as img:
                assert img.mode == "L" and img.size == SIZE[::-1]
                shown = np.array(img)
            real = as_uint8(tmp_path / paths[row.source_image_id])
            if row.truth == "fake":
                fake = tmp_path / f"data/adversarial/{row.split}/{row.source_image_id}.png"
                np.testing.assert_array_equal(shown, as_uint8(fake))
                assert np.abs(shown.astype(int) - real).max() > 20
            else:
                np.testing.assert_array_equal(shown, real)
    manifest4 = pd.read_csv(packages.session_dir(4) / "manifest.csv", dtype={"image_id": str})
    assert list(manifest4.columns) == ["order", "image_id", "real_file", "fake_file", "diff_file"]
    first = manifest4.iloc[0]
    source = key.loc[(key["session"] == 4) & (key["order"] == 1), "source_image_id"].item()
    np.testing.assert_array_equal(
        np.array(Image.open(packages.session_dir(4) / first["diff_file"])),
        as_uint8(tmp_path / f"data/education/{source}_diff.png"),
    )


def test_index_html_is_self_contained_and_carries_no_labels(tmp_path: Path) -> None:
    packages, _ = build(tmp_path)
    for s in (3, 4):
        page = (packages.session_dir(s) / "index.html").read_text()
        assert "__SESSION_JSON__" not in page and "/*__APP_JS__*/" not in page
        assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
        assert "http://" not in page and "https://" not in page
        blob = re.search(r'<script type="application/json" id="session-data">(.*?)</script>', page, re.S).group(1)
        data = json.loads(blob)
        assert data["session"] == s and data["mode"] == ("educate" if s == 4 else "read")
        manifest = pd.read_csv(packages.session_dir(s) / "manifest.csv", dtype={"image_id": str})
        assert [i["image_id"] for i in data["items"]] == manifest["image_id"].tolist()
        if s == 3:
            assert all(set(item) == {"image_id", "file"} for item in data["items"])
            assert "fake" not in data["instructions"].lower()
    files = {p.resolve() for p in packages.files}
    assert files == {p.resolve() for p in (tmp_path / "data" / "reader_packages").rglob("*") if p.is_file()}


def test_order_is_fixed_by_the_seed(tmp_path: Path) -> None:
    tables = make_reader_run(tmp_path)
    a, _ = build(tmp_path, tables=tables)
    digest_a = {p.name + str(p.parent): hashlib.sha256(p.read_bytes()).hexdigest() for p in a.files}
    b, _ = build(tmp_path, tables=tables)
    digest_b = {p.name + str(p.parent): hashlib.sha256(p.read_bytes()).hexdigest() for p in b.files}
    assert a.answer_key.equals(b.answer_key) and digest_a == digest_b
    c, _ = build(tmp_path, tables=tables, seed=12)
    assert not a.answer_key[["session", "image_id"]].equals(c.answer_key[["session", "image_id"]])


def test_too_few_images_shrinks_in_proportion_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cohort, adversarial, education = make_reader_run(tmp_path, n_train=10, n_heldout=20, n_education=3)
    with caplog.at_level(logging.WARNING, logger="medadv.reader_app.packages"):
        key, sessions = plan_sessions(cohort, adversarial, education, (10, 10, 14, 5, 16), seed=1)
    assert sessions["requested"].tolist() == [10, 10, 14, 5, 16]
    assert sessions["built"].tolist() == [5, 5, 10, 3, 10]
    assert sessions.loc[sessions["session"].isin([3, 5]), "built"].mod(2).eq(0).all()
    assert key.groupby("session").size().tolist() == [5, 5, 10, 3, 10]
    assert len([r for r in caplog.records if "requested but only" in r.getMessage()]) == 3


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    cohort, adversarial, education = make_reader_run(tmp_path)
    with pytest.raises(DataError, match="would be empty"):
        plan_sessions(cohort, adversarial, education.iloc[:0], (2, 2, 2, 2, 2), seed=1)
    with pytest.raises(DataError, match="missing columns"):
        plan_sessions(cohort, adversarial.drop(columns="fake_label"), education, (2, 2, 2, 2, 2), seed=1)
    with pytest.raises(DataError, match="missing"):
        plan_sessions(cohort, adversarial.iloc[1:], education, (2, 2, 2, 2, 2), seed=1)
    heldout_id = adversarial["image_id"].iloc[0]
    with pytest.raises(DataError, match="not TRAIN images"):
        plan_sessions(cohort, adversarial, education.assign(image_id=heldout_id), (2, 2, 2, 1, 2), seed=1)


def test_reader_config_parses_profiles_and_refuses_bad_values() -> None:
    for name in ("smoke", "default", "full"):
        cfg = ReaderConfig.from_profile(load_profile(name))
        assert len(cfg.session_counts) == 5 and len(cfg.simulated_readers) >= 2
    full = ReaderConfig.from_profile(load_profile("full"))
    assert full.session_counts == (100, 100, 436, 100, 440)  # paper 001, Table 2
    with pytest.raises(ConfigError, match="even"):
        ReaderConfig(session_counts=(1, 1, 3, 1, 2))
    with pytest.raises(ConfigError, match="five positive integers"):
        ReaderConfig.from_section({"session_counts": [1, 1, 2, 1, 2, 4]})
    with pytest.raises(ConfigError, match="unknown keys"):
        ReaderConfig.from_section({"sessions": [1, 1, 2, 1, 2]})
    with pytest.raises(ConfigError, match="unknown keys"):
        ReaderConfig.from_section(
            {"simulated_readers": [{"reader": "A", "real_accuracy": 0.8, "fake_accuracy": 0.5, "speed": 1}]}
        )
    with pytest.raises(ConfigError, match="sum to less than 1"):
        ReaderConfig.from_section(
            {"simulated_readers": [{"reader": "A", "real_accuracy": 0.9, "fake_accuracy": 0.5, "unsure_rate": 0.2}]}
        )
    with pytest.raises(ConfigError, match="education delta"):
        ReaderConfig.from_section(
            {
                "simulated_readers": [
                    {"reader": "A", "real_accuracy": 0.9, "fake_accuracy": 0.9, "education_fake_delta": 0.2}
                ]
            }
        )
    with pytest.raises(ConfigError, match="repeat"):
        ReaderConfig.from_section(
            {"simulated_readers": [{"reader": "A", "real_accuracy": 0.8, "fake_accuracy": 0.5}] * 2}
        )


def test_run_folder_build_registers_every_file(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")
    cohort, adversarial, education = make_reader_run(tmp_path)
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    with pytest.raises(RunError, match="02_gan_training"):
        build_run_packages(ctx, ReaderConfig.from_profile(ctx.profile))
    adversarial.to_csv(tmp_path / "tables" / "adversarial_index.csv", index=False)
    education.to_csv(tmp_path / "tables" / "education_index.csv", index=False)
    config = ReaderConfig.from_profile(ctx.profile)
    packages = build_run_packages(ctx, config)
    assert packages.root == tmp_path / "data" / "reader_packages"
    responses = simulate_run_responses(ctx, packages, config)
    folder = tmp_path / "data" / "reader_responses"
    # the reads handed on in memory are those its written exports give when read back, row for row and value for
    # value (the confidence column's type aside: Int64 in memory, float from text; the analysis types it first)
    back = load_responses(folder).drop(columns="source_file")
    pd.testing.assert_frame_equal(responses, back, check_dtype=False)
    assert responses.drop(columns="confidence").dtypes.equals(back.drop(columns="confidence").dtypes)
    outputs = json.loads((tmp_path / "manifest.json").read_text())["outputs"]
    written = [p for p in (tmp_path / "data" / "reader_packages").rglob("*") if p.is_file()] + list(
        folder.glob("*.csv")
    )
    assert {p.relative_to(tmp_path).as_posix() for p in written} <= set(outputs)
    assert len(list(folder.glob("*.csv"))) == 5 * len(config.simulated_readers)
    with pytest.raises(DataError, match="missing field"):
        render_page({"session": 3})


def test_the_instructions_name_the_cohorts_modality_not_the_profiles(tmp_path: Path) -> None:
    """A BUSI run's packages told the readers they would see mammograms (the profile's phantom modality)."""
    ctx = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")
    cohort, adversarial, education = make_reader_run(tmp_path)
    cohort.assign(modality="ultrasound").to_csv(tmp_path / "cohort.csv", index=False)
    adversarial.to_csv(tmp_path / "tables" / "adversarial_index.csv", index=False)
    education.to_csv(tmp_path / "tables" / "education_index.csv", index=False)
    assert ctx.profile.data.modality == "mammography"
    packages = build_run_packages(ctx, ReaderConfig.from_profile(ctx.profile))
    page = (packages.root / "session1" / "index.html").read_text()
    assert "ultrasound image" in page and "mammogram image" not in page
    assert cohort_modality(cohort.assign(modality=["xray", "ultrasound"] * (len(cohort) // 2))) == "medical"


def test_real_readers_reads_are_kept_for_notebook_06_and_not_replaced_by_the_simulated_panel(tmp_path: Path) -> None:
    """A workshop's folder rerun after the class without its responses_db analysed the simulated panel in the class's
    place without a word, and notebook 06 had no way to read a database's reads."""
    ctx = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")
    cohort, adversarial, education = make_reader_run(tmp_path)
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    adversarial.to_csv(tmp_path / "tables" / "adversarial_index.csv", index=False)
    education.to_csv(tmp_path / "tables" / "education_index.csv", index=False)
    config = ReaderConfig.from_profile(ctx.profile)
    packages = build_run_packages(ctx, config)
    layout = RunLayout(tmp_path)
    simulated = read_and_analyse(ctx, packages, config, None, None)
    assert json.loads(layout.panel_record.read_text())["readers"] == "simulated"
    assert panel_folder(ctx) == (layout.panel_responses, True)
    readers = tmp_path / "class"  # the readers' exports: the simulated panel's under other ids
    readers.mkdir()
    for path in sorted(layout.panel_responses.glob("*.csv")):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.assign(reader="P" + table["reader"]).to_csv(readers / path.name.replace("_R", "_PR"), index=False)
    real = read_and_analyse(ctx, packages, config, str(readers), None)
    assert real.results.label == "real" and real.source == str(readers)
    assert sorted(p.name for p in layout.panel_responses.glob("*.csv")) == sorted(p.name for p in readers.glob("*.csv"))
    assert json.loads(layout.panel_record.read_text()) == {
        "readers": "real",
        "source": str(readers),
        "given_as": "responses_dir",
        "left_out": [],
    }
    assert panel_folder(ctx) == (layout.panel_responses, False)
    pd.testing.assert_frame_equal(
        real.results.accuracy.drop(columns="reader"), simulated.results.accuracy.drop(columns="reader")
    )
    with pytest.raises(RunError) as info:
        read_and_analyse(ctx, packages, config, None, None)
    assert f"holds the real readers' reads that notebook 05 analysed last (from {readers})" in str(info.value)
    assert f"Give responses_dir={readers} again" in str(info.value) and "delete" in str(info.value)
    assert json.loads(layout.panel_record.read_text())["readers"] == "real"  # nothing replaced
    for path in layout.panel_responses.iterdir():
        path.unlink()
    assert read_and_analyse(ctx, packages, config, None, None).results.label == "simulated"


def test_sessions_3_and_5_are_drawn_by_patient(tmp_path: Path) -> None:
    """Issue 11 item 8: no patient's images are split between real and fake or between Sessions 3 and 5."""
    cohort, adversarial, education = make_reader_run(tmp_path, n_train=8, n_heldout=60, n_education=3)
    held = cohort["split"] != "train"
    sizes = np.resize([1, 2, 3, 4], 40)  # patients of 1-4 images (views, breasts), both classes
    patient_of = np.repeat([f"q{j:02d}" for j in range(len(sizes))], sizes)[: int(held.sum())]
    cohort.loc[held, "patient_id"] = patient_of
    for seed in range(5):
        key, sessions = plan_sessions(cohort, adversarial, education, (2, 2, 20, 2, 24), seed=seed)
        assert sessions["built"].tolist() == [2, 2, 20, 2, 24]
        reads = key[key["session"].isin([3, 5])].merge(
            cohort[["image_id", "patient_id"]], left_on="source_image_id", right_on="image_id"
        )
        bins = reads.groupby("patient_id")[["session", "truth"]].nunique()
        assert (bins["session"] == 1).all() and (bins["truth"] == 1).all()
        assert reads.groupby("patient_id").size().max() > 1  # whole multi-image patients were drawn
        for s, n in ((3, 20), (5, 24)):
            part = reads[reads["session"] == s]
            assert (part["truth"] == "real").sum() == (part["truth"] == "fake").sum() == n // 2
            positives = part.groupby("truth")["source_label"].sum()
            assert positives["real"] == positives["fake"]  # the same class mix among the reals and the fakes
