"""Profiles, device choice and seeding.

A profile is data: a YAML file in ``medadv/profiles`` (``smoke``, ``default``, ``full``) or any YAML file of the same
shape. It has a ``seed``, a ``data`` section (the cohort) and one section per stage of the study (``classifier``,
``gan``, ``attacks``, ``explain``, ``reader``, ``detect``), the declared ``effects`` and the sweep's ``cluster``. Each
section is one frozen dataclass that subclasses :class:`ProfileSection` and names its section
(``class GanConfig(ProfileSection, section="gan")``): that registers it in :data:`SECTION_CONFIGS`, the one table of
section -> config class, and gives it the one way to load it, ``GanConfig.from_profile(profile)`` (or
``GanConfig.from_section(raw)`` for a section's plain mapping). The runner's pre-run check
(:func:`medadv.pipeline.check_profile`) builds every registered section before notebook 00, so a profile never needs
``if profile == ...`` anywhere in the code and a misspelt key never waits for its notebook.

Profiles compose: ``extends: default`` makes a profile its base's settings with its own on top (a deep merge of
mappings: a key the profile gives replaces the base's, a mapping is merged key by key, and a list replaces the base's
list whole, never appends to it). The base is a shipped profile by name or a YAML file path relative to the
extending file, and may itself extend another (a chain; a cycle is an error). A profile's ``name`` is its own (or its
file's stem), never its base's. So a three-line profile of one's own inherits a complete, named base::

    extends: default
    data:
      n_patients: 200

The shipped ``smoke``, ``full`` and ``workshop`` profiles extend ``default``, which extends nothing and holds what
they share (the simulated reader panel, the corruption list, the headline effects) once. The resolved profile (after
merging) is what a run records in ``config.json`` and compares on resuming, so a change in a base is seen as a change.

A top-level key the kit does not know (``trainer:``, a misspelt ``classifer:``) is an error naming the allowed ones
(:data:`PROFILE_SECTIONS`): silently ignored, it would leave its stage on the dataclass defaults. Profile files are
read with :func:`medadv.strict_yaml.load_yaml`, which refuses a key given twice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import random
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import yaml

from medadv.errors import ConfigError
from medadv.strict_yaml import load_yaml

PROFILE_DIR = Path(__file__).with_name("profiles")
PROFILE_NAMES = ("smoke", "default", "full", "workshop")
MODALITIES = ("mammography", "ultrasound", "xray")
#: Set to ``1`` by the runner (:mod:`medadv.pipeline`) for every kernel it starts: nobody is there to move a widget's
#: slider, so the widget cells draw their first frame only (:mod:`medadv.stages.widgets`).
BATCH_ENV = "MEDADV_BATCH"
# Every section a profile may hold besides ``name`` and ``seed``: the one list of them. A module that reads a new
# section adds its name here (``effects``, ``detect`` and ``cluster`` are read by the replication, detector and sweep
# modules).
PROFILE_SECTIONS = ("data", "classifier", "gan", "attacks", "explain", "reader", "effects", "detect", "cluster")
#: Seeds of the kit's pretraining corpus (:mod:`medadv.train.pretrain`), one per modality and set. No profile or sweep
#: may use them (:func:`check_seed`), so no study ever trains or tests on a pretraining image.
PRETRAIN_SEEDS = range(3_900_000_000, 3_900_001_000)
# The top-level key that names a profile's base (:func:`profile_chain`); it is resolved away on loading.
EXTENDS_KEY = "extends"

T = TypeVar("T")
#: Cluster kinds a sweep runs on (:mod:`medadv.sweep`).
CLUSTER_KINDS = ("local", "slurm", "pbs")
#: Cluster options whose value the scheduler reads as text (a time, a size, a name).
TEXT_OPTIONS = ("walltime", "queue", "account", "job_name", "interface")


class ProfileSection:
    """Mixin of the frozen config dataclass of one profile section.

    A subclass that names its section (``class GanConfig(ProfileSection, section="gan")``) is that section's config:
    it is registered in :data:`SECTION_CONFIGS` (one class per section of :data:`PROFILE_SECTIONS`) and loaded by
    :meth:`from_profile`. A subclass that names none (a stage's own view of the same section) inherits the section.
    """

    SECTION: ClassVar[str]

    def __init_subclass__(cls, section: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if section is None:
            return
        if section not in PROFILE_SECTIONS:
            raise TypeError(f"{cls.__qualname__}: section {section!r} is not one of {PROFILE_SECTIONS}; add it there.")
        known = SECTION_CONFIGS.get(section)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(
                f"{cls.__qualname__}: section {section!r} is already {known.__module__}.{known.__qualname__}'s."
            )
        cls.SECTION = section
        SECTION_CONFIGS[section] = cls

    @classmethod
    def section_keys(cls) -> tuple[str, ...] | None:
        """The keys the section takes, for naming a misspelt ``--set SECTION.KEY``.

        Returns:
            The dataclass's field names, or ``None`` where the section's keys are free names (``effects``).
        """
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_section(cls, raw: Mapping[str, Any], where: str | None = None) -> Self:
        """The section's plain mapping as this dataclass (:func:`section_config`); ``where`` names it in errors.

        Returns:
            The config; missing keys take the dataclass defaults.

        Raises:
            ConfigError: a key the dataclass does not know (named with the keys it takes), or a value it refuses.
        """
        return section_config(cls, raw, where or cls.SECTION)

    @classmethod
    def from_profile(cls, profile: Profile) -> Self:
        """The profile's section as this dataclass.

        Returns:
            The config; missing keys take the dataclass defaults.

        Raises:
            ConfigError: as :meth:`from_section`.
        """
        return cls.from_section(profile.section(cls.SECTION))


#: Section name -> its config class: filled by the :class:`ProfileSection` subclasses as their modules are imported
#: (:func:`medadv.pipeline.check_profile` imports them all and checks that every section has one).
SECTION_CONFIGS: dict[str, type[ProfileSection]] = {}


#: The fewest patients a cohort (a profile's, or one modality's share of the pretraining corpus) may have.
MIN_PATIENTS = 10
#: The longest image side the kit takes, above paper 001's full resolution (1728 x 1408): 600 float32 images of
#: 4096 x 4096 (the default's cohort) already fill 40 GB, and larger sides ran out of memory in notebook 00.
MAX_IMAGE_SIDE = 4096


@dataclasses.dataclass(frozen=True)
class DataConfig(ProfileSection, section="data"):
    """The cohort of a run.

    Attributes:
        modality: phantom modality, one of ``mammography``, ``ultrasound``, ``xray`` (ignored for real data).
        n_patients: phantom patients (ignored for real data).
        positive_fraction: share of phantom patients with a lesion (paper 001: 366 of 1284, about 0.29).
        image_size: (height, width) every image is resized to before it reaches a model.
        lesion_contrast: the phantom's difficulty knob: a lesion's peak contrast is ``lesion_contrast`` x the
            patient's conspicuity (log-uniform 0.4-2.5) x ``medadv.data.phantom.REFERENCE_PEAK[kind]`` standard
            deviations of the background tissue. Lower is harder; 0.8 gives paper 001's regime on the default
            profile (an ERM VGG test AUC of 0.92; 0.96-0.99 at 1.0).
        split: train / val / test fractions at patient level (paper 001: 80 / 10 / 10).
        manifest: path of a real data set's manifest YAML, or ``None`` for the in-silico phantom cohort.
        root: folder that holds the real data set.

    Defaults: paper 001's modality and split; the phantom's size, share and contrast are the kit's (the paper's
    cohort is a real data set: 1284 patients, 0.29 positive, 1024 x 832, as in the ``full`` profile).
    """

    modality: str = "mammography"
    n_patients: int = 600  # kit: a phantom cohort a CPU trains on in minutes
    positive_fraction: float = 0.3  # kit: near paper 001's 366 / 1284
    image_size: tuple[int, int] = (64, 64)  # kit: a CPU size
    lesion_contrast: float = 1.0  # kit: the phantom's own knob
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    manifest: str | None = None  # kit: the phantom cohort
    root: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"data.modality is {self.modality!r}; expected one of {MODALITIES}.")
        if self.n_patients < MIN_PATIENTS:
            raise ConfigError(f"data.n_patients is {self.n_patients}; a cohort needs at least {MIN_PATIENTS} patients.")
        if not 0.0 < self.positive_fraction < 1.0:
            raise ConfigError(f"data.positive_fraction is {self.positive_fraction}; expected a value in (0, 1).")
        if len(self.image_size) != 2 or min(self.image_size) < 16 or max(self.image_size) > MAX_IMAGE_SIDE:
            raise ConfigError(
                f"data.image_size is {list(self.image_size)}; expected [height, width], each from 16 to "
                f"{MAX_IMAGE_SIDE} pixels (paper 001's full resolution is [1728, 1408]; the full profile's "
                "[1024, 832])."
            )
        if not self.lesion_contrast > 0:
            raise ConfigError(
                f"data.lesion_contrast is {self.lesion_contrast}; expected a positive number (the "
                "default profile: 0.8; lower is harder)."
            )
        if len(self.split) != 3 or abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) <= 0:
            raise ConfigError(f"data.split is {self.split}; expected three positive fractions that sum to 1.")
        if (self.manifest is None) != (self.root is None):
            raise ConfigError("data.manifest and data.root go together: give both for a real data set, or neither.")

    @classmethod
    def from_profile(cls, profile: Profile) -> Self:
        """The cohort settings of ``profile`` (``profile.data``, built when the profile was loaded, with the run's
        ``data_manifest`` and ``data_root``).

        Returns:
            The same values as ``profile.data``, as this class.
        """
        return cls(**{f.name: getattr(profile.data, f.name) for f in dataclasses.fields(DataConfig)})


@dataclasses.dataclass(frozen=True)
class Profile:
    """A resolved profile: its name, the seed, the cohort, and the raw per-stage sections."""

    name: str
    seed: int
    data: DataConfig
    sections: Mapping[str, Mapping[str, Any]]
    #: Per top-level key, the files of the ``extends:`` chain that set it, the profile's own file first (empty for a
    #: profile not loaded from files); errors name them (a bad value may sit in a base).
    origins: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, compare=False)

    def section(self, name: str) -> Mapping[str, Any]:
        """The raw settings of one stage (``classifier``, ``gan``, ...); an empty mapping if the profile has none.

        Returns:
            The section's settings, read-only.
        """
        return self.sections.get(name, {})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as written to ``config.json``.

        Returns:
            The profile as plain JSON-able data.
        """
        return {
            "name": self.name,
            "seed": self.seed,
            "data": dataclasses.asdict(self.data),
            **{k: _plain(v) for k, v in self.sections.items()},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _deep_update(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top: mappings merged key by key, everything else (lists too) replaced whole.

    Returns:
        A new dict; neither argument is changed.
    """
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_update(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_profile(name_or_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> Profile:
    """Load a profile by name (``smoke``, ``default``, ``full``, ``workshop``) or from a YAML file, resolve its
    ``extends:`` chain (:func:`profile_chain`, :func:`merge_profile_chain`), then apply ``overrides``.

    ``overrides`` is a nested mapping merged into the resolved profile (for example
    ``{"data": {"manifest": ..., "root": ...}}``).

    Returns:
        The resolved :class:`Profile`, named by the file's own ``name`` key or, without one, the file's stem.
    """
    text_name = str(name_or_path)
    path = PROFILE_DIR / f"{text_name}.yaml" if text_name in PROFILE_NAMES else Path(text_name)
    if path.is_dir():
        raise ConfigError(
            f"profile {text_name!r} is a folder, not a profile file; give the path of a YAML file in it "
            f"(or one of {PROFILE_NAMES})."
        )
    if not path.is_file():
        raise ConfigError(
            f"profile {text_name!r}: no such profile file {path}; use one of {PROFILE_NAMES} or a YAML file path."
        )
    chain = profile_chain(path)
    profile = profile_from_dict(_deep_update(merge_profile_chain(chain), overrides or {}), default_name=path.stem)
    keys = {key for _, own in chain for key in own}
    origins = {key: tuple(f.name for f, own in reversed(chain) if key in own) for key in keys}
    return dataclasses.replace(profile, origins=origins)


def profile_name(name_or_path: str | os.PathLike[str]) -> str:
    """The name a profile given as to :func:`load_profile` has, without resolving it: a shipped profile's name, or
    the file's own ``name`` key (a base's is not inherited), else its stem.

    Returns:
        The name.

    Raises:
        ConfigError: a file that is not there or does not parse.
    """
    text = str(name_or_path)
    if text in PROFILE_NAMES:
        return text
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"profile {text!r}: no such profile file; use one of {PROFILE_NAMES} or a YAML file path.")
    raw = load_yaml(path, ConfigError, "profile")
    return str(raw.get("name", path.stem)) if isinstance(raw, Mapping) else path.stem


def merge_profile_chain(chain: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """The plain settings of a profile file with its ``extends:`` chain (:func:`profile_chain`) merged in.

    ``extends`` names a shipped profile (one of :data:`PROFILE_NAMES`) or a YAML file, relative to the file's folder.
    Each file's settings are deep-merged over its base's (:func:`_deep_update`: mappings key by key, lists and
    scalars replaced whole). The base's ``name`` is not inherited.

    Returns:
        The merged mapping, without ``extends`` and with ``name`` only where the last file gives one.
    """
    merged = functools.reduce(_deep_update, (own for _, own in chain[:-1]), {})
    merged.pop("name", None)
    return _deep_update(merged, chain[-1][1])


def profile_chain(path: Path, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The files of ``path``'s ``extends:`` chain with each one's own settings (``extends`` removed), base first.

    Returns:
        [(file, its settings), ...], the base first and ``path`` last.

    Raises:
        ConfigError: a file is not a mapping, ``extends`` is not a name, the base is neither a shipped profile nor
            an existing file, or the chain comes back to a file already in it (the cycle is named).
    """
    here = path.resolve()
    seen = (*_seen, here)
    if here in _seen:
        raise ConfigError(
            f"profile {path}: the extends chain {' -> '.join(p.name for p in seen)} is a cycle; "
            "a profile cannot extend itself. Remove one of the extends: keys."
        )
    raw = load_yaml(path, ConfigError, "profile")
    if raw is None:
        raise ConfigError(
            f"profile file {path} is empty; expected a mapping of sections, e.g. 'extends: default' and "
            "'classifier: {epochs: 3}' (see the shipped profiles in lib/medadv/profiles/)."
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"profile file {path} holds a YAML {type(raw).__name__}; expected a mapping of sections, e.g. "
            "'extends: default' and 'classifier: {epochs: 3}' (see the shipped profiles in lib/medadv/profiles/)."
        )
    own = dict(raw)
    base_name = own.pop(EXTENDS_KEY, None)
    if base_name is None:
        return [(path, own)]
    if not isinstance(base_name, str) or not base_name.strip():
        raise ConfigError(
            f"profile {path}: extends is {base_name!r}; expected the name of a shipped profile "
            f"{list(PROFILE_NAMES)} or a YAML file path."
        )
    if base_name in PROFILE_NAMES:
        base_path = PROFILE_DIR / f"{base_name}.yaml"
    else:
        base_path = path.parent / base_name
        if not base_path.is_file():
            raise ConfigError(
                f"profile {path}: extends {base_name!r}, which is neither a shipped profile "
                f"{list(PROFILE_NAMES)} nor a file ({base_path} does not exist). Name a shipped profile "
                "or give the base file's path relative to this one."
            )
    return [*profile_chain(base_path, seen), (path, own)]


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Command-line profile overrides (``--set classifier.epochs=3``, repeatable) as a nested mapping for
    :func:`load_profile`.

    Each item is ``KEY=VALUE`` with ``KEY`` a dotted path of identifiers (``seed``, ``data.n_patients``,
    ``classifier.epochs``) and ``VALUE`` read as YAML (``3``, ``1.0e-3``, ``true``, ``[erm, pgd_at]``, ``null``).
    Items inside lists (one simulated reader) cannot be addressed; give a profile file for those.

    Returns:
        The nested mapping, later items winning over earlier ones for the same key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(part.isidentifier() for part in path):
            raise ConfigError(
                f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. --set classifier.epochs=3 (seed=N for the seed)."
            )
        if path[0] == "name":
            raise ConfigError(f"--set {item!r}: a profile's name is not a setting; copy the profile to rename it.")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc}).") from exc
        for part in reversed(path):
            parsed = {part: parsed}
        out = _deep_update(out, parsed)
    return out


