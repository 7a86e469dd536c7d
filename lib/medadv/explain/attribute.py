"""Attribution maps of the kit's classifiers, batched, through captum: one entry point, :func:`attribute`.

Methods (:data:`METHODS`, each one function registered in :data:`ATTRIBUTION_METHODS` by
:func:`attribution_method`: adding a method is one such function), each giving one map per image at the image's
resolution, larger = more relevant to ``target``:

* ``gradcam`` -- Grad-CAM (Selvaraju et al., ICCV 2017, eqs. 1-2): channel weights are the spatially averaged
  gradients of the target logit at the layer :func:`gradcam_layer` picks, the weighted sum is rectified and
  bilinearly up-sampled to the image (captum ``LayerGradCam``).
* ``guided_gradcam`` -- Guided Grad-CAM (Selvaraju et al. 2017, Sec. 3.1): guided backpropagation (Springenberg et
  al., ICLR-W 2015) times the up-sampled Grad-CAM. Paper 001's network uses LeakyReLU, which captum's
  ``GuidedBackprop`` leaves untouched (it rectifies ``nn.ReLU`` only), so the guided gradient is taken here with
  backward hooks that rectify the gradient at every ReLU *and* LeakyReLU.
* ``saliency`` -- absolute input gradient (Simonyan et al., ICLR-W 2014; captum ``Saliency``).
* ``integrated_gradients`` -- Sundararajan et al., ICML 2017, eq. 1, black-image baseline, ``ig_steps``
  Gauss-Legendre steps (captum ``IntegratedGradients``). Signed.
* ``deeplift`` -- DeepLIFT rescale rule (Shrikumar et al., ICML 2017), black-image baseline (captum ``DeepLift``).
  Signed. captum keeps each activation's input and output on the module, so a module called twice per forward
  pass breaks it; torchvision's residual blocks call one ReLU two or three times. The attribution copy made here
  therefore hands every call of a shared activation its own module (:class:`CallOrdered`).
* ``occlusion`` -- output drop when a ``occlusion_window`` square (stride ``occlusion_stride``) is set to black
  (Zeiler and Fergus, ECCV 2014; captum ``Occlusion``). Signed.

All methods run on a private copy of the model (eval mode, in-place activations turned off), so the caller's model
is never hooked or changed. Images are [0, 1] tensors (N, 1, H, W), as everywhere in the kit.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
from captum.attr import DeepLift, IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency
from torch import nn

from medadv.errors import ConfigError, DataError
from medadv.models.inference import predicted_labels

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softplus)
TargetLike = int | Sequence[int] | torch.Tensor | np.ndarray | None


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations Grad-CAM weighs, as the model declares it: every classifier of the kit has a
    ``gradcam_layer`` attribute, the dotted path of a submodule (:class:`~medadv.models.classifier.VGGClassifier`:
    ``features``, Vnet's last map; :class:`~medadv.models.multitask.MultiTaskResNet`: its last encoder stage;
    :class:`~medadv.models.backbones.TorchvisionClassifier`: ``net.layer4`` or ``net.features`` by architecture).
    A new model class declares its own; nothing here depends on the class.

    Returns:
        The submodule of ``model`` at that path.

    Returns:
        The layer (a submodule of ``model``).

    Raises:
        ConfigError: the model declares no path (no ``gradcam_layer``, or None), or its path names no submodule;
            give the class a ``gradcam_layer`` or pass ``layer=`` to :func:`attribute`.
    """
    declared = getattr(model, "gradcam_layer", None)
    if not isinstance(declared, str):
        raise ConfigError(
            f"a {type(model).__name__} declares no Grad-CAM layer (its gradcam_layer is {declared!r}); expected the "
            "dotted path of the submodule whose output Grad-CAM weighs. Give the class a gradcam_layer attribute, or "
            "pass layer=<module> to attribute()."
        )
    try:
        return model.get_submodule(declared)
    except AttributeError as exc:
        raise ConfigError(
            f"a {type(model).__name__} declares the Grad-CAM layer {declared!r}, which is not one of "
            f"its submodules ({exc}); fix the class's gradcam_layer path."
        ) from exc


