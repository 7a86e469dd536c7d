"""Explanation manipulation: small L-inf perturbations that move a Grad-CAM map off the lesion (paper 004, Figs. 2-3).

After Ghorbani, Abid and Zou, "Interpretation of neural networks is fragile", AAAI 2019 (Sec. "Methods", Algorithm 1
and the top-k attack): starting from the image, iterative signed-gradient steps lower the share of the map that falls
in a protected region (the lesion and the original map's top-k pixels), each step projected back into the L-inf ball
of radius ``eps`` around the image and into [0, 1]. After every step the *original* network is checked and a sample's
step is kept only if its predicted label is unchanged (or, for the label-flipping variant of paper 004 Fig. 3, only if
it has changed); the iterate that moved the original network's map furthest is returned.

Grad-CAM depends on the input through the gradient of the logit with respect to a layer's activations, so the attack
needs second derivatives, and those vanish almost everywhere in a piecewise-linear (ReLU / LeakyReLU) network.
Ghorbani et al. therefore differentiate a copy in which every ReLU is a softplus (:func:`softplus_copy`; LeakyReLU
becomes its smooth counterpart ``a x + (1 - a) softplus(x)``), and evaluate success on the original network.

captum's ``LayerGradCam`` computes its gradients without a graph, so the differentiable Grad-CAM of the attack is
:func:`gradcam_maps` here; ``tests/test_manipulation.py`` checks that it agrees with captum's on the original network.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medadv.errors import ConfigError, DataError
from medadv.explain.attribute import gradcam_layer, layer_path
from medadv.models.inference import eval_mode, predicted_labels

log = logging.getLogger(__name__)


class SmoothLeakyReLU(nn.Module):
    """``a x + (1 - a) softplus(beta x) / beta``: a LeakyReLU of slope ``a`` with a softplus knee (twice
    differentiable)."""

    def __init__(self, negative_slope: float, beta: float) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The smooth leaky ReLU of ``x``: a mix of the identity and softplus.

        Returns:
            A tensor of the shape of ``x``.
        """
        a = self.negative_slope
        return a * x + (1.0 - a) * F.softplus(x, beta=self.beta)


def softplus_copy(model: nn.Module, beta: float = 10.0) -> nn.Module:
    """A copy of ``model`` (eval mode) with every ``nn.ReLU`` replaced by ``nn.Softplus(beta)`` and every
    ``nn.LeakyReLU`` by :class:`SmoothLeakyReLU` (Ghorbani et al. 2019: softplus makes the second derivatives exist).

    Larger ``beta`` follows the ReLU more closely. Only activation *modules* are replaced; the kit's classifiers use
    modules on their classification path. The original model is not changed.

    Returns:
        The copy, in eval mode; ``model`` is unchanged.
    """
    if beta <= 0:
        raise ConfigError(f"softplus beta is {beta}; expected a positive sharpness.")
    twin = copy.deepcopy(model).eval()
    smooth: dict[int, nn.Module] = {}
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                smooth.setdefault(id(child), nn.Softplus(beta=beta))
            elif type(child) is nn.LeakyReLU:
                smooth.setdefault(id(child), SmoothLeakyReLU(child.negative_slope, beta))
            else:
                continue
            setattr(parent, name, smooth[id(child)])
    return twin


