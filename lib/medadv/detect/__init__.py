"""Detectors of manipulated inputs (GAN fakes and gradient attacks), each with ``score(images) -> (N,)``, higher =
more likely manipulated; adaptive attacks against them; and detection metrics.

- :class:`~medadv.detect.real_fake.RealFakeClassifier`: paper 001's network trained on real images against their
  GAN fakes (the defence paper 001's authors name);
- :class:`~medadv.detect.squeezing.FeatureSqueezing` (Xu, Evans & Qi, NDSS 2018);
- :class:`~medadv.detect.mahalanobis.MahalanobisDetector` (Lee, Lee, Lee & Shin, NeurIPS 2018);
- :class:`~medadv.detect.discriminator.DiscriminatorScore`: the trained GAN discriminators' own judgement (baseline);
- :func:`~medadv.detect.adaptive.adaptive_pgd`: PGD on the classifier's loss plus the detector's score (Carlini &
  Wagner 2017; Tramer, Carlini, Brendel & Madry 2020);
- :mod:`~medadv.detect.metrics`: detection AUC with DeLong CI and the true-positive rate at a fixed false-positive rate;
- :mod:`~medadv.detect.training`: training the real-vs-fake classifier (the kit's loop, paper 001's recipe);
- :mod:`~medadv.detect.evaluation`: notebook 06's detection study (GAN fakes, notebook 03's adversarial examples,
  adaptive attacks).
"""

from medadv.detect.adaptive import adaptive_pgd
from medadv.detect.base import Detector
from medadv.detect.discriminator import DiscriminatorScore
from medadv.detect.mahalanobis import MahalanobisDetector
from medadv.detect.metrics import detection_metrics, tpr_at_fpr
from medadv.detect.real_fake import RealFakeClassifier
from medadv.detect.squeezing import FeatureSqueezing

__all__ = [
    "Detector",
    "DiscriminatorScore",
    "FeatureSqueezing",
    "MahalanobisDetector",
    "RealFakeClassifier",
    "adaptive_pgd",
    "detection_metrics",
    "tpr_at_fpr",
]
