"""The lesion insertion / removal GAN of paper 001 (Zhou et al., Nat Commun 2021, "GAN model generator and
discriminator", Fig. 3b): the U-Net generator Gnet and the discriminator Dis = Dnet(Vnet(.)).

Generator (:class:`Gnet`): a U-Net on one channel. Its input is the grey image normalised with the first channel of
VGG11's (ImageNet) normalisation, as in the paper; down-sampling is AvgPool 2x2 stride 2, up-sampling bilinear x2,
each level two 3x3 convolutions with GroupNorm and LeakyReLU(0.2) (the classifier's layers); the output goes through
a sigmoid, so a fake is an image in [0, 1] of the input's shape. Two generators are trained: ``remove`` (positive ->
negative-looking) and ``insert`` (negative -> positive-looking), see :data:`DIRECTIONS`.

Discriminator (:class:`Discriminator`): a copy of the trained AI-CAD classifier (``features`` = Vnet, ``head`` =
Fnet) whose last fully connected layer is replaced by a fresh one-output layer (Dnet). Its forward pass returns the raw
score Dnet(Vnet(g)); :func:`dis` turns it into paper 001's Eq. 5, Dis(g) = -ln(1 + exp(-Dnet(Vnet(g)))), computed as
-softplus(-score) for numerical stability.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medadv.errors import ConfigError, DataError
from medadv.models.inference import batched_outputs

#: direction -> (label of the images the generator edits, label the fake should look like)
DIRECTIONS: dict[str, tuple[int, int]] = {"remove": (1, 0), "insert": (0, 1)}

#: first channel of VGG11's (ImageNet) input normalisation, used for Gnet's input (paper 001)
VGG_FIRST_CHANNEL = (0.485, 0.229)

LEAKY_SLOPE = 0.2  # paper 001: negative slope of the LeakyReLU layers
SKIP_EPS = 1e-4  # the identity skip's logit clamps pixels to [1e-4, 1 - 1e-4]


def group_count(channels: int, groups: int = 32) -> int:
    """GroupNorm groups for ``channels``: ``gcd(groups, channels)`` (= 32 for any multiple of 32).

    Returns:
        The number of groups, a divisor of ``channels``.
    """
    return math.gcd(groups, channels)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by GroupNorm (32 groups, fewer for narrow layers) and
    LeakyReLU(0.2); the convolutions have no bias (the GroupNorm's shift takes its role)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(group_count(c_out), c_out),
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(group_count(c_out), c_out),
        nn.LeakyReLU(LEAKY_SLOPE),
    )


class Gnet(nn.Module):
    """Paper 001's U-Net generator (Fig. 3b) on a single-channel image.

    Args:
        width: channels of the first level; level ``i`` has ``width * 2**i`` channels.
        depth: number of AvgPool down-sampling steps (and bilinear up-sampling steps); image height and width must be
            divisible by ``2**depth``.
        identity_skip: ``False`` is the paper's network, sigmoid(U(x)). ``True`` adds the input's logit before the
            sigmoid, sigmoid(logit(x) + U(x)), with U's last layer initialised to zero: Gnet starts as the identity
            and learns only the edit. This deviation lets the CPU profiles skip most of the identity pre-training,
            which a U-Net needs hundreds of updates for (the profile's ``gan.identity_skip``).

    Input (N, 1, H, W) in [0, 1]; output (N, 1, H, W) in [0, 1] (sigmoid).
    """

    def __init__(self, width: int = 16, depth: int = 3, identity_skip: bool = False) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ConfigError(f"Gnet width={width}, depth={depth}; expected both to be at least 1.")
        self.width = width
        self.depth = depth
        self.identity_skip = identity_skip
        chans = [width * 2**i for i in range(depth + 1)]
        self.register_buffer("in_mean", torch.tensor(VGG_FIRST_CHANNEL[0]), persistent=False)
        self.register_buffer("in_std", torch.tensor(VGG_FIRST_CHANNEL[1]), persistent=False)
        self.encoder = nn.ModuleList(
            [_conv_block(1, chans[0])] + [_conv_block(chans[i - 1], chans[i]) for i in range(1, depth + 1)]
        )
        self.down = nn.AvgPool2d(kernel_size=2, stride=2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.decoder = nn.ModuleList([_conv_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(chans[0], 1, kernel_size=1)
        if identity_skip:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The generated image of grey images ``x`` (N, 1, H, W) in [0, 1].

        Returns:
            The fakes, (N, 1, H, W) in (0, 1).
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise DataError(f"Gnet input of shape {tuple(x.shape)}; expected (N, 1, H, W) grey images in [0, 1].")
        step = 2**self.depth
        if x.shape[2] % step or x.shape[3] % step:
            raise DataError(
                f"Gnet input of size {tuple(x.shape[2:])}; height and width must be divisible by 2**depth = {step} "
                "(choose a data.image_size or gan.depth that fits)."
            )
        h = (x - self.in_mean) / self.in_std
        skips = []
        for level, block in enumerate(self.encoder):
            h = block(h if level == 0 else self.down(h))
            skips.append(h)
        for block, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            h = block(torch.cat([self.up(h), skip], dim=1))
        logits = self.out(h)
        if self.identity_skip:
            logits = logits + torch.logit(x, eps=SKIP_EPS)
        return torch.sigmoid(logits)


class Discriminator(nn.Module):
    """Dis = Dnet(Vnet(.)) of paper 001: the trained classifier with a fresh one-output last layer.

    Args:
        classifier: the trained AI-CAD classifier (``features`` = Vnet, ``head`` = Fnet whose last layer is the
            ``nn.Linear`` ``head.out``, as :class:`medadv.models.classifier.Fnet`); it is deep-copied, so the
            classifier itself is left untouched.
        real_label: ``None`` (the paper) initialises the one-output layer at random. 0 or 1 initialises it to the
            classifier's log-odds of that class, logit_real - logit_other, so that Dis starts as the classifier's
            own judgement of "looks like a real image of the target class" (a deviation for short CPU runs, where
            a random last layer saturates before it separates the classes; ``gan.dnet_init``).

    ``forward(g)`` returns the raw score Dnet(Vnet(g)) of shape (N,); :func:`dis` gives Eq. 5.
    """

    def __init__(self, classifier: nn.Module, real_label: int | None = None) -> None:
        super().__init__()
        for name in ("prepare", "classify"):
            if not callable(getattr(classifier, name, None)):
                raise ConfigError(
                    f"the discriminator needs a kit classifier with `prepare` and `classify`; "
                    f"{type(classifier).__name__} has no `{name}`."
                )
        features = getattr(classifier, "features", None)
        head = getattr(classifier, "head", None)
        last = getattr(head, "out", None)
        if not isinstance(features, nn.Module) or not isinstance(last, nn.Linear):
            raise ConfigError(
                "the discriminator needs a classifier with `features` (Vnet) and `head` (Fnet) modules whose last "
                "layer is the nn.Linear `head.out` (paper 001's VGG classifier); "
                f"{type(classifier).__name__} is not one."
            )
        self.net = copy.deepcopy(classifier)
        fresh = nn.Linear(last.in_features, 1, bias=last.bias is not None)
        fresh.to(device=last.weight.device, dtype=last.weight.dtype)
        if real_label is not None:
            if real_label not in (0, 1) or last.out_features != 2:
                raise ConfigError(
                    f"real_label={real_label} with a {last.out_features}-output classifier; expected 0 or 1 "
                    "and a two-class classifier."
                )
            with torch.no_grad():
                fresh.weight.copy_(last.weight[real_label] - last.weight[1 - real_label])
                if fresh.bias is not None:
                    fresh.bias.copy_(last.bias[real_label] - last.bias[1 - real_label])
        self.net.head.out = fresh
        self.last_layer = fresh

    def prepare(self, g: torch.Tensor) -> torch.Tensor:
        """The classifier's input step: grey [0, 1] images to the normalised 3-channel tensor Vnet reads.

        Returns:
            The normalised (N, 3, H, W) tensor.
        """
        return self.net.prepare(g)

    def vnet(self, z: torch.Tensor) -> torch.Tensor:
        """Vnet(z): the feature map of the normalised tensor ``z``.

        Returns:
            The feature map (N, C, h, w).
        """
        return self.net.features(z)

    def dnet(self, feats: torch.Tensor) -> torch.Tensor:
        """Dnet of a feature map: the raw score, shape (N,).

        Returns:
            The raw scores (N,).
        """
        return self.net.head(feats).reshape(-1)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Dnet(Vnet(z)) of the normalised tensor ``z``, shape (N,).

        Returns:
            The raw scores (N,).
        """
        return self.dnet(self.vnet(z))

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        """Dnet(Vnet(g)) of grey images ``g`` (N, 1, H, W) in [0, 1].

        Returns:
            The raw scores (N,); larger = more real.
        """
        return self.classify(self.prepare(g))

    def feature_parameters(self) -> list[nn.Parameter]:
        """Parameters of Vnet (paper 001: learning rate 1e-5 in the joint phase).

        Returns:
            The parameters, in module order.
        """
        return list(self.net.features.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Every other parameter: Dnet, the modified Fnet (paper 001: learning rate 1e-4).

        Returns:
            The parameters, in module order.
        """
        feature_ids = {id(p) for p in self.net.features.parameters()}
        return [p for p in self.net.parameters() if id(p) not in feature_ids]


def dis(score: torch.Tensor) -> torch.Tensor:
    """Paper 001, Eq. 5: Dis(g) = -ln(1 + exp(-Dnet(Vnet(g)))) = -softplus(-score); always <= 0.

    Returns:
        Dis(g) per image, (N,), each <= 0.
    """
    return -F.softplus(-score)


FAKE_BATCH_PIXELS = 64 * 96 * 96
"""Pixels in one batch of images that trained generators edit (:func:`flipped_fakes`): 64 images at the default
profile's 96 x 96, 9 at the workshop's 256 x 256, where a batch of 64 raised notebook 02's peak memory from 1.8 to
2.8 GiB. Each image is edited on its own (GroupNorm, no batch statistics), so the batch only groups the work and
changes at most the float32 rounding of the kernels (the workshop's run wrote the same fakes, as 16-bit PNGs, and the
same tables with either batch)."""


def fake_batch(images: np.ndarray) -> int:
    """How many of ``images`` (N, 1, H, W) the generators edit at once: :data:`FAKE_BATCH_PIXELS` worth, at least one.

    Returns:
        The batch size.
    """
    return max(1, FAKE_BATCH_PIXELS // (images.shape[-2] * images.shape[-1]))


def flipped_fakes(
    generators: dict[str, nn.Module],
    images: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Paper 001's adversarial counterpart of every image: ``remove`` applied to positives, ``insert`` to negatives,
    ``batch_size`` images at a time (default: :func:`fake_batch`).

    Returns:
        The fakes (N, 1, H, W) as float32 numpy, in the order of ``images``.
    """
    images = np.asarray(images, dtype=np.float32)
    batch_size = batch_size or fake_batch(images)
    labels = np.asarray(labels).astype(int)
    out = np.empty_like(images)
    for direction, (source, _) in DIRECTIONS.items():
        sel = labels == source
        if sel.any():
            out[sel] = batched_outputs(
                generators[direction], images[sel], batch_size, lambda o: o.float(), device
            ).numpy()
    return out


__all__ = ["DIRECTIONS", "FAKE_BATCH_PIXELS", "Discriminator", "Gnet", "dis", "fake_batch", "flipped_fakes"]
