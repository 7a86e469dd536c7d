"""The run-folder context: config.json, registered outputs, summary, clear errors for missing inputs."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from medadv import report
from medadv.core import sha256_file
from medadv.data.cohort import COHORT_COLUMNS
from medadv.errors import RunError
from medadv.report import RunContext


def test_open_writes_config_and_folders(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path / "run", "00_data_prep", profile="smoke", device="cpu")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["profile"]["name"] == "smoke" and config["seed"] == ctx.profile.seed
    assert config["device"] == "cpu"
    assert {"torch", "numpy", "python"} <= set(config["versions"])
    assert "git_commit" in config
    for sub in ("figures", "tables", "checkpoints", "notebooks", "data"):
        assert (tmp_path / "run" / sub).is_dir()


def test_tables_and_figures_are_registered_with_hashes(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "03_attack_evaluation", profile="smoke", device="cpu")
    path = ctx.save_table(pd.DataFrame({"a": [1.0 / 3.0, 2.0], "b": ["x", "y"]}), "demo_table")
    assert path.read_text() == "a,b\n0.333333,x\n2,y\n"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ctx.save_figure(fig, "demo_figure")
    plt.close(fig)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    outputs = manifest["outputs"]
    assert outputs["tables/demo_table.csv"]["sha256"] == sha256_file(path)
    assert outputs["tables/demo_table.csv"]["notebook"] == "03_attack_evaluation"
    assert {"figures/demo_figure.png", "figures/demo_figure.pdf"} <= set(outputs)


def test_figures_are_byte_identical_when_redrawn(tmp_path: Path) -> None:
    hashes = []
    for run in ("a", "b"):
        ctx = RunContext.open(tmp_path / run, "00_data_prep", profile="smoke", device="cpu")
        fig, ax = plt.subplots()
        ax.imshow([[0, 1], [1, 0]], cmap="gray")
        hashes.append((sha256_file(ctx.save_figure(fig, "f")), sha256_file(ctx.layout.figures / "f.pdf")))
        plt.close(fig)
    assert hashes[0] == hashes[1]


def test_reopening_forgets_a_notebooks_old_outputs(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")
    ctx.save_table(pd.DataFrame({"a": [1]}), "old")
    other = RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")
    other.save_table(pd.DataFrame({"a": [1]}), "kept")
    RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")
    outputs = json.loads((tmp_path / "manifest.json").read_text())["outputs"]
    assert "tables/old.csv" not in outputs and "tables/kept.csv" in outputs


def test_summary_merges_per_notebook(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")
    ctx.update_summary({"auc": 0.9})
    ctx.update_summary({"n": 3, "rates": [float("nan"), 0.5], "inf": float("inf")})
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    summary = json.loads(text)
    assert summary == {"01_classifier_training": {"auc": 0.9, "n": 3, "rates": [None, 0.5], "inf": None}}


def test_missing_inputs_name_the_notebook_that_makes_them(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "03_attack_evaluation", profile="smoke", device="cpu")
    with pytest.raises(RunError, match="02_gan_training"):
        ctx.read_table("adversarial_index", made_by="02_gan_training")
    with pytest.raises(RunError, match="00_data_prep"):
        ctx.cohort()


def test_config_is_shared_by_later_notebooks_and_another_profile_is_refused(tmp_path: Path) -> None:
    """A notebook set to ``default`` on a smoke folder ran with smoke's settings without a word (issue 30, item 2)."""
    RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")
    with pytest.raises(
        RunError,
        match=r"was made with profile 'smoke' \(its config\.json\), but this notebook's profile "
        r"parameter is 'default'.*Set profile = 'smoke' in the parameters cell.*or set "
        r"run_dir to a new folder",
    ):
        RunContext.open(tmp_path, "01_classifier_training", profile="default")
    later = RunContext.open(tmp_path, "01_classifier_training", profile="smoke")
    assert later.profile.name == "smoke"
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: default\nname: smoke\n")  # the runner passes a profile file by its path: its name counts
    assert RunContext.open(tmp_path, "02_gan_training", profile=str(mine)).profile.name == "smoke"
    # a data set given to a notebook of a phantom folder would be ignored as well: refused, not run on the phantom
    with pytest.raises(
        RunError,
        match=r"was made with the phantom cohort \(its config\.json\), but this notebook's data_manifest parameter is "
        r"'data_manifests/busi.yaml'.*Set data_manifest = None",
    ):
        RunContext.open(
            tmp_path, "03_attack_evaluation", "smoke", data_manifest="data_manifests/busi.yaml", data_root="/d"
        )
    real = tmp_path / "real"
    (tmp_path / "busi").mkdir()
    RunContext.open(
        real, "00_data_prep", "smoke", "cpu", data_manifest="data_manifests/busi.yaml", data_root=str(tmp_path / "busi")
    )
    RunContext.open(real, "01_classifier_training", "smoke", data_root=str(tmp_path / "busi"))  # the same: goes on
    with pytest.raises(RunError, match=r"data set data_manifests/busi.yaml in .*busi .*data_root parameter is '/else'"):
        RunContext.open(real, "01_classifier_training", "smoke", data_root="/else")


def test_opening_marks_the_notebook_running_and_the_folder_incomplete(tmp_path: Path) -> None:
    first = RunContext.open(tmp_path, "03_attack_evaluation", profile="smoke", device="cpu")
    first.save_table(pd.DataFrame({"a": [1]}), "robustness_curves")
    first.update_summary({"x": 1})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["notebooks"]["03_attack_evaluation"] = {"status": "complete", "key": "k", "finished": "then"}
    manifest["complete"] = True  # as the runner leaves a finished folder
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    RunContext.open(tmp_path, "03_attack_evaluation", profile="smoke", device="cpu")  # a kernel runs the first cells
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] is False
    entry = manifest["notebooks"]["03_attack_evaluation"]
    assert entry["status"] == "running" and entry["opened_by"] == "hand" and "finished" not in entry
    assert "tables/robustness_curves.csv" in manifest["previous"]["03_attack_evaluation"]
    assert "tables/robustness_curves.csv" not in manifest["outputs"]


