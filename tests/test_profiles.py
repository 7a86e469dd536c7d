"""Profiles compose (``extends:``, a deep merge), the shipped ones share one base, and every key a shipped profile
resolves to is read by a field of some stage's config dataclass."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from medadv.attacks.robustness import AttackConfig
from medadv.config import (
    EXTENDS_KEY,
    PROFILE_DIR,
    PROFILE_NAMES,
    PROFILE_SECTIONS,
    ClusterConfig,
    DataConfig,
    load_profile,
)
from medadv.effects import Effect
from medadv.errors import ConfigError
from medadv.explain.study import ExplainConfig
from medadv.reader_app.config import ReaderConfig
from medadv.stages.input_detection import DetectConfig
from medadv.strict_yaml import load_yaml
from medadv.train.gan import GanConfig
from medadv.train.loop import ClassifierConfig

#: The dataclass that reads each section (``effects`` holds one :class:`Effect` per key, the key being its name).
SECTION_CLASSES: dict[str, type] = {
    "data": DataConfig,
    "classifier": ClassifierConfig,
    "gan": GanConfig,
    "attacks": AttackConfig,
    "explain": ExplainConfig,
    "reader": ReaderConfig,
    "detect": DetectConfig,
    "cluster": ClusterConfig,
    "effects": Effect,
}


def _item_class(hint: Any) -> type | None:
    """The dataclass a field's values are read by: the hint itself, or the item type of ``tuple[X, ...]``."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def unread_keys(cls: type, raw: Mapping[str, Any], where: str) -> list[str]:
    """Every key of ``raw`` (and of nested mappings that a dataclass-typed field reads) that no field of ``cls``
    reads, as dotted paths (``reader.simulated_readers[0].skil``)."""
    hints = typing.get_type_hints(cls)
    out = []
    for key, value in raw.items():
        if key not in hints:
            out.append(f"{where}.{key}")
            continue
        item = _item_class(hints[key])
        if item is None:
            continue
        values = value if isinstance(value, list) else [value]
        for i, one in enumerate(values):
            assert isinstance(one, Mapping), f"{where}.{key}[{i}] is {type(one).__name__}; expected a mapping"
            out += unread_keys(item, one, f"{where}.{key}[{i}]")
    return out


def unaccounted(profile_dict: Mapping[str, Any]) -> list[str]:
    """The keys of a resolved profile (:meth:`Profile.to_dict`) that no config dataclass reads."""
    out = []
    for section, raw in profile_dict.items():
        if section in ("name", "seed"):
            continue
        if section not in SECTION_CLASSES:
            out.append(section)
        elif section == "effects":
            for name, effect in raw.items():
                out += unread_keys(Effect, {"name": name, **effect}, f"effects.{name}")
        else:
            out += unread_keys(SECTION_CLASSES[section], raw, section)
    return out


def test_every_section_has_its_dataclass() -> None:
    assert set(SECTION_CLASSES) == set(PROFILE_SECTIONS)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_shipped_profile_key_is_read_by_a_config_field(name: str) -> None:
    resolved = load_profile(name).to_dict()
    assert unaccounted(resolved) == []
    assert resolved["name"] == name and EXTENDS_KEY not in resolved
    # every section the kit reads is in the resolved profile, cluster aside (the sweep's own, from the command line)
    assert set(resolved) >= {"name", "seed", *PROFILE_SECTIONS} - {"cluster"}


def test_a_stray_key_is_unaccounted(tmp_path: Path) -> None:
    """The check itself can fail: a misspelt key, at the top of a section or inside a reader or an effect."""
    path = tmp_path / "stray.yaml"
    path.write_text("extends: smoke\nclassifier:\n  epochz: 3\n")
    stray = load_profile(path).to_dict()
    assert unaccounted(stray) == ["classifier.epochz"]
    stray["reader"]["simulated_readers"][1]["skil"] = 0.5
    stray["effects"]["erm_auc_real"]["treshold"] = 0.7
    assert sorted(unaccounted(stray)) == [
        "classifier.epochz",
        "effects.erm_auc_real.treshold",
        "reader.simulated_readers[1].skil",
    ]


def _raw(name: str) -> dict[str, Any]:
    return load_yaml(PROFILE_DIR / f"{name}.yaml", ConfigError, "profile")


def test_the_shared_pieces_live_once_in_default() -> None:
    default = load_profile("default").to_dict()
    assert EXTENDS_KEY not in _raw("default")
    assert len(default["reader"]["simulated_readers"]) == 5 and len(default["attacks"]["corruptions"]) == 9
    assert len(default["effects"]) == 13
    for name in set(PROFILE_NAMES) - {"default"}:
        raw = _raw(name)
        assert raw[EXTENDS_KEY] == "default", name
        assert "simulated_readers" not in raw.get("reader", {}) and "corruptions" not in raw.get("attacks", {}), name
        assert "effects" not in raw, name
        resolved = load_profile(name).to_dict()
        for section, key in (("reader", "simulated_readers"), ("attacks", "corruptions"), ("explain", "models")):
            assert resolved[section][key] == default[section][key], (name, section, key)
        assert resolved["effects"] == default["effects"], name


