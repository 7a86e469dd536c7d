"""The papermill runner: order, resume by hashes, --force, --only, failure reporting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from medadv.errors import ConfigError, RunError
from medadv.layout import RunLayout
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


def test_runs_in_order_then_resumes_and_forces(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    manifest = _manifest(run)
    assert manifest["complete"] is True
    assert [manifest["notebooks"][n]["status"] for n in ("00_first", "01_second")] == ["complete", "complete"]
    assert (run / "notebooks" / "01_second.ipynb").is_file()
    assert (run / "tables" / "01_second_table.csv").read_text() == "x\n2\n"
    first_finish = manifest["notebooks"]["01_second"]["finished"]
    index = (run / "report" / "index.html").read_text()  # the run ends with its report
    assert 'id="table-01_second_table"' in index and 'href="notebooks/01_second.html"' in index
    assert (run / "report" / "tables" / "01_second_table.csv").read_text() == "x\n2\n"

    capsys.readouterr()
    # a resume without --device (auto, which picks the CPU here) skips too: the key holds the device it resolved to
    assert run_pipeline("smoke", run, device="auto", notebooks_dir=notebooks) == 0
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


KERNEL_KEYS = """
from pathlib import Path
from ipykernel.kernelapp import IPKernelApp
Path(run_dir).mkdir(parents=True, exist_ok=True)
(Path(run_dir) / "curve.txt").write_text(str(IPKernelApp.instance().curve_secretkey is not None))
"""


def test_kernels_run_on_encrypted_channels_where_jupyter_can(
    notebooks: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import zmq
    from jupyter_client import KernelManager

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        pytest.skip("this jupyter_client / libzmq cannot give a kernel CurveZMQ keys")
    _notebook(notebooks / "00_first.ipynb", KERNEL_KEYS)
    (notebooks / "01_second.ipynb").unlink()
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    assert (run / "curve.txt").read_text() == "True"
    assert "without encryption" not in capfd.readouterr().err


def test_only_runs_the_named_notebooks_and_marks_the_run_partial(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    warns = (  # and a notebook's warnings are repeated on the console: an image left out of a data set's cohort
        "import logging\n"  # was said only in the notebook's log
        "for i in range(7):\n"
        "    logging.getLogger('medadv.data.sources.busi').warning('%d file(s) that are not PNG images, left out', i)\n"
    )
    _notebook(notebooks / "00_first.ipynb", WRITER.format(name="00_first", value=1) + warns)
    assert run_pipeline("smoke", run, only=["00"], device="cpu", notebooks_dir=notebooks) == 0
    manifest = _manifest(run)
    assert manifest["complete"] is False and "01_second" not in manifest["notebooks"]
    out = capsys.readouterr().out
    assert f"    7 warning(s), in {run / 'logs' / '00_first.log'}:" in out
    assert "      medadv.data.sources.busi: 4 file(s) that are not PNG images, left out" in out
    assert "5 file(s)" not in out  # the first five only
    with pytest.raises(ConfigError, match="--only 07: no such notebook"):
        run_pipeline("smoke", run, only=["07"], device="cpu", notebooks_dir=notebooks)
    _notebook(notebooks / "90_over_sweeps.ipynb", "x = 1")
    with pytest.raises(ConfigError, match="--only 90: notebooks 90-99 read a sweep's runs together and run at the end"):
        run_pipeline("smoke", run, only=["90"], device="cpu", notebooks_dir=notebooks)
    fresh = tmp_path / "fresh"  # a later notebook alone in a folder where the earlier ones have not run
    with pytest.raises(
        RunError, match=r"--only 01: notebook\(s\) 00_first have not completed in .*fresh, and the later"
    ):
        run_pipeline("smoke", fresh, only=["01"], device="cpu", notebooks_dir=notebooks)
    assert not fresh.exists()
    for short in ("0", ""):  # a prefix of every notebook: it ran them all
        with pytest.raises(ConfigError, match=rf"--only '{short}': give each notebook by its two-digit number"):
            run_pipeline("smoke", run, only=[short], device="cpu", notebooks_dir=notebooks)


def test_a_failing_notebook_stops_the_run_and_says_where(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    # the report is written again (an earlier run's would still show that run's state): it says what happened
    assert "<b>This run is not complete</b>" in (run / "report" / "index.html").read_text()


def test_command_line_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--profile", "smoke", "--run-dir", str(tmp_path), "--data", "nope.yaml", "--data-root", str(tmp_path)])
        == 2
    )
    assert "no such manifest file" in capsys.readouterr().err
    (tmp_path / "m.yaml").write_text("name: x\n")
    for data, root, said in (
        (tmp_path, tmp_path, "--data .*: is a folder; give the data set's manifest YAML file"),
        (tmp_path / "m.yaml", tmp_path / "m.yaml", "--data-root .*m\\.yaml: is a file; give the folder"),
    ):
        assert (
            main(
                ["--profile", "smoke", "--run-dir", str(tmp_path / "r"), "--data", str(data), "--data-root", str(root)]
            )
            == 2
        )
        assert re.search(said, capsys.readouterr().err)
    assert main(["--profile", "smoke", "--run-dir", str(tmp_path), "--data", "nope.yaml"]) == 2
    assert "go together" in capsys.readouterr().err
    # a manifest that lacks its fields stops here, not in notebook 00 (which failed with exit status 1)
    (tmp_path / "data").mkdir()
    run = tmp_path / "fresh"
    argv = ["--profile", "smoke", "--run-dir", str(run), "--data", str(tmp_path / "m.yaml"), "--data-root"]
    assert main([*argv, str(tmp_path / "data")]) == 2
    assert re.search(r"m\.yaml: .*lacks the field", capsys.readouterr().err) and not run.exists()


def test_extra_parameters_are_parsed_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medadv.pipeline import parse_params

    (tmp_path / "csv").mkdir()
    (tmp_path / "reader.sqlite").write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # a relative path parameter is taken from here, and handed on absolute
    assert parse_params(["responses_dir=csv", "responses_db=reader.sqlite", "n=3", "flag=true", "none="]) == {
        "responses_dir": str(tmp_path / "csv"),
        "responses_db": str(tmp_path / "reader.sqlite"),
        "n": 3,
        "flag": True,
        "none": None,
    }
    for item, message in (
        ("responses_dir=nope", rf"--param responses_dir=nope: no such folder \({tmp_path / 'nope'}\)"),
        ("responses_dir=reader.sqlite", r"no such folder .*the folder of the reader app's response CSV files"),
        ("responses_db=csv", r"--param responses_db=csv: no such file .*data/reader\.sqlite"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_params([item])
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_params(["responses_dir"])
    with pytest.raises(ConfigError, match="--run-dir"):
        parse_params(["run_dir=x"])


def test_a_bad_run_folder_or_device_or_parameter_writes_nothing(notebooks: Path, tmp_path: Path) -> None:
    import torch

    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("x")
    with pytest.raises(ConfigError, match=r"--run-dir .*results\.txt: is a file, not a folder"):
        run_pipeline("smoke", not_a_folder, device="cpu", notebooks_dir=notebooks)
    with pytest.raises(ConfigError, match=r"--param response_dir: no notebook of this run has such a parameter"):
        run_pipeline(
            "smoke",
            tmp_path / "run1",
            device="cpu",
            notebooks_dir=notebooks,
            extra_params={"response_dir": "/data/csv"},
        )
    assert not (tmp_path / "run1").exists()
    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("x")
    for folder, shown in ((thesis, r"chapters, thesis\.tex"), (Path(__file__).parents[1], r"\.ci, .* and \d+ more")):
        with pytest.raises(ConfigError, match=rf"--run-dir .*: holds {shown}.* but is not a run folder"):
            run_pipeline("smoke", folder, device="cpu", notebooks_dir=notebooks)
    assert sorted(p.name for p in thesis.iterdir()) == ["chapters", "thesis.tex"]  # nothing written
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="torch sees"):  # an empty folder passes this check
        run_pipeline("smoke", tmp_path / "empty", device="cuda:99", notebooks_dir=notebooks)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
            run_pipeline("smoke", tmp_path / "run2", device="cuda", notebooks_dir=notebooks)
        assert not (tmp_path / "run2").exists()


def test_data_root_listing_is_part_of_the_key(notebooks: Path, tmp_path: Path) -> None:
    import os

    from medadv.pipeline import data_digest, notebook_key

    manifest, root = tmp_path / "busi.yaml", tmp_path / "data"
    manifest.write_text("name: busi\n")
    (root / "benign").mkdir(parents=True)
    image = root / "benign" / "benign (1).png"
    image.write_bytes(b"a")
    digests = [data_digest(str(manifest), str(root))]
    image.write_bytes(b"b")  # same size, new content: a new mtime
    os.utime(image, ns=(1, 1))
    digests.append(data_digest(str(manifest), str(root)))
    (root / "benign" / "benign (2).png").write_bytes(b"c")
    digests.append(data_digest(str(manifest), str(root)))
    manifest.write_text("name: busi\n# edited\n")
    digests.append(data_digest(str(manifest), str(root)))
    assert len(set(digests)) == 4 and data_digest(None, None) == ""
    config = {"profile": {}, "device": "cpu"}
    nb = notebooks / "00_first.ipynb"
    keys = {notebook_key(nb, {"run_dir": "x"}, config, "c", {}, data=d) for d in digests}
    assert len(keys) == 4
    # a parameter the notebook does not declare does not change its key
    assert notebook_key(nb, {"responses_dir": "/a"}, config, "c", {}) == notebook_key(nb, {}, config, "c", {})


def test_resuming_with_another_profile_is_refused_unless_forced(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    made = ["seed=3", "classifier.epochs=2"]
    assert run_pipeline("smoke", run, only=["00"], device="cpu", notebooks_dir=notebooks, overrides=made) == 0
    before = (run / "config.json").read_text()
    with pytest.raises(ConfigError) as info:
        run_pipeline("default", run, only=["01"], device="cpu", notebooks_dir=notebooks)
    assert "was made with other settings (profile 'smoke' -> 'default'); resuming it would mix" in str(info.value)
    assert "give the options it was made with: --profile smoke --set seed=3 --set classifier.epochs=2. Or" in str(
        info.value
    )
    with pytest.raises(ConfigError, match=r"\(settings classifier\.epochs 2 -> 1, seed 3 -> 7\); .*--force"):
        run_pipeline("smoke", run, only=["01"], device="cpu", notebooks_dir=notebooks)
    assert (run / "config.json").read_text() == before and "01_second" not in _manifest(run)["notebooks"]
    capsys.readouterr()
    assert run_pipeline("default", run, only=["01"], device="cpu", notebooks_dir=notebooks, force=True) == 0
    out = capsys.readouterr().out
    assert "every notebook reruns" in out and "00_first: done" in out and "01_second: done" in out
    assert json.loads((run / "config.json").read_text())["profile"]["name"] == "default"


def test_a_broken_upstream_output_is_rerun_or_named(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medadv.errors import RunError

    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    (run / "tables" / "00_first_table.csv").write_text("x\n9\n")  # edited by hand (or a sidecar deleted)
    with pytest.raises(RunError, match=r"00_first_table\.csv: an output of notebook 00_first is missing or changed"):
        run_pipeline("smoke", run, only=["01"], device="cpu", notebooks_dir=notebooks)
    capsys.readouterr()
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert "00_first: done" in out and "01_second: unchanged" in out
    assert (run / "tables" / "00_first_table.csv").read_text() == "x\n1\n"


def test_sigterm_names_the_notebook_and_says_a_rerun_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_slow.ipynb", "import time\nopen(run_dir + '/started', 'w').close()\ntime.sleep(120)")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lib")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medadv.pipeline",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--run-dir",
            str(run),
            "--notebooks",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "started").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert (run / "started").exists(), "the notebook never started"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "00_slow: stopped by SIGTERM" in out
    assert f"rerun the same command (--run-dir {run}) to resume" in out
    assert _manifest(run)["notebooks"]["00_slow"]["status"] == "interrupted"


def test_imagenet_weights_are_fetched_before_notebook_00_and_every_missing_file_is_named(
    notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache; downloads fail here
    start = ("classifier.init=imagenet", "classifier.width=1.0", "classifier.multitask_width=1.0")
    message = (
        r"(?s)neither cached nor downloadable: vgg11: .*vgg11-8a719046\.pth .*; resnet18: .*resnet18-f37072fd\.pth"
        r".*for a in \('vgg11', 'resnet18'\)"
    )
    with pytest.raises(ConfigError, match=message):
        run_pipeline("smoke", tmp_path / "run", device="cpu", notebooks_dir=notebooks, overrides=start)
    assert not (tmp_path / "run").exists()  # was: notebook 00 ran, and notebook 01 failed on vgg11 alone


def test_set_overrides_reach_config_json_and_bad_ones_stop_before_any_notebook(notebooks: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert (
        run_pipeline(
            "smoke", run, device="cpu", notebooks_dir=notebooks, overrides=["classifier.epochs=3", "attacks.steps=2"]
        )
        == 0
    )
    config = json.loads((run / "config.json").read_text())
    assert config["profile"]["classifier"]["epochs"] == 3 and config["profile"]["attacks"]["steps"] == 2
    assert config["overrides"] == ["classifier.epochs=3", "attacks.steps=2"]
    assert "not for clinical use" in config["intended_use"]
    for item, message in (
        ("classifier.epoch=3", "has no key 'epoch'"),
        ("classifier.epochs=0", "must be >= 1"),
        ("classifier.epochs=many", "classifier.epochs is .many.; expected a whole number"),
    ):
        other = tmp_path / f"bad{len(item)}"
        with pytest.raises(ConfigError, match=message):
            run_pipeline("smoke", other, device="cpu", notebooks_dir=notebooks, overrides=[item])
        assert not other.exists()


def test_relative_paths_are_taken_from_the_callers_directory(
    notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    monkeypatch.chdir(caller)
    assert (
        main(
            [
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--run-dir",
                "myrun",
                "--only",
                "00",
                "--notebooks",
                str(notebooks),
            ]
        )
        == 0
    )
    assert (caller / "myrun" / "tables" / "00_first_table.csv").is_file()


def test_notebook_run_dir_is_taken_from_the_kit_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medadv.core import kit_root
    from medadv.report import resolve_run_dir

    root = kit_root()
    assert (root / "notebooks").is_dir() and (root / "lib" / "medadv").is_dir()
    monkeypatch.chdir(root / "notebooks")  # where JupyterLab runs a notebook
    assert resolve_run_dir("results/x") == root / "results" / "x"
    monkeypatch.chdir(tmp_path)
    assert resolve_run_dir("results/x") == root / "results" / "x"
    assert resolve_run_dir(tmp_path / "abs") == tmp_path / "abs"


def test_kit_log_goes_to_the_run_folder_and_only_warnings_to_the_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from medadv.report import log_to_run

    log_to_run(tmp_path, "00_first")
    path = log_to_run(tmp_path, "00_first")  # a rerun cell replaces, not doubles, the handlers
    logging.getLogger("medadv.test").info("epoch 3 done")
    logging.getLogger("medadv.test").warning("few positives")
    err = capsys.readouterr().err
    assert "few positives" in err and "epoch 3" not in err and err.count("few positives") == 1
    text = path.read_text()
    assert path == tmp_path / "logs" / "00_first.log"
    assert "INFO medadv.test: epoch 3 done" in text and "WARNING medadv.test: few positives" in text


def _medadv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medadv", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "lib")},
    )


def test_one_command_names_itself_and_parses_before_importing_torch() -> None:
    top = _medadv("--help")
    assert top.returncode == 0 and "usage: medadv" in top.stdout
    assert all(cmd in top.stdout for cmd in ("run", "sweep", "kernel"))
    run = _medadv("run", "--help")
    assert (
        run.returncode == 0 and run.stdout.startswith("usage: medadv run") and "--set SECTION.KEY=VALUE" in run.stdout
    )
    sweep = _medadv("sweep", "--help")
    assert (
        sweep.returncode == 0 and sweep.stdout.startswith("usage: medadv sweep") and "--sweep N|S1,S2" in sweep.stdout
    )
    probe = (
        "import sys\nfrom medadv.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "lib")},
    ).stdout
    assert "TORCH False" in out
    bad = _medadv("rn")
    assert bad.returncode == 2 and "invalid choice: 'rn'" in bad.stderr


def test_a_command_exits_with_its_status_its_exit_handlers_run_after_the_freeze() -> None:
    # exit_process skips the shutdown's garbage collections (gc.freeze), not the exit handlers that flush logs and files
    probe = (
        "import atexit, gc\nfrom medadv.console import exit_process\n"
        "atexit.register(lambda: print('FROZEN', gc.get_freeze_count() > 0, flush=True))\nexit_process(3)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 3 and out.stdout.strip() == "FROZEN True", out


def test_sweep_says_it_is_unavailable_when_the_kit_lacks_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from medadv import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "medadv.sweep" else real(name))
    assert cli.main(["sweep", "--seeds", "3"]) == 2
    assert "'medadv sweep' is not available" in capsys.readouterr().err


def test_kernel_install_registers_this_interpreter(tmp_path: Path) -> None:
    done = _medadv("kernel", "install", "--prefix", str(tmp_path))
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "medadv" / "kernel.json").read_text())
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()
    assert spec["display_name"] == "Python 3 (medadv)"


def test_run_with_sweep_goes_to_the_sweep_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medadv import cli

    seen: dict[str, object] = {}
    monkeypatch.setattr(cli, "_module_main", lambda module: lambda argv: seen.update(module=module, argv=argv) or 0)
    assert cli.main(["run", "--profile", "smoke", "--sweep", "3"]) == 0
    assert seen == {"module": "medadv.sweep", "argv": ["--profile", "smoke", "--sweep", "3"]}
    assert cli.main(["run", "--profile", "smoke"]) == 0 and seen["module"] == "medadv.pipeline"
    monkeypatch.undo()
    assert main(["--sweep", "3"]) == 2  # the one-folder runner itself refuses a sweep and says where it goes
    assert "medadv run --sweep" in capsys.readouterr().err


#: ``--set`` items the runner refuses before notebook 00, with what the error says (issue 32, items 1-3, 11, 12).
BAD_SETTINGS = [
    (["data.split=[0.6,0.2,0.2,0.7]"], r"data\.split is \[0\.6, 0\.2, 0\.2, 0\.7\] \(4 items\); expected exactly 3"),
    (["data.image_size=[96,96,7]"], r"data\.image_size is \[96, 96, 7\] \(3 items\); expected exactly 2"),
    (["data.lesion_contrast=.nan"], r"data\.lesion_contrast is nan; expected a finite number"),
    (["data.lesion_contrast=high"], r"data\.lesion_contrast is 'high'; expected a number"),
    (["data.n_patients=10.5"], r"data\.n_patients is 10\.5; expected a whole number"),
    (["data.n_patients=abc"], r"data\.n_patients is 'abc'; expected a whole number"),
    (
        ["data.image_size=[20000,20000]"],
        r"data\.image_size is \[20000, 20000\]; expected \[height, width\], each from 16 to 4096",
    ),
    (["data.image_size=[95,95]"], r"data\.image_size is \[95, 95\]; paper 001's network .* at least 96 x 96"),
    (
        ["attacks.linf_eps=[2.0]", "attacks.headline_linf_eps=2.0"],
        r"attacks\.linf_eps is \[2\.0\]: 2\.0 is outside \(0, 1\]\. .*write 2/255 as 0\.00784",
    ),
    (["attacks.headline_l2_eps=0.25", "attacks.ifgsm_extra_eps=25.5"], r"attacks\.ifgsm_extra_eps is 25\.5"),
    (["attacks.linf_eps=0.1"], r"--set attacks\.linf_eps is 0\.1; expected a list, e\.g\. \[0\.1\]"),
    (["attacks.linf_eps=[]"], r"attacks\.linf_eps is empty; expected a list of at least one budget"),
    (["classifier.width=0"], r"--set classifier\.\*: classifier width is 0\.0; expected a multiplier in \(0, 1\]"),
    (["classifier.eps=2"], r"classifier\.eps is 2\.0: 2\.0 is outside \(0, 1\]"),
    (["detect.classifier=nosuch"], r"detect\.classifier is 'nosuch', which the classifier section does not train"),
    (
        ["detect.no_such_key=1"],
        r"--set detect\.no_such_key: section 'detect' has no key 'no_such_key'; its keys are "
        r"\['adaptive_eps'",
    ),
    (["detect.adaptive_eps=[8]"], r"detect\.adaptive_eps is \[8\.0\]: 8\.0 is outside \(0, 1\]"),
    (["effects.bogus=1"], r"--set effects\.\*: profile section effects\.bogus is int; expected a mapping"),
    (
        ["effects.erm_auc_real.treshold=1"],
        r"--set effects\.\*: profile section 'effects\.erm_auc_real' has "
        r"unknown keys \['treshold'\]; known keys are \['claim', 'column'",
    ),
    (
        ["data.no_such_key=1"],
        r"--set data\.no_such_key: section 'data' has no key 'no_such_key'; its keys are "
        r"\['image_size'",
    ),
    (["cluster.wokers=2"], r"--set cluster\.wokers: section 'cluster' has no key 'wokers'; its keys are \['address'"),
    (["cluster.kind=lsf"], r"--set cluster\.\*: cluster\.kind is 'lsf'; expected one of \('local', 'slurm', 'pbs'\)"),
    (
        ["no_such_section.key=1"],
        r"--set no_such_section\.\*: a profile has no section 'no_such_section'; its sections "
        r"are \['seed', 'data', 'classifier'",
    ),
    (
        ["explain.models=[vgg_erm, vgg_nosuch]", "explain.attack_models=[vgg_erm]", "explain.fgsm_models=[vgg_erm]"],
        r"explain\.models .* name classifier\(s\) \['vgg_nosuch'\] that the classifier section does not train",
    ),
    (
        ["reader.simulated_readers=[{reader: 7, real_accuracy: 0.8, fake_accuracy: 0.6}]"],
        r"reader\.simulated_readers\[0\]\.reader is 7 \(int\); expected text",
    ),
    # counts, rates and shares that would train nothing, divide by zero or fail late in notebooks 01-04
    (
        ["classifier.steps_per_epoch=-3"],
        r"--set classifier\.\*: classifier\.steps_per_epoch is -3; expected a number at least 0",
    ),
    (["classifier.lr_head=-1"], r"classifier\.lr_head is -1\.0; expected a number above 0"),
    (["classifier.eval_batch=0"], r"classifier\.eval_batch is 0; expected a number at least 1"),
    (["explain.ig_steps=0"], r"explain\.ig_steps is 0; expected a number at least 1"),
    (["explain.attack_topk=5"], r"explain\.attack_topk is 5\.0; expected a share of the map in \(0, 1\]"),
    (["explain.methods=[]"], r"explain\.methods is empty; name at least one attribution method"),
    (["detect.fake_lr_features=-1"], r"detect\.fake_lr_features is -1\.0; expected a number above 0"),
    (["attacks.n_examples=-1"], r"attacks\.n_examples is -1; expected a number at least 0"),
    (["attacks.headline_l2_eps=-1"], r"attacks\.headline_l2_eps is -1\.0; expected positive L2 budgets"),
    (["attacks.severities=[0, 9]"], r"attacks\.severities has \[0, 9\]; expected severities among \[1, 2, 3, 4, 5\]"),
    (
        ["reader.n_subgroups=1000"],
        r"reader\.n_subgroups is 1000; .* smallest reading session \(6 images.*expected 2 to 6",
    ),
    (["attacks.corruptions=[fog]"], r"attacks\.corruptions has unknown \['fog'\]; choose from \['gaussian_noise'"),
]


@pytest.mark.parametrize(("items", "message"), BAD_SETTINGS, ids=[" ".join(i) for i, _ in BAD_SETTINGS])
def test_bad_set_values_stop_before_notebook_00(
    notebooks: Path, tmp_path: Path, items: list[str], message: str
) -> None:
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks, overrides=items)
    assert not run.exists()


EFFECT = (
    "    paper: '001'\n    claim: c\n    table: {table}\n    rows: {{row: 'AUC, real test set'}}\n"
    "    column: value\n    statistic: value\n    expected: '>'\n    threshold: {threshold}\n"
)
#: Profile files (extending smoke) the runner refuses before notebook 00, as it refuses the same value by ``--set``.
BAD_FILES = [
    (
        "classifier:\n  epochz: 1\n",
        r"profile 'bad' \(its classifier section from bad\.yaml, smoke\.yaml, default\.yaml\): profile section "
        r"'classifier' has unknown keys \['epochz'\]; known "
        r"keys are \['alpha', 'augmix_depth'",
    ),
    ("detect:\n  fake_epoch: 1\n", r"section 'detect' has unknown keys \['fake_epoch'\]"),
    (
        "cluster:\n  wokers: 2\n",
        r"profile 'bad' \(its cluster section from bad\.yaml\): profile section 'cluster' has unknown "
        r"keys \['wokers'\]; known keys "
        r"are \['address', 'dashboard'",
    ),
    (
        "effects:\n  mine:\n" + EFFECT.format(table="gan_attack_table", threshold='"0.2"'),
        r"effects\.mine\.threshold is '0\.2'; expected a number\. It is quoted, so YAML reads it as text: write "
        r"threshold: 0\.2 without quotes",
    ),
    (
        "effects:\n  mine:\n" + EFFECT.format(table="reader_accuracy", threshold=0.2),
        r"effects\.mine: table is 'reader_accuracy', which no notebook writes before notebook 04 evaluates the effects",
    ),
    (
        "reader:\n  ask_confidence: 'false'\n",
        r"reader\.ask_confidence is 'false'; expected true or false\. It is quoted",
    ),
    ("name: ../../../tmp/x\n", r"profile name '\.\./\.\./\.\./tmp/x': .* cannot be empty, hold '/'"),
]


@pytest.mark.parametrize(
    ("text", "message"), BAD_FILES, ids=[t.split(":")[0] + str(i) for i, (t, _) in enumerate(BAD_FILES)]
)
def test_bad_profile_files_stop_before_notebook_00(notebooks: Path, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("extends: smoke\n" + text)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        run_pipeline(str(path), run, device="cpu", notebooks_dir=notebooks)
    assert not run.exists()


def test_an_empty_simulated_panel_is_refused_only_where_notebooks_05_and_06_would_read_it(tmp_path: Path) -> None:
    from medadv.config import load_profile
    from medadv.pipeline import DEFAULT_NOTEBOOKS, check_run, discover_notebooks
    from medadv.report import write_config

    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"reader\.simulated_readers is empty and no readers' responses are given"):
        run_pipeline("smoke", run, device="cpu", overrides=["reader.simulated_readers=[]"])
    assert not run.exists()
    profile = load_profile("smoke", {"reader": {"simulated_readers": []}})
    every, first = discover_notebooks(DEFAULT_NOTEBOOKS), discover_notebooks(DEFAULT_NOTEBOOKS, ["00"])
    assert check_run(run, profile, "cpu", False, every, every, {"responses_dir": str(tmp_path)}) == every
    assert check_run(run, profile, "cpu", False, first, every, {}) == first
    kept = RunLayout(run).panel_record  # a workshop's folder after the class: notebook 05 analysed its database
    kept.parent.mkdir(parents=True)
    write_config(run, load_profile("smoke"), "cpu")
    kept.write_text(json.dumps({"readers": "real", "source": "/c/reader.sqlite", "given_as": "responses_db"}))
    smoke = load_profile("smoke")
    with pytest.raises(
        ConfigError, match=r"holds the real readers' reads .* Give responses_db=/c/reader\.sqlite again"
    ):
        check_run(run, smoke, "cpu", False, every, every, {})
    assert check_run(run, smoke, "cpu", False, every, every, {"responses_db": str(kept)}) == every


def test_a_profile_path_that_is_a_folder_is_named(tmp_path: Path) -> None:
    from medadv.config import load_profile

    with pytest.raises(ConfigError, match=r"is a folder, not a profile file; give the path of a YAML file in it"):
        load_profile(tmp_path)


def test_a_notebook_opened_by_hand_makes_the_folder_incomplete_and_a_resume_reruns_it(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 30, item 1: a kernel that ran only the first cells of a finished notebook left the folder 'complete'."""
    from medadv.report import RunContext

    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    assert _manifest(run)["complete"] is True
    RunContext.open(run, "01_second", profile="smoke", device="cpu")  # as a kernel in JupyterLab does; then it stops
    manifest = _manifest(run)
    assert manifest["complete"] is False and manifest["notebooks"]["01_second"]["status"] == "running"
    assert "tables/01_second_table.csv" not in manifest["outputs"]
    capsys.readouterr()
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert "00_first: unchanged" in out and "01_second: done" in out
    manifest = _manifest(run)
    assert manifest["complete"] is True and manifest["notebooks"]["01_second"]["status"] == "complete"
    assert "tables/01_second_table.csv" in manifest["outputs"]


