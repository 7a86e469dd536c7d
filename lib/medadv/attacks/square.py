"""The Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): a score-based random search, L-inf and L2.

Square reads only the model's outputs (its logits), never a gradient, so a model whose gradients are useless to an
attacker (quantised or non-differentiable inputs, saturated logits, a penalty that flattens the loss around the data)
is attacked as well as any other. That makes it the gradient-free member of a robustness evaluation (Croce & Hein 2020,
AutoAttack; Carlini et al. 2019): where Square fools a model that gradient attacks leave standing, the gradients masked.

The search, per image (Algorithm 1 of the paper, as its reference implementation runs it):

* **loss**: the margin on logits, :func:`medadv.attacks.gradient.margin_loss` (``max_{j != y} z_j - z_y``; with
  two logits ``z_other - z_y``), maximised; a candidate replaces the current point when its loss is higher or it
  fools the model; an image stops being queried once it is fooled (argmax of its logits differs from its label);
* **L-inf**: starts from vertical stripes (each column of the image moved by +eps or -eps, at random); each query
  sets one square window of side ``s`` to +eps or -eps (one sign per channel). Like the reference, a sign that would
  leave the window as it is is not spent on a query: for the kit's one-channel images the other sign is taken;
* **L2**: starts from a grid of pseudo-Gaussian bumps of side ``min(H, W) // 5`` with random signs, scaled to norm
  eps; each query moves the perturbation's mass of two random windows into the first window, shaped as two
  pseudo-Gaussian bumps of opposite sign (the paper's Sec. 3.2 and Fig. 2), plus whatever of the budget is unused,
  and rescales the whole perturbation to norm eps;
* **square size**: the fraction ``p`` of the image that a window covers starts at ``p_init`` and is halved after
  10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of every 10000 queries (the reference implementation's
  ``p_selection``, scaled to the query budget), so any budget walks the whole schedule; ``s = round(sqrt(p H W))``,
  at least 1 and at most ``min(H, W) - 1`` (L-inf), at least 3 and odd (L2).

``p_init`` defaults to 0.8, AutoAttack's value for its robustness evaluations (the paper uses 0.05 (L-inf) and 0.1
(L2) against undefended ImageNet models and larger values against robust ones). AutoAttack runs 5000 queries with the
schedule in absolute query counts; this module rescales the schedule to the budget, as the reference implementation
and torchattacks do by default, so a small budget on the CPU still ends with small squares.

Written here rather than taken from a library. torchattacks' Square (3.5.1, a port of AutoAttack's) reseeds torch's
global random generator on every call, draws one window position per iteration for the whole batch (the reference
implementation draws one per image for L-inf), spends queries on candidates that leave the image unchanged (with one
grey channel and a one-pixel window, half of them late in the search), returns the clean image for every image it did
not fool and does not say how many queries each image used; the package is not a dependency of the kit. ART's
SquareAttack (adversarial-robustness-toolbox 1.x) counts iterations, not queries, and queries the model three times per
iteration (the current points twice, the candidate once). The kit needs a budget in queries, a seeded
``torch.Generator``, per-image windows and query counts, the kit's eval-mode and input conventions (module docstring
of :mod:`medadv.attacks.gradient`) and logging; ``benchmarks/attacks.py`` compares this implementation with
torchattacks' at equal queries on the same model and images.

Differences from the reference implementation, each a choice: windows are drawn per image for L2 too, and over every
position where they fit (the reference leaves out the last row and column); the L2 start's grid of bumps is centred in
each dimension, so it also fits images that are not square (on a square image whose side is 5 tiles plus less than a
tile it is the reference's grid). Budgets are in [0, 1] image units; images (N, C, H, W) in [0, 1], the kit's are grey
(C = 1).

Reference:
    Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box adversarial attack via
    random search", ECCV (Algorithm 1; Sec. 3.1 L-inf, Sec. 3.2 L2).
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from medadv.attacks.gradient import NORMS, margin_loss
from medadv.errors import ConfigError, DataError
from medadv.models.inference import eval_mode

logger = logging.getLogger(__name__)

#: Where the square-size fraction p is halved, in queries out of every 10000 (the reference's ``p_selection``).
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
MIN_SIDE = 5  # the L2 start tiles each side with five bumps of side min(H, W) // 5


class SquareResult(NamedTuple):
    """What :func:`square` returns: the adversarial images and how many times each image was sent to the model."""

    images: Tensor
    queries: Tensor


def square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """The fraction p of the image that the square of ``iteration`` covers (the paper's schedule).

    ``iteration`` counts the searches after the start (0-based); it is scaled to 10000 queries,
    ``int(iteration / queries * 10000)``, and p is ``p_init`` halved once for each of :data:`P_HALVINGS` below it.

    Returns:
        p, in (0, p_init].
    """
    scaled = int(iteration / queries * 10000)
    return p_init / 2 ** sum(scaled > mark for mark in P_HALVINGS)


def square_side(p: float, height: int, width: int, norm: str) -> int:
    """Side in pixels of a square that covers the fraction ``p`` of an ``height`` x ``width`` image.

    L-inf: ``round(sqrt(p H W))`` clipped to [1, min(H, W) - 1], as the reference implementation; L2: at least 3 and
    odd (its bumps have a centre), at most min(H, W).

    Returns:
        The side.
    """
    side = int(round(math.sqrt(p * height * width)))
    if norm == "linf":
        return min(max(side, 1), min(height, width) - 1)
    side = max(side, 3)
    side += 1 - side % 2
    largest = min(height, width)
    return min(side, largest - 1 + largest % 2)


def _bump(rows: int, cols: int) -> np.ndarray:
    """The reference's pseudo-Gaussian rectangle: a sum of nested rectangles around the centre, the k-th (k = 0, 1,
    ...) of half-size k weighted 1 / (k + 1)^2; so a pixel at Chebyshev distance d from the centre (rows // 2,
    cols // 2) holds sum_{k >= d} (k + 1)^-2, k up to max(rows, cols) // 2. Unit L2 norm. In NumPy's float64: torch
    has no float64 on every device (MPS)."""
    count = max(rows, cols) // 2 + 1
    tail = np.cumsum((1.0 / np.arange(1, count + 1, dtype=np.float64) ** 2)[::-1])[::-1]
    dist_r = np.abs(np.arange(rows) - rows // 2)
    dist_c = np.abs(np.arange(cols) - cols // 2)
    bump = tail[np.maximum(dist_r[:, None], dist_c[None, :])]
    return bump / np.linalg.norm(bump)


def _pattern(side: int) -> Tensor:
    """The paper's L2 window (Fig. 2): a bump on the upper half and a bump of opposite sign on the lower, unit norm."""
    top = side // 2
    pattern = np.concatenate([_bump(top, side), -_bump(side - top, side)]) if top else -_bump(side, side)
    return torch.from_numpy((pattern / np.linalg.norm(pattern)).astype(np.float32))


def _patterns(n: int, side: int, generator: torch.Generator | None) -> Tensor:
    """``n`` windows (n, 1, side, side): the L2 pattern, transposed for a random half of them."""
    pattern = _pattern(side)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None], pattern.T, pattern)[:, None]


