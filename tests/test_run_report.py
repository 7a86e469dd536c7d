"""``report/index.html`` of a run (:mod:`medadv.run_report`), on small hand-made folders; the smoke run's report and
its look in headless Chromium are checked in tests/test_notebooks.py beside the smoke run itself."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from medadv.errors import RunError
from medadv.report import LOCK_TOKEN_ENV, locked
from medadv.run_report import masking_html, write_report
from medadv.style import format_table


def _run(root: Path, competent: bool = True) -> Path:
    """A run folder of one executed notebook that saved a table under a section, with a competence record."""
    run = root / "run"
    for sub in ("tables", "figures", "notebooks"):
        (run / sub).mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 01 title\n\nIntro."),
        nbformat.v4.new_markdown_cell("## Accuracy by model\n\nBalanced accuracy of each model.\n\nMore."),
        nbformat.v4.new_code_cell('ctx.save_table(t, "model_accuracy")'),
    ]
    nbformat.write(nb, run / "notebooks" / "01_x.ipynb")
    pd.DataFrame({"model": ["a", "b"], "balanced_accuracy": [0.912345, 0.5], "p_value": [1.23456e-5, 0.5]}).to_csv(
        run / "tables" / "model_accuracy.csv", index=False
    )
    table_sha = hashlib.sha256((run / "tables" / "model_accuracy.csv").read_bytes()).hexdigest()
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "complete": True,
                "profile": "default",
                "outputs": {"tables/model_accuracy.csv": {"notebook": "01_x", "sha256": table_sha}},
                "notebooks": {"01_x": {"status": "complete"}},
            }
        )
    )
    (run / "config.json").write_text(json.dumps({"profile": {"name": "default"}, "seed": 3, "device": "cpu"}))
    (run / "summary.json").write_text(
        json.dumps(
            {
                "01_classifier_training": {
                    "competence": {
                        "model": "vgg_erm",
                        "val_auc": 0.91,
                        "min_val_auc": 0.6,
                        "passes_gate": True,
                        "degenerate": not competent,
                        "competent": competent,
                    }
                }
            }
        )
    )
    return run


def test_the_report_shows_each_table_under_its_section_with_meaningful_digits(tmp_path: Path) -> None:
    run = _run(tmp_path)
    index = write_report(run).read_text()
    table = index.split('id="table-model_accuracy"')[1]
    assert "<strong>Accuracy by model.</strong> Balanced accuracy of each model." in table and "More." not in table
    assert "<td>0.912</td>" in table and "1.2e-05" in table and "0.912345" not in table
    assert 'href="notebooks/01_x.html"' in index and (run / "report" / "notebooks" / "01_x.html").is_file()
    assert "has learned" in index and "seed 3" in index and "smoke run" not in index
    assert "no gradient-masking checks" in index
    page = (run / "report" / "notebooks" / "01_x.html").read_text()
    assert 'href="../index.html"' in page and 'src="http' not in page  # offline: nbconvert's CDN scripts removed


def test_the_report_warns_of_a_classifier_that_has_not_learned_and_of_gradient_masking(tmp_path: Path) -> None:
    run = _run(tmp_path, competent=False)
    pd.DataFrame(
        {
            "model": ["vgg_erm", "vgg_erm", "vgg_pgd_at"],
            "check": ["large_budget", "iterative_beats_one_step", "large_budget"],
            "value": [0.4, 0.1, 0.0],
            "passes": [False, True, True],
            "meaning": ["a 64/255 attack leaves more than a constant classifier", "", ""],
        }
    ).to_csv(run / "tables" / "attack_sanity.csv", index=False)
    index = write_report(run).read_text()
    assert "has not learned enough to be studied" in index
    verdict = masking_html(run / "tables" / "attack_sanity.csv")
    assert "<code>vgg_erm</code>: gradient masking suspected; failed: large_budget (a 64/255 attack" in verdict
    assert "<code>vgg_pgd_at</code>: every check passed (1)" in verdict
    assert verdict in index and 'id="table-attack_sanity"' in index


def test_a_folder_changed_since_its_run_is_not_called_complete(tmp_path: Path) -> None:
    run = _run(tmp_path)
    index = write_report(run).read_text()
    assert "changed since the run" not in index and "<td style='text-align:left;white-space:normal'>yes</td>" in index
    (run / "tables" / "model_accuracy.csv").write_text("model,balanced_accuracy\na,0.99\n")  # edited after the run
    (run / "config.json").unlink()
    index = write_report(run).read_text()
    assert "<b>This run folder has changed since the run</b>: 1 registered output(s)" in index
    assert "(tables/model_accuracy.csv)" in index and f"medadv run --run-dir {run}</code> remakes them" in index
    assert "no (1 registered output(s) missing or changed since the run)" in index
    assert "<b>config.json is missing</b>" in index and "Profile <code>default</code>" in index
    assert "not for clinical use" in index  # the intended use is the kit's, not only config.json's


def test_the_report_of_a_folder_another_run_is_writing_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path)
    with locked(run):
        assert "A run is writing this folder" not in write_report(run).read_text()  # the run's own report
        monkeypatch.delenv(LOCK_TOKEN_ENV)  # the folder as another process sees it
        index = write_report(run).read_text()
    assert f"<b>A run is writing this folder</b> (pid {os.getpid()} on host {socket.gethostname()}, since" in index
    assert "A run is writing this folder" not in write_report(run).read_text()  # the lock is released


def test_the_report_of_an_incomplete_folder_says_why_and_how_to_complete_it(tmp_path: Path) -> None:
    run = _run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    name = next(iter(manifest["notebooks"]))
    manifest["notebooks"][name] = {"status": "running", "opened": "2026-12-07T14:00:00", "opened_by": "hand"}
    (run / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    index = write_report(run).read_text()
    assert "<b>This run is not complete</b>: some notebooks have not run to their end under" in index
    # no run holds the folder: a notebook opened by hand is not shown as running
    assert "opened by hand at 2026-12-07T14:00:00: its outputs may not follow the profile shown" in index
    assert "come from a notebook run by hand" in index and f"<code>medadv run --run-dir {run}</code>" in index
    config = json.loads((run / "config.json").read_text())
    config["profile"]["data"] = {"manifest": "/d/busi.yaml", "root": "/d/busi", "modality": "mammography"}
    (run / "config.json").write_text(json.dumps(config))
    assert "<th>data set</th><td style='text-align:left;white-space:normal'>/d/busi.yaml in /d/busi</td>" in (
        write_report(run).read_text()
    )
    config["profile"]["name"] = "smoke"  # a smoke run on one's own data set is not called a run on the phantom
    (run / "config.json").write_text(json.dumps(config))
    assert "one short epoch per stage (on the data set named below)" in write_report(run).read_text()


def test_report_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"nosuch: no such folder; give the folder that medadv run or medadv sweep"):
        write_report(tmp_path / "nosuch")
    with pytest.raises(RunError, match="not a run folder .*medadv run or medadv sweep"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_tables_are_written_with_the_digits_that_mean_something() -> None:
    table = pd.DataFrame(
        {
            "model": ["a", "b"],
            "auc": [0.98571, 1.0],
            "n": [10.0, 12.0],
            "p_value": [1.234e-5, 0.5],
            "seconds": [123.456, 1234.5],
            "holds": [True, False],
            "mean_shift": [float("nan"), 2.5],
        }
    )
    text = format_table(table)
    assert text.to_dict("list") == {
        "model": ["a", "b"],
        "auc": ["0.986", "1.000"],
        "n": ["10", "12"],
        "p_value": ["1.2e-05", "0.5"],
        "seconds": ["123", "1,234"],
        "holds": ["yes", "no"],
        "mean_shift": ["", "2.5"],
    }
    # an effect not evaluated leaves holds empty, and the column reads back from CSV as objects: still yes / no
    flags = format_table(pd.DataFrame({"holds": [True, float("nan"), False]}, dtype=object))
    assert flags["holds"].tolist() == ["yes", "", "no"]  # was "True", "", "False", which the report took for "no"


def test_a_notebook_shows_its_tables_with_meaningful_digits_and_a_clean_index(tmp_path: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from medadv.report import RunContext

    shell = InteractiveShell.instance()
    try:
        RunContext.open(tmp_path / "run", "01_classifier_training", profile="smoke", device="cpu")
        table = pd.DataFrame({"model": ["vgg_erm", "vgg_rtda"], "auc": [0.985712, 0.5], "p_value": [1.23456e-5, 0.5]})
        shown = shell.display_formatter.format(table)[0]["text/html"]
        assert "0.986" in shown and "1.2e-05" in shown and "0.985712" not in shown
        assert ">0</th>" not in shown and "vgg_rtda" in shown  # the default index is hidden
        long = shell.display_formatter.format(pd.DataFrame({"x": range(500)}))[0]["text/html"]
        assert "first 60 of 500 rows" in long and ">499<" not in long
    finally:
        InteractiveShell.clear_instance()


def test_the_mrmc_table_names_its_analyses_and_sessions() -> None:
    from medadv.stages.reader_study import mrmc_table

    raw = pd.DataFrame(
        {
            "analysis": ["RRRC", "FRRC", "RRFC"],
            "treatment_a": 3,
            "treatment_b": 5,
            "auc_a": 0.72,
            "auc_b": 0.68,
            "diff": 0.04,
            "ci_low": -0.3,
            "ci_high": 0.4,
            "p_value": 0.78,
            "var_error": 0.02,
        }
    )
    shown = mrmc_table(raw)
    assert list(shown.columns) == [
        "analysis (generalises to)",
        "session A",
        "session B",
        "mean reader AUC, session A",
        "mean reader AUC, session B",
        "difference (A - B)",
        "95% CI low",
        "95% CI high",
        "p",
    ]
    assert shown["analysis (generalises to)"].tolist() == [
        "RRRC: other readers and other images",
        "FRRC: these readers, other images",
        "RRFC: other readers, these images",
    ]
    text = " ".join(
        c.source
        for c in nbformat.read(Path(__file__).parents[1] / "notebooks" / "05_reader_study.ipynb", as_version=4).cells
        if c.cell_type == "markdown"
    )
    for term in (
        "**RRRC** (random readers, random cases)",
        "**FRRC** (fixed readers",
        "**RRFC** (random readers, fixed",
        "`auc_a`",
        "`auc_b`",
    ):
        assert term in text, term