def test_settings_are_compared_with_the_manifest_when_config_json_is_gone(notebooks: Path, tmp_path: Path) -> None:
    """Issue 32, item 8: with config.json deleted, --set seed=99 --only 01 ran and the folder said complete."""
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    (run / "config.json").unlink()
    with pytest.raises(
        ConfigError,
        match=r"other settings \(settings seed 7 -> 99\); resuming it would mix their outputs\. Or .*--force",
    ):
        run_pipeline("smoke", run, only=["01"], device="cpu", notebooks_dir=notebooks, overrides=["seed=99"])
    assert not (run / "config.json").exists() and _manifest(run)["settings"]["profile"]["seed"] == 7
    assert run_pipeline("smoke", run, only=["01"], device="cpu", notebooks_dir=notebooks) == 0  # same settings: resumes
    assert json.loads((run / "config.json").read_text())["seed"] == 7
    legacy = tmp_path / "legacy"  # a folder from before the manifest kept its settings
    assert run_pipeline("smoke", legacy, device="cpu", notebooks_dir=notebooks) == 0
    (legacy / "config.json").unlink()
    manifest = _manifest(legacy)
    del manifest["settings"]
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ConfigError,
        match=r"config\.json is missing, so the settings that made the outputs in "
        r"manifest\.json are unknown",
    ):
        run_pipeline("smoke", legacy, device="cpu", notebooks_dir=notebooks)


