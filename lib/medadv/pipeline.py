"""Run the study's notebooks in order with papermill, resumably (the engine behind ``./run_all.sh``).

Every notebook in ``notebooks/`` (named ``NN_name.ipynb``) is executed in order with the same parameters
(``run_dir``, ``profile``, ``device``, ``data_manifest``, ``data_root``) into ``<run-dir>/notebooks/``. Each notebook's
*key* is the sha256 of what decides its outputs: the notebook file, the parameters it declares (the run folder's path
excepted), the resolved profile and device, the library's source and shipped weights, the data set (the manifest
file's bytes and the listing of the data root: every file's path, size and mtime), and every output file that the
notebooks before it registered in ``manifest.json``. A notebook whose key is unchanged and whose registered outputs
are all present with their recorded sha256 is skipped on a rerun; ``--force`` reruns all. A failing notebook stops
the run: its name, the failing cell's error and the executed notebook's path are printed, and ``manifest.json`` says
the run is incomplete.

Before anything is written, the run is checked (:func:`check_run`): ``--run-dir`` must not be a file, the device must
exist, every ``--param`` must be a parameter of a notebook to run, a folder made with another profile, data set or
device is refused unless ``--force`` (which then reruns every notebook), and an output registered by a notebook that
this run does not rerun must still be there with its recorded sha256 (a deleted or edited checkpoint sidecar would
otherwise leave notebook 03 short of a model). After each notebook, the outputs it made in an earlier run and not in
this one are removed (:func:`medadv.report.remove_stale_outputs`). SIGTERM (or Ctrl-C) stops the run with the
notebook it was in; the notebook is marked ``interrupted`` and a rerun of the same command resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from medadv.config import (
    BATCH_ENV,
    PROFILE_NAMES,
    PROFILE_SECTIONS,
    SECTION_CONFIGS,
    Profile,
    ProfileSection,
    check_override_keys,
    load_profile,
    parse_overrides,
    pick_device,
)
from medadv.console import RUN_LOGGER, console_logger, exit_process
from medadv.core import first_names, kit_root, read_json, sha256_file, write_json
from medadv.data.sources import load_manifest
from medadv.errors import ConfigError, MedadvError, RunError
from medadv.kernel import ensure_kernel
from medadv.layout import SWEEP_FILE, RunLayout
from medadv.report import (
    broken_outputs,
    damaged_message,
    damaged_records,
    locked,
    make_run_folders,
    now,
    read_manifest,
    record_settings,
    remove_stale_outputs,
    set_aside_damaged,
    write_config,
)
from medadv.run_report import write_report

LIB_DIR = Path(__file__).resolve().parent
DEFAULT_NOTEBOOKS = LIB_DIR.parents[1] / "notebooks"
#: What a notebook's result depends on besides its own source: the library's code, profiles and page templates, and the
#: shipped model weights (the kit's pretrained Vnet: new weights change every model trained from them).
CODE_SUFFIXES = (".py", ".yaml", ".html", ".js", ".css", ".safetensors")
STANDARD_PARAMS = ("run_dir", "profile", "device", "data_manifest", "data_root")
#: The notebooks' path parameters (``--param``): name -> (the test it must pass, what it is, what to give).
PATH_PARAMS: dict[str, tuple[Callable[[Path], bool], str, str]] = {
    "responses_dir": (Path.is_dir, "folder", "the folder of the reader app's response CSV files (notebook 05)"),
    "responses_db": (Path.is_file, "file", "the served reader study's data/reader.sqlite (notebook 05)"),
}
#: The options ``medadv sweep`` takes beyond this runner's (where the runs go), named in ``medadv run --help``.
SWEEP_OPTIONS = (
    "--cluster {local,slurm,pbs}",
    "--scheduler ADDRESS",
    "--workers N",
    "--threads-per-worker N",
    "--jobs N",
    "--cluster-option KEY=VALUE",
    "--grid KEY=V1,V2",
    "--no-replication",
)
TRAINING_NOTEBOOK = "01_"  # notebook 01 trains the classifiers: the one notebook that reads ImageNet weights
SWEEP_NOTEBOOK_PREFIX = "9"  # 90_replication.ipynb and later: over a sweep's folder, run by medadv.sweep
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
LOG = logging.getLogger(RUN_LOGGER)


def discover_notebooks(notebooks_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """The notebooks ``NN_*.ipynb`` of ``notebooks_dir`` in order; ``only`` keeps those whose name starts with one of
    the given prefixes of at least two characters (``["00", "03"]``; ``"0"`` would take every notebook). Notebooks
    ``90``-``99`` run over a sweep's folder (:mod:`medadv.sweep`), never in a run's chain.

    Returns:
        The notebook paths, sorted by name.
    """
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb") if not p.name.startswith(SWEEP_NOTEBOOK_PREFIX))
    if not found:
        raise ConfigError(f"no notebooks NN_name.ipynb found in {notebooks_dir}; run from the kit's checkout.")
    if only:
        short = [o for o in only if len(o) < 2]
        if short:
            raise ConfigError(
                f"--only {short[0]!r}: give each notebook by its two-digit number (00, 03, ...); present are "
                f"{', '.join(p.stem for p in found)}."
            )
        unknown = [o for o in only if not any(p.name.startswith(o) for p in found)]
        sweeps = [o for o in unknown if o.startswith(SWEEP_NOTEBOOK_PREFIX) and any(notebooks_dir.glob(f"{o}*.ipynb"))]
        if sweeps:
            raise ConfigError(
                f"--only {sweeps[0]}: notebooks 90-99 read a sweep's runs together and run at the end of medadv sweep "
                f"(medadv sweep N ...), not in one run; a run's notebooks are {', '.join(p.stem for p in found)}."
            )
        if unknown:
            raise ConfigError(
                f"--only {' '.join(unknown)}: no such notebook; present are {', '.join(p.stem for p in found)}."
            )
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
    return found


def code_digest() -> str:
    """sha256 over the library's source files and shipped weights (:data:`CODE_SUFFIXES`): a change to either
    invalidates every notebook.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    for path in sorted(LIB_DIR.rglob("*")):
        if path.is_file() and path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
            digest.update(path.relative_to(LIB_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def data_digest(data_manifest: str | None, data_root: str | None) -> str:
    """sha256 of the data set a run reads: the manifest file's bytes and the data root's listing (relative path,
    size and mtime of every file), so that a changed, added or removed file makes notebook 00 and its followers
    rerun; ``""`` for the phantom cohort, which notebook 00 makes and registers itself.

    Returns:
        The hex digest, or ``""`` for the phantom cohort.
    """
    if data_manifest is None or data_root is None:
        return ""
    digest = hashlib.sha256(Path(data_manifest).read_bytes())
    root = Path(data_root)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def notebook_parameters(notebook: Path) -> set[str]:
    """The names in a notebook's ``parameters`` cell (papermill's own reading of it).

    Returns:
        The parameter names.
    """
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def execute_notebook(
    notebook: Path, out: Path, params: dict[str, Any], kernel: str, progress_bar: bool = False
) -> None:
    """Run ``notebook`` with papermill into ``out`` on the Jupyter kernel ``kernel``, from the kit's checkout.

    Once the last cell has run, the kernel's process group is killed (``shutdown_kernel="immediate"``) instead of
    asked to exit: every output is complete by then (the run context writes and closes each file, the run log's
    handler flushes every record; no notebook starts a service, a sweep's Dask cluster lives in ``medadv.sweep``'s
    own process), and the interpreter's teardown after a graceful shutdown took 1.5 s per notebook with torch loaded
    (10 s of the workshop run on 2 cores). The kernel's channels are encrypted where the installed Jupyter can
    (:func:`kernel_client_config`).

    Raises:
        papermill.exceptions.PapermillExecutionError: a cell failed (the executed notebook is written all the same).
    """
    import papermill  # heavy (nbclient, jupyter): imported only when a notebook runs

    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=params,
        kernel_name=kernel,
        progress_bar=progress_bar,
        cwd=str(notebook.parent.parent),
        shutdown_kernel="immediate",
        **kernel_client_config(),
    )


def kernel_client_config() -> dict[str, Any]:
    """The traitlets configuration of the notebook client that papermill makes for each notebook.

    A kernel talks to papermill over TCP sockets on the loopback interface, its messages signed but not encrypted;
    ipykernel 7.4 warns about that once per kernel, on the run's console. jupyter_client 8.10 and newer can give each
    kernel a CurveZMQ key pair (``KernelManager.transport_encryption``; ``auto`` encrypts when the kernel spec
    declares ``supported_encryption: curve``, as ipykernel's own spec does) where libzmq was built with CurveZMQ.
    That is asked for where both are there; elsewhere the client keeps Jupyter's defaults.

    Returns:
        keyword arguments for ``papermill.execute_notebook``: ``{"config": ...}``, or nothing.
    """
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


#: The warnings of a notebook's log the runner repeats on the console when the notebook has finished.
MAX_WARNINGS_SHOWN = 5


def logged_warnings(log: Path) -> list[str]:
    """The warnings a notebook's log holds (:func:`medadv.report.log_to_run` writes it afresh for each run of it).

    Returns:
        Each warning's message with its logger's name, in order; none when the log is missing.
    """
    if not log.is_file():
        return []
    marker = " WARNING "
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.split(marker, 1)[1] for line in lines if marker in line]