def test_children_keep_their_own_values_over_the_base() -> None:
    smoke, full, default = (load_profile(n) for n in ("smoke", "full", "default"))
    assert (smoke.seed, default.seed, full.seed) == (7, 2021, 2021)  # full inherits default's seed
    assert smoke.section("attacks")["severities"] == [1, 3, 5]
    assert default.section("attacks")["severities"] == [1, 2, 3, 4, 5]
    # keys the base sets but a child needs at the paper's value are given in the child
    assert full.section("gan")["dnet_init"] == "random" and default.section("gan")["dnet_init"] == "classifier"
    assert full.section("classifier")["finetune_from_erm"] is False
    assert smoke.data.image_size == default.data.image_size == (96, 96)  # inherited, not the dataclass's (64, 64)


def test_a_three_line_profile_inherits_default(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("extends: default\ndata:\n  n_patients: 200\n")
    mine, default = load_profile(path).to_dict(), load_profile("default").to_dict()
    assert mine["name"] == "mine"  # its own file's stem, not the base's name
    assert mine["data"]["n_patients"] == 200
    assert mine["data"]["lesion_contrast"] == 0.8 and tuple(mine["data"]["image_size"]) == (96, 96)
    assert {k: v for k, v in mine.items() if k not in ("name", "data")} == {
        k: v for k, v in default.items() if k not in ("name", "data")
    }


def test_deep_merge_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "name: base\nseed: 5\ndata:\n  n_patients: 40\n  split: [0.6, 0.2, 0.2]\n"
        "attacks:\n  linf_eps: [0.01, 0.02]\n  steps: 4\n"
    )
    (tmp_path / "middle.yaml").write_text("extends: base.yaml\nname: middle\nattacks:\n  linf_eps: [0.03]\n")
    (tmp_path / "top.yaml").write_text("extends: middle.yaml\ndata:\n  n_patients: 20\n")
    top = load_profile(tmp_path / "top.yaml", {"attacks": {"steps": 9}})
    assert top.name == "top" and top.seed == 5
    assert top.data.n_patients == 20 and top.data.split == (0.6, 0.2, 0.2)
    assert dict(top.section("attacks")) == {"linf_eps": [0.03], "steps": 9}  # the list replaced, not appended to