def test_notebooks_left_out_by_only_are_marked_stale_when_their_inputs_changed(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    _notebook(notebooks / "00_first.ipynb", WRITER.format(name="00_first", value=5))
    capsys.readouterr()
    assert run_pipeline("smoke", run, only=["00"], device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert "01_second: made from inputs that changed since" in out and "partial" in out
    manifest = _manifest(run)
    assert manifest["complete"] is False and manifest["notebooks"]["01_second"]["status"] == "stale"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    out = capsys.readouterr().out
    assert "00_first: unchanged" in out and "01_second: done" in out and _manifest(run)["complete"] is True


def test_a_second_run_on_a_locked_folder_is_refused_and_a_stale_lock_taken_over(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 32, item 10: two runs on one folder both ran, one resuming the other's training state."""
    import socket
    import subprocess
    import sys

    from medadv.errors import RunError
    from medadv.report import RunContext, locked

    run = tmp_path / "run"
    with locked(run):  # this process holds the folder, as a running `medadv run` would
        holder = json.loads((run / "run.lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(
            RunError,
            match=rf"is being written by another run \(pid {os.getpid()} on host "
            rf"{socket.gethostname()}, since .*delete .*run\.lock",
        ):
            run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks)
        token = os.environ.pop("MEDADV_RUN_LOCK")  # a notebook opened by hand carries no token
        with pytest.raises(RunError, match="is being written by another run"):
            RunContext.open(run, "00_first", profile="smoke", device="cpu")
        os.environ["MEDADV_RUN_LOCK"] = token
    assert not (run / "run.lock").exists()
    ended = subprocess.run(
        [sys.executable, "-c", "import os, psutil; print(os.getpid(), psutil.Process().create_time())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    (run / "run.lock").write_text(
        json.dumps(
            {
                "pid": int(ended[0]),
                "host": socket.gethostname(),
                "created": float(ended[1]),
                "since": "earlier",
                "token": "x",
            }
        )
    )
    capsys.readouterr()
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    assert f"took over the stale lock of pid {ended[0]}" in capsys.readouterr().out
    assert not (run / "run.lock").exists()


def test_a_truncated_manifest_is_rerun_whole_under_force(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medadv.errors import RunError

    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    text = (run / "manifest.json").read_text()
    (run / "manifest.json").write_text(text[:40])
    with pytest.raises(RunError, match=r"manifest\.json: damaged \(not valid JSON\).*medadv run --run-dir .* --force"):
        run_pipeline("smoke", run, only=["01"], device="cpu", notebooks_dir=notebooks)
    capsys.readouterr()
    assert run_pipeline("smoke", run, only=["01"], device="cpu", notebooks_dir=notebooks, force=True) == 0
    out = capsys.readouterr().out
    assert "manifest.json was damaged; kept as manifest.json.damaged" in out
    assert "00_first: done" in out and "01_second: done" in out
    assert (run / "manifest.json.damaged").read_text() == text[:40] and _manifest(run)["complete"] is True


def test_a_read_only_run_folder_is_refused_before_any_notebook(
    notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medadv.errors import RunError

    run = tmp_path / "run"
    assert run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks) == 0
    real = Path.write_text

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        if run in self.parents:
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(RunError, match=rf"{run}: cannot write \(Permission denied\); the run folder must be writable"):
        run_pipeline("smoke", run, device="cpu", notebooks_dir=notebooks, force=True)


def test_a_profile_name_cannot_place_the_run_folder_outside_results(notebooks: Path, tmp_path: Path) -> None:
    path = tmp_path / "escape.yaml"
    path.write_text("extends: smoke\nname: ../../../tmp/x\n")
    with pytest.raises(ConfigError, match=r"profile name '\.\./\.\./\.\./tmp/x'"):
        run_pipeline(str(path), None, device="cpu", notebooks_dir=notebooks)


def test_sweep_takes_its_seeds_as_an_argument_and_run_help_names_the_cluster_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medadv import sweep

    seen: list[list[int]] = []
    monkeypatch.setattr(sweep, "run_sweep", lambda profile, seeds, *args, **kwargs: seen.append(seeds) or 0)
    assert sweep.main(["10", "--profile", "smoke"]) == 0 and sweep.main(["--sweep", "3,7", "--profile", "smoke"]) == 0
    assert seen == [list(range(10)), [3, 7]]
    for argv, message in (
        (["--profile", "smoke"], "the seeds are required: medadv sweep N"),
        (["4", "--sweep", "5"], "the seeds are given twice"),
    ):
        with pytest.raises(SystemExit):
            sweep.main(argv)
        assert message in capsys.readouterr().err
    run_help = " ".join(_medadv("run", "--help").stdout.split())
    assert "medadv sweep --help" in run_help and "python -m medadv.sweep" not in run_help
    cluster = [
        a.option_strings[0]
        for a in sweep.build_parser()._actions
        if a.option_strings
        and a.dest
        in ("cluster", "scheduler", "workers", "threads_per_worker", "jobs", "cluster_option", "grid", "no_replication")
    ]
    assert len(cluster) == 8 and all(option in run_help.replace("- ", "-") for option in cluster), cluster


def test_reader_commands_are_medadv_reader_and_keep_their_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    top = _medadv("--help")
    assert "reader" in top.stdout and "medadv-reader" in top.stdout
    for argv, usage in ((["reader", "import", "--help"], "usage: medadv reader import"),):
        done = _medadv(*argv)
        assert done.returncode == 0 and done.stdout.startswith(usage), done.stderr
        run_dir_help = done.stdout.split("run_dir", 2)[2].split("paths")[0]
        assert "run folder whose notebook 05 built" in " ".join(run_dir_help.split())
    alias = subprocess.run(
        [sys.executable, "-c", "from medadv.reader_app.server import main; main(['serve', '--help'])"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "lib")},
    )
    assert alias.stdout.startswith("usage: medadv-reader serve")
    bad = _medadv("reader", "import", "/no/such/run", "x.csv")
    assert bad.returncode == 2 and bad.stderr.startswith("medadv reader: ")


def test_the_code_digest_covers_the_library_and_its_shipped_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New shipped weights (the kit's pretrained Vnet) change every model trained from them, so they invalidate a
    finished run as a code change does; a file that no run reads (notes) does not."""
    from medadv.pipeline import code_digest

    lib = tmp_path / "medadv"
    (lib / "models" / "weights").mkdir(parents=True)
    (lib / "stage.py").write_text("x = 1\n")
    weights = lib / "models" / "weights" / "vnet.safetensors"
    weights.write_bytes(b"\x00" * 64)
    monkeypatch.setattr("medadv.pipeline.LIB_DIR", lib)
    first = code_digest()
    (lib / "notes.txt").write_text("a note")
    assert code_digest() == first
    weights.write_bytes(b"\x01" * 64)
    second = code_digest()
    assert second != first
    (lib / "stage.py").write_text("x = 2\n")
    assert code_digest() not in (first, second)
