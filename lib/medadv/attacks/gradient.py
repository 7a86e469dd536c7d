"""Gradient attacks on image classifiers: FGSM, iterative FGSM, PGD (L-inf and L2) and APGD.

Every attack follows the same conventions (after torchattacks, with type hints and logging):

* images are [0, 1] float tensors of shape (N, 1, H, W) and the model returns class logits (N, C);
* the model is put in eval mode for the attack and every module's training flag is restored afterwards;
* gradients are taken with :func:`torch.autograd.grad` with respect to the input only, so no ``.grad`` is left on
  (or even computed for) the model's parameters;
* every perturbation stays inside the eps ball (L-inf: largest absolute pixel change; L2: per-image Euclidean norm)
  and every adversarial image inside [0, 1]; an L-inf budget is in (0, 1] (2/255 is 0.00784: a budget typed in grey
  levels is refused), an L2 budget positive;
* ``y`` is (N,) integer labels of the model's classes or (N, C) soft targets over its C classes; anything else
  (float labels, labels shaped (N, 1), a label the model has no logit for) is refused before the attack runs;
* random starts draw from a ``torch.Generator`` (on the CPU, then moved to the model's device), so an attack is
  deterministic given its generator.

Losses. ``loss_fn(logits, y)`` defaults to cross-entropy. ``y`` is either hard labels (N,) or soft targets (N, C)
(probabilities, as in TRADES, Zhang et al. 2019, where the target is the model's own prediction on the clean image).
``loss_fn`` may return per-sample losses (N,) or their mean; the gradient direction is the same either way because
each step is normalised per image (sign for L-inf, unit norm for L2). To decide which iterate to keep, per-sample
values are needed: when ``loss_fn`` returns a scalar, the per-sample cross-entropy to ``y`` (soft cross-entropy for
soft targets, which orders samples like the KL divergence to them) is computed from the same logits instead.

Which point comes back. Each step's forward pass gives both the gradient and the loss of the current iterate, so
the attacks keep, per image, the best point they evaluated without extra passes: one the model misclassifies
(argmax of the logits differs from the label, or from the soft target's argmax) with the highest loss. PGD with one
run gives an image that no evaluated iterate fooled its last iterate, as Madry et al. do; a K-step PGD then costs
exactly K forward-and-backward passes. With restarts, each run's last iterate is evaluated too (one forward pass per
run) and the highest-loss point is kept for images not yet fooled; a restart attacks only the images that no earlier
run fooled (the first success is kept, as in AutoAttack). APGD always evaluates its last iterate (K
forward-and-backward passes and one forward pass per run) and keeps the highest-loss point.

Written here rather than taken from torchattacks or autoattack: neither is a dependency of the kit (nor on conda's
main channels), neither logs, neither takes soft targets for TRADES, and AutoAttack's DLR loss needs at least three
classes while the study's classifiers have two (see :func:`margin_loss`).

References:
    Goodfellow, Shlens, Szegedy 2015, "Explaining and harnessing adversarial examples" (FGSM, Eq. 1 of paper 004).
    Kurakin, Goodfellow, Bengio 2017, "Adversarial examples in the physical world" (iterative FGSM / BIM).
    Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks" (PGD).
    Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks" (APGD, Algorithm 1).
    Rasaee & Rivaz (paper 004): iterative FGSM with eps 0.1 and 25 steps against the predicted label.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medadv.errors import ConfigError, DataError
from medadv.models.inference import eval_mode, predicted_labels

logger = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]
NORMS = ("linf", "l2")
APGD_LOSSES = ("ce", "margin")
BUDGET_HINT = (
    "L-inf budgets are in [0, 1] pixel units: write 2/255 as 0.00784 (a budget of 2 would let the attack "
    "use the whole grey range)."
)


# ---- shared helpers --------------------------------------------------------------------------------------------------
def check_linf_budgets(budgets: Mapping[str, float | Sequence[float]]) -> None:
    """Refuse L-inf budgets outside (0, 1]: budgets are in [0, 1] pixel units, so a budget typed in grey levels
    (2 for 2/255) would attack with the whole grey range.

    Args:
        budgets: a name for the message (``attacks.linf_eps``, ``eps``) -> its budget or list of budgets.

    Raises:
        ConfigError: a budget that is not a finite number in (0, 1], naming it and the way to write 2/255.
    """
    for name, given in budgets.items():
        values = list(given) if isinstance(given, Sequence) else [given]
        bad = [
            v
            for v in values
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not 0 < v <= 1
        ]
        if bad:
            shown = list(given) if isinstance(given, Sequence) else given
            raise ConfigError(f"{name} is {shown!r}: {bad[0]!r} is outside (0, 1]. {BUDGET_HINT}")


def _number(value: object, name: str) -> float:
    """One real number (a Python or NumPy number, or a tensor with no dimensions).

    Returns:
        ``value`` as a float.
    """
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ConfigError(
                f"{name} is a tensor of shape {tuple(value.shape)}; expected one number (attack each "
                "budget in its own call)."
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} is {value!r}; expected one finite number.")
    return float(value)


def _budget(eps: object, norm: str) -> float:
    """The checked budget: L-inf in (0, 1], L2 positive (per image, in [0, 1] pixel units).

    Returns:
        ``eps`` as a float.
    """
    if norm not in NORMS:
        raise ConfigError(f"norm is {norm!r}; expected one of {NORMS}.")
    value = _number(eps, "eps")
    if norm == "linf":
        check_linf_budgets({"eps": value})
    elif value <= 0:
        raise ConfigError(f"eps is {value:g}; expected a positive L2 budget (per image, in [0, 1] pixel units).")
    return value


def _count(value: object, name: str) -> int:
    """A count of at least 1 (steps, restarts).

    Returns:
        ``value`` as an int.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} is {value!r}; expected a whole number of at least 1.")
    return int(value)