def test_a_user_file_extends_a_shipped_profile_by_name(tmp_path: Path) -> None:
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    (sub / "quick.yaml").write_text("extends: smoke\nclassifier:\n  epochs: 2\n")
    quick, smoke = load_profile(sub / "quick.yaml"), load_profile("smoke")
    assert quick.section("classifier")["epochs"] == 2
    assert quick.section("classifier")["width"] == smoke.section("classifier")["width"] == 0.0625
    assert quick.section("reader") == smoke.section("reader")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "extends: a.yaml\n"}, "the extends chain a.yaml -> a.yaml is a cycle"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "a.yaml -> b.yaml -> a.yaml is a cycle"),
        (
            {"a.yaml": "extends: defualt\n"},
            "extends 'defualt', which is neither a shipped profile ['smoke', 'default', 'full', 'workshop'] nor a file",
        ),
        ({"a.yaml": "extends: [default]\n"}, "extends is ['default']; expected the name of a shipped profile"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "- 1\n"}, "b.yaml holds a YAML list; expected a mapping"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "# nothing yet\n"}, "b.yaml is empty; expected a mapping"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "seed: 1\nseed: 2\n"}, "duplicate key 'seed'"),
        ({"a.yaml": "extends: default\nclassifier:\n  epochz: 1\n"}, None),
    ],
)
def test_bad_chains_name_the_problem(tmp_path: Path, files: dict[str, str], message: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    if message is None:  # a stray key loads (the stage's dataclass refuses it when its notebook builds its config)
        assert unaccounted(load_profile(tmp_path / "a.yaml").to_dict()) == ["classifier.epochz"]
        return
    with pytest.raises(ConfigError) as info:
        load_profile(tmp_path / "a.yaml")
    assert message in str(info.value)


def test_a_bad_value_in_a_base_is_named_with_the_files_that_set_its_section(tmp_path: Path) -> None:
    from medadv.pipeline import check_profile

    (tmp_path / "base.yaml").write_text("extends: smoke\nclassifier:\n  epochs: -2\n")
    (tmp_path / "top.yaml").write_text("extends: base.yaml\nseed: 3\n")
    top = load_profile(tmp_path / "top.yaml")
    assert top.origins["classifier"] == ("base.yaml", "smoke.yaml", "default.yaml")
    assert top.origins["seed"][0] == "top.yaml" and "top.yaml" not in top.origins["classifier"]
    with pytest.raises(ConfigError) as info:
        check_profile(top)
    assert str(info.value).startswith(
        "profile 'top' (its classifier section from base.yaml, smoke.yaml, default.yaml): classifier.epochs=-2"
    )
    alone = yaml.safe_load((PROFILE_DIR / "default.yaml").read_text())
    alone["classifier"]["epochs"], alone["name"] = -2, "alone"
    (tmp_path / "alone.yaml").write_text(yaml.safe_dump(alone))
    with pytest.raises(ConfigError, match=r"^profile 'alone': classifier\.epochs=-2"):
        check_profile(load_profile(tmp_path / "alone.yaml"))


def test_the_run_records_the_resolved_profile_so_a_base_change_shows(tmp_path: Path) -> None:
    from medadv.pipeline import _settings_changed
    from medadv.report import write_config

    base, child = tmp_path / "base.yaml", tmp_path / "child.yaml"
    base.write_text("extends: smoke\nclassifier:\n  epochs: 2\n")
    child.write_text("extends: base.yaml\nname: child\n")
    write_config(tmp_path / "run", load_profile(child), "cpu")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["profile"]["classifier"]["epochs"] == 2 and EXTENDS_KEY not in config["profile"]
    assert config["profile"]["reader"] == load_profile("smoke").to_dict()["reader"]
    assert _settings_changed(config, load_profile(child), "cpu") == []
    base.write_text("extends: smoke\nclassifier:\n  epochs: 3\n")
    changes = _settings_changed(config, load_profile(child), "cpu")
    assert changes == ["settings classifier.epochs 2 -> 3"]


def test_no_notebook_names_a_model_in_its_code() -> None:
    """The models a notebook loads come from the profile (``classifier.reference_model``, ``attacks.ifgsm_model``,
    ``explain.models``, ``detect.classifier``), never from a name written in a code cell."""
    literal = re.compile(r"""["'](vgg_\w+|multitask_\w+)["']""")
    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                found += [f"{path.name}: {m.group(0)}" for m in literal.finditer("".join(cell["source"]))]
    assert found == []


#: Defaults that are the kit's choices, not a paper's value (docs/fidelity.md gives the paper's value beside them).
KIT_DEFAULTS = {
    "data.n_patients",
    "data.positive_fraction",
    "data.image_size",
    "data.manifest",
    "gan.width",
    "gan.depth",
    "gan.joint_epochs",
    "reader.ask_confidence",
    "reader.n_subgroups",
    "classifier.multitask_decoder_width",
    "attacks.ifgsm_extra_eps",
    "explain.fgsm_models",
    "explain.attack_models",
    "classifier.random_epochs",
}


def test_dataclass_defaults_are_the_papers_values_but_the_marked_kit_choices() -> None:
    """Where docs/fidelity.md gives a paper's value for a key, the key's dataclass default is that value, except the
    kit's choices above, each marked ``# kit`` on its field's line (or, for the attack and explanation settings,
    named a kit choice in the class docstring)."""
    import inspect

    from test_fidelity_doc import DOC, same, table_rows

    rows = [r for r in table_rows(DOC.read_text(encoding="utf-8")) if r["key"] != "-"]
    defaults = {}
    for row in rows:
        section, _, name = row["key"].partition(".")
        field = {f.name: f for f in dataclasses.fields(SECTION_CLASSES[section])}[name]
        defaults[row["key"]] = field.default_factory() if field.default is dataclasses.MISSING else field.default

    def paper(row: dict[str, str]) -> Any:
        try:
            return yaml.safe_load(row["paper's value"])
        except yaml.YAMLError:
            return row["paper's value"]

    differ = {key for key in defaults if not any(same(defaults[key], paper(r)) for r in rows if r["key"] == key)}
    assert differ == KIT_DEFAULTS
    for key in sorted(KIT_DEFAULTS):
        section, _, name = key.partition(".")
        source = inspect.getsource(SECTION_CLASSES[section])
        line = next(text for text in source.splitlines() if re.match(rf"\s*{name}: [^=]+ = ", text))
        assert "# kit" in line or "kit's choice" in (SECTION_CLASSES[section].__doc__ or ""), key


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_shipped_profile_passes_the_runs_check(name: str) -> None:
    from medadv.pipeline import check_profile

    check_profile(load_profile(name))  # every section built, the effects' tables and the sections' links checked


def test_every_profile_section_has_one_registered_config_that_loads_it() -> None:
    from medadv.config import SECTION_CONFIGS, ProfileSection
    from medadv.pipeline import section_configs

    sections = section_configs()
    assert list(sections) == list(PROFILE_SECTIONS)
    assert all(cls.SECTION == name and SECTION_CONFIGS[name] is cls for name, cls in sections.items())
    assert sections["cluster"] is ClusterConfig and sections["data"] is DataConfig
    profile = load_profile("default")
    assert sections["data"].from_profile(profile) == profile.data
    assert [e.name for e in sections["effects"].from_profile(profile).effects] == list(profile.section("effects"))
    with pytest.raises(TypeError, match=r"section 'gan' is already medadv\.train\.gan\.GanConfig's"):
        type("OtherGan", (ProfileSection,), {}, section="gan")
    with pytest.raises(TypeError, match=r"section 'trainer' is not one of"):
        type("Trainer", (ProfileSection,), {}, section="trainer")
