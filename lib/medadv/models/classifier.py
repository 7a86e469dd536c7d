"""Paper 001's AI-CAD classifier: torchvision's VGG11 ``features`` (Vnet) and the convolutional + fully connected Fnet.

Zhou et al. (Nat Commun 2021), "AI-CAD classifier" and Fig. 3a, as the authors' code builds it
(``trainClas1728pal134.py``, ``DiscriminatorVGG1728.py``):

* ``Vnet`` (:attr:`VGGClassifier.features`): torchvision's VGG11 ``features`` unchanged -- eight 3 x 3 convolutions
  with ReLU and all five 2 x 2 max-poolings, no normalisation -- so ImageNet weights load into it intact. Where it
  starts is :attr:`VGGConfig.init`: ``imagenet`` (paper 001: torchvision's ImageNet VGG11, full width only; see
  :mod:`medadv.models.backbones`), ``kit`` (the kit's own Vnet pretrained on a phantom corpus, for the narrow CPU
  widths; see :mod:`medadv.models.pretrained`) or ``random``: torchvision's VGG initialisation (Kaiming normal,
  fan-out, zero bias), as ``torchvision.models.vgg11(weights=None)`` does; PyTorch's default convolution
  initialisation shrinks the activations through eight layers, and the classifier then learns to ignore its input.
* ``Fnet`` (:attr:`VGGClassifier.head`, :class:`Fnet`): a 3 x 3 convolution of stride 2 (512 -> 512, padding 1) +
  ReLU, a 3 x 3 convolution (512 -> 2048, padding 1) + ReLU, an average pooling (2 x 2, stride 1, no padding), a
  global max pooling ("to magnify the output of the firing element"), then Linear 2048 -> 8192 -> 2048 -> 256, each
  followed by GroupNorm (32 groups) and LeakyReLU (0.2), with Dropout 0.2 after the first, and Linear 256 -> 2.

The receptive field of one element of the average pooling's output (the map the global max pooling reads) is 406 x
406 pixels, the paper's number. The input must have at least 96 pixels per side (:func:`min_input_size`): five
max-poolings and the stride-2 convolution leave ``ceil(floor(H / 32) / 2)`` rows, and the 2 x 2 average pooling
needs two of them. Grey [0, 1] input is copied to three channels and normalised as VGG11's ImageNet input inside the
model (:class:`medadv.models.backbones.GreyToImageNet`).

Width: ``width`` scales every channel count (convolutions and fully connected layers; 1.0 = the paper's) so that the
CPU profiles train a narrow net. The GroupNorms then use ``round(32 * width)`` groups, which keeps the paper's
channels per group (256, 64 and 8 in the three layers): a fixed 32 groups on a narrow layer would leave single-unit
groups, which GroupNorm maps to a constant. ImageNet weights only fit width 1.0.

The GAN of notebook 02 builds its discriminator ``Dnet(Vnet(.))`` from the same parts: ``features`` unchanged and
the ``head`` with a one-output last layer :attr:`Fnet.out` (paper 001, "GAN model generator and discriminator").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from medadv.errors import ConfigError
from medadv.models.backbones import GreyToImageNet, load_imagenet
from medadv.models.pretrained import INITS, check_init, load_kit_vnet

#: torchvision's VGG11 (configuration "A"): eight convolutions and five 2 x 2 max-poolings ("M").
VGG11_CFG: tuple[int | str, ...] = tuple(cfgs["A"])
#: Fnet's convolutions (stride 2, then stride 1) and fully connected layers at full width (authors' code).
FNET_CONV = (512, 2048)
FNET_FC = (8192, 2048, 256)
PAPER_GROUPS = 32


@dataclasses.dataclass(frozen=True)
class VGGConfig:
    """Architecture of :class:`VGGClassifier`.

    Attributes:
        width: multiplier of every channel count (1.0 = the paper's; ImageNet weights only fit 1.0).
        dropout: drop rate of Fnet's dropout (paper 001: 0.2).
        negative_slope: LeakyReLU negative slope (paper 001: 0.2).
        num_outputs: logits out of the last layer (2 for the classifier, 1 for the GAN discriminator).
        init: where ``features`` (Vnet) starts: ``imagenet`` (torchvision's ImageNet VGG11 weights, fetched into
            torchvision's cache on first use; width 1.0 only), ``kit`` (the kit's pretrained Vnet of this width,
            :mod:`medadv.models.pretrained`) or ``random`` (torchvision's VGG initialisation). Fnet always starts
            at random, as in paper 001.
    """

    width: float = 1.0
    dropout: float = 0.2
    negative_slope: float = 0.2
    num_outputs: int = 2
    init: str = "random"

    def __post_init__(self) -> None:
        if not 0.0 < self.width <= 1.0:
            raise ConfigError(f"classifier width is {self.width}; expected a multiplier in (0, 1].")
        if self.init not in INITS:
            raise ConfigError(f"classifier init is {self.init!r}; expected one of {INITS}.")
        if self.num_outputs < 1:
            raise ConfigError(f"classifier num_outputs is {self.num_outputs}; expected >= 1.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"classifier dropout is {self.dropout}; expected a rate in [0, 1).")
        bad = [c for c in self.fc_widths() if c % self.groups()]
        if bad:
            raise ConfigError(
                f"classifier width {self.width} gives fully connected widths {self.fc_widths()} that "
                f"{self.groups()} GroupNorm groups do not divide; choose a width of the form 2^-k."
            )

    def scale(self, channels: int) -> int:
        """``channels`` times the width, at least 1.

        Returns:
            The scaled channel count.
        """
        return max(1, int(round(channels * self.width)))

    def vnet_cfg(self) -> list[int | str]:
        """torchvision's VGG11 configuration at this width.

        Returns:
            The layer list: channel counts and ``"M"`` for a max pooling.
        """
        return [c if c == "M" else self.scale(int(c)) for c in VGG11_CFG]

    def fc_widths(self) -> tuple[int, ...]:
        """Fnet's fully connected widths at this width (paper: 8192, 2048, 256).

        Returns:
            The three widths.
        """
        return tuple(self.scale(c) for c in FNET_FC)

    def groups(self) -> int:
        """GroupNorm groups: 32 at full width, scaled with the width (the paper's channels per group).

        Returns:
            The number of groups, at least 1.
        """
        return max(1, int(round(PAPER_GROUPS * self.width)))


def channels_last_on_cpu(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
    """Forward pre-hook of Vnet: on the CPU, hand it its input in channels-last memory layout (same values).

    oneDNN's convolutions in the default (NCHW) layout reorder every few-channel map to a blocked layout and back,
    which at 256 x 256 made Vnet's first two convolutions most of a forward-backward pass; in channels-last layout
    they ran about 5x faster (measured on 2 cores at width 1/16). Outputs and gradients are the same up to float
    rounding (``tests/test_models.py``). Other devices keep their layout (not measured there).

    Returns:
        The input in channels-last layout, or None (unchanged) off the CPU.
    """
    (z, *rest) = args
    if z.device.type != "cpu" or z.ndim != 4:
        return None
    return (z.contiguous(memory_format=torch.channels_last), *rest)


def min_input_size() -> int:
    """Smallest image side Vnet + Fnet accept: 3 x 32 (five poolings, then 2 rows after the stride-2 convolution).

    Returns:
        The side in pixels, 96.
    """
    return 96


class Fnet(nn.Module):
    """Paper 001's Fnet: conv s2 + ReLU, conv + ReLU, 2 x 2 average pooling (stride 1), global max pooling, then three
    Linear + GroupNorm + LeakyReLU layers (Dropout after the first) and the last layer :attr:`out`.

    The GAN discriminator swaps :attr:`out` for a one-output layer.
    """

    def __init__(self, in_channels: int, config: VGGConfig) -> None:
        super().__init__()
        mid, wide = config.scale(FNET_CONV[0]), config.scale(FNET_CONV[1])
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(mid, wide, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
        )
        self.smooth = nn.AvgPool2d(kernel_size=2, stride=1, padding=0)
        self.pool = nn.AdaptiveMaxPool2d(1)
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = wide
        for i, width_out in enumerate(config.fc_widths()):
            layers += [nn.Linear(width_in, width_out), nn.GroupNorm(config.groups(), width_out)]
            if i == 0:
                layers.append(nn.Dropout(config.dropout))
            layers.append(nn.LeakyReLU(config.negative_slope))
            width_in = width_out
        self.fc = nn.Sequential(*layers)
        self.out = nn.Linear(width_in, config.num_outputs)

    def pre_pool(self, feats: torch.Tensor) -> torch.Tensor:
        """The map the global max pooling reads (after the average pooling): each element sees 406 x 406 pixels.

        Returns:
            The map (N, C, h, w).
        """
        h = self.conv(feats)
        if min(h.shape[-2:]) < 2:
            raise ConfigError(
                f"Fnet got a {tuple(feats.shape[-2:])} Vnet map, {tuple(h.shape[-2:])} after its stride-2 "
                f"convolution; the 2 x 2 average pooling needs 2. Use images of at least "
                f"{min_input_size()} x {min_input_size()} pixels (data.image_size)."
            )
        return self.smooth(h)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Fnet of the feature map ``feats``: smoothing, global max pooling, the fully connected layers.

        Returns:
            The class logits (N, 2).
        """
        return self.out(self.fc(self.pool(self.pre_pool(feats))))


class VGGClassifier(nn.Module):
    """Paper 001's AI-CAD classifier on grey [0, 1] images (N, 1, H, W), H, W >= 96 -> logits (N, ``num_outputs``).

    ``pretrained`` tells whether ``features`` started from pretrained weights (``config.init`` says which).
    :attr:`gradcam_layer` names the module
    whose output Grad-CAM weighs (read by :func:`medadv.explain.attribute.gradcam_layer`): ``features``, Vnet's last
    map (1/32 of the image side), the finest map that feeds Fnet's receptive field; Fnet's own convolutions work at
    1/64 of the side, one row at the default profile's 96 pixels, too coarse to place a lesion.
    """

    gradcam_layer = "features"

    def __init__(self, config: VGGConfig = VGGConfig()) -> None:
        super().__init__()
        self.config = config
        self.prepare = GreyToImageNet()
        self.features = make_layers(config.vnet_cfg(), batch_norm=False)
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # same function; captum's hooks and double back-propagation need it
            if isinstance(module, nn.Conv2d):  # torchvision's VGG initialisation (VGG.__init__, init_weights=True)
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        self.features.register_forward_pre_hook(channels_last_on_cpu)
        self.head = Fnet(config.scale(512), config)
        self.pretrained = self._load_init()

    def _load_init(self) -> bool:
        """Load ``features``' starting weights as ``config.init`` asks.

        Returns:
            Whether ``features`` started from pretrained weights.

        Raises:
            ConfigError: the weights do not fit this width (ImageNet: 1.0 only; kit: the widths it ships), or
                ImageNet weights are neither cached nor downloadable (the message names the file and the command).
        """
        init, width = self.config.init, self.config.width
        if init == "random":
            return False
        check_init(init, width)
        if init == "imagenet":
            state = load_imagenet("vgg11")
            state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        else:
            state = load_kit_vnet(width)
        self.features.load_state_dict(state)
        return True

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """``Fnet(Vnet(z))`` on the normalised 3-channel tensor ``z``.

        Returns:
            The class logits (N, 2).
        """
        return self.head(self.features(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of grey images ``x`` (N, 1, H, W) in [0, 1].

        Returns:
            The class logits (N, 2).
        """
        return self.classify(self.prepare(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Paper 001's parts: ``features`` (Vnet), ``head`` (Fnet without its last layer) and ``last`` (its last layer).

        The training loop gives ``features`` its own learning rate and freezes parts by phase
        (:func:`medadv.train.loop.fit`).

        Returns:
            ``{"features": [...], "head": [...], "last": [...]}``.
        """
        last = {id(p) for p in self.head.out.parameters()}
        return {
            "features": list(self.features.parameters()),
            "head": [p for p in self.head.parameters() if id(p) not in last],
            "last": list(self.head.out.parameters()),
        }

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which :func:`medadv.models.registry.build_model` rebuilds this network.

        Returns:
            The spec, ``{"kind": "vgg", ...}``.
        """
        return {"kind": "vgg", **dataclasses.asdict(self.config)}