class CallOrdered(nn.Module):
    """Stands in for an activation module that a network calls several times per forward pass: call i of a pass is
    run by its own copy ``calls[i]``, so per-module state (captum's DeepLIFT hooks) is never overwritten."""

    def __init__(self, activation: nn.Module, n_calls: int) -> None:
        super().__init__()
        self.calls = nn.ModuleList(copy.deepcopy(activation) for _ in range(n_calls))
        self.position = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the wrapped activation modules in turn, one per call of the original module.

        Returns:
            The activation's output.
        """
        out = self.calls[self.position](x)
        self.position = (self.position + 1) % len(self.calls)
        return out


def _reset_call_order(model: nn.Module, _inputs: tuple[torch.Tensor, ...]) -> None:
    for module in model.modules():
        if isinstance(module, CallOrdered):
            module.position = 0


def attribution_copy(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """A private copy of ``model`` for hook-based attribution: eval mode, in-place activations off, and every
    activation that one forward pass of ``probe`` (N, 1, H, W) calls more than once split into one module per call.

    Returns:
        The copy; ``model`` is unchanged.
    """
    twin = copy.deepcopy(model).eval()
    for module in twin.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    counts: Counter[int] = Counter()
    handles = [
        m.register_forward_pre_hook(lambda mod, _inp: counts.update([id(mod)]))
        for m in twin.modules()
        if isinstance(m, ACTIVATIONS)
    ]
    try:
        with torch.no_grad():
            twin(probe[:1])
    finally:
        for handle in handles:
            handle.remove()
    replacements: dict[int, CallOrdered] = {}
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ACTIVATIONS) and counts[id(child)] > 1:
                if id(child) not in replacements:
                    replacements[id(child)] = CallOrdered(child, counts[id(child)])
                setattr(parent, name, replacements[id(child)])
    if replacements:
        twin.register_forward_pre_hook(_reset_call_order)
    return twin


def _as_batch(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[0] == 0:
        raise DataError(f"attribute: images of shape {tuple(x.shape)}; expected a grey batch (N, 1, H, W), N >= 1.")
    if not torch.is_floating_point(x) or not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError("attribute: images must be finite floats in [0, 1] (the kit's pixel scale).")
    return x.float()


def _targets(model: nn.Module, x: torch.Tensor, target: TargetLike) -> torch.Tensor:
    if target is None:
        return predicted_labels(model, x)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(len(x)).clone()
    if t.numel() != len(x):
        raise DataError(f"attribute: {t.numel()} targets for {len(x)} images; give one class index or one per image.")
    return t


def _guided_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Guided backpropagation: the input gradient with the gradient rectified at every (Leaky)ReLU."""
    hooks = [
        m.register_full_backward_hook(lambda _m, grad_in, _out: (grad_in[0].clamp(min=0),))
        for m in model.modules()
        if isinstance(m, (nn.ReLU, nn.LeakyReLU))
    ]
    try:
        x = x.clone().requires_grad_(True)
        score = model(x).gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(score, x)
    finally:
        for hook in hooks:
            hook.remove()
    return grad


@dataclasses.dataclass(frozen=True)
class AttributionCall:
    """One batch's attribution call: the model's private copy, its Grad-CAM layer and the settings of
    :func:`attribute`.

    Attributes:
        model: the attribution copy (:func:`attribution_copy`).
        layer: the copy's Grad-CAM layer, or ``None`` for a method that takes none.
        batch_size: images per attribution call (integrated gradients: model evaluations per chunk).
        ig_steps: integration steps of integrated gradients.
        occlusion_window: side in pixels of the occluding square.
        occlusion_stride: stride in pixels of the occluding square.
    """

    model: nn.Module
    layer: nn.Module | None
    batch_size: int
    ig_steps: int
    occlusion_window: int
    occlusion_stride: int


