"""The papermill runner: order, resume by hashes, --force, --only, failure reporting."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from medadv.errors import ConfigError
from medadv.pipeline import main, run_pipeline

PARAMS = 'run_dir = "results/x"\nprofile = "smoke"\ndevice = "auto"\ndata_manifest = None\ndata_root = None\n'


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


WRITER = """
import pandas as pd
from medadv.report import RunContext
ctx = RunContext.open(run_dir, "{name}", profile=profile, device=device)
ctx.save_table(pd.DataFrame({{"x": [{value}]}}), "{name}_table")
"""


@pytest.fixture()
def notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The library digest is held fixed here so that each test sees only the changes it makes itself.
    monkeypatch.setattr("medadv.pipeline.code_digest", lambda: "fixed")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_first.ipynb", WRITER.format(name="00_first", value=1))
    _notebook(folder / "01_second.ipynb", WRITER.format(name="01_second", value=2))
    return folder


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_runs_in_order_then_resumes_and_forces(notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    manifest = _manifest(run)
    assert manifest["complete"] is True
    assert [manifest["notebooks"][n]["status"] for n in ("00_first", "01_second")] == ["complete", "complete"]
    assert (run / "notebooks" / "01_second.ipynb").is_file()
    assert (run / "tables" / "01_second_table.csv").read_text() == "x\n2\n"
    first_finish = manifest["notebooks"]["01_second"]["finished"]

    capsys.readouterr()
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2
    assert _manifest(run)["notebooks"]["01_second"]["finished"] == first_finish

    # A changed upstream notebook reruns it and, because its output changed, the one after it.
    _notebook(notebooks / "00_first.ipynb", WRITER.format(name="00_first", value=5))
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert "00_first: done" in out and "01_second: done" in out

    # A deleted output is noticed and remade.
    (run / "tables" / "01_second_table.csv").unlink()
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert "00_first: unchanged" in out and "01_second: done" in out
    assert (run / "tables" / "01_second_table.csv").is_file()

    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks, force=True) == 0
    assert capsys.readouterr().out.count(": done in") == 2


def test_only_runs_the_named_notebooks_and_marks_the_run_partial(notebooks: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, only=["00"], device="cpu", notebooks_dir=notebooks) == 0
    manifest = _manifest(run)
    assert manifest["complete"] is False and "01_second" not in manifest["notebooks"]
    with pytest.raises(ConfigError, match="--only 07: no such notebook"):
        run_pipeline("smoke", run, only=["07"], device="cpu", notebooks_dir=notebooks)


def test_a_failing_notebook_stops_the_run_and_says_where(notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _notebook(notebooks / "00_first.ipynb", 'raise ValueError("cohort exploded")')
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 1
    out = capsys.readouterr().out
    assert "00_first: FAILED" in out and "ValueError: cohort exploded" in out
    assert str(run / "notebooks" / "00_first.ipynb") in out
    manifest = _manifest(run)
    assert manifest["complete"] is False
    assert manifest["notebooks"]["00_first"]["status"] == "failed"
    assert "01_second" not in manifest["notebooks"]


def test_command_line_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "smoke", "--run-dir", str(tmp_path), "--data", "nope.yaml", "--data-root", str(tmp_path)]) == 2
    assert "no such manifest file" in capsys.readouterr().err
    assert main(["--profile", "smoke", "--run-dir", str(tmp_path), "--data", "nope.yaml"]) == 2
    assert "go together" in capsys.readouterr().err


def test_extra_parameters_are_parsed_and_checked() -> None:
    from medadv.pipeline import parse_params

    assert parse_params(["responses_dir=/data/csv", "n=3", "flag=true", "none="]) == {
        "responses_dir": "/data/csv", "n": 3, "flag": True, "none": None}
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_params(["responses_dir"])
    with pytest.raises(ConfigError, match="--run-dir"):
        parse_params(["run_dir=x"])