def own_params(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a run that ``notebook`` declares (with the standard ones): a ``--param`` for notebook 05
    alone is not handed to the others, which papermill would warn of (``Passed unknown parameter``).

    Returns:
        The parameters to run it with.
    """
    declared = notebook_parameters(notebook)
    return {k: v for k, v in params.items() if k in declared or k in STANDARD_PARAMS}


def notebook_key(
    notebook: Path,
    params: dict[str, Any],
    config: dict[str, Any],
    code: str,
    manifest: dict[str, Any],
    data: str = "",
) -> str:
    """The key that decides whether a completed notebook can be skipped (see the module docstring); ``data`` is
    :func:`data_digest`.

    Returns:
        The hex sha256 key.
    """
    earlier = {
        rel: meta["sha256"]
        for rel, meta in sorted(manifest.get("outputs", {}).items())
        if meta.get("notebook", "") < notebook.stem
    }
    payload = {
        "notebook": sha256_file(notebook),
        # the device as typed ("auto", "cpu") is left out: the device it resolves to is config["device"]
        "params": {k: v for k, v in own_params(notebook, params).items() if k not in ("run_dir", "device")},
        "data": data,
        "profile": config["profile"],
        "device": config["device"],
        "code": code,
        "inputs": earlier,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def outputs_intact(run_dir: Path, manifest: dict[str, Any], name: str) -> bool:
    """Whether every output that notebook ``name`` registered is still there with its recorded sha256.

    Returns:
        True when none of its outputs is missing or changed.
    """
    return not broken_outputs(run_dir, manifest, name)


def section_configs() -> dict[str, type[ProfileSection]]:
    """Every profile section's config class, in :data:`~medadv.config.PROFILE_SECTIONS`' order: the registry
    :data:`~medadv.config.SECTION_CONFIGS`, filled as the modules that define them are imported here.

    The section configs import torch and captum, so they are imported when a run starts, so that `medadv run --help`
    and a bad option answer at once without them (tests/test_pipeline.py checks that parsing never imports torch).

    Returns:
        Section name -> its :class:`~medadv.config.ProfileSection` class.

    Raises:
        RuntimeError: a section of ``PROFILE_SECTIONS`` that no imported class registered (a kit defect).
    """
    import medadv.attacks.robustness  # noqa: F401  (each import registers its module's section)
    import medadv.detect.config  # noqa: F401
    import medadv.effects  # noqa: F401
    import medadv.explain.study  # noqa: F401
    import medadv.reader_app.config  # noqa: F401
    import medadv.train.gan  # noqa: F401
    import medadv.train.loop  # noqa: F401

    missing = [name for name in PROFILE_SECTIONS if name not in SECTION_CONFIGS]
    if missing:
        raise RuntimeError(f"profile section(s) {missing} have no registered config class (ProfileSection).")
    return {name: SECTION_CONFIGS[name] for name in PROFILE_SECTIONS}


def check_profile(profile: Profile, overrides: Mapping[str, Any] | None = None) -> None:
    """Check every section of ``profile`` as its notebook will, before any notebook runs (a bad value must not wait
    for notebook 03 to be found, nor a misspelt key be left on its default).

    Every registered section (:func:`section_configs`: ``data``, ``classifier``, ``gan``, ``attacks``, ``explain``,
    ``reader``, ``effects``, ``detect``, ``cluster``) is built by its class's ``from_profile``, the one way a stage
    loads it: unknown keys named with the keys the section takes, every value of its type and range. Then what ties
    the sections together: ``data.image_size`` at least paper 001's smallest input, ``detect.classifier`` and
    ``explain.models`` among the classifiers the ``classifier`` section trains, and the attacks whose examples
    ``detect.attacks`` reads in ``attacks.ensemble``. ``overrides`` (the ``--set`` items,
    nested) are named as ``--set SECTION.*`` in the errors; their keys were checked by
    :func:`medadv.config.check_override_keys` before the profile was loaded.

    Raises:
        ConfigError: the first problem found, naming the key (``--set`` or the profile), what was seen and expected.
    """
    from medadv.detect.config import ENSEMBLE_ATTACK
    from medadv.models.classifier import min_input_size

    overrides = overrides or {}
    built: dict[str, Any] = {}
    for name, cls in section_configs().items():
        with _named(profile, overrides, name):
            built[name] = cls.from_profile(profile)
    trained = built["classifier"].model_names()
    side = min_input_size()
    links = [
        (
            min(profile.data.image_size) < side,
            "data",
            f"data.image_size is {list(profile.data.image_size)}; paper "
            f"001's network (the classifiers, the GAN's discriminator, the detectors) takes at least {side} x {side} "
            f"pixels: set data.image_size to [{side}, {side}] or larger.",
        ),
        (
            built["detect"].classifier not in trained,
            "detect",
            f"detect.classifier is {built['detect'].classifier!r}, "
            f"which the classifier section does not train; it trains {trained}.",
        ),
        (
            "transfer" in built["attacks"].ensemble and not set(built["attacks"].transfer_from) <= set(trained),
            "attacks",
            f"attacks.transfer_from {list(built['attacks'].transfer_from)} names classifier(s) "
            f"{sorted(set(built['attacks'].transfer_from) - set(trained))} that the classifier section does not train; "
            f"it trains {trained}. Name trained classifiers (the transfer attack's surrogates), or leave 'transfer' "
            "out of attacks.ensemble.",
        ),
        (
            not {ENSEMBLE_ATTACK[a] for a in built["detect"].attacks} <= set(built["attacks"].ensemble),
            "detect",
            f"detect.attacks {list(built['detect'].attacks)} are read from notebook 03's examples of "
            f"{sorted({ENSEMBLE_ATTACK[a] for a in built['detect'].attacks})}, which attacks.ensemble "
            f"{list(built['attacks'].ensemble)} does not run all of; add them to attacks.ensemble or take them out of "
            "detect.attacks.",
        ),
        (
            not set(built["explain"].models) <= set(trained),
            "explain",
            f"explain.models {list(built['explain'].models)} "
            f"name classifier(s) {sorted(set(built['explain'].models) - set(trained))} that the classifier section "
            f"does not train; it trains {trained}.",
        ),
    ]
    for failed, section, message in links:
        if failed:
            raise ConfigError(f"{_source(profile, overrides, section)}: {message}")


def _source(profile: Profile, overrides: Mapping[str, Any], section: str) -> str:
    """Where a section's values come from, for an error: ``--set SECTION.*``, or ``profile 'NAME'`` and, when it
    extends other files, the files that set the section (a bad value may sit in a base).

    Returns:
        The words to begin the error with.
    """
    if section in overrides:
        return f"--set {section}.*"
    files = profile.origins.get(section, ())
    extends = len({name for names in profile.origins.values() for name in names}) > 1
    return f"profile {profile.name!r}" + (f" (its {section} section from {', '.join(files)})" if extends else "")


@contextlib.contextmanager
def _named(profile: Profile, overrides: Mapping[str, Any], section: str) -> Iterator[None]:
    """Prefix a :class:`ConfigError` raised inside with where the section's values come from (:func:`_source`)."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{_source(profile, overrides, section)}: {exc}") from exc


def _update_manifest(run_dir: Path, **changes: Any) -> dict[str, Any]:
    manifest = read_manifest(run_dir)
    notebooks = changes.pop("notebooks", None)
    if notebooks:
        for name, entry in notebooks.items():
            manifest["notebooks"][name] = entry
    manifest.update(changes)
    write_json(RunLayout(run_dir).manifest, manifest)
    return manifest


class Stopped(Exception):
    """The run was stopped by a signal (SIGTERM) or Ctrl-C."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def _catch_sigterm() -> None:
    """Turn SIGTERM into :class:`Stopped` for the rest of the run (only the main thread can install a handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)


def _settings_changed(old: dict[str, Any], profile: Profile, device: str) -> list[str]:
    """What differs between a run folder's ``config.json`` and this run: profile name, data set, settings, device."""
    new = json.loads(json.dumps(profile.to_dict(), default=str))
    before = old.get("profile", {})
    changes = []
    if before.get("name") != new["name"]:
        changes.append(f"profile {before.get('name')!r} -> {new['name']!r}")
    old_data, new_data = before.get("data", {}), new["data"]
    if any(old_data.get(k) != new_data.get(k) for k in ("manifest", "root")):
        changes.append(
            f"data set {old_data.get('manifest') or 'phantom'} in {old_data.get('root')} -> "
            f"{new_data.get('manifest') or 'phantom'} in {new_data.get('root')}"
        )

    def settings(profile_dict: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in profile_dict.get("data", {}).items() if k not in ("manifest", "root")}
        return {**{k: v for k, v in profile_dict.items() if k != "name"}, "data": data}

    differ = _differences(settings(before), settings(new))
    if differ and before.get("name") == new["name"]:  # another profile's settings differ by the dozen
        changes.append(f"settings {first_names(differ)}")
    if old.get("device") != device:
        changes.append(f"device {old.get('device')!r} -> {device!r}")
    return changes


def _differences(old: Any, new: Any, key: str = "") -> list[str]:
    """The settings that differ between two plain profiles, each as ``KEY OLD -> NEW`` with ``KEY`` dotted
    (``seed 3 -> 2021``, ``classifier.epochs 2 -> 3``); lists and values compared whole.

    Returns:
        The differences, in key order.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))]
    return [] if old == new else [f"{key} {old!r} -> {new!r}"]


def resume_options(run_dir: Path) -> str:
    """The options a resume of ``run_dir`` repeats: ``--profile`` and the ``--set`` items its ``config.json`` records.

    Returns:
        The options as one would type them, or an empty string when the folder records no ``config.json``.
    """
    config = read_json(RunLayout(run_dir).config)
    if config is None:
        return ""
    profile = config.get("profile", {})
    name = str(profile.get("name", "?"))
    items = [f"--profile {name}" if name in PROFILE_NAMES else f"--profile <the file of profile {name!r}>"]
    data = profile.get("data", {})
    if data.get("manifest"):
        items += [f"--data {shlex.quote(str(data['manifest']))}", f"--data-root {shlex.quote(str(data.get('root')))}"]
    items += [f"--set {shlex.quote(item)}" for item in config.get("overrides", [])]
    return " ".join(items)


def recorded_changes(run_dir: Path, profile: Profile, device: str) -> list[str]:
    """What differs between this run and the settings a run folder records: its ``config.json`` and the settings in
    its ``manifest.json`` (what made the outputs, kept there too so that a deleted ``config.json`` hides nothing).

    Returns:
        The differences in words (:func:`_settings_changed`); one more when the folder holds outputs made with
        settings it no longer records.
    """
    config = read_json(RunLayout(run_dir).config)
    manifest = read_manifest(run_dir)
    changes: list[str] = []
    for record in (config, manifest.get("settings")):
        if record is not None:
            changes += [c for c in _settings_changed(record, profile, device) if c not in changes]
    if config is None and manifest.get("settings") is None and manifest["outputs"]:
        changes.append("config.json is missing, so the settings that made the outputs in manifest.json are unknown")
    return changes


def check_folder(folder: Path, sweep: bool = False) -> None:
    """Refuse a ``--run-dir`` that cannot be a run's folder (or, with ``sweep``, a sweep's): a file, a folder of the
    other kind (a sweep's ``sweep.json``, a run's ``manifest.json`` without it), or one that holds other things
    (:meth:`medadv.layout.RunLayout.foreign_entries`), among which the run would write.

    Raises:
        ConfigError: naming what the folder is and what to give instead.
    """
    kind = "sweep" if sweep else "run"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"--run-dir {folder}: is a file, not a folder; give a new folder, or a {kind} folder to resume."
        )
    is_sweep = (folder / SWEEP_FILE).is_file()
    if is_sweep and not sweep:
        raise ConfigError(
            f"--run-dir {folder}: is a sweep folder ({SWEEP_FILE}); its runs are its seed-NNNN folders. Give one of "
            "them (with its profile.yaml as --profile), a new folder, or resume the sweep with medadv sweep."
        )
    layout = RunLayout(folder)
    if sweep and not is_sweep and layout.manifest.is_file():
        raise ConfigError(
            f"--run-dir {folder}: is a run folder ({layout.manifest.name}, no {SWEEP_FILE}), not a sweep folder; "
            "a sweep would write its runs and records into it. Give a new folder for the sweep, or a sweep folder "
            "to resume."
        )
    foreign = layout.foreign_entries()
    if foreign and not is_sweep:
        records = f"no {SWEEP_FILE}" if sweep else "no config.json, manifest.json or run.lock"
        raise ConfigError(
            f"--run-dir {folder}: holds {first_names(foreign)} but is not a {kind} folder ({records}); a {kind} "
            "writes its notebooks, tables and figures into its folder and would mix them with these. Give a new or "
            f"empty folder, or a {kind} folder to resume."
        )


def check_params(run_dir: Path, profile: Profile, notebooks: Sequence[Path], extra_params: dict[str, Any]) -> None:
    """Check the ``--param`` items against the notebooks to run, and the readers' source of notebooks 05 and 06.

    Raises:
        ConfigError: a ``--param`` no notebook to run takes; with neither ``responses_dir`` nor ``responses_db``, a
            profile without simulated readers, or a folder that keeps real readers' reads
            (:func:`medadv.reader_app.config.kept_readers`), when a notebook that reads the panel runs.
    """
    from medadv.reader_app.config import kept_readers

    declared = set().union(*(notebook_parameters(nb) for nb in notebooks))
    unknown = sorted(set(extra_params) - declared)
    if unknown:
        raise ConfigError(
            f"--param {unknown[0]}: no notebook of this run has such a parameter; they take "
            f"{sorted(declared - set(STANDARD_PARAMS))} (check the spelling)."
        )
    if "responses_dir" not in declared or any(extra_params.get(name) is not None for name in PATH_PARAMS):
        return
    if not profile.section("reader").get("simulated_readers"):
        raise ConfigError(
            "reader.simulated_readers is empty and no readers' responses are given: without --param "
            "responses_dir=DIR or responses_db=FILE notebooks 05 and 06 analyse the simulated panel. Describe at "
            "least one simulated reader in the profile (see the default's), or give the readers' responses."
        )
    kept = kept_readers(run_dir)
    if kept is not None:
        raise ConfigError(kept)


def check_run(
    run_dir: Path,
    profile: Profile,
    device: str,
    force: bool,
    notebooks: Sequence[Path],
    all_notebooks: Sequence[Path],
    extra_params: dict[str, Any],
) -> list[Path]:
    """Check a run before anything is written (see the module docstring); return the notebooks to run.

    Returns:
        The notebooks to run: those asked for, or every notebook when ``force`` meets changed settings.

    Raises:
        ConfigError: ``run_dir`` is a file, or a folder that holds other things than a run; the device is not there;
            a ``--param`` no notebook to run takes; the
            folder was made with another profile, data set, settings or device (without ``force``; compared with
            ``config.json`` and with the settings ``manifest.json`` records, so a deleted ``config.json`` hides
            nothing).
        RunError: damaged ``config.json`` / ``manifest.json`` (without ``force``); an earlier notebook that this run
            does not rerun has a missing or changed output.
    """
    check_folder(run_dir)
    resolved = str(pick_device(device))  # refused here, before a folder is made
    check_params(run_dir, profile, notebooks, extra_params)
    damaged = damaged_records(run_dir) if run_dir.is_dir() else []
    if damaged and not force:
        raise RunError(damaged_message(run_dir, damaged))
    changes = [f"{', '.join(damaged)} damaged"] if damaged else recorded_changes(run_dir, profile, resolved)
    if changes and not force:
        made_with = resume_options(run_dir)
        raise ConfigError(
            f"--run-dir {run_dir} was made with other settings ({'; '.join(changes)}); resuming it would mix their "
            + (f"outputs. To resume it, give the options it was made with: {made_with}. " if made_with else "outputs. ")
            + "Or give a new --run-dir, or add --force to rerun every notebook with these settings."
        )
    if changes:
        LOG.info(f"medadv: --force with new settings ({'; '.join(changes)}): every notebook reruns")
        return list(all_notebooks)
    manifest = read_manifest(run_dir)
    names = {nb.stem for nb in notebooks}
    for rel in broken_outputs(run_dir, manifest):
        maker = manifest["outputs"][rel]["notebook"]
        if maker not in names and maker < max(names):
            raise RunError(
                f"{run_dir / rel}: an output of notebook {maker} is missing or changed since it was made (its "
                f"sha256 differs from manifest.json); rerun {maker} too (add it to --only, or run without --only)."
            )
    never = [
        nb.stem
        for nb in all_notebooks
        if nb.stem < min(names) and manifest["notebooks"].get(nb.stem, {}).get("status") != "complete"
    ]
    if never:
        raise RunError(
            f"--only {min(names)[:2]}: notebook(s) {', '.join(never)} have not completed in {run_dir}, and the later "
            "notebooks read their outputs; run them first (add them to --only, or run without --only)."
        )
    return list(notebooks)


def resolve_data(data_manifest: str | None, data_root: str | None) -> tuple[str | None, str | None]:
    """Check ``--data`` and ``--data-root`` (both or neither, an existing file and folder).

    Returns:
        The manifest's and the root's absolute paths, or ``(None, None)`` for the phantom cohort.

    Raises:
        ConfigError: only one of the two is given, or the file or folder is not there.
        DataError: the manifest does not parse, or a field is missing, unknown or ill-typed (named).
    """
    if (data_manifest is None) != (data_root is None):
        raise ConfigError(
            "--data and --data-root go together: give the manifest YAML and the folder that holds the data."
        )
    if data_manifest is None or data_root is None:
        return None, None
    if Path(data_manifest).is_dir():
        raise ConfigError(
            f"--data {data_manifest}: is a folder; give the data set's manifest YAML file (data_manifests/), and its "
            "images' folder as --data-root."
        )
    if not Path(data_manifest).is_file():
        raise ConfigError(f"--data {data_manifest}: no such manifest file; see data_manifests/ for the data sets.")
    if Path(data_root).exists() and not Path(data_root).is_dir():
        raise ConfigError(f"--data-root {data_root}: is a file; give the folder the data set was unpacked into.")
    if not Path(data_root).is_dir():
        raise ConfigError(f"--data-root {data_root}: no such folder; give the folder the data set was unpacked into.")
    load_manifest(data_manifest)  # its fields checked before notebook 00, as the profile's are (DataError, exit 2)
    return str(Path(data_manifest).resolve()), str(Path(data_root).resolve())


def resolve_profile(
    profile: str, overrides: Sequence[str], data_manifest: str | None, data_root: str | None
) -> tuple[Profile, dict[str, Any]]:
    """Load ``profile`` with the ``--set`` overrides and the data set's paths (from :func:`resolve_data`), and check
    it as :func:`check_profile` does, each override named as ``--set`` in an error.

    Returns:
        (the resolved profile, the nested settings it was loaded with: the overrides and the data set's paths).
    """
    settings = parse_overrides(overrides)
    check_override_keys(settings, section_configs())  # before loading: a misspelt data key named as --set data.KEY
    data_settings = {"data": {**settings.get("data", {}), "manifest": data_manifest, "root": data_root}}
    loaded_with = {**settings, **data_settings} if data_manifest else settings
    resolved = load_profile(profile, loaded_with)
    check_profile(resolved, settings)
    return resolved, loaded_with


class _Run:
    """One ``medadv run`` in progress: its folder, parameters, digests and the manifest as last written."""

    def __init__(self, run_dir: Path, params: dict[str, Any], config: dict[str, Any], data: str, force: bool) -> None:
        self.run_dir, self.params, self.config, self.force = run_dir, params, config, force
        self.code, self.data, self.kernel = code_digest(), data, ensure_kernel()
        self.manifest: dict[str, Any] = {}
        self.executed = 0

    def execute(self, nb: Path, i: int, total: int) -> int | None:
        """Run notebook ``nb`` (the ``i``-th of ``total``) unless its key and outputs are unchanged.

        Returns:
            ``None`` when it completed or was skipped; the run's exit status (1 failed, 130 or 143 stopped) otherwise.
        """
        from papermill.exceptions import PapermillExecutionError

        name, tag = nb.stem, f"[{i}/{total}] {nb.stem}"
        key = notebook_key(nb, self.params, self.config, self.code, self.manifest, self.data)
        entry = self.manifest["notebooks"].get(name, {})
        if (
            not self.force
            and entry.get("status") == "complete"
            and entry.get("key") == key
            and outputs_intact(self.run_dir, self.manifest, name)
        ):
            LOG.info(f"{tag}: unchanged since {entry.get('finished')}, skipped")
            return None
        out_path = RunLayout(self.run_dir).notebooks / nb.name
        self.executed += 1
        LOG.info(f"{tag}: running ...")
        self._mark(name, {"status": "running", "key": key, "started": now()})
        start = time.perf_counter()
        try:
            execute_notebook(nb, out_path, own_params(nb, self.params), self.kernel, progress_bar=sys.stdout.isatty())
        except PapermillExecutionError as exc:
            return self._failed(name, tag, key, time.perf_counter() - start, exc, out_path)
        except (Stopped, KeyboardInterrupt) as exc:
            return self._stopped(name, tag, key, time.perf_counter() - start, exc)
        seconds = time.perf_counter() - start
        for rel in remove_stale_outputs(self.run_dir, name):
            LOG.info(f"    removed {rel}: made by an earlier run of {name}, not by this one")
        self._mark(name, {"status": "complete", "key": key, "seconds": round(seconds, 1), "finished": now()})
        LOG.info(f"{tag}: done in {seconds:.1f} s")
        warnings = logged_warnings(RunLayout(self.run_dir).log(name))
        if warnings:  # images left out, a fallback taken: said on the console too, not only in the notebook's log
            LOG.info(f"    {len(warnings)} warning(s), in {RunLayout(self.run_dir).log(name)}:")
            for text in warnings[:MAX_WARNINGS_SHOWN]:
                LOG.info(f"      {text}")
        return None

    def run_all(self, notebooks: Sequence[Path], every: Sequence[Path]) -> int:
        """Run ``notebooks`` in order, then record whether the folder is complete: every notebook of ``every``
        finished, and none that this run left out (``--only``) made from inputs that have changed since.

        Returns:
            0 when every notebook ran or was skipped, else :meth:`execute`'s status for the one that stopped.
        """
        start = time.perf_counter()
        for i, nb in enumerate(notebooks, 1):
            status = self.execute(nb, i, len(notebooks))
            if status == 1:  # failed: the report now says that the folder is not complete, not what it showed before
                self.report()
            if status is not None:
                return status
        ran = {nb.stem for nb in notebooks}
        stale = [nb.stem for nb in every if nb.stem not in ran and self._stale(nb)]
        for name in stale:
            self._mark(name, {**self.manifest["notebooks"][name], "status": "stale"})
        if stale:
            LOG.info(
                f"    {', '.join(stale)}: made from inputs that changed since (another notebook's outputs, the "
                "data set's files, the library or the settings); run without --only to bring them up to date"
            )
        complete = all(self.manifest["notebooks"].get(p.stem, {}).get("status") == "complete" for p in every)
        _update_manifest(self.run_dir, complete=complete, finished=now())
        LOG.info(
            f"medadv: {'complete' if complete else 'partial (use without --only to complete)'} in "
            f"{time.perf_counter() - start:.1f} s; results in {self.run_dir}"
        )
        return self.report()

    def report(self) -> int:
        """Write the run's ``report/index.html`` (:mod:`medadv.run_report`), unless every notebook was skipped and
        the report is there already.

        Returns:
            0, or 1 when the report could not be written (the reason logged; the results themselves are complete).
        """
        if not self.executed and (RunLayout(self.run_dir).report / "index.html").is_file():
            return 0
        try:
            path = write_report(self.run_dir)
        except (MedadvError, OSError, ValueError) as exc:
            LOG.error(
                f"medadv: the run's report could not be written ({exc}); the results are in {self.run_dir}. "
                f"Fix the cause and write it with: medadv report {self.run_dir}"
            )
            return 1
        LOG.info(f"medadv: report in {path} (open it in a browser; the report/ folder can be copied on its own)")
        return 0

    def _stale(self, nb: Path) -> bool:
        """Whether notebook ``nb`` completed once but with another key than its inputs give now."""
        entry = self.manifest["notebooks"].get(nb.stem, {})
        if entry.get("status") != "complete":
            return False
        return entry.get("key") != notebook_key(nb, self.params, self.config, self.code, self.manifest, self.data)

    def _mark(self, name: str, entry: dict[str, Any]) -> None:
        self.manifest = _update_manifest(self.run_dir, notebooks={name: entry})

    def _failed(self, name: str, tag: str, key: str, seconds: float, exc: Any, out_path: Path) -> int:
        self._mark(
            name,
            {
                "status": "failed",
                "key": key,
                "seconds": round(seconds, 1),
                "finished": now(),
                "error": f"{exc.ename}: {exc.evalue}",
                "cell": exc.exec_count,
            },
        )
        LOG.info(f"{tag}: FAILED after {seconds:.1f} s in cell {exc.exec_count}")
        LOG.info(f"    {exc.ename}: {exc.evalue}")
        LOG.info(f"    executed notebook: {out_path}")
        LOG.info(
            f"    the run in {self.run_dir} is incomplete (manifest.json says so); fix the cause and rerun with "
            f"--run-dir {self.run_dir}"
        )
        return 1

    def _stopped(self, name: str, tag: str, key: str, seconds: float, exc: BaseException) -> int:
        how = str(exc) if isinstance(exc, Stopped) else "Ctrl-C"
        self._mark(name, {"status": "interrupted", "key": key, "finished": now()})
        LOG.info(f"{tag}: stopped by {how} after {seconds:.1f} s")
        LOG.info(
            f"    the run in {self.run_dir} is incomplete; rerun the same command (--run-dir {self.run_dir}) to "
            f"resume: finished notebooks are skipped and {name} starts again"
        )
        return 128 + signal.SIGTERM if isinstance(exc, Stopped) else 130


def run_pipeline(
    profile: str = "default",
    run_dir: str | Path | None = None,
    only: Sequence[str] | None = None,
    device: str = "auto",
    data_manifest: str | None = None,
    data_root: str | None = None,
    force: bool = False,
    notebooks_dir: str | Path = DEFAULT_NOTEBOOKS,
    extra_params: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> int:
    """Run the notebooks for ``profile`` into ``run_dir``, logging each step to the ``medadv.run`` logger.

    ``extra_params`` are passed to every notebook beside the standard ones (a notebook without that parameter simply
    ignores it), e.g. ``{"responses_dir": "/data/reader_csvs"}`` for notebook 05. ``overrides`` are profile settings
    ``SECTION.KEY=VALUE`` (``--set``), checked like the profile and recorded in ``config.json``. Relative paths are
    taken from the current directory; without ``run_dir`` the run goes to the kit's ``results/<profile>-<time>``.

    Returns:
        0 on success, 1 if a notebook failed, 128 + SIGTERM or 130 if the run was stopped inside a notebook.
    """
    console_logger()
    data_manifest, data_root = resolve_data(data_manifest, data_root)
    resolved, _ = resolve_profile(profile, overrides, data_manifest, data_root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (Path(run_dir) if run_dir else kit_root() / "results" / f"{resolved.name}-{stamp}").resolve()
    every = discover_notebooks(Path(notebooks_dir))
    notebooks = check_run(
        run_dir, resolved, device, force, discover_notebooks(Path(notebooks_dir), only), every, extra_params or {}
    )
    if any(nb.stem.startswith(TRAINING_NOTEBOOK) for nb in notebooks):
        from medadv.models.backbones import fetch_imagenet
        from medadv.train.loop import ClassifierConfig

        fetch_imagenet(ClassifierConfig.from_profile(resolved).imagenet_archs())  # before notebook 00, not in 01

    params = {
        "run_dir": str(run_dir),
        "profile": profile if str(profile) in PROFILE_NAMES else str(Path(profile).resolve()),
        "device": device,
        "data_manifest": data_manifest,
        "data_root": data_root,
        **(extra_params or {}),
    }
    with locked(run_dir):
        if force:
            for name in set_aside_damaged(run_dir):
                LOG.info(f"medadv: {name} was damaged; kept as {name}.damaged, every notebook reruns")
        make_run_folders(run_dir)
        config = write_config(run_dir, resolved, device, overrides=list(overrides))
        record_settings(run_dir, config)
        run = _Run(run_dir, params, config, data_digest(data_manifest, data_root), force)
        run.manifest = _update_manifest(run_dir, complete=False, profile=resolved.name, started=now())
        LOG.info(f"medadv: profile {resolved.name}, device {config['device']}, run folder {run_dir}")
        # The kernels draw inline whatever the caller's shell says (MPLBACKEND=agg would keep every figure out of the
        # executed notebooks); the figure files are written by RunContext.save_figure either way.
        os.environ["MPLBACKEND"] = INLINE_BACKEND
        os.environ[BATCH_ENV] = "1"  # widget cells draw their first frame: nbclient can hang on widget messages
        os.environ.setdefault("MEDADV_NO_PROGRESS", "0" if sys.stdout.isatty() else "1")
        _catch_sigterm()
        return run.run_all(notebooks, every)


def build_parser() -> argparse.ArgumentParser:
    """The options of ``medadv run`` (and of ``./run_all.sh``, which passes its arguments on unchanged).

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="medadv run",
        description=__doc__.split("\n\n")[0],
        epilog="Relative paths are taken from the current directory. Research and teaching only, not for clinical use.",
    )
    parser.add_argument(
        "--profile", default="default", help="smoke, default, full, workshop, or a profile YAML file (default: default)"
    )
    parser.add_argument(
        "--run-dir", help="run folder; an existing one is resumed (default: the kit's results/<profile>-<time>)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NN",
        help="run only these notebooks, by their two-digit numbers (00 03); the earlier ones must have completed",
    )
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--data", metavar="MANIFEST", help="a real data set's manifest YAML (data_manifests/)")
    parser.add_argument("--data-root", metavar="DIR", help="the folder that holds that data set")
    parser.add_argument("--force", action="store_true", help="rerun every notebook even if unchanged")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra notebook parameter, e.g. responses_dir=DIR for 05 (repeatable)",
    )
    sweep = parser.add_argument_group(
        "a sweep over seeds",
        "With --sweep the command is 'medadv sweep' (same as 'medadv sweep N ...'), which takes the "
        "options above but --only (every run runs every notebook), and these, described by 'medadv sweep --help': "
        + ", ".join(SWEEP_OPTIONS)
        + ".",
    )
    sweep.add_argument(
        "--sweep",
        metavar="N|S1,S2,...",
        help="run every seed (10 -> 0-9, or 3,7,11) on Dask, each in its own run folder, then notebook 90",
    )
    add_set_option(parser, "recorded in config.json")
    parser.add_argument("--notebooks", default=str(DEFAULT_NOTEBOOKS), help=argparse.SUPPRESS)
    return parser


