"""Classifiers built by hand for the attack tests, whose adversarial examples are known in closed form.

:func:`halves_model` scores an image by how much brighter its left half is than its right: class 1 when
``sum(left) - sum(right) > 0``. Its logits are ``(-s / 2, s / 2)`` with ``s = w . x`` and ``w = +1`` on the left half,
``-1`` on the right, so the margin ``z_other - z_y`` moves by exactly ``w . delta`` (sign flipped for class 1): the
best L-inf perturbation is ``eps * w`` (``-eps * w`` for class 1), worth ``eps * H * W``, and the best L2 one
``eps * w / ||w||``, worth ``eps * sqrt(H * W)``.

:class:`Quantised` puts ``x -> round(x * levels) / levels`` in front of a model: a layer whose gradient is zero
everywhere (torch's ``round`` has a zero derivative), so every gradient attack stalls, while the model's answers, and
so a score-based attack, still see a change of one level per pixel (``1 / levels``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

SIZE = 16


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread while a module's tests run, then the caller's count again: these tests run thousands of
    operations on tensors of a few hundred numbers, which a second thread only slows down on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def halves_weight(size: int = SIZE) -> torch.Tensor:
    """``w`` (size * size,): +1 on the left half of the image, -1 on the right."""
    w = torch.ones(size, size)
    w[:, size // 2 :] = -1.0
    return w.flatten()


def halves_model(size: int = SIZE, weight: torch.Tensor | None = None) -> nn.Module:
    """Linear two-class model with logits ``(-w . x / 2, w . x / 2)`` on (N, 1, size, size) images."""
    w = halves_weight(size) if weight is None else weight
    model = nn.Sequential(nn.Flatten(), nn.Linear(size * size, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-w / 2, w / 2]))
    return model


class Quantised(nn.Module):
    """``model(round(x * levels) / levels)``: the model's answers on quantised images, with zero input gradients."""

    def __init__(self, model: nn.Module, levels: int) -> None:
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.levels) / self.levels)


def halves_images(
    contrasts: torch.Tensor, labels: torch.Tensor, noise: float = 0.0, seed: int = 0, size: int = SIZE
) -> torch.Tensor:
    """Grey images around 0.5 whose labelled half (left for class 1, right for class 0) is brighter by
    ``contrasts`` (N,), plus uniform noise of half-width ``noise``."""
    n = contrasts.shape[0]
    gen = torch.Generator().manual_seed(seed)
    x = 0.5 + noise * (2 * torch.rand(n, 1, size, size, generator=gen) - 1)
    sign = (labels.float() * 2 - 1)[:, None, None]  # +1: left brighter (class 1); -1: right brighter (class 0)
    x[:, 0, :, : size // 2] += sign * contrasts[:, None, None] / 2
    x[:, 0, :, size // 2 :] -= sign * contrasts[:, None, None] / 2
    return x.clamp(0.0, 1.0)


class TanhNet(nn.Module):
    """A small non-linear classifier for the halves images: a 3 x 3 convolution, tanh, a linear layer."""

    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.out = nn.Linear(4 * size * size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.conv(x)).flatten(1))


def fitted_tanh_net(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A :class:`TanhNet` fitted in 40 Adam steps to noisy halves images, and 64 test images it gets right.

    Returns:
        (model in eval mode, test images (64, 1, 16, 16), their labels (64,)).
    """
    torch.manual_seed(seed)
    model = TanhNet()
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (256,), generator=gen)
    x = halves_images(0.02 + 0.1 * torch.rand(256, generator=gen), y, noise=0.2, seed=seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    yt = torch.arange(64) % 2
    xt = halves_images(0.05 + 0.05 * torch.rand(64, generator=gen), yt, noise=0.2, seed=seed + 2)
    model.eval().requires_grad_(False)
    return model, xt, yt
