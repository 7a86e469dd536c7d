"""What every detector is: a differentiable score of a batch of images, and its batched, gradient-free form.

A detector holds its networks on one device. :meth:`Detector.score_tensor` maps images (N, 1, H, W) in [0, 1] on that
device to (N,) scores, differentiable with respect to the images (through a straight-through estimate where the
detector itself is not, see :mod:`medadv.detect.squeezing`), which is what an adaptive attack needs;
:meth:`Detector.score` runs it without gradients over a NumPy array or tensor in batches and returns float64 NumPy.
"""

from __future__ import annotations

import abc

import numpy as np
import torch
from torch import Tensor

from medadv.errors import DataError

__all__ = ["Detector", "as_images"]


def as_images(images: np.ndarray | Tensor, what: str = "images") -> Tensor:
    """``images`` as a float32 CPU tensor (N, 1, H, W), checked.

    Returns:
        The images, float32 (N, 1, H, W) on the CPU.

    Raises:
        DataError: not four-dimensional with one channel, empty, or not finite.
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)) if isinstance(images, np.ndarray) else images
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[0] == 0:
        raise DataError(f"{what} have shape {tuple(x.shape)}; expected (N >= 1, 1, H, W) grey images in [0, 1].")
    if not torch.isfinite(x).all():
        raise DataError(f"{what} hold non-finite pixels; expected grey images in [0, 1].")
    return x.float()


class Detector(abc.ABC):
    """A detector of manipulated images: higher score = more likely manipulated.

    Attributes:
        name: short name used in tables and as the machine reader's id.
        citation: the paper the detector follows.
        device: where its networks live.
    """

    name: str = "detector"
    citation: str = ""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @abc.abstractmethod
    def score_tensor(self, x: Tensor) -> Tensor:
        """Scores (N,) of images ``x`` (N, 1, H, W) on :attr:`device`, differentiable in ``x``.

        Returns:
            The scores (N,), larger = more likely manipulated.
        """

    def score(self, images: np.ndarray | Tensor, batch_size: int = 128) -> np.ndarray:
        """Scores of ``images`` (N, 1, H, W) in [0, 1], batch by batch without gradients.

        Returns:
            float64 array (N,), higher = more likely manipulated.
        """
        x = as_images(images)
        with torch.no_grad():
            out = [self.score_tensor(chunk.to(self.device)).double().cpu() for chunk in x.split(batch_size)]
        return torch.cat(out).numpy()
