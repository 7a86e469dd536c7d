"""Transfer attacks: PGD crafted on a surrogate classifier, then shown to the models under test.

A transfer attack needs nothing of the target but its answers on the finished images: the adversarial images are
computed once, with gradients of a surrogate the kit trained independently (another seed's model, or the multi-task
network), and every target is scored on them. A target that the surrogate's gradients fool more often than its own
has gradients that mislead an attacker ("black-box attacks are better than white-box attacks" is one of the signs of
obfuscated gradients of Athalye, Carlini & Wagner 2018; Carlini et al. 2019); the check is
:func:`medadv.attacks.masking.white_box_vs_black_box`.

Crafting choices. The loss is the margin (:func:`medadv.attacks.gradient.margin_loss`), not cross-entropy: its
gradient does not vanish where the surrogate is confident (cross-entropy's is scaled by the other class's
probability), and it keeps pushing past the surrogate's boundary, towards the high-confidence examples that Carlini &
Wagner (2017, "Towards evaluating the robustness of neural networks") found to transfer best. PGD runs all its steps on
every image (no early stop: an image that has only just crossed the surrogate's boundary seldom crosses a target's)
and keeps, per image, the highest-loss fooling iterate (:func:`medadv.attacks.gradient.pgd`). Random starts come from
one generator seeded with ``seed`` and drawn batch after batch, so the images do not depend on the targets and a rerun
gives the same images.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from medadv.attacks.gradient import LossFn, margin_loss, pgd
from medadv.attacks.robustness import run_attack
from medadv.errors import ConfigError
from medadv.models.inference import predicted_labels

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TransferResult:
    """Images crafted on the surrogate and each target's per-image answer on them.

    Attributes:
        images: the adversarial images (N, 1, H, W), on the CPU, in the order of the input.
        correct: target name -> (N,) bool tensor on the CPU, True where the target classifies the image correctly.
        surrogate_correct: the same for the surrogate (how well the attack worked where it was made).
    """

    images: Tensor
    correct: dict[str, Tensor]
    surrogate_correct: Tensor


def transfer_pgd(
    surrogate: nn.Module,
    targets: Mapping[str, nn.Module],
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 20,
    step_ratio: float = 2.5,
    restarts: int = 1,
    loss_fn: LossFn | None = margin_loss,
    device: torch.device | None = None,
    batch_size: int = 128,
    seed: int = 0,
) -> TransferResult:
    """PGD (Madry et al. 2018) on ``surrogate``, batch by batch, and every target's answer on the resulting images.

    Args:
        surrogate: the classifier whose gradients craft the images (logits (N, C)).
        targets: name -> classifier to score on the images (each on its own device; the surrogate may be one of them,
            which then is a white-box PGD with these settings).
        x: images (N, 1, H, W) in [0, 1], on the CPU; y: their labels (N,).
        eps: radius of the ball in [0, 1] image units.
        norm: ``"linf"`` or ``"l2"``.
        steps, restarts: PGD's steps and random restarts; ``step_ratio``: its step is ``step_ratio * eps / steps``
            (Madry et al. use 2.5).
        loss_fn: the loss PGD maximises on the surrogate (margin by default; None for cross-entropy).
        device: where the surrogate runs (default: the device of its parameters, else the CPU).
        batch_size: images per PGD batch and per scoring batch.
        seed: seed of the generator of the random starts.

    Returns:
        :class:`TransferResult`: the images and the per-image correctness of each target and of the surrogate.
    """
    if not targets:
        raise ConfigError("targets is empty; expected at least one model (name -> classifier) to score the images on.")
    if batch_size < 1 or steps < 1 or not step_ratio > 0:
        raise ConfigError(f"batch_size {batch_size}, steps {steps}, step_ratio {step_ratio}: each must be positive.")
    if device is None:
        param = next(surrogate.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    alpha = step_ratio * eps / steps

    def attack(model: nn.Module, xb: Tensor, yb: Tensor, generator: torch.Generator) -> Tensor:
        return pgd(model, xb, yb, eps, alpha, steps, norm=norm, restarts=restarts, loss_fn=loss_fn, generator=generator)

    images = run_attack(surrogate, x.detach().cpu(), y.detach().cpu(), attack, device, batch_size, seed)
    labels = y.detach().cpu()
    correct = {name: predicted_labels(model, images, batch_size).cpu() == labels for name, model in targets.items()}
    surrogate_correct = predicted_labels(surrogate, images, batch_size).cpu() == labels
    logger.info(
        "transfer PGD %s eps=%g: surrogate accuracy %.3f; %s",
        norm,
        eps,
        float(surrogate_correct.float().mean()),
        ", ".join(f"{name} {float(c.float().mean()):.3f}" for name, c in correct.items()),
    )
    return TransferResult(images=images, correct=correct, surrogate_correct=surrogate_correct)