def check_override_keys(overrides: Mapping[str, Any], sections: Mapping[str, type[ProfileSection]]) -> None:
    """Refuse a ``--set`` item that no section takes, before the profile is loaded: a section that is not one of
    :data:`PROFILE_SECTIONS`, a key that the section's config class (``sections[name]``, from
    :data:`SECTION_CONFIGS`) has no field for, or a value of the wrong kind (checked as :func:`section_config` checks
    it), each named as ``--set SECTION.KEY`` with the keys the section takes. The values' ranges are checked when the
    caller builds the sections (:func:`medadv.pipeline.check_profile`).

    Raises:
        ConfigError: the first such item.
    """
    for name, value in overrides.items():
        if name == "seed":
            continue  # checked by profile_from_dict
        if name not in sections:
            raise ConfigError(
                f"--set {name}.*: a profile has no section {name!r}; its sections are {['seed', *sections]}."
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"--set {name}={value!r}: {name!r} is a section; set one of its keys ({name}.KEY=VALUE).")
        keys = sections[name].section_keys()
        if keys is None:
            continue  # keys that are names (effects): each entry is checked when the section is built
        hints = typing.get_type_hints(sections[name])
        for key, given in value.items():
            if key not in keys:
                raise ConfigError(
                    f"--set {name}.{key}: section {name!r} has no key {key!r}; its keys are {sorted(keys)}."
                )
            _coerce(given, hints[key], f"--set {name}.{key}")


