"""The GAN attack's effect on a classifier: paper 001, Table 1 and its text ("AI model study").

Every real test image has a GAN-made counterpart with the flipped label (a negative-looking fake of a positive is
labelled negative, a positive-looking fake of a negative is labelled positive). From the classifier's probability of
the positive class on the real images and on their fakes, paper 001 reports:

* the AUC on the real test set, and the AUC on the adversarial set with the flipped labels (a high AUC there means the
  model follows the fakes' new labels, i.e. it is fooled);
* the accuracy at threshold 0.5 on the real positives ("44 (59.5%) were correctly classified") and negatives;
* per class, among the correctly classified real images, the share whose fake is classified as its flipped label
  (the fooling rate, "42 out of the 44 ... 95.5%");
* overall, the same share over both classes together ("251 out of the 363 cases", 69.1%).

A score at or above the threshold counts as positive. AUCs carry DeLong 95% intervals
(:func:`medadv.stats.auc.delong_ci`), rates exact Clopper-Pearson 95% intervals
(:func:`medadv.stats.binomial.clopper_pearson`). :func:`flip_rate` runs a classifier over the real images and their
fakes and reads the fooling rates from the same table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import nn

from medadv.data.images import read_image, resize
from medadv.errors import DataError
from medadv.models.inference import positive_scores
from medadv.stats.auc import check_binary_truth, delong_ci
from medadv.stats.binomial import clopper_pearson

TABLE_COLUMNS = ("row", "value", "ci_low", "ci_high", "n", "N", "text")


@dataclasses.dataclass(frozen=True)
class Rate:
    """``n`` of ``N`` cases, as a proportion with an exact 95% interval (NaN when ``N`` is 0)."""

    n: int
    N: int

    @property
    def value(self) -> float:
        return self.n / self.N if self.N else float("nan")

    @property
    def ci(self) -> tuple[float, float]:
        return clopper_pearson(self.n, self.N, 0.95)

    @property
    def text(self) -> str:
        """Paper 001's wording: ``42 out of 44 (95.5%)``."""
        return f"{self.n} out of {self.N} ({100 * self.value:.1f}%)" if self.N else "0 out of 0 (n/a)"


@dataclasses.dataclass(frozen=True)
class GanAttackResult:
    """Paper 001 Table 1 for one classifier and one adversarial set.

    Attributes:
        auc_real: (AUC, low, high) on the real images with their labels.
        auc_adversarial: (AUC, low, high) on the fakes with their flipped labels.
        accuracy_positive / accuracy_negative: real positives / negatives classified correctly at the threshold.
        fooled_positive / fooled_negative: among those, fakes classified as their flipped label.
        fooled_overall: both classes together.
    """

    auc_real: tuple[float, float, float]
    auc_adversarial: tuple[float, float, float]
    accuracy_positive: Rate
    accuracy_negative: Rate
    fooled_positive: Rate
    fooled_negative: Rate
    fooled_overall: Rate

    def table(self) -> pd.DataFrame:
        """The rows of Table 1: row, value, ci_low, ci_high, n, N and the paper's "n out of N (p%)" text.

        Returns:
            The table, one row per row of Table 1.
        """
        rows = [
            ("AUC, real test set", self.auc_real),
            ("AUC, adversarial test set (flipped labels)", self.auc_adversarial),
        ]
        records = [
            {"row": name, "value": auc, "ci_low": lo, "ci_high": hi, "n": np.nan, "N": np.nan, "text": f"{auc:.3f}"}
            for name, (auc, lo, hi) in rows
        ]
        rates = [
            ("Accuracy, real positives (threshold 0.5)", self.accuracy_positive),
            ("Fooling rate, fakes of correctly classified positives (called negative)", self.fooled_positive),
            ("Accuracy, real negatives (threshold 0.5)", self.accuracy_negative),
            ("Fooling rate, fakes of correctly classified negatives (called positive)", self.fooled_negative),
            ("Fooling rate, overall", self.fooled_overall),
        ]
        for name, rate in rates:
            lo, hi = rate.ci
            records.append(
                {
                    "row": name,
                    "value": rate.value,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": rate.n,
                    "N": rate.N,
                    "text": rate.text,
                }
            )
        table = pd.DataFrame(records, columns=list(TABLE_COLUMNS))
        return table.astype({"n": "Int64", "N": "Int64"})

    def summary(self) -> dict[str, float]:
        """Headline numbers for ``summary.json``.

        Returns:
            The headline numbers.
        """
        return {
            "auc_real": self.auc_real[0],
            "auc_adversarial": self.auc_adversarial[0],
            "accuracy_positive": self.accuracy_positive.value,
            "accuracy_negative": self.accuracy_negative.value,
            "fooling_rate_positive": self.fooled_positive.value,
            "fooling_rate_negative": self.fooled_negative.value,
            "fooling_rate_overall": self.fooled_overall.value,
            "n_fooled": self.fooled_overall.n,
            "n_correct": self.fooled_overall.N,
        }