def test_a_folder_whose_config_json_is_gone_is_not_reopened_with_new_settings(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")
    ctx.save_table(pd.DataFrame({"a": [1]}), "cohort_summary")
    (tmp_path / "config.json").unlink()
    with pytest.raises(
        RunError,
        match=r"config\.json is missing, but manifest\.json records outputs of "
        r"\['00_data_prep'\].*Restore config\.json, open another run folder, or rerun every "
        r"notebook with: medadv run --run-dir .* --force",
    ):
        RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")


def test_a_truncated_manifest_names_the_way_out(tmp_path: Path) -> None:
    RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")
    text = (tmp_path / "manifest.json").read_text()
    (tmp_path / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(
        RunError,
        match=r"manifest\.json: damaged \(not valid JSON\).*Rerun every notebook with: medadv run "
        r"--run-dir .* --force \(the damaged files are kept as <name>\.damaged\)",
    ):
        RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")


def test_a_read_only_run_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores permission bits, so the folder's refusal to be written is simulated where the kit writes."""
    import os

    (tmp_path / "a_file").touch()  # run_dir = a file: named as such, not as a folder to fix the permissions of
    with pytest.raises(RunError, match=r"a_file/figures: cannot make the run folder .*a file stands where a folder"):
        RunContext.open(tmp_path / "a_file", "00_data_prep", profile="smoke", device="cpu")
    RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(
        RunError,
        match=r"manifest\.json: cannot write \(Permission denied\); the run folder must be "
        r"writable\. Give a folder you can write to",
    ):
        RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")
    monkeypatch.undo()
    monkeypatch.setattr("logging.FileHandler.__init__", refuse)
    with pytest.raises(RunError, match=r"00_data_prep\.log: cannot write \(Permission denied\)"):
        RunContext.open(tmp_path, "00_data_prep", profile="smoke", device="cpu")


def test_an_output_has_one_maker(tmp_path: Path) -> None:
    first = RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")
    first.save_table(pd.DataFrame({"a": [1]}), "metrics")
    later = RunContext.open(tmp_path, "02_gan_training", profile="smoke", device="cpu")
    with pytest.raises(RunError, match="output of notebook 01_classifier_training"):
        later.register(tmp_path / "tables" / "metrics.csv")
    with pytest.raises(RunError, match="no such file"):
        later.register(tmp_path / "tables" / "missing.csv")


def test_csv_cells_that_look_like_formulas_are_neutralised(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")
    table = pd.DataFrame(
        {
            "reader": ["=cmd|' /C calc'!A0", "+1", "-x", "@SUM(A1)", "R1", "a=b"],
            "diff": [-0.5, 1.0, -2.0, 0.0, 3.0, 4.0],
        }
    )
    path = ctx.save_table(table, "reader_accuracy")
    lines = path.read_text().splitlines()
    assert lines[1:] == ["'=cmd|' /C calc'!A0,-0.5", "'+1,1", "'-x,-2", "'@SUM(A1),0", "R1,3", "a=b,4"]


def test_a_rerun_replaces_its_summary_section_and_removes_stale_outputs(tmp_path: Path) -> None:
    from medadv.report import remove_stale_outputs

    first = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")
    first.save_table(pd.DataFrame({"a": [1]}), "reader_accuracy")
    first.save_table(pd.DataFrame({"p": [0.01]}), "mrmc")
    first.update_summary({"responses": "simulated", "mrmc_p_value": 0.01})
    assert remove_stale_outputs(tmp_path, "05_reader_study") == []
    again = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")  # real readers, no ratings
    again.save_table(pd.DataFrame({"a": [2]}), "reader_accuracy")
    again.update_summary({"responses": "real"})
    assert remove_stale_outputs(tmp_path, "05_reader_study") == ["tables/mrmc.csv"]
    assert not (tmp_path / "tables" / "mrmc.csv").exists() and (tmp_path / "tables" / "reader_accuracy.csv").exists()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"05_reader_study": {"responses": "real"}}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["outputs"]) == {"tables/reader_accuracy.csv"}
    assert manifest["removed"] == {"05_reader_study": ["tables/mrmc.csv"]}


def test_the_cohort_is_validated_once_per_notebook_until_notebook_00_rewrites_it(tmp_path: Path, monkeypatch) -> None:
    ctx = RunContext.open(tmp_path, "01_classifier_training", profile="smoke", device="cpu")
    row = {c: "" for c in COHORT_COLUMNS} | {"image_id": "a", "patient_id": "p", "path": "a.png", "label": 1}
    table = pd.DataFrame([row, row | {"image_id": "b", "label": 0}]).assign(split=["train", "test"])
    table.to_csv(ctx.layout.cohort, index=False)
    calls = []
    monkeypatch.setattr(report, "validate_cohort", lambda *a, **k: calls.append(1) or a[0])
    first = ctx.cohort()
    first.loc[0, "label"] = 0  # a caller's edit must not reach the next caller
    assert ctx.cohort()["label"].tolist() == [1, 0] and len(calls) == 1
    table.assign(label=[0, 0]).to_csv(ctx.layout.cohort, index=False)  # notebook 00 reran meanwhile
    assert ctx.cohort()["label"].tolist() == [0, 0] and len(calls) == 2