def add_set_option(parser: argparse.ArgumentParser, kept: str) -> None:
    """Add ``--set SECTION.KEY=VALUE`` (repeatable, into ``args.overrides``) to a command's parser; ``kept`` says where
    the command keeps the values (a run's ``config.json``, a sweep's runs' ``profile.yaml``)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        dest="overrides",
        help=f"override a profile setting, e.g. classifier.epochs=3 (YAML value; repeatable; checked like the "
        f"profile before anything runs; {kept})",
    )


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs into a dict; values are read as YAML scalars (numbers, true/false, null, strings). The
    notebooks' path parameters (:data:`PATH_PARAMS`) are taken from the current directory, as ``--run-dir`` and
    ``--data`` are, made absolute and checked to exist, before any notebook runs.

    Returns:
        ``{name: value}``.

    Raises:
        ConfigError: a malformed item, a parameter that has its own option, or a path parameter naming nothing.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(
                f"--param {item!r}: expected NAME=VALUE with NAME a Python identifier, e.g. responses_dir=DIR."
            )
        if name in STANDARD_PARAMS:
            raise ConfigError(f"--param {name}: set it with its own option (--{name.replace('_', '-')}), not --param.")
        out[name] = yaml.safe_load(value) if value else None
        if name in PATH_PARAMS and out[name] is not None:
            path = Path(str(out[name])).expanduser().resolve()
            is_kind, kind, what = PATH_PARAMS[name]
            if not is_kind(path):
                raise ConfigError(
                    f"--param {name}={value}: no such {kind} ({path}); give {what} (a relative path is taken from "
                    "the current directory)."
                )
            out[name] = str(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``medadv run [options]``: parse the options (before importing anything heavy) and run.

    Returns:
        The exit status: :func:`run_pipeline`'s, 2 for a configuration error, 128 + SIGTERM when stopped between
        notebooks.
    """
    console_logger()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.sweep is not None:
        LOG.error(
            "medadv: error: this runner runs one run folder; start a sweep with 'medadv run --sweep ...' (or "
            "./run_all.sh --sweep ..., python -m medadv.sweep ...)."
        )
        return 2
    try:
        return run_pipeline(
            profile=args.profile,
            run_dir=args.run_dir,
            only=args.only,
            device=args.device,
            data_manifest=args.data,
            data_root=args.data_root,
            force=args.force,
            notebooks_dir=args.notebooks,
            extra_params=parse_params(args.param),
            overrides=args.overrides,
        )
    except MedadvError as exc:
        LOG.error(f"medadv: error: {exc}")
        return 2
    except Stopped as exc:  # a signal between two notebooks (inside one, run_pipeline reports it)
        LOG.error(f"medadv: stopped by {exc} between notebooks; rerun the same command to resume.")
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    exit_process(main())
