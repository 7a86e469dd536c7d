"""Grey-level input for ImageNet networks, cached ImageNet weights, and any torchvision classifier by name.

Every classifier of the kit takes grey-level images in [0, 1] of shape (N, 1, H, W) and returns class logits (N, 2).
:class:`GreyToImageNet` does what paper 001 describes as pre-processing ("each image was copied twice to fill the three
channels"; "the same normalization method as VGG11") inside the model, so that attacks and explanations work in
[0, 1] pixel units. Each model splits its forward pass into ``prepare`` (this module) and ``classify`` (the network on
the normalised 3-channel tensor): paper 001's gradient penalty (eq. 3) is taken with respect to ``classify``'s input.

ImageNet weights come the torchvision way: from torchvision's file in the torch hub cache
(``torch.hub.get_dir()/checkpoints``), downloaded there with its progress bar and hash check on first use by a machine
that is online; the file is read with ``weights_only=True``. Offline and not cached, it is an error that names the
file and the command that fetches it (no silent random start). The kit's tests and its CPU profiles never download.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from medadv.errors import ConfigError
from medadv.models.pretrained import shipped_widths, width_tag

LOG = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GreyToImageNet(nn.Module):
    """Copy a grey [0, 1] image to three channels and apply the ImageNet (VGG) per-channel normalisation."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Grey images (N, 1, H, W) in [0, 1] as ImageNet-normalised 3-channel tensors.

        Returns:
            The normalised tensor (N, 3, H, W).
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ConfigError(f"model input has shape {tuple(x.shape)}; expected grey images (N, 1, H, W) in [0, 1].")
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std


def imagenet_weights_path(arch: str) -> tuple[Path, str]:
    """Where torch's cache keeps torchvision's ImageNet weights of ``arch``, and the file's download address.

    Returns:
        (the cache file's path, its download URL).
    """
    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"torchvision has no ImageNet weights for {arch!r}; start it at random instead.") from exc
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name, weights.url


def cached_imagenet_file(arch: str) -> Path | None:
    """Path of torchvision's ImageNet weights for ``arch`` if already in the torch hub cache, else ``None``.

    Returns:
        The file's path, or ``None`` when it is not cached.
    """
    try:
        path, _ = imagenet_weights_path(arch)
    except ConfigError:
        return None
    return path if path.is_file() else None


def fetch_command(*archs: str) -> str:
    """The one command that puts torchvision's ImageNet weights of ``archs`` into torch's cache (run it online).

    Returns:
        The shell command.
    """
    if len(archs) == 1:
        return f"python -c \"import torchvision; torchvision.models.get_model('{archs[0]}', weights='DEFAULT')\""
    names = ", ".join(f"'{a}'" for a in archs)
    return f"python -c \"import torchvision; [torchvision.models.get_model(a, weights='DEFAULT') for a in ({names})]\""


def fetch_imagenet(archs: Sequence[str]) -> None:
    """Put torchvision's ImageNet weights of every one of ``archs`` into torch's cache now where not cached (downloaded
    as torchvision downloads them: ``torch.hub``, its progress bar, the hash check of the file's name), so that a run
    that needs them stops before its first notebook, naming every missing file, rather than in notebook 01 after hours
    of training. :func:`load_imagenet` fetches through it too.

    Raises:
        ConfigError: files neither cached nor downloadable (offline): each file, and the one command that fetches them
            all on a machine that is online.
    """
    missing = []
    for arch in dict.fromkeys(archs):
        path, url = imagenet_weights_path(arch)
        if path.is_file():
            continue
        LOG.info("ImageNet weights for %s: downloading %s into %s", arch, url, path.parent)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            prefix = torch.hub.HASH_REGEX.search(path.name)
            torch.hub.download_url_to_file(url, str(path), prefix.group(1) if prefix else None, progress=True)
        except Exception as exc:  # noqa: BLE001  a failed download raises many types; each means the same here
            missing.append((arch, path, exc))
    if missing:
        files = "; ".join(f"{arch}: {path} ({type(exc).__name__}: {exc})" for arch, path, exc in missing)
        raise ConfigError(
            f"init: imagenet needs torchvision's ImageNet weights that are neither cached nor downloadable: {files}; "
            "they could not be downloaded. On a machine that is online run\n"
            f"    {fetch_command(*(a for a, _, _ in missing))}\n(it saves them into "
            f"{missing[0][1].parent}; set TORCH_HOME to use another cache), or copy the files there. Or set the "
            "profile's classifier.init to random, or to kit with a classifier.width the kit ships a pretrained Vnet "
            f"for ({', '.join(width_tag(w) for w in shipped_widths())}; none at full width)."
        )


