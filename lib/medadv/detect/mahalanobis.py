"""The Mahalanobis detector (Lee, Lee, Lee & Shin, "A simple unified framework for detecting out-of-distribution
samples and adversarial attacks", NeurIPS 2018).

Class-conditional Gaussians with one shared covariance are fitted to the classifier's features of clean training
images; an image's confidence is ``M(x) = max_c -(f(x) - mu_c)^T Sigma^-1 (f(x) - mu_c)``, and the detector's score is
``-M(x)``, the squared distance to the nearest class mean (higher = more likely manipulated).

Features: the global max pooling of the classifier's feature map Vnet(x), the vector paper 001's head reads (any kit
classifier with ``prepare`` and ``features``). Lee et al. also add a small input perturbation and combine several
layers with a logistic regression fitted on adversarial examples; both are left out here: the detector is fitted on
clean images only, so it is not tuned to the attacks it is evaluated on. The covariance is the Ledoit-Wolf shrinkage
estimate (scikit-learn): with few training images per feature, the empirical one (Lee et al.) is singular.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from torch import Tensor, nn

from medadv.detect.base import Detector, as_images
from medadv.errors import ConfigError, DataError

__all__ = ["MahalanobisDetector", "pooled_features"]


def pooled_features(classifier: nn.Module, x: Tensor) -> Tensor:
    """Global max pooling of the classifier's feature map, (N, channels).

    Returns:
        The features (N, channels).
    """
    for name in ("prepare", "features"):
        if not callable(getattr(classifier, name, None)):
            raise ConfigError(
                f"the Mahalanobis detector needs a kit classifier with `prepare` and `features`; "
                f"{type(classifier).__name__} has no `{name}`."
            )
    return classifier.features(classifier.prepare(x)).amax(dim=(2, 3))


class MahalanobisDetector(Detector):
    """Score = squared Mahalanobis distance of the pooled features to the nearest class mean (tied covariance).

    Build it with :meth:`fit`.

    Attributes:
        means: (classes, features) class means; precision: (features, features) inverse shared covariance.
    """

    name = "mahalanobis"
    citation = "Lee, Lee, Lee & Shin 2018, NeurIPS: class-conditional Gaussians, tied covariance, Mahalanobis score"

    def __init__(
        self, classifier: nn.Module, means: Tensor, precision: Tensor, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(device)
        self.classifier = classifier.to(self.device).eval().requires_grad_(False)
        self.means = means.to(self.device, torch.float32)
        self.precision = precision.to(self.device, torch.float32)

    @classmethod
    def fit(
        cls,
        classifier: nn.Module,
        images: np.ndarray | Tensor,
        labels: np.ndarray,
        device: torch.device | str = "cpu",
        batch_size: int = 128,
    ) -> "MahalanobisDetector":
        """Fit the class means and the shared covariance on clean images with their labels.

        Returns:
            The fitted detector.

        Raises:
            DataError: labels that do not match the images, or a class with fewer than two images.
        """
        x = as_images(images, "training images")
        y = np.asarray(labels).astype(int)
        if y.shape != (x.shape[0],):
            raise DataError(f"{len(y)} labels for {x.shape[0]} images; expected one label per image.")
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2 or counts.min() < 2:
            raise DataError(
                f"Mahalanobis fit: class counts {dict(zip(classes.tolist(), counts.tolist()))}; expected "
                "at least two classes with two images each."
            )
        classifier = classifier.to(device).eval()
        with torch.no_grad():
            feats = torch.cat([pooled_features(classifier, c.to(device)).double().cpu() for c in x.split(batch_size)])
        f = feats.numpy()
        means = np.stack([f[y == c].mean(axis=0) for c in classes])
        centred = f - means[np.searchsorted(classes, y)]
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        return cls(classifier, torch.from_numpy(means), torch.from_numpy(precision), device)

    def score_tensor(self, x: Tensor) -> Tensor:
        """The Mahalanobis distance of each image's pooled features to the nearest class mean (Lee et al. 2018).

        Returns:
            Scores (N,), differentiable in ``x``; larger = more likely manipulated.
        """
        diff = pooled_features(self.classifier, x)[:, None, :] - self.means[None, :, :]
        dist = torch.einsum("nkf,fg,nkg->nk", diff, self.precision, diff)
        return dist.amin(dim=1)
