"""Evaluation of a trained classifier from its scores: test AUC with a DeLong 95% CI, sensitivity and specificity at a
threshold chosen on the validation split, the DeLong test between two classifiers on one test set, and whether the
classifier is competent enough to study.

The operating threshold is the one that maximises Youden's J (sensitivity + specificity - 1) on the validation
scores, so the test set is never used to choose it. AUC statistics come from :mod:`medadv.stats.auc`.

Competence (``docs/design.md``: a model is studied only once it has learned): at the model's own decision (the class
of the larger logit, probability >= 0.5, the decision every attack tries to flip) each split's row also gives the
plain and the balanced accuracy (:mod:`medadv.stats.accuracy`), what the constant classifier scores, the share of
images called positive and whether that makes the classifier **degenerate** (one class for more than 95% of the
images). :func:`competence_columns` adds, per model, the competence gate (``classifier.min_val_auc``: the best
validation AUC must reach it) and ``competent`` (passes the gate and is not degenerate on the test split), which
every later notebook and every effect reads from ``classifier_metrics.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medadv.stats.accuracy import balanced_accuracy, constant_accuracy, is_degenerate
from medadv.stats.auc import delong_ci, delong_test
from medadv.style import paper_figure, paper_style, series_style


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (``score >= t`` is positive) that maximises sensitivity + specificity - 1.

    Candidate thresholds are the observed scores; among equal J the higher threshold is kept.

    Returns:
        The threshold, one of the observed scores.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    candidates = np.unique(score)
    pos = score[y][:, None] >= candidates[None, :]
    neg = score[~y][:, None] < candidates[None, :]
    j = pos.mean(0) + neg.mean(0) - 1.0
    return float(candidates[np.flatnonzero(j == j.max())[-1]])


def sensitivity_specificity(y: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity of ``score >= threshold``.

    Returns:
        (sensitivity, specificity).
    """
    y = np.asarray(y).astype(bool)
    pred = np.asarray(score) >= threshold
    return float(pred[y].mean()), float((~pred[~y]).mean())


@dataclass(frozen=True)
class SplitMetrics:
    """AUC with its DeLong CI, sensitivity and specificity at the validation-chosen threshold, and at the model's own
    decision (probability >= 0.5) its accuracy, balanced accuracy, share of images called positive, the constant
    classifier's accuracy and whether the model is degenerate."""

    split: str
    auc: float
    auc_ci_low: float
    auc_ci_high: float
    sensitivity: float
    specificity: float
    threshold: float
    accuracy: float
    balanced_accuracy: float
    predicted_positive_rate: float
    constant_accuracy: float
    degenerate: bool


def split_metrics(split: str, y: np.ndarray, score: np.ndarray, threshold: float, level: float = 0.95) -> SplitMetrics:
    """Metrics of one split's scores at ``threshold``.

    Returns:
        :class:`SplitMetrics`: AUC with its DeLong CI, sensitivity and specificity at ``threshold``.
    """
    auc, low, high = delong_ci(y, score, level=level)
    sens, spec = sensitivity_specificity(y, score, threshold)
    positive = np.asarray(score) >= 0.5
    correct = positive == (np.asarray(y) == 1)
    return SplitMetrics(
        split,
        float(auc),
        float(low),
        float(high),
        sens,
        spec,
        threshold,
        float(correct.mean()),
        balanced_accuracy(y, correct),
        float(positive.mean()),
        constant_accuracy(y)["constant_accuracy"],
        is_degenerate(positive),
    )


def evaluate_scores(y_val: np.ndarray, s_val: np.ndarray, y_test: np.ndarray, s_test: np.ndarray) -> list[SplitMetrics]:
    """Validation and test metrics, the threshold chosen on validation (Youden's J).

    Returns:
        The validation metrics, then the test metrics.
    """
    threshold = youden_threshold(y_val, s_val)
    return [split_metrics("val", y_val, s_val, threshold), split_metrics("test", y_test, s_test, threshold)]