def profile_from_dict(raw: Mapping[str, Any], default_name: str = "custom") -> Profile:
    """Build a :class:`Profile` from its plain form (the inverse of :meth:`Profile.to_dict`).

    Returns:
        The validated profile.
    """
    raw = dict(raw)
    name = check_profile_name(raw.pop("name", default_name))
    unknown = sorted(str(k) for k in set(raw) - {"seed", *PROFILE_SECTIONS})
    if unknown:
        raise ConfigError(
            f"profile {name!r}: unknown section(s) {unknown}; a profile holds name, seed and the sections "
            f"{list(PROFILE_SECTIONS)}. Check the spelling (a section the kit does not read leaves its stage on the "
            "defaults)."
        )
    seed = check_seed(raw.pop("seed", 0), f"profile {name!r}: seed")
    data = DataConfig.from_section(raw.pop("data", {}))
    for key, value in raw.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"profile {name!r}: section {key!r} is {type(value).__name__}; expected a mapping.")
    return Profile(name=name, seed=seed, data=data, sections=types.MappingProxyType(dict(raw)))


def check_profile_name(name: Any) -> str:
    """A profile's ``name``: text that can name a folder under ``results/`` (the run folder ``<name>-<time>``), so no
    path separator, no leading dot (``..``), no control character.

    Returns:
        The name.

    Raises:
        ConfigError: any other name, with what to write instead.
    """
    text = str(name)
    if not text.strip() or "/" in text or "\\" in text or text.startswith(".") or any(ord(ch) < 32 for ch in text):
        raise ConfigError(
            f"profile name {text!r}: a profile's name becomes part of its run folder's name under "
            "results/, so it cannot be empty, hold '/' or '\\', or start with '.'; use letters, digits, "
            "'_', '-' and '.' (e.g. name: my-study)."
        )
    return text


