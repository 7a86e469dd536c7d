"""The networks behind notebook 02's fidelity tables: the classifier's evidence on the GAN's fakes and a
discriminator's real-vs-fake scores. The measures themselves are numbers of :mod:`medadv.stats.fidelity`, which runs
no network.

* :func:`evidence_maps`: the classifier's positive evidence on each fake, the absolute input gradient of
  logit(positive) - logit(negative) (captum ``Saliency``), in eval mode.
* :func:`localisation_table`: :func:`medadv.stats.fidelity.change_localisation` with the images' ids, its
  ``evidence_peak_distance_px`` taken from :func:`evidence_maps` when a classifier is given.
* :func:`gan_discriminator_auc`: a trained GAN discriminator's real-vs-fake AUC on a split
  (:func:`medadv.stats.fidelity.discriminator_auc`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from captum.attr import Saliency
from numpy.typing import ArrayLike
from torch import nn

from medadv.models.gan_networks import DIRECTIONS
from medadv.models.inference import batched_outputs, eval_mode
from medadv.stats.fidelity import change_localisation, discriminator_auc

__all__ = ["evidence_maps", "gan_discriminator_auc", "localisation_table"]


class _Margin(nn.Module):
    """logit(positive) - logit(negative) of a two-logit classifier, one number per image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits[:, 1] - logits[:, 0]


def evidence_maps(classifier: nn.Module, fake: np.ndarray, device: torch.device, batch_size: int = 32) -> np.ndarray:
    """|d(logit_pos - logit_neg) / d input| of ``classifier`` on the images ``fake`` (N, 1, H, W), captum
    ``Saliency``, in batches, in eval mode (each submodule's training flag restored).

    Returns:
        (N, H, W) float64 maps.
    """
    margin = _Margin(classifier)
    saliency = Saliency(margin)
    out = []
    with eval_mode(margin):
        for i in range(0, len(fake), batch_size):
            x = torch.as_tensor(fake[i : i + batch_size], dtype=torch.float32, device=device).requires_grad_(True)
            out.append(saliency.attribute(x, abs=True).detach().cpu().numpy()[:, 0])
    return np.concatenate(out).astype(np.float64)


def localisation_table(
    rows: pd.DataFrame,
    real: np.ndarray,
    fake: np.ndarray,
    masks: np.ndarray,
    has_mask: ArrayLike,
    classifier: nn.Module | None = None,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """:func:`medadv.stats.fidelity.change_localisation` with the images' ids.

    Returns:
        columns image_id, split, generator (``remove`` for positives, ``insert`` for negatives), then the measures;
        ``evidence_peak_distance_px`` from ``classifier``'s :func:`evidence_maps` on the fakes (NaN without one).
    """
    labels = rows["label"].to_numpy().astype(int)
    ids = pd.DataFrame(
        {
            "image_id": rows["image_id"].astype(str).to_numpy(),
            "split": rows["split"].to_numpy(),
            "generator": np.where(labels == 1, "remove", "insert"),
        }
    )
    evidence = None
    if classifier is not None:
        evidence = evidence_maps(classifier, np.asarray(fake, dtype=np.float32), device or torch.device("cpu"))
    return pd.concat([ids, change_localisation(real, fake, masks, has_mask, evidence)], axis=1)


def gan_discriminator_auc(
    discriminator: nn.Module,
    direction: str,
    images: np.ndarray,
    fakes: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
) -> dict[str, float]:
    """A trained GAN discriminator's real-vs-fake AUC on a split: its real class is the generator's target class (real
    negatives for ``remove``), its fakes the counterparts of the split's source-class images.

    Returns:
        :func:`medadv.stats.fidelity.discriminator_auc`'s mean, ci_low, ci_high, n and n_infinite.
    """
    source, target = DIRECTIONS[direction]
    labels = np.asarray(labels).astype(int)
    scores = [
        batched_outputs(discriminator, np.asarray(part)[labels == cls], batch_size, lambda o: o.float(), device)
        for part, cls in ((images, target), (fakes, source))
    ]
    return discriminator_auc(scores[0].numpy(), scores[1].numpy())