def _check_inputs(x: Tensor, y: Tensor, eps: object, norm: str = "linf") -> float:
    """Check an attack's images, targets and budget (the module docstring's conventions).

    Returns:
        The budget as a float.
    """
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise DataError(
            f"x is {type(x).__name__} {tuple(getattr(x, 'shape', ()))}; expected a float tensor (N, 1, H, W) in [0, 1]."
        )
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise DataError(
            f"x holds {int((~torch.isfinite(x)).sum())} NaN or infinite pixel(s); attacks expect images in [0, 1]."
        )
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise DataError(f"x spans [{float(x.min()):.3g}, {float(x.max()):.3g}]; attacks expect images in [0, 1].")
    value = _budget(eps, norm)
    _check_targets(x, y)
    return value


def _check_targets(x: Tensor, y: Tensor) -> None:
    """``y`` must be (N,) integer labels or (N, C) soft targets with C >= 2 (the classes are checked against the
    model's logits by :func:`_check_classes`)."""
    if not isinstance(y, Tensor) or y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise DataError(
            f"y has shape {tuple(getattr(y, 'shape', ()))}; expected labels ({x.shape[0]},) or soft "
            f"targets ({x.shape[0]}, C) matching x's batch."
        )
    if y.ndim == 2 and (y.shape[1] < 2 or not y.is_floating_point()):
        raise DataError(
            f"y has shape {tuple(y.shape)} and dtype {y.dtype}; labels are ({x.shape[0]},) integers (use "
            f"y.squeeze(1) or y.flatten()), soft targets ({x.shape[0]}, C) probabilities over the model's "
            "C classes."
        )
    if y.ndim == 1 and (y.is_floating_point() or y.dtype == torch.bool or y.is_complex()):
        raise DataError(
            f"y has dtype {y.dtype}; expected integer class labels (torch.long; y.long() when they are whole numbers)."
        )