def gan_attack_evaluation(
    labels: ArrayLike, real_scores: ArrayLike, fake_scores: ArrayLike, threshold: float = 0.5
) -> GanAttackResult:
    """Paper 001's Table 1 from the classifier's positive-class probabilities on real images and their fakes.

    Args:
        labels: true label of each real image (1 = positive); the fake's label is ``1 - label``.
        real_scores: probability of the positive class on each real image.
        fake_scores: the same on the fake made from that image (same order).
        threshold: a score at or above it is classified positive (paper 001: 0.5).

    Returns:
        the :class:`GanAttackResult`.
    """
    truth = check_binary_truth(labels, "labels", min_per_class=2)
    real = np.asarray(real_scores, dtype=float)
    fake = np.asarray(fake_scores, dtype=float)
    if real.shape != truth.shape or fake.shape != truth.shape:
        raise DataError(
            f"{truth.size} labels, real scores {real.shape}, fake scores {fake.shape}; expected one of each per image."
        )
    if not (np.isfinite(real).all() and np.isfinite(fake).all()):
        raise DataError("real_scores or fake_scores hold NaN or inf; every image needs a finite score.")
    real_pos, fake_pos = real >= threshold, fake >= threshold
    correct_pos = truth & real_pos
    correct_neg = ~truth & ~real_pos
    fooled_pos = correct_pos & ~fake_pos
    fooled_neg = correct_neg & fake_pos
    return GanAttackResult(
        auc_real=delong_ci(truth.astype(int), real),
        auc_adversarial=delong_ci((~truth).astype(int), fake),
        accuracy_positive=Rate(int(correct_pos.sum()), int(truth.sum())),
        accuracy_negative=Rate(int(correct_neg.sum()), int((~truth).sum())),
        fooled_positive=Rate(int(fooled_pos.sum()), int(correct_pos.sum())),
        fooled_negative=Rate(int(fooled_neg.sum()), int(correct_neg.sum())),
        fooled_overall=Rate(int((fooled_pos | fooled_neg).sum()), int((correct_pos | correct_neg).sum())),
    )


def flip_rate(
    classifier: nn.Module,
    real: np.ndarray,
    fake: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
) -> pd.DataFrame:
    """How often the fakes fool a classifier: among images it classifies correctly, the share whose fake it assigns to
    the flipped label (paper 001's fooling rate, Table 1, computed by :func:`gan_attack_evaluation`), per source
    label and overall.

    Returns:
        columns source_label (``all`` for both), n_correct, n_flipped, flip_rate.
    """
    result = gan_attack_evaluation(
        labels,
        positive_scores(classifier, real, device, batch_size),
        positive_scores(classifier, fake, device, batch_size),
    )
    rates = (("0", result.fooled_negative), ("1", result.fooled_positive), ("all", result.fooled_overall))
    return pd.DataFrame(
        [
            {"source_label": name, "n_correct": r.N, "n_flipped": r.n, "flip_rate": r.n / r.N if r.N else np.nan}
            for name, r in rates
        ]
    )


def load_fakes(root: Path, index: pd.DataFrame, image_ids: ArrayLike, image_size: tuple[int, int]) -> np.ndarray:
    """The fakes of ``image_ids`` (in that order) from notebook 02's adversarial index, whose paths are relative to
    ``root`` (the run folder), as (N, 1, H, W) in [0, 1].

    Check the index first with :func:`medadv.data.adversarial.validate_adversarial_index` (columns, flipped labels).

    Returns:
        The fakes (N, 1, H, W), float32 in [0, 1].

    Raises:
        DataError: an image id without a fake in the index, or an unreadable fake.
    """
    by_id = index.assign(image_id=index["image_id"].astype(str)).set_index("image_id")
    ids = [str(i) for i in np.asarray(image_ids)]
    missing = [i for i in ids if i not in by_id.index]
    if missing:
        raise DataError(
            f"adversarial_index has no fake for {len(missing)} image(s), e.g. {missing[:5]}; rerun notebook 02."
        )
    h, w = image_size
    out = np.empty((len(ids), 1, h, w), np.float32)
    for k, image_id in enumerate(ids):
        out[k, 0] = resize(read_image(Path(root) / by_id.at[image_id, "path"]), (h, w))
    return out
