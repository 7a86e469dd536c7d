"""Profiles as data, section parsing, device choice and seeding."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from medadv.config import (
    PROFILE_NAMES,
    DataConfig,
    load_profile,
    pick_device,
    profile_from_dict,
    section_config,
    seed_everything,
)
from medadv.errors import ConfigError


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_loads_and_round_trips(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    again = profile_from_dict(profile.to_dict())
    assert again.to_dict() == profile.to_dict()


def test_profiles_grow_from_smoke_to_full() -> None:
    smoke, default, full = (load_profile(n).data for n in ("smoke", "default", "full"))
    assert smoke.n_patients < default.n_patients <= full.n_patients
    assert smoke.image_size[0] <= default.image_size[0] < full.image_size[0]


def test_overrides_merge_into_sections(tmp_path: Path) -> None:
    profile = load_profile("smoke", {"data": {"manifest": "m.yaml", "root": str(tmp_path)}})
    assert profile.data.manifest == "m.yaml" and profile.data.root == str(tmp_path)
    assert profile.data.n_patients == load_profile("smoke").data.n_patients


def test_profile_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 3\ndata:\n  n_patients: 20\n  image_size: [32, 48]\n")
    profile = load_profile(path)
    assert profile.name == "mine" and profile.seed == 3
    assert profile.data.image_size == (32, 48)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: [1\n", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("data:\n  n_pateints: 20\n", "unknown keys ['n_pateints']"),
        ("data:\n  modality: mri\n", "data.modality is 'mri'"),
        ("data:\n  split: [0.5, 0.5, 0.5]\n", "sum to 1"),
        ("seed: -1\n", "seed is -1; expected a whole number from 0 to 4294967295"),
        ("seed: 4294967296\n", "seed is 4294967296; expected a whole number from 0 to 4294967295"),
        ("gan: 3\n", "section 'gan' is int"),
        (
            "trainer:\n  epochs: 3\n",
            "unknown section(s) ['trainer']; a profile holds name, seed and the sections ['data', 'classifier'",
        ),
        ("classifer:\n  epochs: 1\n", "unknown section(s) ['classifer']"),
        ("seed: 1\nseed: 2\n", "duplicate key 'seed' on line 2 (first on line 1)"),
        ("data:\n  n_patients: 20\n  n_patients: 40\n", "duplicate key 'n_patients' on line 3 (first on line 2)"),
    ],
)
def test_bad_profiles_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    pattern = message
    for ch in "[].()":
        pattern = pattern.replace(ch, "\\" + ch)
    with pytest.raises(ConfigError, match=pattern):
        load_profile(path)


def test_missing_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="smoke"):
        load_profile("fast")


def test_section_config_coerces_tuples_and_floats() -> None:
    @dataclasses.dataclass(frozen=True)
    class Section:
        eps: tuple[float, ...] = (0.0,)
        lr: float = 0.1

    cfg = section_config(Section, {"eps": [1, 2], "lr": 1}, "attacks")
    assert cfg.eps == (1, 2) and isinstance(cfg.eps, tuple)
    assert isinstance(cfg.lr, float)
    with pytest.raises(ConfigError, match="unknown keys"):
        section_config(Section, {"epz": []}, "attacks")


def test_data_config_requires_manifest_and_root_together() -> None:
    with pytest.raises(ConfigError, match="go together"):
        DataConfig(manifest="x.yaml")


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("tpu", "cuda:abc", "cuda:-1", "cuda:", "cuda:0:1"):
        with pytest.raises(ConfigError, match="expected auto, cpu, cuda, cuda:N"):
            pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"'cuda:2' was asked for but torch sees 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        pick_device("cuda:2")


def test_seed_everything_repeats_random_streams() -> None:
    seed_everything(11)
    a = (np.random.rand(3), torch.rand(3))
    seed_everything(11)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def test_seeding_asks_torch_for_deterministic_algorithms_without_loading_its_compiler() -> None:
    probe = (
        "import sys, torch\n"
        "from medadv.config import seed_everything\n"
        "seed_everything(3)\n"
        "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
        " 'torch._dynamo' in sys.modules, 'torch._inductor.config' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False", "False"]


def test_every_shipped_profile_section_is_known() -> None:
    from medadv.config import EXTENDS_KEY, PROFILE_DIR, PROFILE_SECTIONS
    from medadv.strict_yaml import load_yaml

    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        known = {"name", "seed", EXTENDS_KEY}
        assert set(load_yaml(path, ConfigError, "profile")) - known <= set(PROFILE_SECTIONS), path.name


def test_set_overrides_parse_into_nested_yaml_values() -> None:
    from medadv.config import parse_overrides

    got = parse_overrides(
        [
            "classifier.epochs=3",
            "classifier.recipes=[erm, pgd_at]",
            "seed=7",
            "data.image_size=[32, 32]",
            "classifier.epochs=4",
            "gan.lr_identity=1.0e-3",
        ]
    )
    assert got == {
        "classifier": {"epochs": 4, "recipes": ["erm", "pgd_at"]},
        "seed": 7,
        "data": {"image_size": [32, 32]},
        "gan": {"lr_identity": 1.0e-3},
    }
    profile = load_profile("smoke", got)
    assert profile.seed == 7 and profile.data.image_size == (32, 32)
    assert profile.section("classifier")["epochs"] == 4
    for bad, message in (
        ("classifier.epochs", "expected SECTION.KEY=VALUE"),
        ("classifier.2x=1", "expected SECTION"),
        ("name=mine", "name is not a setting"),
        ("classifier.epochs=[1", "not valid YAML"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_overrides([bad])


def test_set_overrides_are_checked_against_the_stage_fields() -> None:
    from medadv.config import ProfileSection, check_override_keys

    @dataclasses.dataclass(frozen=True)
    class Stage(ProfileSection):
        epochs: int = 1
        lr: float = 0.1
        name: str = "x"

    check_override_keys({"stage": {"epochs": 3, "lr": 1}, "seed": 1}, {"stage": Stage})
    with pytest.raises(ConfigError, match=r"--set stage.epoch: section 'stage' has no key 'epoch'"):
        check_override_keys({"stage": {"epoch": 3}}, {"stage": Stage})
    with pytest.raises(ConfigError, match=r"--set stage.epochs is 'three'; expected a whole number"):
        check_override_keys({"stage": {"epochs": "three"}}, {"stage": Stage})
    with pytest.raises(ConfigError, match=r"--set stage.lr is True; expected a number"):
        check_override_keys({"stage": {"lr": True}}, {"stage": Stage})
    with pytest.raises(ConfigError, match=r"a profile has no section 'nosuch'"):
        check_override_keys({"nosuch": {"a": 1}}, {"stage": Stage})
    with pytest.raises(ConfigError, match=r"'stage' is a section"):
        check_override_keys({"stage": 3}, {"stage": Stage})
