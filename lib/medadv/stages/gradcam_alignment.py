"""Notebook 04, attribution maps: how well each classifier's maps (Grad-CAM and the other methods of the profile)
align with the lesion masks, paired tests of every model against the reference, paper 004's iterative FGSM and the
Grad-CAM map, the targeted map attack of Ghorbani et al., and the study's declared effects.

The domain work lives in :mod:`medadv.explain` (:mod:`~medadv.explain.study`, :mod:`~medadv.explain.fgsm_shift`,
:mod:`~medadv.explain.plots`) and :mod:`medadv.effects`; this module is what the notebook calls.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from medadv.effects import evaluate_run
from medadv.explain.fgsm_shift import fgsm_figure_rows, fgsm_gradcam_shift, fgsm_shift_summary
from medadv.explain.plots import fgsm_shift_figure, manipulation_panels, map_gallery
from medadv.explain.study import (
    AttackExample,
    ExplainConfig,
    alignment_scores,
    attack_summary,
    attribution_maps,
    explanation_attack,
    figure_rows,
    study_images,
)
from medadv.models.registry import load_trained
from medadv.report import RunContext

GALLERY_METHOD = "gradcam"
"""The method of the gallery that compares the models."""

__all__ = [
    "Alignment",
    "AlignmentInputs",
    "GradcamAlignmentConfig",
    "MapAttack",
    "alignment",
    "declared_effects",
    "fgsm_figures",
    "fgsm_shift",
    "headline",
    "headline_text",
    "load_inputs",
    "map_attack",
    "map_attack_figure",
    "method_gallery",
    "model_gallery",
    "primary_table",
]


@dataclasses.dataclass(frozen=True)
class GradcamAlignmentConfig(ExplainConfig):
    """The profile's ``explain`` section (:class:`medadv.explain.study.ExplainConfig`)."""


@dataclasses.dataclass(frozen=True)
class AlignmentInputs:
    """The study set and the models explained.

    Attributes:
        images: the test positives with a non-empty lesion mask (N, 1, H, W), or every test positive of a data set
            without masks; masks: their masks (N, H, W), all empty in a data set without masks.
        image_ids: their ids, in image order.
        models: ``config.models`` loaded from notebook 01's checkpoints, in eval mode.
        started: ``time.perf_counter()`` when the inputs were loaded (the notebook reports its seconds from it).
    """

    images: np.ndarray
    masks: np.ndarray
    image_ids: list[str]
    models: dict[str, nn.Module]
    started: float

    def description(self) -> str:
        """One sentence on the study set.

        Returns:
            the number of images and their mean lesion area as a share of the image (or that there are no masks).
        """
        if not self.masks.any():
            return f"{len(self.image_ids)} test positives; the data set has no lesion masks, so no map is scored"
        return (
            f"{len(self.image_ids)} test positives with lesion masks; lesion area "
            f"{self.masks.mean(axis=(1, 2)).mean():.1%} of the image on average"
        )


def load_inputs(ctx: RunContext, config: ExplainConfig) -> AlignmentInputs:
    """The study images (:func:`medadv.explain.study.study_images`, seeded by the profile) and the models.

    Returns:
        :class:`AlignmentInputs`.
    """
    started = time.perf_counter()
    study = study_images(ctx.cohort(), ctx.image_root, ctx.profile.data.image_size, config.n_images, ctx.profile.seed)
    models = {name: load_trained(ctx.layout.checkpoints, name, ctx.device) for name in config.models}
    return AlignmentInputs(study.images, study.masks[:, 0], study.rows["image_id"].tolist(), models, started)


@dataclasses.dataclass(frozen=True)
class Alignment:
    """Every map and its alignment scores.

    Attributes:
        maps: (model, method) -> maps (N, H, W) of the positive class.
        scores: ``alignment_scores``: one row per model, method, metric and image.
    """

    maps: dict[tuple[str, str], np.ndarray]
    scores: pd.DataFrame


def alignment(inputs: AlignmentInputs, config: ExplainConfig) -> Alignment:
    """Attribution maps of every model and method, scored against the lesion masks with every metric.

    Returns:
        :class:`Alignment`.
    """
    maps = attribution_maps(inputs.models, inputs.images, config)
    return Alignment(maps, alignment_scores(maps, inputs.masks, inputs.image_ids, config))


def primary_table(scores: pd.DataFrame, config: ExplainConfig) -> pd.DataFrame:
    """The primary metric's mean score per model (rows) and method (columns), to 3 decimals.

    Returns:
        the pivot table.
    """
    primary = scores[scores["metric"] == config.primary_metric]
    return primary.pivot_table(index="model", columns="method", values="score").round(3)


def headline_text(summary: dict[str, object], config: ExplainConfig) -> str:
    """The paired tests in one sentence.

    Returns:
        how many comparisons find a model better (and worse) aligned than the reference at Holm p < 0.01.
    """
    return (
        f"{config.primary_metric}: {summary['better_than_reference_p01']} of {summary['comparisons']} comparisons "
        f"find a model better aligned than {config.reference} (Holm p < 0.01), "
        f"{summary['worse_than_reference_p01']} find it worse."
    )


