"""The notebooks themselves: committed clean, and run end to end through papermill on the smoke profile.

The smoke pipeline runs once per test session (``smoke_run``, conftest.py); the tests then check each notebook's
outputs, the run-folder contract of DESIGN.md, that the same seed's run inside a sweep (``smoke_sweep``) wrote
byte-identical tables (columns ending in ``_seconds`` are wall-clock measurements, the one documented exception), and
the two-seed sweep's replication and report. Every test that reads those runs is in this module, which one xdist
worker runs whole (conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
import yaml
from _smoke import SMOKE_SEED, SWEEP_SEEDS
from medadv.core import sha256_file
from medadv.kernel import KERNEL_NAME
from medadv.pipeline import DEFAULT_NOTEBOOKS, build_parser, discover_notebooks, run_pipeline
from test_reader_app_browser import browser  # noqa: F401 (a fixture: headless Chromium)

NOTEBOOKS = discover_notebooks(DEFAULT_NOTEBOOKS)
#: Every committed notebook: a run's chain (00-06) and notebook 90, which a sweep runs over its folder.
ALL_NOTEBOOKS = [*NOTEBOOKS, DEFAULT_NOTEBOOKS / "90_replication.ipynb"]
EXPECTED_PARAMETERS = {"run_dir", "profile", "device", "data_manifest", "data_root"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell is not tagged 'parameters'"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: committed with outputs"
    assert "papermill" not in nb.metadata, f"{path.name}: committed with papermill metadata"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_typed_documented_and_match_the_runner(path: Path) -> None:
    params = papermill.inspect_notebook(str(path))
    assert EXPECTED_PARAMETERS <= set(params), f"{path.name}: parameters cell lacks {EXPECTED_PARAMETERS - set(params)}"
    for name, info in params.items():
        assert info["inferred_type_name"] not in ("None", ""), f"{path.name}: {name} has no type annotation"
        assert len(info["help"]) > 10, f"{path.name}: {name} has no help comment"
    runner = build_parser().parse_args([])
    assert params["profile"]["default"] == repr(runner.profile).replace("'", '"')
    assert params["device"]["default"] == repr(runner.device).replace("'", '"')


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_names_the_medadv_kernel_and_checks_for_it_first(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    first = [c for c in nb.cells if c.cell_type == "code"][1].source
    assert first.startswith("try:") and "import medadv" in first.splitlines()[1]
    assert "python -m medadv kernel install" in first.split("\n\n")[0]
    compile(first, path.name, "exec")  # the cell parses (an import split over lines without brackets would not)


def _nbstripout_args() -> list[str]:
    config = yaml.safe_load((DEFAULT_NOTEBOOKS.parent / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"] if h["id"] == "nbstripout"]
    assert len(hooks) == 1, "one nbstripout hook expected in .pre-commit-config.yaml"
    return hooks[0]["args"]


def test_the_pre_commit_hook_keeps_notebooks_as_committed(tmp_path: Path) -> None:
    """A notebook executed and saved by JupyterLab (outputs, counts, widget state, the full language_info, execution
    timings) goes back to its committed bytes; a committed notebook is left as it is."""
    pytest.importorskip("nbstripout")
    path = NOTEBOOKS[3]
    saved = json.loads(path.read_text())
    saved["metadata"]["language_info"].update(
        {
            "codemirror_mode": {"name": "ipython", "version": 3},
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3",
            "version": "3.11.9",
        }
    )
    saved["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for cell in saved["cells"]:
        if cell["cell_type"] == "code":
            cell.update(execution_count=4, outputs=[{"output_type": "stream", "name": "stdout", "text": ["x\n"]}])
            cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    (tmp_path / "saved.ipynb").write_text(json.dumps(saved, indent=1))
    (tmp_path / "committed.ipynb").write_bytes(path.read_bytes())
    for name in ("saved.ipynb", "committed.ipynb"):
        done = subprocess.run(
            [sys.executable, "-m", "nbstripout", *_nbstripout_args(), str(tmp_path / name)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / name).read_bytes() == path.read_bytes(), name


@pytest.mark.notebooks
def test_smoke_run_follows_the_run_folder_contract(smoke_run: Path) -> None:
    run = smoke_run
    for name in ("config.json", "cohort.csv", "summary.json", "manifest.json"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert set(manifest["notebooks"]) == {p.stem for p in NOTEBOOKS}
    for rel, meta in manifest["outputs"].items():
        assert sha256_file(run / rel) == meta["sha256"], rel
    for nb in NOTEBOOKS:
        assert (run / "notebooks" / nb.name).is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert {p.stem for p in NOTEBOOKS} <= set(summary)
    config = json.loads((run / "config.json").read_text())
    assert config["profile"]["name"] == "smoke" and config["device"] == "cpu"
    assert "not for clinical use" in config["intended_use"]


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_notebooks_hold_their_figures(smoke_run: Path, path: Path) -> None:
    run = smoke_run
    outputs = json.loads((run / "manifest.json").read_text())["outputs"]
    saved = [
        rel
        for rel, meta in outputs.items()
        if meta["notebook"] == path.stem and rel.startswith("figures/") and rel.endswith(".png")
    ]
    executed = nbformat.read(run / "notebooks" / path.name, as_version=4)
    shown = [
        out
        for cell in executed.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert saved, f"{path.stem} saved no figure"
    assert len(shown) >= len(saved), f"{path.stem}: {len(saved)} figures saved, {len(shown)} shown in the notebook"
    assert (run / "logs" / f"{path.stem}.log").is_file()


@pytest.mark.notebooks
def test_executed_notebooks_print_no_warning_or_error(smoke_run: Path) -> None:
    # a warning in a cell's output (a library's deprecation, a read-only array handed to torch) is what a reader of
    # the notebook sees first; the smoke run has nothing to warn about
    for path in NOTEBOOKS:
        executed = nbformat.read(smoke_run / "notebooks" / path.name, as_version=4)
        stderr = [
            out.get("text", "")
            for cell in executed.cells
            if cell.cell_type == "code"
            for out in cell.outputs
            if out.get("name") == "stderr" or out.get("output_type") == "error"
        ]
        assert not stderr, f"{path.stem}: {stderr}"


@pytest.mark.notebooks
def test_the_same_seed_in_a_sweep_writes_identical_tables(smoke_run: Path, smoke_sweep: Path) -> None:
    a, b = smoke_run, smoke_sweep / f"seed-{SMOKE_SEED:04d}"
    tables = sorted(p.name for p in (a / "tables").glob("*.csv"))
    assert tables and tables == sorted(p.name for p in (b / "tables").glob("*.csv"))
    for name in tables:
        left, right = pd.read_csv(a / "tables" / name), pd.read_csv(b / "tables" / name)
        timing = [c for c in left.columns if c.endswith("_seconds")]
        if timing:
            pd.testing.assert_frame_equal(left.drop(columns=timing), right.drop(columns=timing), obj=name)
        else:
            assert sha256_file(a / "tables" / name) == sha256_file(b / "tables" / name), name
    assert sha256_file(a / "cohort.csv") == sha256_file(b / "cohort.csv")


EXPECTED_OUTPUTS = {
    "00_data_prep": [
        "tables/cohort_summary.csv",
        "tables/split_leakage_check.csv",
        "figures/cohort_examples.png",
        "figures/intensity_histograms.png",
    ],
    "01_classifier_training": [
        "tables/classifier_metrics.csv",
        "figures/classifier_roc_curves.png",
        "figures/classifier_training_curves.png",
        "checkpoints/vgg_erm.safetensors",
        "checkpoints/vgg_erm.json",
        "checkpoints/multitask_erm.safetensors",
    ],
    "02_gan_training": [
        "tables/adversarial_index.csv",
        "tables/education_index.csv",
        "tables/gan_fidelity.csv",
        "tables/gan_change_localisation.csv",
        "figures/gan_triplets.png",
    ],
    "03_attack_evaluation": [
        "tables/gan_attack_table.csv",
        "tables/corruption_accuracy.csv",
        "tables/robustness_by_recipe.csv",
        "tables/robustness_worst_case.csv",
        "tables/attack_sanity.csv",
        "figures/robustness_curves.png",
        "figures/attack_examples_fgsm.png",
        "figures/attack_examples_pgd.png",
    ],
    "04_gradcam_alignment": [
        "tables/alignment_scores.csv",
        "tables/alignment_tests.csv",
        "tables/explanation_attack.csv",
        "figures/alignment_boxplot.png",
        "tables/fgsm_gradcam_shift.csv",
        "figures/fgsm_gradcam_shift_examples.png",
        "tables/effects.csv",
    ],
    "05_reader_study": [
        "tables/reader_accuracy.csv",
        "tables/reader_session_tests.csv",
        "tables/reader_times.csv",
        "tables/mrmc.csv",
        "figures/reader_accuracy.png",
        "data/reader_packages/answer_key.csv",
    ],
    "06_input_detection": [
        "tables/detection.csv",
        "figures/detection_auc.png",
        "tables/detection_adaptive.csv",
        "tables/detector_thresholds.csv",
        "tables/reader_accuracy_with_machines.csv",
        "tables/reader_session_tests_with_machines.csv",
        "tables/detector_vs_readers.csv",
        "checkpoints/detect/real_fake_classifier.safetensors",
        "data/reader_responses_machine/responses_session3_machine_mahalanobis.csv",
    ],
}


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", sorted(EXPECTED_OUTPUTS))
def test_each_notebook_registers_its_outputs(smoke_run: Path, notebook: str) -> None:
    run = smoke_run
    outputs = json.loads((run / "manifest.json").read_text())["outputs"]
    for rel in EXPECTED_OUTPUTS[notebook]:
        assert rel in outputs, f"{rel} not registered"
        assert outputs[rel]["notebook"] == notebook
        assert (run / rel).stat().st_size > 0


@pytest.mark.notebooks
def test_headline_tables_hold_numbers(smoke_run: Path) -> None:
    run = smoke_run
    metrics = pd.read_csv(run / "tables" / "classifier_metrics.csv")
    assert {
        "recipe",
        "model",
        "split",
        "auc",
        "auc_ci_low",
        "auc_ci_high",
        "sensitivity",
        "specificity",
        "train_seconds",
    } <= set(metrics.columns)
    assert metrics["auc"].between(0, 1).all()
    index = pd.read_csv(run / "tables" / "adversarial_index.csv", dtype={"image_id": str})
    cohort = pd.read_csv(run / "cohort.csv", dtype={"image_id": str})
    assert set(index["image_id"]) == set(cohort.loc[cohort["split"].isin(["val", "test"]), "image_id"])
    assert (index["fake_label"] == 1 - index["source_label"]).all()
    table = pd.read_csv(run / "tables" / "gan_attack_table.csv")
    assert len(table) == 7 and table["value"].notna().any()
    key = pd.read_csv(run / "data" / "reader_packages" / "answer_key.csv")
    sessions = sorted((run / "data" / "reader_packages").glob("session*"))
    assert [p.name for p in sessions] == [f"session{i}" for i in range(1, 6)]
    for session_dir in sessions:
        assert (session_dir / "index.html").is_file()
        assert not any("answer" in p.name for p in session_dir.rglob("*"))
    assert set(key["session"]) == {1, 2, 3, 4, 5}
    for session in (3, 5):
        truth = key.loc[key["session"] == session, "truth"]
        assert (truth == "real").sum() == (truth == "fake").sum() > 0
    shift = pd.read_csv(run / "tables" / "fgsm_gradcam_shift.csv")
    assert list(shift.columns[:7]) == [
        "image_id",
        "model",
        "label_changed",
        "topk_overlap",
        "peak_shift_px",
        "alignment_before",
        "alignment_after",
    ]
    assert set(shift["model"]) == {"multitask_erm", "vgg_erm"} and shift["max_change_grey"].max() <= 2.5 + 1e-3
    summary = json.loads((run / "summary.json").read_text())
    assert isinstance(summary["02_gan_training"]["gan_warnings"], list)


@pytest.mark.notebooks
def test_notebook_03_writes_the_worst_case_and_the_masking_checks(smoke_run: Path) -> None:
    run = smoke_run
    curves = pd.read_csv(run / "tables" / "robustness_curves.csv")
    worst = pd.read_csv(run / "tables" / "robustness_worst_case.csv")
    sanity = pd.read_csv(run / "tables" / "attack_sanity.csv")
    models = set(curves["model"])
    assert "vgg_erm_gp_none" in models and set(worst["model"]) == models and set(sanity["model"]) == models
    assert {"square", "transfer_from_vgg_erm_init_random", "transfer_from_multitask_erm"} <= set(curves["attack"])
    # the worst case is never above an attack run at or below its budget, and its shares add up
    for row in worst.itertuples():
        mine = curves[
            (curves["model"] == row.model)
            & (curves["norm"] == row.norm)
            & (curves["eps"] <= row.eps + 1e-9)
            & (curves["attack"] != "clean")
        ]
        assert row.worst_case_accuracy <= mine["accuracy"].min() + 1e-6, row
        shares = worst.loc[row.Index, [c for c in worst.columns if c.startswith("fooled_first_by_")]].sum()
        assert row.worst_case_accuracy + row.wrong_clean + shares == pytest.approx(1.0, abs=1e-5)
    assert (sanity.groupby("model")["check"].apply(list).map(len) == 6).all()
    assert sanity["passes"].isin([True, False]).all() and sanity["meaning"].str.len().gt(20).all()
    executed = nbformat.read(run / "notebooks" / "03_attack_evaluation.ipynb", as_version=4)
    shown = "".join(
        str(out.get("data", {}).get("text/markdown", ""))
        for cell in executed.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert "passes every check" in shown or "masking suspected" in shown  # the verdict, model by model
    assert "under PGD at the headline budget vgg_erm (image penalty) keeps" in shown.replace("Under", "under")
    effects = pd.read_csv(run / "tables" / "effects.csv", keep_default_na=False, na_values=[""]).set_index("effect")
    robust = effects[effects["reads"].str.startswith("robustness_worst_case")]
    assert len(robust) == 4 and robust["masking_suspected"].notna().all()
    flagged = dict(zip(sanity.loc[~sanity["passes"], "model"], sanity.loc[~sanity["passes"], "check"]))
    for effect, row in robust.iterrows():
        expected = any(m in flagged for m in (row["model"], row["reference"]) if isinstance(m, str))
        assert bool(row["masking_suspected"]) is expected, effect
    assert effects.loc[~effects["reads"].str.startswith("robustness"), "masking_suspected"].isna().all()


@pytest.mark.notebooks
def test_rerunning_a_complete_smoke_run_skips_every_notebook(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"  # a copy: the other tests read the run itself
    shutil.copytree(smoke_run, run)
    before = json.loads((run / "manifest.json").read_text())["notebooks"]
    capsys.readouterr()
    assert run_pipeline("smoke", run, device="cpu") == 0
    assert capsys.readouterr().out.count("skipped") == len(NOTEBOOKS)
    after = json.loads((run / "manifest.json").read_text())["notebooks"]
    assert {n: e["finished"] for n, e in before.items()} == {n: e["finished"] for n, e in after.items()}


@pytest.mark.notebooks
def test_effects_recomputed_from_the_run_tables_match_effects_csv(smoke_run: Path) -> None:
    from medadv.effects import evaluate_run

    run = smoke_run
    written = pd.read_csv(run / "tables" / "effects.csv", keep_default_na=False, na_values=[""])
    again = evaluate_run(run)
    assert written["effect"].tolist() == again["effect"].tolist()
    for column in ("value", "ci_low", "ci_high", "p_value"):
        assert written[column].to_numpy(float) == pytest.approx(again[column].to_numpy(float), rel=1e-5, nan_ok=True)
    as_text = lambda col: ["" if pd.isna(v) else str(bool(v)) for v in col]  # noqa: E731
    assert as_text(written["holds"]) == as_text(again["holds"])


def _report_links(html_text: str) -> list[str]:
    """Every src / href of a report page that loads or opens a file (not an anchor on the page)."""
    return [link for link in re.findall(r'(?:src|href)="([^"]+)"', html_text) if not link.startswith(("#", "data:"))]


@pytest.mark.notebooks
def test_a_run_ends_with_a_self_contained_report(smoke_run: Path) -> None:
    run = smoke_run
    report = run / "report"
    index = (report / "index.html").read_text()
    figures = sorted(p.stem for p in (run / "figures").glob("*.png"))
    tables = sorted(p.stem for p in (run / "tables").glob("*.csv"))
    assert len(figures) > 15 and len(tables) > 25
    for name in figures:
        assert (report / "figures" / f"{name}.png").read_bytes() == (run / "figures" / f"{name}.png").read_bytes()
        caption = re.search(rf'id="figure-{name}".*?<figcaption>(.*?)</figcaption>', index, re.S).group(1)
        assert len(re.sub(r"<[^>]+>", "", caption)) > len(f"Figure {name}.") + 30, (name, caption)
    for name in tables:
        assert f'id="table-{name}"' in index and (report / "tables" / f"{name}.csv").is_file(), name
    for effect in pd.read_csv(run / "tables" / "effects.csv")["effect"]:
        assert f"<code>{effect}</code>:" in index, effect
    competent = json.loads((run / "summary.json").read_text())["01_classifier_training"]["competence"]["competent"]
    assert ("has learned:" if competent else "has not learned enough to be studied") in index
    assert "A smoke run" in index
    sanity = pd.read_csv(run / "tables" / "attack_sanity.csv")  # notebook 03's masking checks, a verdict per model
    for model, checks in sanity.groupby("model"):
        failed = checks.loc[~checks["passes"].astype(bool), "check"]
        verdict = re.search(rf"<code>{model}</code>: ([^<]*)", index).group(1)
        assert ("gradient masking suspected" in verdict) == (len(failed) > 0), (model, verdict)
        assert all(check in verdict for check in failed), (model, verdict)
    for nb in NOTEBOOKS:
        assert f'href="notebooks/{nb.stem}.html"' in index
        page = (report / "notebooks" / f"{nb.stem}.html").read_text()
        executed = nbformat.read(run / "notebooks" / nb.name, as_version=4)
        shown = sum(
            "image/png" in out.get("data", {})
            for cell in executed.cells
            if cell.cell_type == "code"
            for out in cell.outputs
        )
        assert page.count("data:image/png;base64,") >= shown > 0, nb.stem
        assert not re.search(r'<(?:script|link)[^>]*(?:src|href)="https?://', page), nb.stem
    for link in _report_links(index):  # every file the index loads or links lies inside report/
        assert not link.startswith(("http:", "https:", "/", "..")) and (report / link).is_file(), link


@pytest.mark.notebooks
@pytest.mark.browser
def test_the_report_reads_on_a_phone_offline(smoke_run: Path, browser) -> None:  # noqa: F811
    import io

    import numpy as np
    from PIL import Image

    index = smoke_run / "report" / "index.html"
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(index.as_uri())
    page.evaluate("document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; })")
    page.wait_for_function("[...document.images].every(img => img.complete)", timeout=30000)
    state = page.evaluate(
        "({scroll: document.documentElement.scrollWidth, images: [...document.images].map(img => "
        "[img.naturalWidth, img.getBoundingClientRect().right])})"
    )
    assert state["scroll"] <= 390, "the page is wider than a phone's screen"
    assert state["images"] and all(natural > 0 and right <= 390 for natural, right in state["images"])
    shot = np.array(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    assert shot.std() > 20  # text and a banner on white, not a blank page
    banner = page.locator(".banner").first.bounding_box()
    assert banner["y"] < 844 and (np.abs(shot[int(banner["y"]) + 5, int(banner["x"]) + 2] - (176, 0, 32)).max() < 40)
    page.click('a[href="notebooks/03_attack_evaluation.html"]')
    page.wait_for_load_state("load")
    assert page.url.endswith("03_attack_evaluation.html") and "03" in page.inner_text("h1")
    page.click('a[href="../index.html"]')
    page.wait_for_load_state("load")
    assert page.url == index.as_uri()
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == [] and errors == []


@pytest.mark.notebooks
def test_two_seed_smoke_sweep_on_a_local_cluster(smoke_sweep: Path) -> None:
    sweep, seeds = smoke_sweep, SWEEP_SEEDS
    table = pd.read_csv(sweep / "tables" / "replication_effects.csv")
    assert list(table.columns[:8]) == [
        "effect",
        "seeds",
        "n_seeds",
        "mean",
        "ci_low",
        "ci_high",
        "share_holding",
        "paper_value",
    ]
    every, gated = table[table["seeds"] == "all"], table[table["seeds"] == "interpretable"]
    assert list(every["effect"]) == list(gated["effect"])  # each effect over all seeds and over the interpretable ones
    assert (every["n_seeds"] == 2).all() and every["share_holding"].between(0, 1).all()
    assert gated["n_seeds"].between(0, 2).all()
    per_seed = pd.read_csv(sweep / "tables" / "replication_per_seed.csv")
    assert sorted(per_seed["seed"].unique()) == list(seeds)
    for seed in seeds:
        effects = pd.read_csv(sweep / f"seed-{seed:04d}" / "tables" / "effects.csv")
        mine = per_seed[per_seed["seed"] == seed].set_index("effect")["value"]
        assert mine.to_dict() == pytest.approx(effects.set_index("effect")["value"].to_dict(), nan_ok=True)
    cohorts = [pd.read_csv(sweep / f"seed-{s:04d}" / "cohort.csv")["split"].tolist() for s in seeds]
    assert cohorts[0] != cohorts[1]  # the seed drives the cohort and its splits
    assert (sweep / "figures" / "replication_forest.png").is_file()
    index = (sweep / "report" / "index.html").read_text()  # the sweep's report: its seeds, notebook 90, their reports
    assert 'src="figures/replication_forest.png"' in index and 'id="table-replication_effects"' in index
    assert 'href="notebooks/90_replication.html"' in index and f"seeds {seeds[0]}, {seeds[1]}" in index
    for seed in seeds:
        assert f'href="../seed-{seed:04d}/report/index.html"' in index
        assert (sweep / f"seed-{seed:04d}" / "report" / "index.html").is_file()
