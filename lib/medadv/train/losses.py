"""Training losses: paper 001's focal loss plus gradient penalty (eqs. 1-3), cross-entropy, Dice + BCE, and the
divergences of TRADES and AugMix.

Paper 001 (Zhou et al., Nat Commun 2021, "AI-CAD classifier"), with ``g_p`` the positive and ``g_n`` the negative
images of a batch that holds ``N`` of each (class-balanced sampling, :class:`medadv.train.loop.BalancedBatches`)::

    Loss_cls = FL(p_p) + FL(p_n) + GP(g_p, g_n)                                                     (1)
    FL(p_s) = -1/N sum_j (1 - p_j)^gamma log(p_j)                                                   (2)
    GP(x^1, x^2) = k/(2N) sum_j ( ||grad Fnet(Vnet(x^1_j))||_2^o + ||grad Fnet(Vnet(x^2_j))||_2^o )  (3)

``p_j`` is the softmax probability of the image's own class; gamma = 2, k = 10, o = 4. ``gp_at`` chooses which
gradient eq. 3 penalises:

* ``image`` (the default; the authors' ``trainClas1728pal134.py``): the gradient of the sum of both logits with
  respect to the image Vnet receives, i.e. the normalised three-channel tensor ``z = prepare(x)``, per image. The
  kit's models take grey [0, 1] images ``x``; ``z_c = (x - mean_c) / std_c``, so ``dL/dx = sum_c dL/dz_c / std_c``:
  the two gradients differ by these fixed factors and the kit, like the authors, takes the one at ``z``. A penalty on
  the input gradient is itself a defence against gradient attacks (double back-propagation, Drucker & LeCun 1992;
  Ross & Doshi-Velez 2018), so paper 001's own classifier is partly robust by construction: a finding of the study.
* ``features`` (the kit's earlier reading, kept as a named option): the gradient of Fnet evaluated at the feature
  map ``Vnet(x)``, of the positive-class log-odds ``logit_1 - logit_0`` (for the one-output discriminator of eq. 6,
  of the output itself). It bounds the slope of the head only, as WGAN-GP's (the paper's reference 32) bounds a
  critic's, and leaves Vnet's updates to the focal loss.

When a batch does not hold exactly ``N`` of each class (a shard of a distributed batch, a last batch), each class's
terms are averaged over that class's own count, which equals eqs. 1-3 on balanced batches. The authors' focal loss
also weighs each class by 1/2 (``alpha = [1/2, 1/2]``); eq. 2 does not, nor does the kit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from medadv.errors import ConfigError, DataError


def _wide(t: Tensor) -> Tensor:
    """``t`` in at least single precision (mixed-precision logits are upcast; double stays double)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def focal_terms(logits: Tensor, y: Tensor, gamma: float = 2.0) -> Tensor:
    """Per-image focal loss ``-(1 - p)^gamma log p`` of the true class (Lin et al. 2017; paper 001 eq. 2).

    Returns:
        The loss per image (N,).
    """
    logp = F.log_softmax(_wide(logits), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return -((1.0 - logp.exp()) ** gamma) * logp


def class_balanced_mean(values: Tensor, y: Tensor) -> Tensor:
    """Mean over the positives plus mean over the negatives (paper 001 eq. 1's ``FL(p_p) + FL(p_n)`` shape).

    A class absent from the batch contributes nothing.

    Returns:
        The loss, a scalar tensor.
    """
    total = values.new_zeros(())
    for cls in (0, 1):
        sel = y == cls
        if bool(sel.any()):
            total = total + values[sel].mean()
    return total


def differentiable(feats: Tensor) -> Tensor:
    """``feats`` itself when it is in the autograd graph; a frozen network's output (no parameter requires grad, as
    in the GAN's warm-up stage) made a leaf that requires grad, so that a penalty can still take its gradient.

    Returns:
        ``feats``, in the autograd graph.
    """
    return feats if feats.requires_grad else feats.requires_grad_(True)


def feature_gradient_norms(feats: Tensor, score: Tensor) -> Tensor:
    """Per-image L2 norm of the gradient of ``score`` (N,) with respect to ``feats`` (the image Vnet receives or the
    feature map Vnet(x)), kept in the graph (``create_graph``) so that a penalty on it trains the network.

    Returns:
        the norms, shape (N,).
    """
    (grad,) = torch.autograd.grad(score.sum(), feats, create_graph=True)
    return grad.flatten(1).norm(p=2, dim=1)


GP_READINGS = ("image", "features")
#: The classifier's readings: also ``none``, paper 001's loss without its penalty (the focal loss alone, k = 0), the
#: control that tells what the penalty does to robustness (notebook 03). The GAN's discriminator keeps its penalty.
CLASSIFIER_GP_READINGS = (*GP_READINGS, "none")


def check_gp_at(gp_at: str, readings: tuple[str, ...] = GP_READINGS) -> None:
    """Raise a ConfigError unless ``gp_at`` is one of ``readings`` (:data:`GP_READINGS` by default)."""
    if gp_at not in readings:
        raise ConfigError(f"gp_at is {gp_at!r}; expected one of {readings} (see medadv.train.losses).")


def focal_gp_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    gamma: float = 2.0,
    k: float = 10.0,
    power: float = 4.0,
    gp_at: str = "image",
) -> tuple[Tensor, Tensor]:
    """Paper 001's classifier loss (eqs. 1-3) of ``model`` on grey images ``x`` with labels ``y``.

    ``model`` must be paper 001's two-part network: ``prepare`` (grey to VGG input), ``features`` (Vnet) and
    ``head`` (Fnet), as :class:`medadv.models.classifier.VGGClassifier` is. ``k = 0`` drops the gradient penalty;
    ``gp_at`` is ``image`` (the authors'), ``features`` (module docstring) or ``none`` (no penalty, as ``k = 0``).

    Returns:
        (loss, logits): the scalar loss and the logits (N, 2) of ``x``.
    """
    if x.shape[0] != y.shape[0]:
        raise DataError(f"focal_gp_loss: {x.shape[0]} images but {y.shape[0]} labels.")
    check_gp_at(gp_at, CLASSIFIER_GP_READINGS)
    k = 0.0 if gp_at == "none" else k
    missing = [name for name in ("prepare", "features", "head") if not callable(getattr(model, name, None))]
    if missing:
        raise ConfigError(
            f"paper 001's loss needs a network split into prepare / features (Vnet) / head (Fnet); "
            f"{type(model).__name__} has no {missing}. Use medadv.models.classifier.VGGClassifier."
        )
    z = model.prepare(x)
    if k > 0 and gp_at == "image":
        z = differentiable(z)
    feats = model.features(z)
    if k > 0 and gp_at == "features":
        feats = differentiable(feats)
    logits = model.head(feats)
    loss = class_balanced_mean(focal_terms(logits, y, gamma), y)
    if k > 0:
        wide = _wide(logits)
        if gp_at == "image":
            norms = feature_gradient_norms(z, wide.sum(1))  # d(sum of both logits)/dz, as the authors
        else:
            norms = feature_gradient_norms(feats, wide[:, 1] - wide[:, 0])  # the positive log-odds at Vnet(x)
        loss = loss + 0.5 * k * class_balanced_mean(norms**power, y)
    return loss, logits