def _gallery_rows(inputs: AlignmentInputs, config: ExplainConfig) -> list[int]:
    return list(range(min(config.gallery_images, len(inputs.image_ids))))


def model_gallery(inputs: AlignmentInputs, maps: dict[tuple[str, str], np.ndarray], config: ExplainConfig) -> Figure:
    """The Grad-CAM map of every model over the first ``config.gallery_images`` images, lesions outlined.

    Returns:
        the figure (``alignment_gallery_models``).
    """
    return map_gallery(
        inputs.images,
        inputs.masks,
        {m: maps[m, GALLERY_METHOD] for m in config.models},
        inputs.image_ids,
        _gallery_rows(inputs, config),
    )


def method_gallery(inputs: AlignmentInputs, maps: dict[tuple[str, str], np.ndarray], config: ExplainConfig) -> Figure:
    """Every method's map of the reference model over the same images as :func:`model_gallery`.

    Returns:
        the figure (``alignment_gallery_methods``).
    """
    return map_gallery(
        inputs.images,
        inputs.masks,
        {meth: maps[config.reference, meth] for meth in config.methods},
        inputs.image_ids,
        _gallery_rows(inputs, config),
    )


@dataclasses.dataclass(frozen=True)
class MapAttack:
    """An attack on the maps, per model and image, with its means and the examples of its figure.

    Attributes:
        table: one row per model (and budget, variant) and image.
        summary: its means per model (and budget, variant).
        examples: one :class:`medadv.explain.study.AttackExample` per figure row.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    examples: list[AttackExample]


def fgsm_shift(inputs: AlignmentInputs, config: ExplainConfig) -> MapAttack:
    """Paper 004's experiment: iterative FGSM on the true label and how far the Grad-CAM map moves
    (:func:`medadv.explain.fgsm_shift.fgsm_gradcam_shift`).

    Returns:
        :class:`MapAttack`: ``fgsm_gradcam_shift`` and ``fgsm_gradcam_shift_summary``.
    """
    table, examples = fgsm_gradcam_shift(inputs.models, inputs.images, inputs.masks, inputs.image_ids, config)
    return MapAttack(table, fgsm_shift_summary(table), examples)


def fgsm_figures(shift: MapAttack, config: ExplainConfig) -> dict[str, Figure]:
    """The figures of paper 004's experiment.

    Returns:
        ``fgsm_gradcam_shift`` (the shift against the steps) and ``fgsm_gradcam_shift_examples`` (maps before and
        after) -> figure.
    """
    return {
        "fgsm_gradcam_shift": fgsm_shift_figure(shift.table, config.fgsm_steps, config.fgsm_step_grey),
        "fgsm_gradcam_shift_examples": manipulation_panels(fgsm_figure_rows(shift.examples, shift.table)),
    }


def map_attack(inputs: AlignmentInputs, config: ExplainConfig) -> MapAttack:
    """The targeted Grad-CAM attack of Ghorbani et al. (:func:`medadv.explain.study.explanation_attack`).

    Returns:
        :class:`MapAttack`: ``explanation_attack`` and ``explanation_attack_summary``.
    """
    table, examples = explanation_attack(inputs.models, inputs.images, inputs.masks, inputs.image_ids, config)
    return MapAttack(table, attack_summary(table), examples)


def map_attack_figure(attack: MapAttack) -> Figure:
    """Maps before and after the targeted attack, one row per example.

    Returns:
        the figure (``explanation_attack_examples``).
    """
    return manipulation_panels(figure_rows(attack.examples, attack.table))


def headline(
    summary: dict[str, object], attack: MapAttack, shift: MapAttack, config: ExplainConfig, started: float
) -> dict[str, object]:
    """Notebook 04's numbers for ``summary.json``.

    Args:
        summary: :func:`medadv.explain.study.alignment_summary` of the scores and tests.
        attack, shift: :func:`map_attack` and :func:`fgsm_shift`.
        started: ``time.perf_counter()`` at the start of the study (:attr:`AlignmentInputs.started`).

    Returns:
        ``summary``'s keys, ``attack`` and ``fgsm_gradcam_shift`` (their means as records), ``attack_metric``,
        ``fgsm_label_changed_rate`` per model and ``seconds`` since ``started``.
    """
    return {
        **summary,
        "attack": attack.summary.to_dict(orient="records"),
        "attack_metric": config.attack_metric,
        "fgsm_gradcam_shift": shift.summary.to_dict(orient="records"),
        "fgsm_label_changed_rate": {m: float(g["label_changed"].mean()) for m, g in shift.table.groupby("model")},
        "seconds": round(time.perf_counter() - started, 1),
    }


def declared_effects(ctx: RunContext) -> tuple[pd.DataFrame, dict[str, int]]:
    """The effects the profile declares, evaluated from the run's tables (:func:`medadv.effects.evaluate_run`).

    Returns:
        (``effects`` table, ``{"effects_holding": ..., "effects_declared": ...}`` for ``summary.json``).
    """
    table = evaluate_run(ctx.run_dir)
    return table, {"effects_holding": int(table["holds"].sum()), "effects_declared": len(table)}