def _signs(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    return torch.randint(0, 2, shape, generator=generator).float() * 2.0 - 1.0


def _windows(n: int, side: int, height: int, width: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Row and column indices (n, side) of one random window per image, uniform over the positions where it fits."""
    top = torch.randint(0, height - side + 1, (n, 1), generator=generator)
    left = torch.randint(0, width - side + 1, (n, 1), generator=generator)
    offsets = torch.arange(side)[None, :]
    return top + offsets, left + offsets


def _mask(rows: Tensor, cols: Tensor, height: int, width: int, device: torch.device) -> Tensor:
    """(n, 1, H, W) boolean mask of each image's window."""
    in_rows = torch.zeros(rows.shape[0], height, dtype=torch.bool).scatter_(1, rows, True)
    in_cols = torch.zeros(cols.shape[0], width, dtype=torch.bool).scatter_(1, cols, True)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None].to(device)


def _index(rows: Tensor, cols: Tensor, channels: int, device: torch.device) -> tuple[Tensor, ...]:
    """Advanced index of each image's window: ``t[index]`` is (n, C, side, side)."""
    images = torch.arange(rows.shape[0], device=device)[:, None, None, None]
    return (
        images,
        torch.arange(channels, device=device)[None, :, None, None],
        rows.to(device)[:, None, :, None],
        cols.to(device)[:, None, None, :],
    )


def _linf_start(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """Vertical stripes: every column of each image (and channel) moved by +eps or -eps."""
    stripes = _signs((x.shape[0], x.shape[1], 1, x.shape[3]), generator).to(x.device, x.dtype)
    return (x + eps * stripes).clamp(0.0, 1.0)


def _linf_candidate(x: Tensor, best: Tensor, eps: float, side: int, generator: torch.Generator | None) -> Tensor:
    """Set one window per image to +eps or -eps (per channel), flipping the sign where it would change nothing."""
    n, channels, height, width = x.shape
    rows, cols = _windows(n, side, height, width, generator)
    mask = _mask(rows, cols, height, width, x.device)
    sign = _signs((n, channels, 1, 1), generator).to(x.device, x.dtype)
    candidate = torch.where(mask, (x + eps * sign).clamp(0.0, 1.0), best)
    unchanged = ((candidate - best).abs() < 1e-7).flatten(1).all(dim=1)
    if bool(unchanged.any()):
        sign = torch.where(unchanged[:, None, None, None], -sign, sign)
        candidate = torch.where(mask, (x + eps * sign).clamp(0.0, 1.0), best)
    return candidate


def _l2_start(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """A centred grid of L2 patterns of side min(H, W) // 5 with random signs, scaled to norm eps."""
    n, channels, height, width = x.shape
    tile = min(height, width) // MIN_SIDE
    grid_h, grid_w = height // tile, width // tile
    top, left = (height - grid_h * tile) // 2, (width - grid_w * tile) // 2
    delta = torch.zeros_like(x)
    for i in range(grid_h):
        for j in range(grid_w):
            bumps = _patterns(n, tile, generator) * _signs((n, channels, 1, 1), generator)
            delta[:, :, top + i * tile : top + (i + 1) * tile, left + j * tile : left + (j + 1) * tile] += bumps.to(
                x.device, x.dtype
            )
    return (x + eps * delta / _norm(delta)).clamp(0.0, 1.0)


def _norm(t: Tensor, dims: tuple[int, ...] = (1, 2, 3)) -> Tensor:
    return t.pow(2).sum(dim=dims, keepdim=True).sqrt().clamp_min(1e-12)


def _l2_candidate(x: Tensor, best: Tensor, eps: float, side: int, generator: torch.Generator | None) -> Tensor:
    """Move the mass of two random windows into the first, reshaped as a new pattern, and rescale to norm eps."""
    n, channels, height, width = x.shape
    rows1, cols1 = _windows(n, side, height, width, generator)
    rows2, cols2 = _windows(n, side, height, width, generator)
    first, second = _index(rows1, cols1, channels, x.device), _index(rows2, cols2, channels, x.device)
    delta = best - x
    union = _mask(rows1, cols1, height, width, x.device) | _mask(rows2, cols2, height, width, x.device)
    mass = _norm(delta * union, (2, 3))  # (n, C, 1, 1): what both windows hold now
    spare = (eps**2 - _norm(delta).pow(2)).clamp_min(0.0) / channels  # budget unused (clipping to [0, 1])
    old = delta[first]
    new = _patterns(n, side, generator).to(x.device, x.dtype) * _signs((n, channels, 1, 1), generator).to(x.device)
    new = new + old / _norm(old, (2, 3))
    new = new / _norm(new, (2, 3)) * (spare + mass.pow(2)).sqrt()
    delta[second] = 0.0
    delta[first] = new
    return (x + eps * delta / _norm(delta)).clamp(0.0, 1.0)


def _check(x: Tensor, y: Tensor, eps: float, queries: int, norm: str, p_init: float) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise DataError(
            f"x is {type(x).__name__} {tuple(getattr(x, 'shape', ()))}; expected a float tensor (N, 1, H, W) in [0, 1]."
        )
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise DataError(f"x spans [{float(x.min()):.3g}, {float(x.max()):.3g}]; attacks expect images in [0, 1].")
    if min(x.shape[2:]) < MIN_SIDE:
        raise DataError(
            f"x has images of {x.shape[2]} x {x.shape[3]} pixels; the Square attack needs at least "
            f"{MIN_SIDE} x {MIN_SIDE} (its L2 start tiles each side with five squares)."
        )
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],) or y.is_floating_point():
        raise DataError(
            f"y has shape {tuple(getattr(y, 'shape', ()))} and dtype {getattr(y, 'dtype', None)}; "
            f"expected integer labels ({x.shape[0]},) matching x's batch."
        )
    if not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"eps is {eps}; expected a finite value >= 0 (in [0, 1] image units).")
    if norm not in NORMS:
        raise ConfigError(f"norm is {norm!r}; expected one of {NORMS}.")
    if int(queries) != queries or queries < 1:
        raise ConfigError(
            f"queries is {queries}; expected a whole number of model queries per image, at least 1 "
            "(the paper's budget is 5000 for robust models; AutoAttack's too)."
        )
    if not 0.0 < p_init <= 1.0:
        raise ConfigError(f"p_init is {p_init}; expected a fraction of the image in (0, 1] (AutoAttack: 0.8).")