def check_ranges(
    section: str, config: object, at_least: Mapping[str, float] | None = None, above: Mapping[str, float] | None = None
) -> None:
    """Refuse a count, rate or weight of a section outside its range: ``at_least`` maps a field to its smallest value
    (``value >= floor``), ``above`` to a bound it must exceed (``value > bound``: learning rates, scales); NaN and
    infinity are refused with both.

    Raises:
        ConfigError: the first field outside its range, named ``section.field``, with the range it takes.
    """
    for rules, holds, words in ((at_least or {}, float.__ge__, "at least"), (above or {}, float.__gt__, "above")):
        for key, bound in rules.items():
            value = getattr(config, key)
            if not (math.isfinite(value) and holds(float(value), float(bound))):
                raise ConfigError(f"{section}.{key} is {value}; expected a number {words} {bound:g}.")


def check_seed(seed: Any, where: str) -> int:
    """A study's seed: an integer in [0, 2^32) outside :data:`PRETRAIN_SEEDS` (NumPy's legacy seeding takes 32 bits,
    and the kit derives stream seeds from it, e.g. ``seed * 100003 + epoch``, which must stay within torch's 64).

    Returns:
        The seed.

    Raises:
        ConfigError: not an integer in [0, 2^32), or one of the pretraining corpus's seeds.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"{where} is {seed!r}; expected a whole number from 0 to 4294967295 (2^32 - 1).")
    if seed in PRETRAIN_SEEDS:
        raise ConfigError(
            f"{where} is {seed}, one of the seeds {PRETRAIN_SEEDS.start}-{PRETRAIN_SEEDS.stop - 1} "
            "reserved for the kit's pretraining corpus (medadv pretrain): a study on them would test on "
            "images its pretrained Vnet was trained on. Choose another seed."
        )
    return seed


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field type ``hint`` takes it (see :func:`section_config`), checked strictly.

    Returns:
        The value: an int as a float where a float is wanted, a list as a tuple, a mapping as its dataclass.

    Raises:
        ConfigError: a value of another kind, naming ``where`` (``data.n_patients``), what was seen and what to write.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return _coerce(value, others[0], where) if len(others) == 1 else value
    if origin is tuple:
        return _coerce_tuple(value, args, where)
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} is {value!r}; expected a mapping (key: value pairs).")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return section_config(hint, value, where)
    checks = {bool: _as_bool, int: _as_int, float: _as_float, str: _as_str}
    return checks[hint](value, where) if hint in checks else value


def _quoted_hint(value: Any, where: str) -> str:
    """Advice for a quoted YAML value (``'3'``, ``"false"``) where a number or true/false is wanted.

    Returns:
        The advice, or ``""`` when ``value`` is not such a text.
    """
    if not isinstance(value, str):
        return ""
    try:
        plain = yaml.safe_load(value)
    except yaml.YAMLError:
        return ""
    if isinstance(plain, (bool, int, float)):
        return (
            f" It is quoted, so YAML reads it as text: write {where.rpartition('.')[2]}: {value.strip()} "
            "without quotes."
        )
    return ""


def _as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is {value!r}; expected true or false.{_quoted_hint(value, where)}")
    return value


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{where} is {value!r}; expected a whole number (an integer such as 10).{_quoted_hint(value, where)}"
        )
    return value


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} is {value!r}; expected a number.{_quoted_hint(value, where)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} is {value!r}; expected a finite number (not NaN or infinity).")
    return float(value)


def _as_str(value: Any, where: str) -> str:
    if value is None:
        raise ConfigError(f"{where} is null (empty); expected text.")
    if not isinstance(value, str):
        raise ConfigError(
            f"{where} is {value!r} ({type(value).__name__}); expected text. YAML reads unquoted numbers, "
            f"true/false and null as such: quote the value ('{value}')."
        )
    return value


def _coerce_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    """A list (or tuple) as the tuple ``tuple[args]``: every item checked, a fixed length held exactly.

    Returns:
        The tuple.
    """
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} is {value!r}; expected a list, e.g. [{value!r}] for one item (YAML [a, b, ...]).")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(f"{where} is {list(value)!r} ({len(value)} items); expected exactly {len(args)} items.")
    return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))


def section_config(cls: type[T], raw: Mapping[str, Any], section: str) -> T:
    """Build the frozen dataclass ``cls`` from a profile section, refusing unknown keys by name.

    Missing keys take the dataclass defaults; lists become tuples where the field is typed as a tuple.

    Returns:
        An instance of ``cls``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"profile section {section!r} is {type(raw).__name__}; expected a mapping.")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"profile section {section!r} has unknown keys {unknown}; known keys are {sorted(fields)}.")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"profile section {section!r}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class ClusterConfig(ProfileSection, section="cluster"):
    """The profile's ``cluster:`` section (or the command line's ``--cluster`` options).

    Attributes:
        kind: ``local``, ``slurm`` or ``pbs``.
        address: an existing scheduler (``tcp://host:8786``); overrides ``kind``.
        workers: local workers (None: from the cores, see the module docstring).
        threads_per_worker: torch threads of each run (None: from the cores; on a job queue, ``options.cores``).
        jobs: most batch jobs at once on Slurm / PBS (None: one per run).
        options: keyword arguments of ``SLURMCluster`` / ``PBSCluster`` (``cores``, ``memory``, ``walltime``, ...).
        dashboard: the local dashboard's address (``:8787``; needs bokeh), None for none.
    """

    kind: str = "local"
    address: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    jobs: int | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dashboard: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CLUSTER_KINDS:
            raise ConfigError(f"cluster.kind is {self.kind!r}; expected one of {CLUSTER_KINDS}.")
        if self.address is not None and "://" not in self.address:
            raise ConfigError(f"cluster address {self.address!r}: expected a scheduler address like tcp://host:8786.")
        for name in ("workers", "threads_per_worker", "jobs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"cluster.{name} is {value!r}; expected a positive integer.")
        if self.kind != "local" and self.address is None:
            missing = [k for k in ("cores", "memory") if k not in self.options]
            if missing:
                raise ConfigError(
                    f"cluster kind {self.kind} needs options {missing} (the resources of one job), e.g. "
                    "--cluster-option cores=8 --cluster-option memory=32GB."
                )
            check_job_options(self.options)


def check_job_options(options: Mapping[str, Any]) -> None:
    """Refuse job options that would not give one run per job with the resources asked for: ``cores`` a positive
    whole number, ``processes`` 1 if given, and the options the scheduler reads as text (:data:`TEXT_OPTIONS`) given
    as text (YAML 1.1 reads an unquoted ``walltime: 1:00:00`` in a profile as the base-60 number 3600, which Slurm
    would read as 3600 minutes)."""
    from dask.utils import parse_bytes

    cores = options["cores"]
    try:
        parse_bytes(options["memory"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"cluster option memory is {options['memory']!r}; expected the memory of one job, e.g. 32GB."
        ) from exc
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ConfigError(f"cluster option cores is {cores!r}; expected the CPUs of one job, a whole number >= 1.")
    if options.get("processes", 1) != 1:
        raise ConfigError(
            f"cluster option processes is {options['processes']!r}; a job runs one run, in one Dask "
            "worker process: leave processes out (or 1)."
        )
    for key in TEXT_OPTIONS:
        value = options.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"cluster option {key} is {value!r} ({type(value).__name__}); the scheduler reads it as "
                'text: quote it in the profile (walltime: "1:00:00", queue: "on"), since YAML reads '
                "an unquoted 1:00:00 as the number 3600 and on / off as true / false."
            )


#: How to ask for the CPU, from the command line and from a notebook's parameters cell.
CPU_ADVICE = "--device cpu (in a notebook: device = 'cpu')"


def pick_device(preference: str = "auto") -> "torch.device":  # noqa: F821
    """The device to compute on: ``auto`` takes cuda, then mps, then cpu; a named device must be available.

    Returns:
        The device.
    """
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps") and not re.fullmatch(r"cuda:[0-9]+", preference):
        raise ConfigError(f"device is {preference!r}; expected auto, cpu, cuda, cuda:N (N a GPU's index) or mps.")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {preference!r} was asked for but torch sees no CUDA GPU; use {CPU_ADVICE} (README: a CUDA build "
            "of torch needs a driver that takes its CUDA version)."
        )
    if preference.startswith("cuda:") and int(preference[5:]) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {preference!r} was asked for but torch sees {torch.cuda.device_count()} CUDA GPU(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}; use one of them."
        )
    if preference == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device 'mps' was asked for but is not available here; use {CPU_ADVICE}.")
    return torch.device(preference)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; on the CPU also ask torch for deterministic algorithms.

    Two runs of the smoke profile on the CPU with the same seed then write byte-identical tables.

    The deterministic flag is torch's eager one (what ``torch.use_deterministic_algorithms(True, warn_only=True)``
    sets for eager code), set without that function: it also sets ``torch._inductor.config.deterministic``, whose
    import loads ``torch._dynamo`` and the inductor's configuration, about 1 s of every kernel's start on 2 cores, and
    the kit compiles nothing (no ``torch.compile``), so that flag would change nothing it runs. Notebooks 00 and 05 and
    any notebook of one's own that builds no torchvision network then start without ``torch._dynamo`` (a test).
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def torch_generator(seed: int) -> "torch.Generator":  # noqa: F821
    """A seeded CPU generator for DataLoaders and random starts, independent of the global RNG.

    Returns:
        The generator, seeded with ``seed``.
    """
    import torch

    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
