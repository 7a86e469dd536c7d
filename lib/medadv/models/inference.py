"""Batched inference in eval mode: the one way the kit runs a network over many images without training it.

:func:`batched_outputs` puts the network in eval mode (dropout off, normalisation statistics frozen), runs it under
``torch.no_grad`` over batches of the images, and restores every submodule's own training flag afterwards, also when
the network raises. :func:`positive_scores` (the positive class's softmax probability) and :func:`predicted_labels`
(the argmax class) are the two readings of a classifier's logits that the study uses; the GAN's generators and
discriminators go through :func:`batched_outputs` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from medadv.errors import DataError

__all__ = ["batched_outputs", "eval_mode", "positive_scores", "predicted_labels"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore every submodule's own training flag afterwards.

    Returns:
        A context manager that yields ``model``.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


@torch.no_grad()
def batched_outputs(
    model: nn.Module,
    images: Tensor | np.ndarray,
    batch_size: int,
    head: Callable[[Tensor], Tensor] | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Run ``model`` over ``images`` (N, ...) in batches of ``batch_size``, in eval mode (see :func:`eval_mode`) and
    without gradients.

    Each batch is moved to ``device`` (default: the device of the model's parameters) in the dtype of the model's
    parameters (floating images only); a NumPy array is read as float32 first.

    Args:
        head: applied to the model's output of each batch before it leaves the device (e.g. a softmax); identity by
            default.

    Returns:
        ``head(model(batch))`` of every batch, concatenated along the first axis, on the device ``images`` came on
        (the CPU for a NumPy array).

    Raises:
        DataError: no images, or a batch size below 1.
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)) if isinstance(images, np.ndarray) else images
    if int(batch_size) < 1:
        raise DataError(f"batch_size is {batch_size}; expected a positive number of images per batch, e.g. 64.")
    if len(x) == 0:
        raise DataError(f"no images (shape {tuple(x.shape)}); expected at least one (N, 1, H, W) image.")
    param = next(model.parameters(), None)
    target = device if device is not None else (param.device if param is not None else x.device)
    dtype = param.dtype if param is not None and x.is_floating_point() else x.dtype
    head = head if head is not None else (lambda out: out)
    with eval_mode(model):
        out = [head(model(chunk.to(target, dtype))).to(x.device) for chunk in x.split(int(batch_size))]
    return torch.cat(out)


def positive_scores(
    model: nn.Module, x: Tensor | np.ndarray, device: torch.device | None = None, batch_size: int = 128
) -> np.ndarray:
    """The classifier's probability of the positive class (softmax of its two logits, index 1) for each image.

    Returns:
        (N,) float64 (widened in NumPy: MPS has no float64).
    """
    scores = batched_outputs(model, x, batch_size, lambda logits: torch.softmax(logits.float(), dim=1)[:, 1], device)
    return scores.cpu().numpy().astype(np.float64)


def predicted_labels(model: nn.Module, x: Tensor | np.ndarray, batch_size: int = 64) -> Tensor:
    """The classifier's predicted class (argmax of its logits) for each image.

    Returns:
        (N,) int64 on the device ``x`` came on (the CPU for a NumPy array).
    """
    return batched_outputs(model, x, batch_size, lambda logits: logits.argmax(dim=1))
