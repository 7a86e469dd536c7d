"""The trained classifiers of a run folder: list them, rebuild one from its JSON sidecar, load its weights.

Notebook 01 writes ``checkpoints/<name>.safetensors`` + ``checkpoints/<name>.json`` for every trained classifier
(``vgg_<recipe>`` for paper 001's network, ``multitask_erm`` for paper 004's). The sidecar's ``model`` entry is the
network's :meth:`spec` (kind plus architecture), from which :func:`build_model` rebuilds it before the safetensors
weights are loaded. Nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medadv.errors import CheckpointError, ConfigError
from medadv.models.backbones import TorchvisionClassifier
from medadv.models.checkpoint import load_checkpoint, split_prefix
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet

TRAINED_ROLE = "trained_model"


def build_model(spec: Mapping[str, Any], weights_follow: bool = False) -> nn.Module:
    """A network from its spec (``{"kind": "vgg" | "multitask" | "torchvision", ...}``).

    With ``weights_follow`` the network starts at random whatever its spec's start (``init`` of paper 001's network,
    ``imagenet`` of the others): its weights are loaded next, so no pretrained file is read or fetched.

    Returns:
        The network, untrained.
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if weights_follow:
        spec.update({"init": "random"} if kind == "vgg" else {"imagenet": False})
    try:
        if kind == "vgg":
            return VGGClassifier(VGGConfig(**spec))
        if kind == "multitask":
            return MultiTaskResNet(MultiTaskConfig(**spec))
        if kind == "torchvision":
            return TorchvisionClassifier(**spec)
    except TypeError as exc:
        raise ConfigError(f"model spec {spec} does not fit kind {kind!r}: {exc}") from exc
    raise ConfigError(f"model spec has kind {kind!r}; expected 'vgg', 'multitask' or 'torchvision'.")


def trained_models(checkpoints: Path) -> dict[str, Path]:
    """Trained classifiers in a run folder's checkpoints folder (``RunLayout.checkpoints``): name ->
    ``.safetensors`` path, sorted by name.

    Returns:
        ``{name: weights path}``, sorted by name.

    Raises:
        CheckpointError: weights in ``checkpoints/`` without their JSON sidecar, or a sidecar that is not JSON (a
            classifier left out silently would shorten every comparison of notebooks 03 and 04).
    """
    folder = Path(checkpoints)
    orphans = sorted(w.name for w in folder.glob("*.safetensors") if not w.with_suffix(".json").is_file())
    if orphans:
        raise CheckpointError(
            f"{folder}: weights {orphans} have no JSON sidecar (<name>.json); the checkpoint is "
            "incomplete. Rerun notebook 01 for this run folder (the runner does when a registered "
            "sidecar is missing), or delete the weights file."
        )
    found: dict[str, Path] = {}
    for sidecar in sorted(folder.glob("*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{sidecar}: the sidecar is not valid JSON ({exc}); rerun notebook 01.") from exc
        weights = sidecar.with_suffix(".safetensors")
        if isinstance(meta, dict) and meta.get("role") == TRAINED_ROLE and weights.is_file():
            found[sidecar.stem] = weights
    return found


def load_model_checkpoint(stem: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of checkpoint ``stem`` from its sidecar, load its weights; return (model in eval mode,
    sidecar).

    Returns:
        (model in eval mode on ``device``, sidecar).
    """
    tensors, meta = load_checkpoint(stem)
    if "model" not in meta:
        raise CheckpointError(f"{stem}.json has no 'model' spec; it is not a classifier checkpoint.")
    model = build_model(meta["model"], weights_follow=True)
    try:
        model.load_state_dict(split_prefix(tensors, "model"))
    except RuntimeError as exc:
        raise CheckpointError(f"{stem}.safetensors does not fit the network in its sidecar: {exc}") from exc
    return model.to(device).eval(), meta


def load_trained(checkpoints: Path, name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The trained classifier ``name`` (``vgg_erm``, ``multitask_erm``, ...) in a run folder's checkpoints folder
    (``RunLayout.checkpoints``), in eval mode on ``device``.

    Returns:
        The classifier, in eval mode on ``device``.
    """
    available = trained_models(checkpoints)
    if name not in available:
        raise CheckpointError(
            f"no trained classifier {name!r} in {checkpoints} (found {sorted(available)}); "
            "run notebook 01_classifier_training for this run folder first."
        )
    model, _ = load_model_checkpoint(available[name].with_suffix(""), device)
    return model