def gradcam_maps(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM (Selvaraju et al. 2017, eqs. 1-2) up-sampled bilinearly to the image, and the logits.

    Returns maps (N, H, W) and logits (N, C). With ``create_graph`` the maps stay differentiable in ``x``.

    Returns:
        (maps (N, H, W), logits (N, C)).
    """
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    acts = store["a"]
    score = logits.gather(1, target[:, None]).sum()
    (grads,) = torch.autograd.grad(score, acts, create_graph=create_graph)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return cam[:, 0], logits


def topk_region(maps: np.ndarray, k: float) -> np.ndarray:
    """The top ``k`` fraction of pixels of each map (N, H, W) as a bool mask; ties broken by pixel order.

    Returns:
        The mask, bool, shape of ``maps``.
    """
    if not 0.0 < k <= 1.0:
        raise ConfigError(f"top-k fraction is {k}; expected a value in (0, 1].")
    flat = np.asarray(maps).reshape(len(maps), -1)
    n_top = max(1, int(round(k * flat.shape[1])))
    order = np.argsort(-flat, axis=1, kind="stable")[:, :n_top]
    out = np.zeros_like(flat, dtype=bool)
    np.put_along_axis(out, order, True, axis=1)
    return out.reshape(np.asarray(maps).shape)


def peak_position(maps: np.ndarray) -> np.ndarray:
    """(row, col) of each map's maximum (N, 2); tied maxima give their centroid.

    Returns:
        The positions (N, 2), float.
    """
    maps = np.asarray(maps)
    out = np.empty((len(maps), 2))
    for i, m in enumerate(maps):
        out[i] = np.argwhere(m == m.max()).mean(axis=0)
    return out


@dataclass(frozen=True)
class Manipulation:
    """Outcome of :func:`manipulate_gradcam` for N images.

    Attributes:
        x_adv: perturbed images (N, 1, H, W) in [0, 1], within ``eps`` of the originals.
        label_before, label_after: the original network's predicted class before and after (N,).
        accepted: whether a step satisfying the label condition was found (N,); otherwise ``x_adv`` is the
            original image (label kept) or the last iterate (flip variant).
    """

    x_adv: torch.Tensor
    label_before: torch.Tensor
    label_after: torch.Tensor
    accepted: torch.Tensor


def _mass_share(cam: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    return (cam * region).sum(dim=(1, 2)) / cam.sum(dim=(1, 2)).clamp_min(1e-12)


def _attack_batch(
    model: nn.Module,
    smooth: nn.Module,
    path: str,
    x0: torch.Tensor,
    region: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float,
    flip_label: bool,
    flip_weight: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    layer, smooth_layer = model.get_submodule(path), smooth.get_submodule(path)
    with torch.no_grad():
        label = model(x0).argmax(1)
    cam0, _ = gradcam_maps(model, layer, x0.clone().requires_grad_(True), label)
    best, xt = x0.clone(), x0.clone()
    inf = torch.full((len(x0),), float("inf"), device=x0.device)
    best_score = inf if flip_label else _mass_share(cam0.detach(), region)
    accepted = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    for _ in range(steps):
        xt.requires_grad_(True)
        cam, logits = gradcam_maps(smooth, smooth_layer, xt, label, create_graph=True)
        loss = _mass_share(cam, region)
        if flip_label:
            loss = loss - flip_weight * F.cross_entropy(logits, label, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), xt)
        with torch.no_grad():
            step = xt - alpha * grad.sign()
            xt = (x0 + (step - x0).clamp(-eps, eps)).clamp(0.0, 1.0)
        cam_real, logits_real = gradcam_maps(model, layer, xt.clone().requires_grad_(True), label)
        with torch.no_grad():
            changed = logits_real.argmax(1) != label
            ok = changed if flip_label else ~changed
            score = _mass_share(cam_real.detach(), region)
            better = ok & (score < best_score)
            best[better], best_score[better] = xt[better], score[better]
            accepted |= better
            if not flip_label:
                xt[~ok] = best[~ok]
    if flip_label:
        best[~accepted] = xt[~accepted]
    return best.detach(), label, accepted, best_score


def manipulate_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    region: np.ndarray | torch.Tensor,
    eps: float,
    steps: int,
    alpha: float | None = None,
    flip_label: bool = False,
    beta: float = 10.0,
    flip_weight: float = 1.0,
    layer: nn.Module | None = None,
    batch_size: int = 32,
) -> Manipulation:
    """Perturb ``x`` (N, 1, H, W) in [0, 1] within ``eps`` (L-inf) so that the Grad-CAM map of the originally
    predicted class leaves ``region`` (N, H, W) bool, keeping the predicted label (or, with ``flip_label``, changing
    it).

    Args:
        model: classifier in eval mode (left unchanged); its Grad-CAM layer is :func:`gradcam_layer` unless ``layer``.
        region: pixels the map should leave (the study uses the lesion mask joined with the original top-k pixels,
            Ghorbani et al.'s top-k attack).
        eps: L-inf budget in [0, 1] pixel units; steps, alpha: iterations and step size (default 2.5 eps / steps).
        flip_label: paper 004 Fig. 3's variant: adds ``flip_weight`` times the cross-entropy *ascent* on the
            original label and keeps a step only once the label has changed.
        beta: softplus sharpness of the differentiated copy.

    Returns:
        :class:`Manipulation`: the perturbed images, the logits and Grad-CAM maps before and after.
    """
    if eps <= 0 or steps < 1:
        raise ConfigError(f"manipulation eps={eps}, steps={steps}; expected eps > 0 and steps >= 1.")
    x = torch.as_tensor(x).float()
    region_t = torch.as_tensor(np.asarray(region, dtype=np.float32))
    if x.ndim != 4 or x.shape[1] != 1 or region_t.shape != (x.shape[0], *x.shape[2:]):
        raise DataError(
            f"manipulate_gradcam: images {tuple(x.shape)}, region {tuple(region_t.shape)}; "
            "expected (N, 1, H, W) images and an (N, H, W) region."
        )
    if x.min() < 0 or x.max() > 1:
        raise DataError("manipulate_gradcam: images must lie in [0, 1].")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    device = next(model.parameters()).device
    path = layer_path(model, layer if layer is not None else gradcam_layer(model))
    smooth = softplus_copy(model, beta)
    outs = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            sl = slice(i, i + batch_size)
            res = _attack_batch(
                model,
                smooth,
                path,
                x[sl].to(device),
                region_t[sl].to(device),
                eps,
                steps,
                alpha,
                flip_label,
                flip_weight,
            )
            outs.append([t.cpu() for t in res[:3]])
    x_adv = torch.cat([o[0] for o in outs])
    after = predicted_labels(model, x_adv, batch_size)
    log.info(
        "Grad-CAM manipulation eps=%g flip=%s: label kept on %d of %d",
        eps,
        flip_label,
        int((after == torch.cat([o[1] for o in outs])).sum()),
        len(x),
    )
    return Manipulation(x_adv, torch.cat([o[1] for o in outs]), after, torch.cat([o[2] for o in outs]))