def _check_classes(y: Tensor, logits: Tensor) -> None:
    """The targets ``y`` against the model's ``logits`` (N, C): labels in 0..C-1, or soft targets over C classes."""
    classes = logits.shape[1]
    if y.ndim == 2:
        if y.shape[1] != classes:
            raise DataError(
                f"y has shape {tuple(y.shape)}, but the model returns {classes} logits; soft targets are "
                f"(N, {classes})."
            )
        return
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
        wrong = int(y.max()) if int(y.max()) >= classes else int(y.min())
        raise DataError(f"y holds label {wrong}, but the model returns {classes} logits (labels 0 to {classes - 1}).")


def _target_class(y: Tensor) -> Tensor:
    """Hard class of each target: the label itself, or the argmax of a soft target."""
    return y.argmax(dim=1) if y.ndim == 2 else y


def _default_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy to hard labels, or soft cross-entropy -sum_c p_c log softmax(z)_c to soft targets."""
    if y.ndim == 2:
        return -(y * F.log_softmax(logits, dim=1)).sum(dim=1)
    return F.cross_entropy(logits, y, reduction="none")


def _losses(logits: Tensor, y: Tensor, loss_fn: LossFn | None) -> tuple[Tensor, Tensor]:
    """(scalar to differentiate, per-sample loss used to rank iterates), from one set of logits."""
    if loss_fn is None:
        per_sample = _default_loss(logits, y)
        return per_sample.sum(), per_sample
    loss = loss_fn(logits, y)
    if loss.ndim == 0:
        return loss, _default_loss(logits.detach(), y)
    if loss.shape != (logits.shape[0],):
        raise ConfigError(
            f"loss_fn returned shape {tuple(loss.shape)}; expected per-sample losses ({logits.shape[0]},) or a scalar."
        )
    return loss.sum(), loss


def _per_sample_norm(t: Tensor) -> Tensor:
    """L2 norm of each image, shaped (N, 1, 1, 1) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def _project(x: Tensor, x_adv: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``x_adv`` onto the eps ball around ``x`` and then into [0, 1] (which only shrinks the perturbation)."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_sample_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A uniform point of the eps ball around ``x`` (L-inf: uniform per pixel; L2: uniform in the ball), in [0, 1]."""
    if norm == "linf":
        noise = (torch.rand(x.shape, generator=generator) * 2.0 - 1.0) * eps
    else:
        direction = torch.randn(x.shape, generator=generator)
        direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
        dims = x[0].numel()
        radius = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), generator=generator) ** (1.0 / dims) * eps
        noise = direction * radius
    return (x + noise.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)


def _ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """Steepest ascent direction of unit norm: sign for L-inf, the normalised gradient for L2."""
    if norm == "linf":
        return grad.sign()
    return grad / _per_sample_norm(grad).clamp_min(1e-12)


class _Best:
    """The best point per image so far: misclassified beats correctly classified, then higher loss wins.

    ``idx`` (a long tensor of image indices, or None for all) says which images a (restarted) run covers.
    """

    def __init__(self, x: Tensor) -> None:
        self.x = x.clone()
        self.loss = torch.full((x.shape[0],), -math.inf, device=x.device)
        self.fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def pending(self) -> Tensor:
        """Indices of the images no evaluated point has fooled yet."""
        return (~self.fooled).nonzero().flatten()

    def update(self, idx: Tensor | None, x_adv: Tensor, logits: Tensor, loss: Tensor, target: Tensor) -> None:
        fooled = logits.argmax(dim=1) != target
        old_fooled = self.fooled if idx is None else self.fooled[idx]
        old_loss = self.loss if idx is None else self.loss[idx]
        better = (fooled & ~old_fooled) | ((fooled == old_fooled) & (loss > old_loss))
        where = better.nonzero().flatten() if idx is None else idx[better]
        self.x[where] = x_adv[better]
        self.loss[where] = loss[better]
        self.fooled[where] = fooled[better]

    def take_unfooled(self, idx: Tensor | None, x_adv: Tensor) -> None:
        """Give the images that no evaluated point fooled the (unevaluated) last iterate ``x_adv``."""
        old_fooled = self.fooled if idx is None else self.fooled[idx]
        where = (~old_fooled).nonzero().flatten() if idx is None else idx[~old_fooled]
        self.x[where] = x_adv[~old_fooled]