def cross_entropy_loss(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy of ``model`` on ``x``; returns (loss, logits).

    Returns:
        (loss, logits).
    """
    logits = model(x)
    return F.cross_entropy(_wide(logits), y), logits


def dice_bce_loss(mask_logits: Tensor, masks: Tensor, has_mask: Tensor, smooth: float = 1.0) -> Tensor:
    """Segmentation loss: soft Dice (Milletari et al. 2016) plus pixel-wise binary cross-entropy, averaged over the
    images that have an annotation (``has_mask``); zero when none has one.

    Dice is computed per image, ``1 - (2 |P.M| + s) / (|P| + |M| + s)`` with ``s = smooth``, so that an annotated
    image without lesion (an empty mask) asks for an empty prediction.

    Returns:
        The loss, a scalar tensor.
    """
    if not bool(has_mask.any()):
        return mask_logits.sum() * 0.0
    logits = _wide(mask_logits[has_mask]).flatten(1)
    target = masks[has_mask].to(logits.dtype).flatten(1)
    prob = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (prob * target).sum(1) + smooth) / (prob.sum(1) + target.sum(1) + smooth)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
    return (dice + bce).mean()


def kl_to_soft_targets(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Per-image ``KL(target || softmax(logits))``: the inner and outer divergence of TRADES (Zhang et al. 2019).

    Returns:
        The divergence per image (N,).
    """
    logp = F.log_softmax(_wide(logits), dim=1)
    return (target_probs * (torch.log(target_probs.clamp_min(1e-12)) - logp)).sum(1)


def jensen_shannon(*logits: Tensor) -> Tensor:
    """Mean Jensen-Shannon divergence among the softmax outputs of several views of the same images (AugMix's
    consistency loss, Hendrycks et al. 2020, eq. in section 3: ``JS(p_1, ..., p_m) = 1/m sum_i KL(p_i || M)``).

    Returns:
        The divergence, a scalar tensor.
    """
    probs = [F.softmax(_wide(lg), dim=1) for lg in logits]
    mixture = torch.clamp(sum(probs) / len(probs), 1e-7, 1.0).log()
    return sum(F.kl_div(mixture, p, reduction="batchmean") for p in probs) / len(probs)
