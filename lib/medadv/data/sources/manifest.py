"""Data-set manifests: one YAML file per real data set in ``data_manifests/``, parsed strictly.

A manifest holds (required) ``name``, ``loader``, ``modality``, ``source``, ``licence``, ``citation``, ``layout``
(the expected files and folders under the data root, as text), ``label_map`` (the data set's own label -> 1 positive,
0 negative, or ``drop`` to leave such images out) and ``patient_id`` (the rule that gives each image its patient,
as text); and (optional) ``official_split`` (true: keep the data set's own train / val / test assignment), ``sha256``
(file relative to the data root -> hex digest, verified before loading), ``options`` (settings of the loader:
file and folder names; each loader lists the ones it knows and their defaults) and ``dicom_frame`` (the 0-based frame
to read from multi-frame DICOM images, e.g. cine ultrasound; without it such a file is refused with its frame count).

Anything else - YAML that does not parse or repeats a key, a missing or unknown field, a value of the wrong kind - is a
:class:`medadv.DataError` that names the manifest file and the field.
"""

from __future__ import annotations

import re
import types
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medadv.core import sha256_file
from medadv.errors import DataError
from medadv.strict_yaml import load_yaml

MODALITIES = ("mammography", "ultrasound", "xray")
DROP = "drop"
REQUIRED_FIELDS = ("name", "loader", "modality", "source", "licence", "citation", "layout", "label_map", "patient_id")
OPTIONAL_FIELDS = ("official_split", "sha256", "options", "dicom_frame")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Manifest:
    """A parsed data-set manifest (see the module docstring for the fields)."""

    path: Path
    name: str
    loader: str
    modality: str
    source: str
    licence: str
    citation: str
    layout: str
    label_map: Mapping[str, int | None]
    patient_id: str
    official_split: bool
    sha256: Mapping[str, str]
    options: Mapping[str, Any]
    dicom_frame: int | None = None

    def label(self, source_label: object, where: str) -> int | None:
        """Map one of the data set's labels to 1 / 0, or ``None`` for a label the manifest drops.

        Returns:
            1, 0, or ``None`` for a dropped label.

        Raises:
            DataError: a label the manifest does not know, naming ``where`` (the data file it came from).
        """
        key = str(source_label).strip()
        if key not in self.label_map:
            raise DataError(
                f"{where}: unknown label {key!r}; the manifest {self.path} maps only {sorted(self.label_map)}. "
                f"Add {key!r} to its label_map (1, 0 or {DROP}) or fix the data file."
            )
        return self.label_map[key]

    def loader_options(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The loader's options: ``defaults`` updated with the manifest's, refusing keys the loader does not know.

        Returns:
            The options.
        """
        unknown = sorted(set(self.options) - set(defaults))
        if unknown:
            raise DataError(
                f"{self.path}: field 'options' has unknown keys {unknown} for loader {self.loader!r}; "
                f"known keys are {sorted(defaults)}."
            )
        for key, value in self.options.items():
            _check_option(value, defaults[key], f"{self.path}: options.{key}")
        return {**defaults, **self.options}


def _check_option(value: Any, default: Any, where: str) -> None:
    """Refuse an option of another kind than its default: text for text, true/false for a flag, a list of texts
    for a list, a mapping of the same keys for a mapping (a quoted "false" would otherwise read as true)."""
    kinds = {bool: "true or false", str: "text", list: "a list", dict: "a mapping"}
    kind = next(k for k in (bool, str, list, dict, object) if isinstance(default, k))
    if kind is object:
        return
    ok = isinstance(value, Mapping) if kind is dict else isinstance(value, kind)
    if kind is str and isinstance(value, bool):
        ok = False
    if not ok:
        quoted = (
            f" It is quoted, so YAML reads it as text: write {where.rpartition('.')[2]}: {value} without quotes."
            if kind is bool and isinstance(value, str) and value.strip().lower() in ("true", "false")
            else ""
        )
        raise DataError(f"{where} is {value!r}; expected {kinds[kind]} (the default is {default!r}).{quoted}")
    if kind is list:
        for i, item in enumerate(value):
            _check_option(item, default[0] if default else item, f"{where}[{i}]")
    elif kind is dict:
        for key, item in value.items():
            if key not in default:
                raise DataError(f"{where} has an unknown key {key!r}; it takes {sorted(default)}.")
            _check_option(item, default[key], f"{where}.{key}")


def _text(raw: Mapping[str, Any], field: str, path: Path) -> str:
    value = raw[field]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{path}: field {field!r} is {value!r}; expected non-empty text.")
    return value.strip()


def _label_map(value: Any, path: Path) -> dict[str, int | None]:
    if not isinstance(value, Mapping) or not value:
        raise DataError(
            f"{path}: field 'label_map' is {value!r}; expected a mapping of source labels to 1, 0 or {DROP}."
        )
    out: dict[str, int | None] = {}
    for key, label in value.items():
        if isinstance(label, bool) or label not in (0, 1, DROP):
            raise DataError(
                f"{path}: field 'label_map' maps {key!r} to {label!r}; expected 1 (positive), 0 (negative) or {DROP}."
            )
        out[str(key).strip()] = None if label == DROP else int(label)
    if 1 not in out.values() or 0 not in out.values():
        raise DataError(f"{path}: field 'label_map' needs at least one label mapped to 1 and one mapped to 0.")
    return out


def _sha256_map(value: Any, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DataError(f"{path}: field 'sha256' is {type(value).__name__}; expected a mapping of file -> hex digest.")
    out = {}
    for file, digest in value.items():
        text = str(digest).strip().lower()
        if not _HEX64.match(text):
            raise DataError(f"{path}: field 'sha256' gives {file!r} the digest {digest!r}; expected 64 hex digits.")
        out[str(file)] = text
    return out


def read_manifest(path: str | Path, loaders: Collection[str]) -> Manifest:
    """Parse and check a manifest YAML file whose ``loader`` must be one of ``loaders``
    (:func:`medadv.data.sources.load_manifest` passes the package's own).

    Returns:
        The parsed :class:`Manifest`.

    Returns:
        The parsed :class:`Manifest`.

    Raises:
        DataError: missing file, YAML that does not parse, a missing / unknown / ill-typed field (named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest file not found; give one of the files in data_manifests/ or your own YAML.")
    raw = load_yaml(path, DataError, "manifest")
    if not isinstance(raw, Mapping):
        raise DataError(
            f"{path}: the manifest holds {type(raw).__name__}; expected a mapping of fields {list(REQUIRED_FIELDS)}."
        )
    missing = [f for f in REQUIRED_FIELDS if f not in raw]
    if missing:
        raise DataError(
            f"{path}: the manifest lacks the field(s) {missing}; every manifest needs {list(REQUIRED_FIELDS)}."
        )
    unknown = sorted(set(map(str, raw)) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise DataError(
            f"{path}: unknown field(s) {unknown}; allowed are {list(REQUIRED_FIELDS) + list(OPTIONAL_FIELDS)}."
        )
    loader = _text(raw, "loader", path)
    if loader not in loaders:
        raise DataError(f"{path}: field 'loader' is {loader!r}; known loaders are {sorted(loaders)}.")
    modality = _text(raw, "modality", path)
    if modality not in MODALITIES:
        raise DataError(f"{path}: field 'modality' is {modality!r}; expected one of {MODALITIES}.")
    official = raw.get("official_split", False)
    if not isinstance(official, bool):
        raise DataError(f"{path}: field 'official_split' is {official!r}; expected true or false.")
    frame = raw.get("dicom_frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
        raise DataError(f"{path}: field 'dicom_frame' is {frame!r}; expected a frame number 0, 1, 2, ... (0-based).")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        raise DataError(f"{path}: field 'options' is {type(options).__name__}; expected a mapping.")
    return Manifest(
        path=path,
        name=_text(raw, "name", path),
        loader=loader,
        modality=modality,
        source=_text(raw, "source", path),
        licence=_text(raw, "licence", path),
        citation=_text(raw, "citation", path),
        layout=_text(raw, "layout", path),
        label_map=types.MappingProxyType(_label_map(raw["label_map"], path)),
        patient_id=_text(raw, "patient_id", path),
        official_split=official,
        sha256=types.MappingProxyType(_sha256_map(raw.get("sha256"), path)),
        options=types.MappingProxyType(dict(options)),
        dicom_frame=frame,
    )


def verify_checksums(manifest: Manifest, root: Path) -> None:
    """Check every file of the manifest's ``sha256`` list under ``root``.

    Raises:
        DataError: a listed file is missing, or its digest differs (naming the file, the expected and the seen digest).
    """
    for rel, expected in manifest.sha256.items():
        file = root / rel
        if not file.is_file():
            raise DataError(
                f"{file}: listed in the sha256 list of {manifest.path} but not found; check the data root "
                f"({root}) and the layout the manifest expects."
            )
        seen = sha256_file(file)
        if seen != expected:
            raise DataError(
                f"{file}: checksum mismatch: the manifest {manifest.path} expects sha256 {expected} but the file has "
                f"{seen}. The file is damaged or from another release: download it again from {manifest.source}, "
                "or, if you use a different release on purpose, update or remove its sha256 entry."
            )