def _subset(idx: Tensor | None, *tensors: Tensor) -> tuple[Tensor, ...]:
    return tensors if idx is None else tuple(t[idx] for t in tensors)


def _input_grad(model: nn.Module, x_adv: Tensor, y: Tensor, loss_fn: LossFn | None) -> tuple[Tensor, Tensor, Tensor]:
    """One forward and backward pass: (gradient of the loss w.r.t. the input, logits, per-sample loss)."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    _check_classes(y, logits)
    total, per_sample = _losses(logits, y, loss_fn)
    (grad,) = torch.autograd.grad(total, x_adv)
    return grad, logits.detach(), per_sample.detach()


# ---- FGSM ------------------------------------------------------------------------------------------------------------
def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, loss_fn: LossFn | None = None) -> Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015; paper 004, Eq. 1): ``x + eps * sign(grad_x J(x, y))``.

    Args:
        model: classifier returning logits (N, C).
        x: images (N, 1, H, W) in [0, 1].
        y: labels (N,) or soft targets (N, C).
        eps: L-inf budget in (0, 1] image units (2/255 = 0.00784).
        loss_fn: ``loss_fn(logits, y)``, per-sample or mean; cross-entropy if None.

    Returns:
        adversarial images, within ``eps`` of ``x`` (L-inf) and in [0, 1].
    """
    eps = _check_inputs(x, y, eps)
    with eval_mode(model):
        grad, _, _ = _input_grad(model, x, y, loss_fn)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()


# ---- PGD -------------------------------------------------------------------------------------------------------------
def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
    restarts: int = 1,
    loss_fn: LossFn | None = None,
    generator: torch.Generator | None = None,
    *,
    early_stop: bool = False,
) -> Tensor:
    """Projected gradient descent (Madry et al. 2018) in the L-inf or L2 ball, with random start and restarts.

    Each step moves by ``alpha`` along the sign of the gradient (L-inf) or the unit-norm gradient (L2), projects back
    onto the eps ball and clips to [0, 1]. Per image, a misclassified iterate (the highest-loss one) comes back when
    there is one, else the last iterate (one run) or the highest-loss point (restarts); see the module docstring.

    Args:
        model: classifier returning logits (N, C).
        x: images (N, 1, H, W) in [0, 1].
        y: labels (N,) or soft targets (N, C) (TRADES: the model's clean probabilities, with a KL ``loss_fn``).
        eps: radius of the ball in [0, 1] image units (L-inf: per pixel, in (0, 1]; L2: per image, positive).
        alpha: step size in the same units.
        steps: gradient steps per restart (>= 1).
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a uniform point of the ball (else at ``x``).
        restarts: random starts; each restart attacks only the images not fooled yet. Needs ``random_start`` when
            above 1.
        loss_fn: ``loss_fn(logits, y)``, per-sample (N,) or mean; cross-entropy if None.
        generator: CPU generator for the random starts (deterministic attack); the global RNG if None.
        early_stop: stop attacking an image as soon as an iterate fools the model (robust-accuracy evaluation: the
            answer is the same and a weak model costs a fraction of K passes; leave False to train on the attack).

    Returns:
        adversarial images of the same shape, within eps of ``x`` and in [0, 1].

    Example:
        A two-class "model" that calls an image bright (class 1) when its mean grey level is above 0.5, and two
        images just either side of it:

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.stack([-torch.ones(16), torch.ones(16)]))
        ...     _ = model[1].bias.copy_(torch.tensor([8.0, -8.0]))
        >>> x = torch.stack([torch.full((1, 4, 4), 0.45), torch.full((1, 4, 4), 0.55)])
        >>> y = torch.tensor([0, 1])
        >>> model(x).argmax(1)
        tensor([0, 1])
        >>> x_adv = pgd(model, x, y, eps=0.1, alpha=0.025, steps=10, generator=torch.Generator().manual_seed(0))
        >>> model(x_adv).argmax(1), round(float((x_adv - x).abs().max()), 6)  # both flipped, within eps
        (tensor([1, 0]), 0.1)
    """
    eps = _check_inputs(x, y, eps, norm)
    steps, restarts = _count(steps, "steps"), _count(restarts, "restarts")
    if restarts > 1 and not random_start:
        raise ConfigError(f"restarts is {restarts} but random_start is False: every restart would be the same run.")
    alpha = _number(alpha, "alpha")
    if not alpha > 0:
        raise ConfigError(f"alpha is {alpha}; expected a positive step size.")
    x = x.detach()
    target = _target_class(y)
    best = _Best(x)
    with eval_mode(model):
        for restart in range(restarts):
            idx = best.pending() if restart else None
            if idx is not None and idx.numel() == 0:
                break
            xs, ys, ts = _subset(idx, x, y, target)
            x_adv = _random_start(xs, eps, norm, generator) if random_start else xs.clone()
            for _ in range(steps):
                grad, logits, loss = _input_grad(model, x_adv, ys, loss_fn)
                best.update(idx, x_adv, logits, loss, ts)
                x_adv = _project(xs, x_adv + alpha * _ascent_direction(grad, norm), eps, norm)
                if early_stop:
                    keep = (logits.argmax(dim=1) == ts).nonzero().flatten()
                    idx = keep if idx is None else idx[keep]
                    xs, ys, ts, x_adv = _subset(keep, xs, ys, ts, x_adv)
                    if idx.numel() == 0:
                        break
            if idx is not None and idx.numel() == 0:
                continue
            if restarts == 1:
                best.take_unfooled(idx, x_adv)
            else:
                with torch.no_grad():
                    logits = model(x_adv)
                    best.update(idx, x_adv, logits, _losses(logits, ys, loss_fn)[1], ts)
    logger.debug(
        "pgd %s eps=%g steps=%d restarts=%d: fooled %d of %d",
        norm,
        eps,
        steps,
        restarts,
        int(best.fooled.sum()),
        x.shape[0],
    )
    return best.x


def ifgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None = None,
    eps: float = 0.1,
    steps: int = 25,
    alpha: float | None = None,
    loss_fn: LossFn | None = None,
    *,
    early_stop: bool = False,
) -> Tensor:
    """Iterative FGSM (Kurakin et al. 2017), as used by paper 004: eps 0.1, 25 steps, against the predicted label.

    PGD in the L-inf ball without random start. ``alpha`` defaults to ``eps / steps`` (the whole budget can be
    reached in ``steps`` steps); ``y`` defaults to the model's own prediction on ``x`` (paper 004, Sec. II-D:
    "y is the predicted label linked to x").

    Returns:
        Adversarial images within ``eps`` of ``x`` and in [0, 1].
    """
    if y is None:
        y = predicted_labels(model, x)
    return pgd(
        model,
        x,
        y,
        eps,
        alpha if alpha is not None else eps / steps,
        steps,
        norm="linf",
        random_start=False,
        restarts=1,
        loss_fn=loss_fn,
        early_stop=early_stop,
    )


# ---- APGD ------------------------------------------------------------------------------------------------------------
def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample margin loss ``max_{j != y} z_j - z_y`` (to maximise; positive when misclassified).

    Carlini & Wagner's margin on logits; APGD with this loss replaces AutoAttack's DLR loss, whose denominator
    ``z_pi1 - z_pi3`` needs at least three classes, for the study's two-class models. The sign is flipped from
    ``z_y - max_{j != y} z_j`` so that every attack here maximises its loss.

    With two logits this loss is the DLR loss, and nothing else is. DLR,
    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` (Croce & Hein 2020), is built to be unchanged when the logits are
    shifted (``z + b``) or scaled (``a z``, ``a > 0``), so that no rescaling of the logits can flatten it. Two logits
    up to a shift are one number, ``m = z_other - z_y`` (this loss), and the only functions of ``m`` that scaling
    leaves unchanged are functions of its sign: reading the missing third logit as the second, ``z_pi1 - z_pi2 =
    |m|``, gives ``sign(m)``, whose gradient is zero wherever it exists. Keep the shift invariance and drop the scale's,
    and what is left is ``g(m)`` for an increasing ``g`` (dividing by any scale that does not move with the attack,
    such as the clean image's ``|m|``, is one). The attacks of this module read a loss only through the direction of
    its gradient (its sign, or its unit-norm version) and the order of its values (which iterate to keep, whether a
    step raised it, when APGD halves its step), and an increasing ``g`` changes neither: every such loss gives the
    iterates of this one. Cross-entropy is such a ``g`` with two logits (``softplus(m)``), so APGD-CE and APGD with
    this loss differ only where cross-entropy's gradient, scaled by the other class's probability, underflows: far
    from the boundary, the saturation that lets a model look robust to cross-entropy attacks. A targeted loss adds
    nothing either: the only target is the other class, and the targeted margin ``z_t - max_{j != t} z_j`` towards it
    is this loss (``tests/test_two_class_losses.py`` holds each of these facts).

    Returns:
        The loss per sample (N,).
    """
    target = _target_class(y)
    true = logits.gather(1, target[:, None])[:, 0]
    others = logits.scatter(1, target[:, None], -math.inf)
    return others.max(dim=1).values - true


def _apgd_checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size (Croce & Hein 2020, Sec. 3.2): p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), scaled by ``steps``."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 9)) for q in p[1:] if q <= 1.0})


def apgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 100,
    norm: str = "linf",
    loss: str = "ce",
    restarts: int = 1,
    rho: float = 0.75,
    momentum: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Auto-PGD (Croce & Hein 2020, Algorithm 1): PGD with momentum and a step size halved at checkpoints.

    The step size starts at ``2 eps`` (both norms). Between checkpoints w_j (see :func:`_apgd_checkpoints`) it is
    halved, and the iterate reset to the best point so far, when (1) fewer than ``rho`` of the steps since the last
    checkpoint increased the loss, or (2) the step size was not halved at the last checkpoint and the best loss has
    not improved since (the paper's eta^(w_{j-1}) = eta^(w_j) and f_max^(w_{j-1}) = f_max^(w_j)).
    Each step is ``z = P(x_k + eta * d(grad))`` followed by the momentum update
    ``x_{k+1} = P(x_k + momentum (z - x_k) + (1 - momentum) (x_k - x_{k-1}))``.

    Args:
        model: classifier returning logits (N, C).
        x: images (N, 1, H, W) in [0, 1].
        y: labels (N,).
        eps: radius in [0, 1] image units (L-inf: in (0, 1]; L2: positive).
        steps: iterations per restart (the paper's N_iter, default 100).
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"`` (cross-entropy) or ``"margin"`` (:func:`margin_loss`, for two-class models).
        restarts: random restarts; the best point per image is kept across them.
        rho: the fraction of loss-increasing steps below which the step size is halved (paper: 0.75).
        momentum: weight of the new step against the previous one (paper: alpha = 0.75).
        generator: CPU generator for the random starts.

    Returns:
        adversarial images within eps of ``x`` and in [0, 1].

    Example:
        A two-class "model" that calls an image bright (class 1) when its mean grey level is above 0.5, and two
        images just either side of it:

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.stack([-torch.ones(16), torch.ones(16)]))
        ...     _ = model[1].bias.copy_(torch.tensor([8.0, -8.0]))
        >>> x = torch.stack([torch.full((1, 4, 4), 0.45), torch.full((1, 4, 4), 0.55)])
        >>> y = torch.tensor([0, 1])
        >>> model(x).argmax(1)
        tensor([0, 1])
        >>> x_adv = apgd(model, x, y, eps=0.1, steps=20, generator=torch.Generator().manual_seed(0))
        >>> model(x_adv).argmax(1), bool((x_adv - x).abs().max() <= 0.1 + 1e-6)  # both flipped, within eps
        (tensor([1, 0]), True)
    """
    eps = _check_inputs(x, y, eps, norm)
    if y.ndim != 1:
        raise DataError(f"apgd takes hard labels (N,); got y of shape {tuple(y.shape)}.")
    if loss not in APGD_LOSSES:
        raise ConfigError(f"loss is {loss!r}; expected one of {APGD_LOSSES}.")
    steps, restarts = _count(steps, "steps"), _count(restarts, "restarts")
    loss_fn = margin_loss if loss == "margin" else None
    x = x.detach()
    best = _Best(x)
    checkpoints = set(_apgd_checkpoints(steps))
    with eval_mode(model):
        for restart in range(restarts):
            idx = best.pending() if restart else None
            if idx is not None and idx.numel() == 0:
                break
            xs, ys = _subset(idx, x, y)
            _apgd_run(model, xs, ys, idx, eps, steps, norm, loss_fn, checkpoints, rho, momentum, best, generator)
    logger.debug(
        "apgd-%s %s eps=%g steps=%d restarts=%d: fooled %d of %d",
        loss,
        norm,
        eps,
        steps,
        restarts,
        int(best.fooled.sum()),
        x.shape[0],
    )
    return best.x


def _apgd_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    idx: Tensor | None,
    eps: float,
    steps: int,
    norm: str,
    loss_fn: LossFn | None,
    checkpoints: set[int],
    rho: float,
    momentum: float,
    best: _Best,
    generator: torch.Generator | None,
) -> None:
    """One APGD run from a random start on images ``x`` (indices ``idx`` of the whole batch); updates ``best``."""
    n = x.shape[0]
    view = (n,) + (1,) * (x.ndim - 1)
    eta = torch.full(view, 2.0 * eps, device=x.device)
    x_k = _random_start(x, eps, norm, generator)
    grad, logits, loss = _input_grad(model, x_k, y, loss_fn)
    best.update(idx, x_k, logits, loss, y)
    # this run's own best point (for the restart at checkpoints) and bookkeeping of Algorithm 1
    run_best_x, run_best_loss, run_best_grad = x_k.clone(), loss.clone(), grad.clone()
    loss_prev = loss.clone()
    increases = torch.zeros(n, device=x.device)
    reduced_last = torch.ones(n, dtype=torch.bool, device=x.device)
    best_at_check = loss.clone()
    last_check = 0
    x_prev = x_k.clone()
    for k in range(steps):
        z = _project(x, x_k + eta * _ascent_direction(grad, norm), eps, norm)
        weight = momentum if k > 0 else 1.0
        x_next = _project(x, x_k + weight * (z - x_k) + (1.0 - weight) * (x_k - x_prev), eps, norm)
        x_prev, x_k = x_k, x_next
        if k == steps - 1:
            with torch.no_grad():
                logits = model(x_k)
                best.update(idx, x_k, logits, _losses(logits, y, loss_fn)[1], y)
            break
        grad, logits, loss = _input_grad(model, x_k, y, loss_fn)
        best.update(idx, x_k, logits, loss, y)
        increases += (loss > loss_prev).float()
        loss_prev = loss
        improved = loss > run_best_loss
        run_best_x[improved], run_best_grad[improved] = x_k[improved], grad[improved]
        run_best_loss = torch.where(improved, loss, run_best_loss)
        if k + 1 in checkpoints:
            span = k + 1 - last_check
            cond1 = increases < rho * span
            cond2 = ~reduced_last & (run_best_loss <= best_at_check)
            reset = cond1 | cond2
            eta = torch.where(reset.view(view), eta / 2.0, eta)
            x_k[reset], grad[reset] = run_best_x[reset], run_best_grad[reset]
            x_prev[reset] = x_k[reset]
            increases.zero_()
            reduced_last, best_at_check, last_check = reset, run_best_loss.clone(), k + 1