def load_imagenet(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet state dict of ``arch``, the way torchvision gives it: from torch's cache
    (``torch.hub.get_dir()/checkpoints``, ``$TORCH_HOME``), downloaded there by :func:`fetch_imagenet` (progress bar,
    hash check) when it is not cached yet. The file is read with ``weights_only=True``.

    Returns:
        the state dict.

    Raises:
        ConfigError: the file is not cached and cannot be downloaded (offline, say: :func:`fetch_imagenet`'s
            message), or it is cached but cannot be read (damaged); the message names the file and the one command
            that fetches it on a machine that is online.
    """
    fetch_imagenet([arch])
    path, _ = imagenet_weights_path(arch)
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch.load raises many types for a damaged file; each means the same
        # torchvision checks the hash when it downloads, not when it reads its cache: a file cut short or copied
        # from elsewhere fails here, and torch's own message would advise unpickling it
        raise ConfigError(
            f"init: imagenet: torchvision's ImageNet {arch} weights, {path}, cannot be read ({type(exc).__name__}); "
            f"the file is damaged or not torchvision's (a copy cut short?). Delete it and fetch it again: on a "
            f"machine that is online run\n    {fetch_command(arch)}\n(or copy the whole file there again)."
        ) from exc
    LOG.info("ImageNet weights for %s from %s", arch, path)
    return state


class TorchvisionClassifier(nn.Module):
    """Any torchvision classification network by name (``resnet18``, ``densenet121``, ``efficientnet_b0``, ...), with
    grey-level input and two output classes.

    Args:
        arch: a name from ``torchvision.models.list_models(torchvision.models)``.
        num_classes: outputs of the last layer (2: index 1 = positive).
        imagenet: start from torchvision's ImageNet weights (:func:`load_imagenet`; the last layer is always new).
    """

    def __init__(self, arch: str, num_classes: int = 2, imagenet: bool = True) -> None:
        super().__init__()
        names = torchvision.models.list_models(torchvision.models)
        if arch not in names:
            raise ConfigError(f"backbone {arch!r} is not a torchvision classification model; choose one of {names}.")
        self.arch = arch
        self.num_classes = num_classes
        self.imagenet = imagenet
        self.prepare = GreyToImageNet()
        self.net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        state = load_imagenet(arch) if imagenet else None
        self.pretrained = state is not None
        if state is not None:
            own = self.net.state_dict()
            kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            self.net.load_state_dict(kept, strict=False)

    @property
    def gradcam_layer(self) -> str | None:
        """The module whose output Grad-CAM weighs (read by :func:`medadv.explain.attribute.gradcam_layer`).

        Returns:
            ``net.layer4`` for a ResNet, else ``net.features`` (DenseNet, EfficientNet, MobileNet, VGG, ...), or None
            for a network with neither (a vision transformer): pass ``layer=`` to the attribution for it.
        """
        for name in ("layer4", "features"):
            if isinstance(getattr(self.net, name, None), nn.Module):
                return f"net.{name}"
        return None

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Logits from the normalised 3-channel tensor ``z``.

        Returns:
            The class logits (N, num_classes).
        """
        return self.net(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes) of grey images ``x`` (N, 1, H, W) in [0, 1].

        Returns:
            The class logits (N, num_classes).
        """
        return self.classify(self.prepare(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by learning-rate group: the new last layer is the ``head``, the rest ``features``.

        Returns:
            ``{"features": [...], "head": [...]}``.
        """
        last = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
        head_ids = {id(p) for p in last.parameters()}
        return {
            "features": [p for p in self.net.parameters() if id(p) not in head_ids],
            "head": list(last.parameters()),
        }

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which :func:`medadv.models.registry.build_model` rebuilds this network.

        Returns:
            The spec, ``{"kind": "torchvision", ...}``.
        """
        return {"kind": "torchvision", "arch": self.arch, "num_classes": self.num_classes, "imagenet": self.imagenet}
