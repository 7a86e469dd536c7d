"""Notebook 02, the lesion removal and insertion GAN (paper 001): the two generators trained against discriminators
that start from the reference (ERM) classifier, the adversarial set (a flipped-label fake of every validation and test
image), the education triplets of reader Session 4, and the checks of the fakes (ERM flip rate, where the change lies,
SSIM / PSNR / discriminator AUC).

The domain work lives in :mod:`medadv.train.gan` (training), :mod:`medadv.models.gan_networks` (the networks and
:func:`~medadv.models.gan_networks.flipped_fakes`), :mod:`medadv.data.adversarial` (the files of the adversarial and
education sets), :mod:`medadv.attacks.gan_attack` (the flip rate), :mod:`medadv.explain.gan_evidence` and
:mod:`medadv.stats.fidelity` (the checks); this module is what the notebook calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from medadv.data.adversarial import (
    education_selection,
    plot_triplets,
    validate_adversarial_index,
    write_adversarial_set,
    write_education_set,
)
from medadv.data.images import SplitArrays, load_split
from medadv.explain.gan_evidence import gan_discriminator_auc
from medadv.models.checkpoint import checkpoint_paths
from medadv.models.gan_networks import DIRECTIONS, flipped_fakes
from medadv.models.registry import load_trained
from medadv.report import RunContext
from medadv.stats.fidelity import fidelity_summary, pair_fidelity
from medadv.train.gan import GanConfig, GanResult, stage_warnings, train_gan
from medadv.train.loop import ClassifierConfig

SPLITS = ("train", "val", "test")
ADVERSARIAL_SPLITS = ("val", "test")
"""The splits whose images get a fake in the adversarial set (the training split's fakes would leak into training)."""

__all__ = [
    "AdversarialSet",
    "GanInputs",
    "GanTraining",
    "GanTrainingConfig",
    "build_adversarial_set",
    "direction_titles",
    "education_set",
    "fidelity_table",
    "headline",
    "load_inputs",
    "train_generators",
    "triplet_figure",
    "warning_text",
]


@dataclasses.dataclass(frozen=True)
class GanTrainingConfig(GanConfig):
    """The profile's ``gan`` section (:class:`medadv.train.gan.GanConfig`)."""


@dataclasses.dataclass(frozen=True)
class GanInputs:
    """What notebook 02 starts from.

    Attributes:
        cohort: the run's cohort table (notebook 00).
        splits: the train, val and test images at the profile's size.
        reference: the name of the classifier the GAN attacks, the profile's ``classifier.reference_model``.
        erm: that classifier (notebook 01), in eval mode: the discriminators start from it and the fakes are checked
            against it.
    """

    cohort: pd.DataFrame
    splits: dict[str, SplitArrays]
    reference: str
    erm: nn.Module

    def sizes(self) -> dict[str, int]:
        """Images per split.

        Returns:
            split name -> number of images.
        """
        return {s: int(len(a.labels)) for s, a in self.splits.items()}


def load_inputs(ctx: RunContext) -> GanInputs:
    """The cohort, its three splits and the reference classifier of a run (the profile's
    ``classifier.reference_model``).

    Returns:
        :class:`GanInputs`.

    Raises:
        RunError: notebook 01 has not written that classifier's checkpoint.
    """
    reference = ClassifierConfig.from_profile(ctx.profile).reference_model
    ctx.require(ctx.layout.checkpoint(reference).with_suffix(".safetensors"), made_by="01_classifier_training")
    cohort = ctx.cohort()
    size = tuple(ctx.profile.data.image_size)
    splits = {s: load_split(cohort, ctx.image_root, size, s) for s in SPLITS}
    return GanInputs(cohort, splits, reference, load_trained(ctx.layout.checkpoints, reference, ctx.device))


@dataclasses.dataclass(frozen=True)
class GanTraining:
    """The two trained directions.

    Attributes:
        results: ``remove`` and ``insert`` -> :class:`medadv.train.gan.GanResult` (generator, discriminator, history).
        history: both histories, one row per epoch (``gan_training_history.csv``).
        warnings: stages that ended at their epoch limit short of their target (:func:`stage_warnings`).
    """

    results: dict[str, GanResult]
    history: pd.DataFrame
    warnings: list[str]

    @property
    def generators(self) -> dict[str, nn.Module]:
        """Direction -> trained generator."""
        return {d: r.generator for d, r in self.results.items()}


def train_generators(ctx: RunContext, inputs: GanInputs, config: GanConfig) -> GanTraining:
    """Train (or resume) both directions on the training split and register their checkpoints
    (``checkpoints/gan_remove``, ``gan_insert``).

    Returns:
        :class:`GanTraining`.
    """
    train = inputs.splits["train"]
    results = {
        d: train_gan(
            d,
            inputs.erm,
            train.images,
            train.labels,
            config,
            ctx.profile.seed,
            ctx.device,
            checkpoint_prefix=ctx.layout.gan(d),
            ledger=ctx,
        )
        for d in DIRECTIONS
    }
    ctx.register_many([p for d in DIRECTIONS for p in checkpoint_paths(ctx.layout.gan(d))])
    history = pd.concat([r.history for r in results.values()], ignore_index=True)
    return GanTraining(results, history, stage_warnings(history, config))


def warning_text(warnings: Sequence[str]) -> str:
    """The stage warnings one per line, each prefixed ``WARNING:``.

    Returns:
        that text, or ``Every stage reached its target.`` when there are none.
    """
    return "\n".join(f"WARNING: {w}" for w in warnings) or "Every stage reached its target."


@dataclasses.dataclass(frozen=True)
class AdversarialSet:
    """The adversarial set as written to ``data/adversarial``.

    Attributes:
        fakes: ``val`` and ``test`` -> the fakes (N, 1, H, W) in [0, 1], in the split's image order.
        index: ``adversarial_index.csv``: one row per image with its real and fake files.
    """

    fakes: dict[str, np.ndarray]
    index: pd.DataFrame


def build_adversarial_set(ctx: RunContext, inputs: GanInputs, generators: Mapping[str, nn.Module]) -> AdversarialSet:
    """A flipped-label fake of every validation and test image (``remove`` for positives, ``insert`` for negatives),
    written as 16-bit PNGs with their index, validated against the cohort and registered.

    Returns:
        :class:`AdversarialSet`.

    Raises:
        DataError: the written index does not match the cohort (:func:`validate_adversarial_index`).
    """
    splits = inputs.splits
    fakes = {
        s: flipped_fakes(dict(generators), splits[s].images, splits[s].labels, ctx.device) for s in ADVERSARIAL_SPLITS
    }
    rows = pd.concat([splits[s].rows for s in fakes], ignore_index=True)
    index, paths = write_adversarial_set(
        ctx.layout, rows, np.concatenate([splits[s].images for s in fakes]), np.concatenate(list(fakes.values()))
    )
    validate_adversarial_index(index, inputs.cohort)
    ctx.register_many(paths)
    return AdversarialSet(fakes, index)


def direction_titles(image_ids: Iterable[str], labels: Iterable[int]) -> list[str]:
    """Each image's id with the generator that made its fake.

    Returns:
        ``"<image_id> (remove)"`` for positives, ``"<image_id> (insert)"`` for negatives, in the given order.
    """
    return [f"{i} ({'remove' if y else 'insert'})" for i, y in zip(image_ids, labels, strict=True)]


def triplet_figure(test: SplitArrays, test_fakes: np.ndarray, seed: int, per_generator: int = 3) -> Figure:
    """Paper 001's Fig. 2 on the test split: ``per_generator`` positives through ``remove``, then as many negatives
    through ``insert`` (seeded selection), each as real, fake and difference.

    Returns:
        the figure (``gan_triplets``).
    """
    show = education_selection(test.labels, per_generator, seed)
    titles = direction_titles(test.rows["image_id"], test.labels)
    return plot_triplets(test.images[show], test_fakes[show], [titles[i] for i in show])


def education_set(
    ctx: RunContext, inputs: GanInputs, generators: Mapping[str, nn.Module], config: GanConfig
) -> pd.DataFrame:
    """Session 4's education triplets: ``config.education_triplets`` training positives and as many negatives with
    their fakes and differences, written to ``data/education`` and registered.

    Returns:
        ``education_index``: one row per triplet with its files.
    """
    train = inputs.splits["train"]
    pick = education_selection(train.labels, config.education_triplets, ctx.profile.seed)
    fakes = flipped_fakes(dict(generators), train.images[pick], train.labels[pick], ctx.device)
    index, paths = write_education_set(ctx.layout, list(train.rows.image_id[pick]), train.images[pick], fakes)
    ctx.register_many(paths)
    return index


def fidelity_table(
    training: GanTraining, test: SplitArrays, test_fakes: np.ndarray, device: torch.device
) -> pd.DataFrame:
    """SSIM and PSNR between each test image and its fake (mean and 95% t-interval per generator) and each
    discriminator's real-vs-fake AUC on the test images of its direction.

    Returns:
        ``gan_fidelity``: columns generator, metric, mean and the interval columns of the two summaries.
    """
    gen_of = np.where(test.labels == 1, "remove", "insert")
    pairs = pair_fidelity(test.images, test_fakes).assign(generator=gen_of)
    aucs = [
        {
            "generator": d,
            "metric": "discriminator_auc",
            **gan_discriminator_auc(r.discriminator, d, test.images, test_fakes, test.labels, device),
        }
        for d, r in training.results.items()
    ]
    return pd.concat([fidelity_summary(pairs), pd.DataFrame(aucs)], ignore_index=True)


def headline(
    flips: pd.DataFrame, fidelity: pd.DataFrame, localisation: Mapping[str, float], training: GanTraining
) -> dict[str, object]:
    """Notebook 02's numbers for ``summary.json``.

    Returns:
        ``erm_flip_rate_<source label>``, ``<generator>_<metric>`` (fidelity means), the localisation summary,
        ``<direction>_epochs``, ``gan_warnings`` and ``train_seconds``.
    """
    out: dict[str, object] = {f"erm_flip_rate_{r.source_label}": r.flip_rate for r in flips.itertuples()}
    out.update({f"{r.generator}_{r.metric}": r.mean for r in fidelity.itertuples()})
    out.update(localisation)
    out.update({f"{d}_epochs": len(r.history) for d, r in training.results.items()})
    out["gan_warnings"] = training.warnings
    out["train_seconds"] = float(training.history["epoch_seconds"].sum())
    return out