#: One attribution method: ``(call, images, targets) -> maps`` of shape (N, 1, H, W) for one batch.
AttributionFn = Callable[[AttributionCall, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class AttributionMethod:
    """A registered attribution method: its function and whether it needs the Grad-CAM layer."""

    name: str
    compute: AttributionFn
    needs_layer: bool


#: The registered methods by name, in registration order (:func:`attribution_method`); :data:`METHODS` names them.
ATTRIBUTION_METHODS: dict[str, AttributionMethod] = {}


def attribution_method(name: str, *, needs_layer: bool = False) -> Callable[[AttributionFn], AttributionFn]:
    """Register the decorated function as the attribution method ``name`` (adding a method is one such function).

    Returns:
        The decorator; it returns the function unchanged.
    """

    def register(fn: AttributionFn) -> AttributionFn:
        if name in ATTRIBUTION_METHODS:
            raise ValueError(f"attribution method {name!r} is registered twice.")
        ATTRIBUTION_METHODS[name] = AttributionMethod(name, fn, needs_layer)
        return fn

    return register


@attribution_method("gradcam", needs_layer=True)
def _gradcam(call: AttributionCall, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., ICCV 2017, eqs. 1-2), rectified and bilinearly up-sampled to the image."""
    cam = LayerGradCam(call.model, call.layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")


@attribution_method("guided_gradcam", needs_layer=True)
def _guided_gradcam(call: AttributionCall, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017, Sec. 3.1): the guided gradient times the up-sampled Grad-CAM."""
    return _guided_gradient(call.model, x, target) * _gradcam(call, x, target)


@attribution_method("saliency")
def _saliency(call: AttributionCall, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The absolute input gradient (Simonyan et al., ICLR-W 2014)."""
    return Saliency(call.model).attribute(x, target=target, abs=True)


@attribution_method("integrated_gradients")
def _integrated_gradients(call: AttributionCall, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al., ICML 2017, eq. 1) from a black image."""
    return IntegratedGradients(call.model).attribute(
        x, baselines=0.0, target=target, n_steps=call.ig_steps, internal_batch_size=call.batch_size
    )


@attribution_method("deeplift")
def _deeplift(call: AttributionCall, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DeepLIFT's rescale rule (Shrikumar et al., ICML 2017) from a black image."""
    return DeepLift(call.model).attribute(x, baselines=0.0, target=target)


@attribution_method("occlusion")
def _occlusion(call: AttributionCall, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The output drop when a black square slides over the image (Zeiler and Fergus, ECCV 2014)."""
    window, stride = call.occlusion_window, call.occlusion_stride
    return Occlusion(call.model).attribute(
        x,
        sliding_window_shapes=(1, window, window),
        strides=(1, stride, stride),
        baselines=0.0,
        target=target,
        perturbations_per_eval=max(1, call.batch_size // len(x)),
    )


#: The names of the registered attribution methods, in registration order (see the module docstring).
METHODS = tuple(ATTRIBUTION_METHODS)


def attribute(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    method: str,
    target: TargetLike = None,
    *,
    layer: nn.Module | None = None,
    batch_size: int = 32,
    ig_steps: int = 32,
    occlusion_window: int = 8,
    occlusion_stride: int = 4,
) -> np.ndarray:
    """Attribution maps of ``model`` for images ``x`` (N, 1, H, W) in [0, 1], as a float32 array (N, H, W).

    Args:
        model: a classifier returning logits (N, C); it is copied, never modified.
        x: the images (on any device; batches are moved to the model's device).
        method: one of ``METHODS`` (see the module docstring).
        target: class whose logit is explained: ``None`` = each image's predicted class, an int for all images, or
            one index per image.
        layer: Grad-CAM layer of ``model``; default :func:`gradcam_layer`.
        batch_size: images per attribution call (integrated gradients: model evaluations per chunk).
        ig_steps: integration steps of integrated gradients.
        occlusion_window, occlusion_stride: side and stride in pixels of the occluding square.

    Returns:
        The maps, float32 (N, H, W), larger = more relevant to the target class (sign conventions per method in the
        module docstring).

    Raises:
        ConfigError: unknown method or settings out of range; DataError: images not (N, 1, H, W) in [0, 1].

    Example:
        A model whose class 1 looks only at the top-left 2 x 2 corner; its gradient map lights up that corner, which
        the alignment metrics then score as a perfect hit:

        >>> import torch
        >>> from torch import nn
        >>> from medadv.explain.alignment import relevance_rank_accuracy
        >>> corner = torch.zeros(4, 4, dtype=torch.bool)
        >>> corner[:2, :2] = True
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.stack([-corner.flatten().float(), corner.flatten().float()]))
        ...     _ = model[1].bias.zero_()
        >>> maps = attribute(model, torch.full((1, 1, 4, 4), 0.5), "saliency", target=1)
        >>> maps
        array([[[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 0., 0.]]], dtype=float32)
        >>> relevance_rank_accuracy(maps, corner[None].numpy())
        array([1.])
    """
    if method not in ATTRIBUTION_METHODS:
        raise ConfigError(f"attribution method {method!r} is unknown; choose one of {list(ATTRIBUTION_METHODS)}.")
    if min(batch_size, ig_steps, occlusion_window, occlusion_stride) < 1:
        raise ConfigError(
            f"attribute: batch_size={batch_size}, ig_steps={ig_steps}, occlusion_window={occlusion_window}, "
            f"occlusion_stride={occlusion_stride}; each must be >= 1."
        )
    x = _as_batch(x)
    device = next(model.parameters()).device
    twin = attribution_copy(model, x.to(device))
    target = _targets(twin, x, target)
    registered = ATTRIBUTION_METHODS[method]
    twin_layer = None
    if registered.needs_layer:
        twin_layer = twin.get_submodule(layer_path(model, layer if layer is not None else gradcam_layer(model)))
    call = AttributionCall(twin, twin_layer, batch_size, ig_steps, occlusion_window, occlusion_stride)
    maps = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device).requires_grad_(True)
        tb = target[i : i + batch_size].to(device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
            # DeepLIFT's max-pool rule un-pools; with the kit's non-overlapping pools every index is written once.
            warnings.filterwarnings("ignore", message="max_unpooling2d_forward_out", category=UserWarning)
            out = registered.compute(call, xb, tb)
        maps.append(out.detach().sum(dim=1).float().cpu())
    return torch.cat(maps).numpy()


def layer_path(model: nn.Module, layer: nn.Module) -> str:
    """Qualified name of ``layer`` inside ``model`` (to find the same layer in a copy of the model).

    Returns:
        The dotted path of the layer.
    """
    for name, module in model.named_modules():
        if module is layer:
            return name
    raise ConfigError(f"the Grad-CAM layer {type(layer).__name__} is not a submodule of the {type(model).__name__}.")
