"""Whether the study's reference classifier has learned: the competence gate and the degenerate flag, as every
notebook from 01 on shows them.

Notebook 01 writes each classifier's competence into ``tables/classifier_metrics.csv``
(:func:`medadv.train.evaluate.competence_columns`): its best validation AUC against the profile's gate
``classifier.min_val_auc`` and whether it gives one class to more than 95% of the test images (degenerate). A
reference classifier that fails either is still studied (its numbers are measured and written), but notebook 01 and
every later notebook that reads it show :meth:`Competence.banner`, ``summary.json`` says so, and ``effects.csv`` marks
the effects that read it as not interpretable (:mod:`medadv.effects`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import pandas as pd

from medadv.report import RunContext
from medadv.train.loop import ClassifierConfig

LOG = logging.getLogger(__name__)
METRICS_TABLE = "classifier_metrics"
METRICS_MAKER = "01_classifier_training"

__all__ = ["Competence", "competence_of", "reference_competence"]


@dataclasses.dataclass(frozen=True)
class Competence:
    """One classifier's standing: its validation AUC against the gate, its test-set decisions.

    Attributes:
        model: the classifier's name.
        val_auc: its best validation AUC (the epoch kept).
        min_val_auc: the gate (NaN: no gate).
        passes_gate: ``val_auc >= min_val_auc`` (True without a gate).
        degenerate: it gives one class to more than 95% of the test images.
        positive_rate: the share of test images it calls positive.
        test_auc, test_balanced_accuracy: on the test split.
    """

    model: str
    val_auc: float
    min_val_auc: float
    passes_gate: bool
    degenerate: bool
    positive_rate: float
    test_auc: float
    test_balanced_accuracy: float

    @property
    def competent(self) -> bool:
        """Whether the classifier passes the gate and is not degenerate."""
        return self.passes_gate and not self.degenerate

    def summary(self) -> dict[str, Any]:
        """The standing for ``summary.json``.

        Returns:
            model, val_auc, min_val_auc (None without a gate), passes_gate, degenerate, competent.
        """
        return {
            "model": self.model,
            "val_auc": round(self.val_auc, 4),
            "min_val_auc": None if math.isnan(self.min_val_auc) else self.min_val_auc,
            "passes_gate": self.passes_gate,
            "degenerate": self.degenerate,
            "competent": self.competent,
        }

    def text(self) -> str:
        """The classifier's standing in one paragraph (Markdown): the banner when it is not competent, else its
        validation AUC against the gate.

        Returns:
            The text.
        """
        return self.banner() or (
            f"The reference classifier `{self.model}` has learned: best validation AUC {self.val_auc:.3f} "
            f"({self.gate_words()}), "
            f"test AUC {self.test_auc:.3f}, balanced accuracy {self.test_balanced_accuracy:.3f}, "
            f"{self.positive_rate:.0%} of the test images called positive."
        )

    def gate_words(self) -> str:
        """The competence gate in words: ``gate 0.8``, or ``no gate (classifier.min_val_auc: null)`` (the smoke
        profile's).

        Returns:
            The words.
        """
        return (
            "no gate (classifier.min_val_auc: null)" if math.isnan(self.min_val_auc) else f"gate {self.min_val_auc:g}"
        )

    def banner(self) -> str | None:
        """The warning a notebook shows when the classifier is not competent (Markdown).

        Returns:
            The text, or None when the classifier passes the gate and is not degenerate.
        """
        if self.competent:
            return None
        reasons = []
        if not self.passes_gate:
            reasons.append(
                f"its best validation AUC is {self.val_auc:.3f}, below the profile's competence gate "
                f"`classifier.min_val_auc` = {self.min_val_auc:g} (paper 001's classifier: test AUC 0.82)"
            )
        if self.degenerate:
            share = max(self.positive_rate, 1 - self.positive_rate)
            side = "positive" if self.positive_rate > 0.5 else "negative"
            reasons.append(
                f"it calls {share:.0%} of the test images {side} (degenerate: more than 95% one class), so "
                "its accuracies mostly reflect the class prior"
            )
        return (
            f"**The reference classifier `{self.model}` has not learned enough to be studied**: "
            + "; ".join(reasons)
            + f" (test AUC {self.test_auc:.3f}, balanced accuracy "
            f"{self.test_balanced_accuracy:.3f}). Every number below is measured on it and written as measured, but "
            "it says little about a working classifier: `effects.csv` marks the effects that read it as not "
            "interpretable. Notebook 01 and `benchmarks/learning_curve.py` show how it trained."
        )


def competence_of(metrics: pd.DataFrame, model: str) -> Competence:
    """The standing of ``model`` in a ``classifier_metrics`` table with competence columns.

    Returns:
        :class:`Competence`.

    Raises:
        KeyError: ``model`` has no validation and test rows in the table.
    """
    rows = metrics[metrics["model"] == model].set_index("split")
    val, test = rows.loc["val"], rows.loc["test"]
    gate = float(test["min_val_auc"]) if pd.notna(test["min_val_auc"]) else math.nan
    return Competence(
        model,
        float(val["auc"]),
        gate,
        bool(test["passes_gate"]),
        bool(test["degenerate"]),
        float(test["predicted_positive_rate"]),
        float(test["auc"]),
        float(test["balanced_accuracy"]),
    )


def reference_competence(ctx: RunContext) -> Competence:
    """The standing of the run's reference classifier (``classifier.reference_model``), read from notebook 01's
    ``classifier_metrics.csv``; logged (the notebook shows :meth:`Competence.text`, which warns when it is not
    competent).

    Returns:
        :class:`Competence`; show its ``banner()`` at the top of the notebook.
    """
    reference = ClassifierConfig.from_profile(ctx.profile).reference_model
    found = competence_of(ctx.read_table(METRICS_TABLE, made_by=METRICS_MAKER), reference)
    LOG.info(
        "reference classifier %s: val AUC %.3f (%s), degenerate %s, competent %s",
        reference,
        found.val_auc,
        found.gate_words(),
        found.degenerate,
        found.competent,
    )
    return found
