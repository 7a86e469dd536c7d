"""Adaptive attacks: PGD against the classifier and a detector at once (Carlini & Wagner, "Adversarial examples are
not easily detected: bypassing ten detection methods", AISec 2017; Tramer, Carlini, Brendel & Madry, "On adaptive
attacks to adversarial example defenses", NeurIPS 2020).

The attacker knows the detector and ascends, in the L-inf ball of radius eps, the per-image loss

    L(x') = CE(f(x'), y)              while the classifier still gets x' right,
    L(x') = -s(x')                    once it is fooled,

where ``s`` is the detector's score (:meth:`medadv.detect.base.Detector.score_tensor`, differentiable or with a
straight-through BPDA estimate where the detector is not). Switching the loss per image
rather than summing both terms is Tramer et al.'s advice (sec. 4, "selective" losses): with a sum, whichever term
has the larger gradient wins, and an attack that evades a detector whose distances are large (Mahalanobis) stops
fooling the classifier; with signed steps, no weight or scale between the two terms is needed. Steps are signed
gradients of size ``alpha`` from a uniform random start, projected onto the ball and [0, 1] (Madry et al. 2018).

Which iterate comes back differs from :func:`medadv.attacks.gradient.pgd`, which is why this loop is its own: the
attacker wants an image that fools the classifier *and* looks clean, so per image the evaluated iterate with the
lowest detector score among those the classifier misclassifies is kept; an image never misclassified gets the
iterate with the lowest detector score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medadv.detect.base import Detector
from medadv.errors import ConfigError, DataError
from medadv.models.inference import eval_mode

__all__ = ["adaptive_pgd"]


def _check(x: Tensor, y: Tensor, eps: float, alpha: float, steps: int) -> None:
    if x.ndim != 4 or y.shape != (x.shape[0],):
        raise DataError(
            f"images of shape {tuple(x.shape)} with labels {tuple(y.shape)}; expected (N, 1, H, W) and (N,)."
        )
    if not (0 <= eps <= 1) or not alpha > 0 or steps < 1:
        raise ConfigError(
            f"adaptive PGD: eps={eps}, alpha={alpha}, steps={steps}; expected eps in [0, 1], a "
            "positive step size and at least one step."
        )


class _Kept:
    """Per image, the iterate kept so far: misclassified beats not, then the lower detector score wins."""

    def __init__(self, x: Tensor) -> None:
        self.x = x.clone()
        self.score = torch.full((x.shape[0],), float("inf"), device=x.device)
        self.fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def update(self, x_adv: Tensor, fooled: Tensor, score: Tensor) -> None:
        better = (fooled & ~self.fooled) | ((fooled == self.fooled) & (score < self.score))
        self.x[better], self.score[better] = x_adv.detach()[better], score.detach()[better]
        self.fooled |= fooled


def adaptive_pgd(
    classifier: nn.Module,
    detector: Detector,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """PGD (L-inf) on the classifier's cross-entropy until it is fooled, then on minus the detector's score.

    Args:
        classifier: the attacked classifier (grey [0, 1] images -> logits), on the detector's device.
        detector: the detector the attacker knows.
        x, y: images (N, 1, H, W) in [0, 1] and their true labels (N,), on that device.
        eps, alpha, steps: L-inf radius, step size and number of steps, in [0, 1] pixel units.
        generator: CPU generator of the random start.

    Returns:
        Adversarial images within eps of ``x`` (L-inf) and in [0, 1] (see the module docstring for which).
    """
    _check(x, y, eps, alpha, steps)
    x = x.detach()
    if eps == 0:
        return x.clone()
    start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    x_adv = (x + start).clamp(0, 1)
    best = _Kept(x_adv)
    with eval_mode(classifier):
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            logits = classifier(x_adv)
            score = detector.score_tensor(x_adv)
            fooled = logits.argmax(dim=1) != y
            loss = torch.where(fooled, -score, F.cross_entropy(logits, y, reduction="none"))
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            with torch.no_grad():
                best.update(x_adv, fooled, score)
                x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
        with torch.no_grad():
            best.update(x_adv, classifier(x_adv).argmax(dim=1) != y, detector.score_tensor(x_adv))
    return best.x.detach()
