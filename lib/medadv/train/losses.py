"""Training losses: paper 001's focal loss plus gradient penalty (eqs. 1-3), cross-entropy, Dice + BCE, and the
divergences of TRADES and AugMix.

Paper 001 (Zhou et al., Nat Commun 2021, "AI-CAD classifier"), with ``g_p`` the positive and ``g_n`` the negative
images of a batch that holds ``N`` of each (class-balanced sampling, :class:`medadv.train.loop.BalancedBatches`)::

    Loss_cls = FL(p_p) + FL(p_n) + GP(g_p, g_n)                                                     (1)
    FL(p_s) = -1/N sum_j (1 - p_j)^gamma log(p_j)                                                   (2)
    GP(x^1, x^2) = k/(2N) sum_j ( ||grad Fnet(Vnet(x^1_j))||_2^o + ||grad Fnet(Vnet(x^2_j))||_2^o )  (3)

``p_j`` is the softmax probability of the image's own class; gamma = 2, k = 10, o = 4. Choices the paper leaves open:

* the gradient is taken with respect to the network's normalised 3-channel input (the ``x`` of ``Vnet(x)``, i.e.
  ``model.classify``'s input), per image, of the positive-class log-odds ``logit_1 - logit_0`` -- the one score that
  the two-way softmax depends on (for the one-output discriminator of eq. 6 this is the output itself);
* when a batch does not hold exactly ``N`` of each class (a shard of a distributed batch, a last batch), each
  class's terms are averaged over that class's own count, which equals eqs. 1-3 on balanced batches.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from medadv.errors import DataError


def _wide(t: Tensor) -> Tensor:
    """``t`` in at least single precision (mixed-precision logits are upcast; double stays double)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def focal_terms(logits: Tensor, y: Tensor, gamma: float = 2.0) -> Tensor:
    """Per-image focal loss ``-(1 - p)^gamma log p`` of the true class (Lin et al. 2017; paper 001 eq. 2)."""
    logp = F.log_softmax(_wide(logits), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return -((1.0 - logp.exp()) ** gamma) * logp


def class_balanced_mean(values: Tensor, y: Tensor) -> Tensor:
    """Mean over the positives plus mean over the negatives (paper 001 eq. 1's ``FL(p_p) + FL(p_n)`` shape).

    A class absent from the batch contributes nothing.
    """
    total = values.new_zeros(())
    for cls in (0, 1):
        sel = y == cls
        if bool(sel.any()):
            total = total + values[sel].mean()
    return total


def input_gradient_norms(model: nn.Module, z: Tensor, logits: Tensor) -> Tensor:
    """Per-image L2 norm of the gradient of the positive log-odds with respect to ``z`` (kept in the graph)."""
    score = logits[:, 1] - logits[:, 0] if logits.shape[1] > 1 else logits[:, 0]
    (grad,) = torch.autograd.grad(score.sum(), z, create_graph=True)
    return grad.flatten(1).norm(p=2, dim=1)


def focal_gp_loss(
    model: nn.Module, x: Tensor, y: Tensor, gamma: float = 2.0, k: float = 10.0, power: float = 4.0
) -> tuple[Tensor, Tensor]:
    """Paper 001's classifier loss (eqs. 1-3) of ``model`` on grey images ``x`` with labels ``y``.

    ``model`` must split its forward pass into ``prepare`` and ``classify`` (every classifier of the kit does).
    ``k = 0`` drops the gradient penalty (and its double back-propagation).

    Returns:
        (loss, logits): the scalar loss and the logits (N, 2) of ``x``.
    """
    if x.shape[0] != y.shape[0]:
        raise DataError(f"focal_gp_loss: {x.shape[0]} images but {y.shape[0]} labels.")
    z = model.prepare(x)
    if k > 0:
        z = z.detach().requires_grad_(True)
    logits = model.classify(z)
    loss = class_balanced_mean(focal_terms(logits, y, gamma), y)
    if k > 0:
        norms = input_gradient_norms(model, z, _wide(logits))
        loss = loss + 0.5 * k * class_balanced_mean(norms**power, y)
    return loss, logits


def cross_entropy_loss(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy of ``model`` on ``x``; returns (loss, logits)."""
    logits = model(x)
    return F.cross_entropy(_wide(logits), y), logits


def dice_bce_loss(mask_logits: Tensor, masks: Tensor, has_mask: Tensor, smooth: float = 1.0) -> Tensor:
    """Segmentation loss: soft Dice (Milletari et al. 2016) plus pixel-wise binary cross-entropy, averaged over the
    images that have an annotation (``has_mask``); zero when none has one.

    Dice is computed per image, ``1 - (2 |P.M| + s) / (|P| + |M| + s)`` with ``s = smooth``, so that an annotated
    image without lesion (an empty mask) asks for an empty prediction.
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
    """Per-image ``KL(target || softmax(logits))``: the inner and outer divergence of TRADES (Zhang et al. 2019)."""
    logp = F.log_softmax(_wide(logits), dim=1)
    return (target_probs * (torch.log(target_probs.clamp_min(1e-12)) - logp)).sum(1)


def jensen_shannon(*logits: Tensor) -> Tensor:
    """Mean Jensen-Shannon divergence among the softmax outputs of several views of the same images (AugMix's
    consistency loss, Hendrycks et al. 2020, eq. in section 3: ``JS(p_1, ..., p_m) = 1/m sum_i KL(p_i || M)``)."""
    probs = [F.softmax(_wide(lg), dim=1) for lg in logits]
    mixture = torch.clamp(sum(probs) / len(probs), 1e-7, 1.0).log()
    return sum(F.kl_div(mixture, p, reduction="batchmean") for p in probs) / len(probs)