def compare_classifiers(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict[str, float]:
    """DeLong's paired test of two classifiers' AUCs on the same cases: AUC difference (a - b), z and p.

    Returns:
        ``{"auc_difference", "z", "p_value"}``.
    """
    diff, z, p = delong_test(y, score_a, score_b)
    return {"auc_difference": float(diff), "z": float(z), "p_value": float(p)}


METRIC_COLUMNS = (
    "recipe",
    "model",
    "split",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "sensitivity",
    "specificity",
    "accuracy",
    "balanced_accuracy",
    "predicted_positive_rate",
    "constant_accuracy",
    "degenerate",
    "train_seconds",
)
#: Columns :func:`competence_columns` adds, per model.
COMPETENCE_COLUMNS = ("best_val_auc", "min_val_auc", "passes_gate", "competent", "reference")


def metrics_rows(name: str, recipe: str, metrics: list[SplitMetrics], train_seconds: float) -> list[dict[str, object]]:
    """Rows of ``classifier_metrics.csv`` for one classifier (one per split).

    Returns:
        One row per split.
    """
    return [
        {
            "recipe": recipe,
            "model": name,
            **{k: getattr(m, k) for k in METRIC_COLUMNS[2:-1]},
            "train_seconds": train_seconds,
        }
        for m in metrics
    ]


def competence_columns(metrics: pd.DataFrame, min_val_auc: float | None, reference: str) -> pd.DataFrame:
    """``metrics`` (rows of :func:`metrics_rows`, a validation and a test row per model) with each model's
    competence: its validation AUC (that of the epoch kept, the best), the gate, whether it passes (always, when the
    gate is None), ``competent``: passes the gate and is not degenerate on the test split, and whether it is the
    study's ``reference`` classifier.

    Returns:
        The table with :data:`COMPETENCE_COLUMNS` added (the same on each of a model's rows).
    """
    out = metrics.copy()
    out["best_val_auc"] = out["model"].map(out[out["split"] == "val"].set_index("model")["auc"])
    out["min_val_auc"] = np.nan if min_val_auc is None else min_val_auc
    out["passes_gate"] = True if min_val_auc is None else out["best_val_auc"] >= min_val_auc
    degenerate = out[out["split"] == "test"].set_index("model")["degenerate"]
    out["competent"] = out["passes_gate"] & ~out["model"].map(degenerate).fillna(False).astype(bool)
    out["reference"] = out["model"] == reference
    return out


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC curve (false-positive rate, true-positive rate), one point per distinct score, from (0, 0).

    Returns:
        (false-positive rates, true-positive rates), both starting at 0.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    thresholds = np.unique(score)[::-1]
    tpr = (score[y][:, None] >= thresholds[None, :]).mean(0)
    fpr = (score[~y][:, None] >= thresholds[None, :]).mean(0)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


@paper_style
def roc_figure(y: np.ndarray, scores: dict[str, np.ndarray], title: str = "Test set ROC curves") -> Figure:
    """ROC curves of several classifiers on the same cases at the column width, told apart by colour, line style and
    marker (:func:`medadv.style.series_style`: readable in greyscale); each legend entry carries the classifier's AUC
    with its DeLong 95% CI (:func:`split_metrics`'s, as in ``classifier_metrics.csv``).

    Returns:
        The figure.
    """
    fig, ax = paper_figure("column", 3.2 + 0.14 * len(scores))
    for k, (name, score) in enumerate(scores.items()):
        fpr, tpr = roc_points(y, score)
        auc, low, high = delong_ci(y, score)
        ax.plot(
            fpr,
            tpr,
            linewidth=1.2,
            label=f"{name} (AUC {auc:.2f}, 95% CI {low:.2f}-{high:.2f})",
            markevery=(0.02 + 0.03 * (k % 4), 0.16),
            **series_style(k),
        )
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8)
    # a margin around [0, 1], so the markers at the corners are drawn whole
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
    ax.set_aspect("equal")
    fig.legend(loc="outside lower center", frameon=False)
    return fig


@paper_style
def training_curves_figure(histories: dict[str, pd.DataFrame]) -> Figure:
    """Training loss and validation AUC per epoch of several classifiers at the text width (line styles and
    markers, greyscale).

    Returns:
        The figure.
    """
    fig, axes = paper_figure("text", 2.7 + 0.15 * -(-len(histories) // 4), 1, 2)
    for k, (name, hist) in enumerate(histories.items()):
        for ax, column in zip(axes, ("loss", "val_auc"), strict=True):
            ax.plot(hist["epoch"], hist[column], linewidth=1.1, label=name, **series_style(k))
    axes[0].set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="validation AUC", title="Validation AUC")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    return fig
