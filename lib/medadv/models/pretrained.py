"""Where paper 001's Vnet starts, and the kit's own pretrained Vnet for the narrow CPU widths.

Paper 001 starts Vnet from torchvision's ImageNet VGG11 and trains Fnet alone for 41 epochs "to maintain the
initialized weights in Vnet", then everything with Vnet at a tenth of Fnet's learning rate: a recipe made for a
pretrained Vnet. ImageNet weights fit only the paper's full width (:func:`medadv.models.backbones.load_imagenet`); the
CPU profiles scale every channel (1/8, 1/16), and from random weights their Vnet did not learn in a CPU budget (test
AUC 0.59 over 10 seeds of the default profile). So the kit ships its own pretrained Vnet for those widths, made by
``medadv pretrain`` (:mod:`medadv.train.pretrain`, which says how: a phantom corpus disjoint from every study seed,
lesion presence and localisation as the pretext task) and stored in the package beside this module
(``weights/vnet_w<width>.safetensors``) with its model card (``weights/vnet_w<width>.json``: corpus, pretext task,
seeds, validation metrics, code version, sha256, intended use).

``classifier.init`` names the start (:data:`INITS`): ``imagenet``, ``kit`` or ``random``. A start whose weights do
not fit the width is refused with the widths that do.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from medadv.core import sha256_file
from medadv.errors import ConfigError
from medadv.models.checkpoint import checkpoint_paths, load_checkpoint, split_prefix

LOG = logging.getLogger(__name__)

#: Where paper 001's Vnet can start: torchvision's ImageNet VGG11 (width 1.0), the kit's pretrained Vnet (the widths
#: it ships), or torchvision's VGG initialisation.
INITS = ("imagenet", "kit", "random")
WEIGHTS_DIR = Path(__file__).with_name("weights")
#: The role of a kit Vnet's sidecar (its model card).
ROLE = "pretrained_vnet"


def width_tag(width: float) -> str:
    """The width as it appears in a weights file's name (``0.125`` -> ``0.125``).

    Returns:
        The width formatted with ``%g``.
    """
    return f"{width:g}"


def kit_stem(width: float, folder: str | Path = WEIGHTS_DIR) -> Path:
    """The checkpoint stem of the kit's Vnet of ``width`` in ``folder`` (the package's by default).

    Returns:
        ``folder/vnet_w<width>`` (without suffix).
    """
    return Path(folder) / f"vnet_w{width_tag(width)}"


def shipped_widths(folder: str | Path = WEIGHTS_DIR) -> list[float]:
    """The widths for which ``folder`` holds a kit Vnet (weights and card).

    Returns:
        The widths, ascending.
    """
    found = []
    for card in Path(folder).glob("vnet_w*.json"):
        weights, _ = checkpoint_paths(card)
        if weights.is_file():
            found.append(float(card.name.removeprefix("vnet_w").removesuffix(".json")))
    return sorted(found)


def kit_card(width: float, folder: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The model card of the kit's Vnet of ``width``.

    Returns:
        The card (the weights' JSON sidecar).

    Raises:
        ConfigError: the kit ships no Vnet of that width (the message lists the widths it ships).
    """
    weights, card = checkpoint_paths(kit_stem(width, folder))
    if not card.is_file() or not weights.is_file():
        raise ConfigError(
            f"classifier.init is kit but the kit ships no pretrained Vnet of width {width_tag(width)} (it has widths "
            f"{[width_tag(w) for w in shipped_widths(folder)]} in {Path(folder)}). Set classifier.width to one of "
            "them, or use init: random (or width 1.0 with init: imagenet)."
        )
    return json.loads(card.read_text())


def check_init(init: str, width: float) -> None:
    """Refuse a start whose weights do not fit the width: ImageNet's VGG11 fits width 1.0 only, the kit's Vnets the
    widths it ships (:func:`shipped_widths`); ``random`` fits any.

    Raises:
        ConfigError: naming the start, the width and the widths that fit.
    """
    if init == "imagenet" and width != 1.0:
        raise ConfigError(
            f"classifier.init is imagenet but classifier.width is {width}; ImageNet VGG11 weights only fit width 1.0. "
            f"Set width: 1.0, or init: kit (the kit's pretrained Vnets, widths "
            f"{[width_tag(w) for w in shipped_widths()]}), or init: random."
        )
    if init == "kit":
        kit_card(width)


def load_kit_vnet(width: float, folder: str | Path = WEIGHTS_DIR) -> dict[str, torch.Tensor]:
    """The kit's pretrained Vnet of ``width`` as a state dict for :attr:`VGGClassifier.features`, after checking the
    weights file against the sha256 in its card.

    Returns:
        The state dict of Vnet (keys as in ``VGGClassifier.features``).

    Raises:
        ConfigError: no Vnet of that width, or a weights file whose sha256 differs from its card (a damaged or
            replaced file; reinstall the kit or regenerate it with ``medadv pretrain``).
    """
    card = kit_card(width, folder)
    stem = kit_stem(width, folder)
    weights, _ = checkpoint_paths(stem)
    digest = sha256_file(weights)
    if digest != card.get("sha256"):
        raise ConfigError(
            f"{weights}: sha256 {digest} differs from its model card's {card.get('sha256')}; the file is damaged or "
            f"was replaced. Reinstall the kit, or regenerate it with `medadv pretrain --width {width_tag(width)}`."
        )
    tensors, _ = load_checkpoint(stem)
    LOG.info("kit Vnet of width %s from %s (sha256 %s)", width_tag(width), weights, digest[:12])
    return split_prefix(tensors, "features")
