"""Checkpoints as safetensors (every tensor) plus a JSON sidecar (everything else); nothing is ever unpickled.

A checkpoint ``<stem>`` is two files: ``<stem>.safetensors`` holding the model's weights (keys ``model.*``) and, for a
training state, the optimizer's tensors (``optimizer.*``); and ``<stem>.json`` holding the architecture
(``model`` spec), recipe, seed, metrics, code version, and the optimizer's non-tensor state. safetensors stores raw
tensors behind a JSON header, so loading cannot run code; a file that is not safetensors (a pickled ``.pt`` file,
say) is refused with a :class:`medadv.CheckpointError` before anything is read from it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from medadv.core import sha256_file, write_json
from medadv.errors import CheckpointError

FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024


def checkpoint_paths(stem: str | Path) -> tuple[Path, Path]:
    """The (``.safetensors``, ``.json``) pair of a checkpoint stem (a path without suffix).

    Returns:
        (weights path, sidecar path).
    """
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_checkpoint(
    stem: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write ``tensors`` to ``<stem>.safetensors`` and ``meta`` to ``<stem>.json`` (each atomically).

    Returns:
        (weights path, sidecar path).
    """
    weights, sidecar = checkpoint_paths(stem)
    weights.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(plain, str(tmp), metadata={"format": "medadv"})  # one key: the header bytes stay reproducible
    # safetensors writes its file readable by its owner alone (0600); give it the mode every other file of a run
    # folder has (the umask's), so that a sweep's other users, or a maintainer copying a Vnet, can read it
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, weights)
    write_json(sidecar, {"format_version": FORMAT_VERSION, **meta})
    return weights, sidecar


def _check_safetensors(path: Path) -> None:
    """Refuse anything that does not start like a safetensors file (8-byte header length, then a JSON object)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: {len(head)} bytes; not a safetensors checkpoint.")
            (size,) = struct.unpack("<Q", head)
            first = fh.read(1) if 0 < size <= _MAX_HEADER else b""
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc}).") from exc
    if first != b"{":
        raise CheckpointError(
            f"{path} is not a safetensors file (it may be a pickled PyTorch .pt/.pth file, which the kit never "
            "loads because unpickling can run arbitrary code); convert the weights with safetensors.torch.save_file "
            "or retrain with notebook 01."
        )


def load_checkpoint(stem: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint's tensors and sidecar; :class:`CheckpointError` if either is missing or not what it claims.

    Returns:
        (tensors by name, sidecar).
    """
    weights, sidecar = checkpoint_paths(stem)
    for path in (weights, sidecar):
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing; train the model with notebook 01 first.")
    _check_safetensors(weights)
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{weights}: corrupt safetensors checkpoint ({exc}); retrain it: rerun the notebook that "
            f"made it (01 for a classifier, 02 for a GAN), which does not resume from a damaged "
            "file."
        ) from exc
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{sidecar}: the sidecar is not valid JSON ({exc}); retrain it: rerun the notebook that "
            "made it (01 for a classifier, 02 for a GAN)."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{sidecar}: not a medadv checkpoint sidecar of format {FORMAT_VERSION}.")
    return tensors, meta


class CheckpointLedger(Protocol):
    """What a run folder records of the checkpoints a notebook writes (:class:`medadv.report.RunContext` is one)."""

    def recorded_sha256(self, path: str | Path) -> str | None:
        """The sha256 the run folder recorded for ``path``.

        Returns:
            The hex digest, or None when it records none.
        """

    def register_many(self, paths: list[Path]) -> None:
        """Record ``paths`` (with their sha256) as outputs of the notebook."""


def resume_problem(stems: Sequence[str | Path], ledger: CheckpointLedger | None) -> str | None:
    """Why a training state cannot be resumed from: a file of the checkpoints at ``stems`` is missing, or its bytes
    are not those the run folder recorded (``ledger``; damaged, or copied from another run), or it does not load.

    Returns:
        The reason in words, or None when every checkpoint may be resumed from.
    """
    for stem in stems:
        for path in checkpoint_paths(stem):
            if not path.is_file():
                return f"{path.name} is missing"
            if ledger is not None and ledger.recorded_sha256(path) != sha256_file(path):
                return f"{path.name} is not the file this run folder recorded (damaged, or from another run)"
        if ledger is None:
            try:
                load_checkpoint(stem)
            except CheckpointError as exc:
                return str(exc)
    return None


def split_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix.`` with the prefix removed.

    Returns:
        The tensors by their shortened names.
    """
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimizer's state dict into tensors (``optimizer.<param>.<key>``) and a JSON-able remainder.

    Returns:
        (tensors by name, JSON-able remainder).
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], extra: Mapping[str, Any]
) -> None:
    """Load into ``optimizer`` what :func:`optimizer_to_flat` wrote."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in split_prefix(tensors, "optimizer").items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in extra.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in extra["param_groups"]
    ]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"optimizer state does not fit this model's optimizer ({exc}).") from exc
