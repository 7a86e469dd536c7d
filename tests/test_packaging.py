"""The repository's packaging files agree with each other: conda environments, pyproject, licence, citation."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base", "seaborn": "seaborn-base"}
#: Installed by the environments' pip step rather than from conda-forge (whose captum is older than the tested 0.9.0).
BY_PIP = {"captum"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_names(env: dict) -> set[str]:
    return {re.split(r"[<>=\[ ]", dep, maxsplit=1)[0] for dep in env["dependencies"] if isinstance(dep, str)}


@pytest.mark.parametrize("name", ["environment.yml", "environment-gpu.yml"])
def test_conda_environments_take_conda_forge_alone_and_every_dependency(name: str) -> None:
    env = yaml.safe_load((ROOT / name).read_text())
    assert env["channels"] == ["conda-forge"]
    names = _conda_names(env)
    wanted = {
        CONDA_NAMES.get(n, n)
        for n in (re.split(r"[<>=\[ ]", dep, maxsplit=1)[0] for dep in _pyproject()["project"]["dependencies"])
    } - BY_PIP
    assert wanted <= names, f"{name} lacks {sorted(wanted - names)}"
    assert "pytorch-cuda" not in names
    gpu = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith(("cuda-version", "pytorch["))]
    if name == "environment-gpu.yml":
        assert any(d.startswith("cuda-version") for d in gpu) and any("build='cuda*'" in d for d in gpu)
        assert "pin 11.8" not in (ROOT / name).read_text()  # conda-forge builds no current pytorch for CUDA 11.8
    else:
        assert not gpu and "cuda-version" not in names


def test_licence_citation_and_intended_use_agree_with_pyproject() -> None:
    project = _pyproject()["project"]
    assert project["license"]["text"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["license"] == "MIT" and str(citation["version"]) == project["version"]
    assert "not for clinical use" in (ROOT / "README.md").read_text()
    assert project["scripts"] == {"medadv": "medadv.cli:main", "medadv-reader": "medadv.reader_app.server:main"}
    assert any(dep.startswith("ipywidgets") for dep in project["dependencies"])


def test_package_data_ships_every_data_file_of_the_package() -> None:
    """Profiles, the reader app's pages and the kit's pretrained Vnet (weights and model cards) go into the wheel."""
    import fnmatch

    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["medadv"]
    package = ROOT / "lib" / "medadv"
    data = [
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert any(d.startswith("models/weights/") for d in data)
    missing = [d for d in data if not any(fnmatch.fnmatch(d, pat) for pat in patterns)]
    assert missing == []


@pytest.mark.parametrize("name", ["environment.yml", "environment-gpu.yml"])
def test_conda_environments_keep_pyprojects_bounds_so_pip_replaces_no_conda_package(name: str) -> None:
    env = yaml.safe_load((ROOT / name).read_text())
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            match = re.fullmatch(r"([a-z0-9_.-]+)(?:\[version='([^']*)'.*\])?(.*)", dep)
            conda[match.group(1)] = (match.group(2) or match.group(3)).replace(" ", "")
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    for dep in _pyproject()["project"]["dependencies"]:
        project, spec = re.fullmatch(r"([a-z0-9_.-]+)(?:\[[a-z]+\])?(.*)", dep).groups()
        if project in BY_PIP:
            assert any(p.split("#")[0].strip() == f"{project}>=0.9,<1" for p in pip), (name, project)
            continue
        for conda_name in ["dask", "distributed"] if dep.startswith("dask[") else [CONDA_NAMES.get(project, project)]:
            assert conda[conda_name] == spec.replace(" ", ""), (name, conda_name, conda[conda_name], spec)
    assert "seaborn" not in conda and pip[-1].split("#")[0].strip() == "-e ."