def square(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    queries: int = 5000,
    norm: str = "linf",
    p_init: float = 0.8,
    generator: torch.Generator | None = None,
) -> SquareResult:
    """The Square attack (Andriushchenko et al. 2020, Algorithm 1): a random search that queries only the logits.

    Per image, the start (stripes for L-inf, a grid of bumps for L2; one query) is followed by one random square
    update per query, kept when it raises the margin loss or fools the model, until the image is fooled or has used
    ``queries`` queries; see the module docstring for the updates and the square-size schedule. No gradient is
    computed (``torch.no_grad``).

    An image that the model already gets wrong is fooled by the start and stops there (AutoAttack passes only the
    images classified correctly, as :mod:`medadv.attacks.robustness` does).

    Args:
        model: classifier returning logits (N, C).
        x: images (N, 1, H, W) in [0, 1], at least 5 x 5 pixels.
        y: labels (N,).
        eps: radius of the ball in [0, 1] image units (L-inf: per pixel; L2: per image).
        queries: the most forward passes each image may take, the start included (the paper's and AutoAttack's
            5000 for robust models).
        norm: ``"linf"`` or ``"l2"``.
        p_init: the fraction of the image that the first squares cover (AutoAttack's 0.8).
        generator: CPU generator for every random draw (deterministic attack); the global RNG if None.

    Returns:
        ``SquareResult(images, queries)``: adversarial images of the same shape, within eps of ``x`` and in [0, 1]
        (per image, the best point found: a fooling one when there is one), and the queries each image used
        ((N,) int64, on ``x``'s device; 0 for all when eps is 0, where the images come back unchanged).

    Example:
        A two-class "model" that calls an image bright (class 1) when its mean grey level is above 0.5:

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.stack([-torch.ones(64), torch.ones(64)]))
        ...     _ = model[1].bias.copy_(torch.tensor([32.0, -32.0]))
        >>> x = torch.stack([torch.full((1, 8, 8), 0.45), torch.full((1, 8, 8), 0.55)])
        >>> y = torch.tensor([0, 1])
        >>> result = square(model, x, y, eps=0.1, queries=200, generator=torch.Generator().manual_seed(0))
        >>> model(result.images).argmax(1), bool((result.images - x).abs().max() <= 0.1 + 1e-6)
        (tensor([1, 0]), True)
    """
    _check(x, y, eps, queries, norm, p_init)
    used = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    if eps == 0 or x.shape[0] == 0:
        return SquareResult(x.clone(), used)
    x = x.detach()
    start, candidate = (_linf_start, _linf_candidate) if norm == "linf" else (_l2_start, _l2_candidate)
    with eval_mode(model), torch.no_grad():
        best = start(x, eps, generator)
        logits = model(best)
        loss, fooled = margin_loss(logits, y), logits.argmax(dim=1) != y
        used += 1
        for iteration in range(int(queries) - 1):
            idx = (~fooled).nonzero().flatten()
            if idx.numel() == 0:
                break
            side = square_side(square_fraction(p_init, iteration, int(queries)), x.shape[2], x.shape[3], norm)
            trial = candidate(x[idx], best[idx], eps, side, generator)
            logits = model(trial)
            trial_loss, trial_fooled = margin_loss(logits, y[idx]), logits.argmax(dim=1) != y[idx]
            better = trial_fooled | (trial_loss > loss[idx])
            keep = idx[better]
            best[keep], loss[keep], fooled[keep] = trial[better], trial_loss[better], trial_fooled[better]
            used[idx] += 1
    logger.debug(
        "square %s eps=%g queries=%d: fooled %d of %d, %.1f queries an image on average",
        norm,
        eps,
        queries,
        int(fooled.sum()),
        x.shape[0],
        float(used.float().mean()),
    )
    return SquareResult(best, used)
