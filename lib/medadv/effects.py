"""The study's headline effects, declared as data in the profile's ``effects:`` section and evaluated from a run's
tables.

Each effect is declared before anything runs (DESIGN.md: "Declared effects live in the profile's ``effects:``
section, never in code"): the table and rows it reads, the statistic, the expected direction against a threshold
(the study's own where it states one, else the null value), and the source paper's value for comparison. A run's
``tables/effects.csv`` then has one row per effect: the value, a 95% interval, whether it holds, and the paper's value.

The statistics and their intervals:

* ``value``: one row's number with the interval the table already carries (DeLong for the AUCs of paper 001's
  Table 1, written by :mod:`medadv.attacks.gan_attack`).
* ``proportion``: one row's rate as ``k`` of ``n`` (from ``count_column`` / ``total_column``, or the rate times the
  run's number of test images); exact Clopper-Pearson interval.
* ``proportion_difference``: ``model`` minus ``reference`` on the same rows, both rates of the test images; Newcombe's
  hybrid score interval (Newcombe 1998, method 10, from the two Wilson intervals). The tables hold rates, not
  per-image outcomes, so the pairing is not used: for positively correlated outcomes this interval is conservative.
* ``balanced_accuracy``: one row's balanced accuracy (the mean of its ``sensitivity`` and ``specificity`` columns,
  rates of the run's test positives and negatives): the accuracy a constant classifier cannot pass (it scores 0.5;
  :mod:`medadv.stats.accuracy`); MOVER interval from the two Wilson intervals.
* ``balanced_accuracy_difference``: ``model`` minus ``reference``, each a ``balanced_accuracy``; MOVER interval
  (unpaired, conservative).
* ``mean``: the mean of ``column`` over the selected rows (one per image); Clopper-Pearson when the column is 0/1,
  else a percentile bootstrap over the rows.
* ``paired_mean_difference``: mean of ``model - reference`` over rows paired on ``pair_on`` (images, or the
  corruption x severity cells); percentile bootstrap over the pairs.
* ``rank_biserial``: matched-pairs rank-biserial correlation of ``model - reference`` paired on ``pair_on``
  (:func:`medadv.stats.paired.rank_biserial`), with the two-sided Wilcoxon signed-rank p-value
  (:func:`medadv.stats.paired.wilcoxon_paired`; one pre-declared comparison, so no multiplicity correction) and a
  percentile bootstrap interval over the pairs.

``reference`` lists candidate models, first present first: ``[vgg_erm_matched, vgg_erm]`` compares a robust recipe
with its matched-budget ERM twin when the run trained one, and with ``vgg_erm`` otherwise; ``effects.csv`` names the
reference used. An effect whose model is not in the run's table is reported with an empty value and a note, never
dropped. The bootstrap (scipy's) is seeded by the run's seed, so two runs with the same seed write identical tables.

**Interpretable.** An effect is only as good as the classifiers it reads. Each row says which classifiers those are
(``model`` and ``reference``; for a table without a model column, paper 001's Table 1, the run's reference
classifier) and ``interpretable`` is false when any of them is not competent in notebook 01's
``classifier_metrics.csv`` (below the gate ``classifier.min_val_auc`` or degenerate:
:func:`medadv.train.evaluate.competence_columns`); ``competence`` says which and why. The value is still given.

**Masking suspected.** An effect that reads a robustness table (:data:`ROBUSTNESS_TABLES`) is only as good as the
attacks behind it. ``masking_suspected`` is true when a classifier it reads failed one of notebook 03's
gradient-masking checks (``attack_sanity.csv``, :mod:`medadv.attacks.masking`): its robust accuracy may be masked
gradients rather than robustness. ``masking`` names the classifier and the checks it failed. For an effect that reads
no robustness table the cell is empty (the checks do not apply). The value is still given.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from medadv.attacks.masking import masking_suspected
from medadv.config import Profile, ProfileSection, profile_from_dict, section_config
from medadv.core import read_json
from medadv.errors import ConfigError, RunError
from medadv.layout import RunLayout
from medadv.stats.accuracy import balanced_interval, difference_interval, wilson
from medadv.stats.binomial import clopper_pearson
from medadv.stats.paired import rank_biserial, wilcoxon_paired

SECTION = "effects"
LEVEL = 0.95
N_RESAMPLES = 2000
EXPECTED = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
STATISTICS = (
    "value",
    "proportion",
    "proportion_difference",
    "balanced_accuracy",
    "balanced_accuracy_difference",
    "mean",
    "paired_mean_difference",
    "rank_biserial",
)
PAIRED = ("proportion_difference", "balanced_accuracy_difference", "paired_mean_difference", "rank_biserial")
EFFECT_COLUMNS = (
    "effect",
    "value",
    "ci_low",
    "ci_high",
    "expected",
    "holds",
    "interpretable",
    "paper_value",
    "paper",
    "statistic",
    "model",
    "reference",
    "n",
    "p_value",
    "ci_method",
    "reads",
    "competence",
    "masking_suspected",
    "masking",
    "note",
)
#: The per-class rates a balanced accuracy is made of (columns of the accuracy tables).
CLASS_RATE_COLUMNS = ("sensitivity", "specificity")
METRICS_TABLE = "classifier_metrics"
#: Notebook 03's gradient-masking checks (:func:`medadv.attacks.masking.masking_checks`), and the tables whose
#: numbers they qualify: an effect that reads one of these carries the checks of the models it reads.
SANITY_TABLE = "attack_sanity"
ROBUSTNESS_TABLES = ("robustness_by_recipe", "robustness_curves", "robustness_worst_case")
#: The tables an effect may read (``table:``), each with the notebook that writes it: every table of notebooks 00-03
#: and those notebook 04 writes before it evaluates the effects. Notebooks 05 and 06 run after the evaluation, so
#: their tables cannot be read. tests/test_effects.py checks this list against the notebooks' ``save_table`` calls.
EFFECT_TABLES = {
    "cohort_summary": "00_data_prep",
    "split_leakage_check": "00_data_prep",
    "classifier_metrics": "01_classifier_training",
    "classifier_delong_tests": "01_classifier_training",
    "adversarial_index": "02_gan_training",
    "education_index": "02_gan_training",
    "gan_fidelity": "02_gan_training",
    "gan_erm_flip_rate": "02_gan_training",
    "gan_change_localisation": "02_gan_training",
    "gan_training_history": "02_gan_training",
    "gan_attack_table": "03_attack_evaluation",
    "gan_attack_by_recipe": "03_attack_evaluation",
    "robustness_by_recipe": "03_attack_evaluation",
    "robustness_curves": "03_attack_evaluation",
    "robustness_worst_case": "03_attack_evaluation",
    "attack_sanity": "03_attack_evaluation",
    "corruption_accuracy": "03_attack_evaluation",
    "alignment_scores": "04_gradcam_alignment",
    "alignment_tests": "04_gradcam_alignment",
    "fgsm_gradcam_shift": "04_gradcam_alignment",
    "fgsm_gradcam_shift_summary": "04_gradcam_alignment",
    "explanation_attack": "04_gradcam_alignment",
    "explanation_attack_summary": "04_gradcam_alignment",
}


@dataclasses.dataclass(frozen=True)
class Effect:
    """One declared effect (a key of the profile's ``effects:`` section).

    Attributes:
        name: the effect's name (its key in the section).
        paper: the source paper's number (``"001"``).
        claim: the claim in words.
        table: the run table it reads (``tables/<table>.csv``).
        statistic: one of :data:`STATISTICS` (see the module docstring).
        column: the table's column that holds the number.
        expected: ``>``, ``>=``, ``<`` or ``<=``: the effect holds when ``value expected threshold``.
        threshold: the study's stated threshold, or the null value (0 for a difference, 0.5 for an AUC).
        rows: column -> value filters that select the rows (numbers match to 4 significant digits).
        model: the model the effect is about (rows with ``model == model``); None for tables without models.
        reference: the model it is compared with, first present in the table first (paired statistics only).
        pair_on: the columns that pair a model's rows with the reference's.
        count_column / total_column: the columns with ``k`` and ``n`` of a ``proportion`` (else the test images).
        max_p: for ``rank_biserial``, the effect also needs ``p < max_p`` (paper 000: p < 0.01).
        paper_value: the paper's value for comparison (None where the paper gives no number).
    """

    name: str
    paper: str
    claim: str
    table: str
    statistic: str
    column: str
    expected: str
    threshold: float = 0.0
    rows: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model: str | None = None
    reference: tuple[str, ...] = ()
    pair_on: tuple[str, ...] = ()
    count_column: str | None = None
    total_column: str | None = None
    max_p: float | None = None
    paper_value: float | None = None

    def __post_init__(self) -> None:
        where = f"profile section effects.{self.name}"
        if self.table not in EFFECT_TABLES:
            raise ConfigError(
                f"{where}: table is {self.table!r}, which no notebook writes before notebook 04 evaluates "
                f"the effects; an effect reads one of {sorted(EFFECT_TABLES)} (tables/<name>.csv of a "
                "run). Fix the table name."
            )
        if self.statistic not in STATISTICS:
            raise ConfigError(f"{where}: statistic is {self.statistic!r}; expected one of {STATISTICS}.")
        if self.expected not in EXPECTED:
            raise ConfigError(f"{where}: expected is {self.expected!r}; expected one of {tuple(EXPECTED)}.")
        if not isinstance(self.rows, Mapping):
            raise ConfigError(f"{where}: rows is {type(self.rows).__name__}; expected a mapping column: value.")
        if (self.statistic in PAIRED) != bool(self.reference):
            need = "needs" if self.statistic in PAIRED else "takes no"
            raise ConfigError(f"{where}: statistic {self.statistic} {need} a reference model list.")
        if self.statistic in ("paired_mean_difference", "rank_biserial") and not self.pair_on:
            raise ConfigError(f"{where}: statistic {self.statistic} needs pair_on (the columns that pair the rows).")
        if (self.count_column is None) != (self.total_column is None):
            raise ConfigError(f"{where}: count_column and total_column go together.")
        object.__setattr__(self, "rows", types.MappingProxyType(dict(self.rows)))

    @property
    def expected_text(self) -> str:
        """``"> 0"``, ``">= 0.6"``: the direction and threshold as written in ``effects.csv``."""
        return f"{self.expected} {self.threshold:g}"


@dataclasses.dataclass(frozen=True)
class EffectsConfig(ProfileSection, section=SECTION):
    """The profile's ``effects:`` section: one :class:`Effect` per key (the key is the effect's name), in the order
    declared.

    Attributes:
        effects: the declared effects; empty when the profile declares none.
    """

    effects: tuple[Effect, ...] = ()

    @classmethod
    def section_keys(cls) -> None:
        """The section's keys are the effects' own names, so none is misspelt; each effect's keys are checked.

        Returns:
            ``None``.
        """
        return None

    @classmethod
    def from_section(cls, raw: Mapping[str, Any], where: str | None = None) -> EffectsConfig:
        """The section's plain mapping (effect name -> its settings) as the declared effects.

        Returns:
            The config, one :class:`Effect` per key.

        Raises:
            ConfigError: a section or an effect that is not a mapping, a ``name`` field, or an effect's unknown key
                or refused value (named ``effects.NAME.KEY``).
        """
        where = where or SECTION
        if not isinstance(raw, Mapping):
            raise ConfigError(f"profile section {where!r} is {type(raw).__name__}; expected a mapping.")
        effects = []
        for name, settings in raw.items():
            if not isinstance(settings, Mapping):
                raise ConfigError(f"profile section {where}.{name} is {type(settings).__name__}; expected a mapping.")
            if "name" in settings:
                raise ConfigError(f"profile section {where}.{name}: 'name' is the key itself; remove the name field.")
            effects.append(section_config(Effect, {"name": str(name), **settings}, f"{where}.{name}"))
        return cls(effects=tuple(effects))


def declared_effects(profile: Profile) -> list[Effect]:
    """The profile's ``effects:`` section as :class:`Effect` objects, in the order declared
    (:meth:`EffectsConfig.from_profile`).

    Returns:
        One :class:`Effect` per key; an empty list when the profile declares none.
    """
    return list(EffectsConfig.from_profile(profile).effects)


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    """The run's test split as the effects count it: its positive and negative images (the denominators of every
    rate in the accuracy tables)."""

    positives: int
    negatives: int

    @property
    def n(self) -> int:
        """The number of test images."""
        return self.positives + self.negatives

    @classmethod
    def of(cls, labels: Sequence[int] | np.ndarray) -> SplitCounts:
        """The test set of these labels (0/1).

        Returns:
            The counts.
        """
        y = np.asarray(labels)
        return cls(int((y == 1).sum()), int((y == 0).sum()))


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A statistic's value with its interval, the cases behind it, a p-value where the statistic has one."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    ci_method: str
    p_value: float = math.nan


def _matches(series: pd.Series, wanted: Any) -> pd.Series:
    if isinstance(wanted, bool) or not isinstance(wanted, (int, float)):
        return series.astype(str) == str(wanted)
    values = pd.to_numeric(series, errors="coerce")
    return pd.Series(np.isclose(values, float(wanted), rtol=1e-4, atol=1e-12), index=series.index)


def rate_columns(column: str) -> tuple[str, str]:
    """The per-class rate columns a balanced-accuracy column is the mean of: ``sensitivity`` and ``specificity``
    beside ``balanced_accuracy``, ``worst_case_sensitivity`` and ``worst_case_specificity`` beside
    ``worst_case_balanced_accuracy`` (the prefix carries over).

    Returns:
        (sensitivity column, specificity column).
    """
    prefix = column[: -len("balanced_accuracy")] if column.endswith("balanced_accuracy") else ""
    sens, spec = CLASS_RATE_COLUMNS
    return prefix + sens, prefix + spec


def _needed_columns(effect: Effect) -> list[str]:
    rates = list(rate_columns(effect.column)) if effect.statistic.startswith("balanced_accuracy") else []
    return [effect.column, *rates]


def select_rows(table: pd.DataFrame, effect: Effect, model: str | None) -> pd.DataFrame:
    """The rows of ``table`` that ``effect.rows`` (and ``model``, when given) select.

    Returns:
        The selected rows (possibly none); a :class:`ConfigError` names a filter column the table lacks.
    """
    filters = dict(effect.rows) | ({"model": model} if model is not None else {})
    missing = sorted(set(filters) - set(table.columns)) + [c for c in _needed_columns(effect) if c not in table.columns]
    if missing:
        raise ConfigError(
            f"effect {effect.name}: table {effect.table} has no column(s) {missing}; "
            f"its columns are {list(table.columns)}. Fix the effect in the profile's effects section."
        )
    keep = pd.Series(True, index=table.index)
    for column, wanted in filters.items():
        keep &= _matches(table[column], wanted)
    return table[keep]


def _one(rows: pd.DataFrame, effect: Effect) -> pd.Series:
    if len(rows) != 1:
        raise ConfigError(
            f"effect {effect.name}: rows {dict(effect.rows)} select {len(rows)} rows of table "
            f"{effect.table}; statistic {effect.statistic} needs exactly one. Narrow the rows filter."
        )
    return rows.iloc[0]


def _count(effect: Effect, column: str, value: float, n: int) -> int:
    """``value`` as a count of ``n`` images; a :class:`ConfigError` when it is not a rate of ``n``."""
    k = int(round(value * n))
    if n == 0 or abs(k / n - value) > 1e-4:
        raise ConfigError(
            f"effect {effect.name}: {column} = {value} is not a rate of the run's {n} test images of "
            f"that kind; give count_column and total_column for this table."
        )
    return k


def _counts(row: pd.Series, effect: Effect, test: SplitCounts) -> tuple[int, int]:
    if effect.count_column is not None:
        return int(row[effect.count_column]), int(row[effect.total_column])
    return _count(effect, effect.column, float(row[effect.column]), test.n), test.n


def _balanced(row: pd.Series, effect: Effect, test: SplitCounts) -> tuple[float, float, float]:
    """One row's balanced accuracy from its per-class rates, with the MOVER interval."""
    sens, spec = (float(row[c]) for c in rate_columns(effect.column))
    if not math.isclose((sens + spec) / 2, float(row[effect.column]), abs_tol=1e-4):
        raise ConfigError(
            f"effect {effect.name}: {effect.column} = {row[effect.column]} is not the mean of "
            f"sensitivity {sens} and specificity {spec}; statistic {effect.statistic} reads a balanced "
            "accuracy column."
        )
    return balanced_interval(
        _count(effect, "sensitivity", sens, test.positives),
        test.positives,
        _count(effect, "specificity", spec, test.negatives),
        test.negatives,
    )


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, level: float = LEVEL) -> tuple[float, float, float]:
    """``k1/n1 - k2/n2`` with Newcombe's hybrid score interval (Newcombe, Stat. Med. 17, 1998, method 10).

    Returns:
        (difference, low, high), built from the two Wilson score intervals.
    """
    return difference_interval(wilson(k1, n1, level), wilson(k2, n2, level))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, statistic: Any, seed: int, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the rows of ``values`` (scipy's ``bootstrap``).

    Returns:
        (low, high); the value itself twice when every resample gives the same number, NaN for fewer than 2 rows.
    """
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        return math.nan, math.nan
    if np.all(arr == arr[0]):
        v = float(statistic(arr))
        return v, v
    res = stats.bootstrap(
        (arr,),
        statistic,
        n_resamples=N_RESAMPLES,
        confidence_level=level,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _paired(model_rows: pd.DataFrame, ref_rows: pd.DataFrame, effect: Effect) -> tuple[np.ndarray, np.ndarray]:
    keys = list(effect.pair_on)
    merged = model_rows[keys + [effect.column]].merge(ref_rows[keys + [effect.column]], on=keys, suffixes=("_m", "_r"))
    merged = merged.dropna(subset=[f"{effect.column}_m", f"{effect.column}_r"])
    return merged[f"{effect.column}_m"].to_numpy(float), merged[f"{effect.column}_r"].to_numpy(float)


def _single(effect: Effect, rows: pd.DataFrame, ref_rows: pd.DataFrame | None, test: SplitCounts) -> Estimate:
    """The statistics that read one row per model (and per reference)."""
    s = effect.statistic
    if s == "value":
        row = _one(rows, effect)
        return Estimate(float(row[effect.column]), float(row["ci_low"]), float(row["ci_high"]), 1, "as in the table")
    if s == "proportion":
        k, n = _counts(_one(rows, effect), effect, test)
        return Estimate(k / n, *clopper_pearson(k, n, LEVEL), n, "exact binomial (Clopper-Pearson)")
    if s == "proportion_difference":
        (k1, n1), (k2, n2) = _counts(_one(rows, effect), effect, test), _counts(_one(ref_rows, effect), effect, test)
        return Estimate(*newcombe_difference(k1, n1, k2, n2), n1, "Newcombe hybrid score (unpaired, conservative)")
    here = _balanced(_one(rows, effect), effect, test)
    if s == "balanced_accuracy":
        return Estimate(*here, test.n, "MOVER from the classes' Wilson intervals")
    return Estimate(
        *difference_interval(here, _balanced(_one(ref_rows, effect), effect, test)),
        test.n,
        "MOVER from the balanced accuracies' intervals (unpaired, conservative)",
    )


def estimate(
    effect: Effect, rows: pd.DataFrame, ref_rows: pd.DataFrame | None, test: SplitCounts, seed: int
) -> Estimate:
    """The effect's statistic on its selected rows (and the reference's), with its interval (module docstring).

    Returns:
        An :class:`Estimate`; NaN value when the rows hold no finite number.
    """
    s = effect.statistic
    if s in ("value", "proportion", "proportion_difference", "balanced_accuracy", "balanced_accuracy_difference"):
        return _single(effect, rows, ref_rows, test)
    if s == "mean":
        x = rows[effect.column].astype(float).dropna().to_numpy()
        if len(x) and np.isin(x, (0.0, 1.0)).all():
            k = int(x.sum())
            return Estimate(k / len(x), *clopper_pearson(k, len(x), LEVEL), len(x), "exact binomial (Clopper-Pearson)")
        return Estimate(
            float(np.mean(x)) if len(x) else math.nan,
            *bootstrap_ci(x, np.mean, seed),
            len(x),
            "percentile bootstrap over rows",
        )
    a, b = _paired(rows, ref_rows, effect)
    d = a - b
    if s == "paired_mean_difference":
        return Estimate(
            float(np.mean(d)) if len(d) else math.nan,
            *bootstrap_ci(d, np.mean, seed),
            len(d),
            "percentile bootstrap over pairs",
        )
    p = wilcoxon_paired(a, b).p_value if np.any(d != 0) else 1.0
    return Estimate(
        rank_biserial(d) if len(d) else math.nan,
        *bootstrap_ci(d, rank_biserial, seed),
        len(d),
        "percentile bootstrap over pairs",
        float(p),
    )


def _reads(effect: Effect, model: str | None, reference: str | None) -> str:
    filters = ", ".join(f"{k}={v}" for k, v in effect.rows.items())
    where = f"{effect.table}[{filters}]" if filters else effect.table
    who = f" {model}" if model else ""
    against = f" vs {reference}" if reference else ""
    return f"{where}.{effect.column}{who}{against}"


def _holds(effect: Effect, est: Estimate) -> bool | None:
    if not math.isfinite(est.value):
        return None
    ok = EXPECTED[effect.expected](est.value, effect.threshold)
    if effect.max_p is not None:
        ok = ok and math.isfinite(est.p_value) and est.p_value < effect.max_p
    return bool(ok)


def competence_reasons(metrics: pd.DataFrame | None) -> tuple[dict[str, str], str | None]:
    """Why each classifier of notebook 01's ``classifier_metrics`` table is not competent ("" when it is), and the
    run's reference classifier.

    Returns:
        (model -> reason, the reference classifier's name); ({}, None) without a table.
    """
    if metrics is None:
        return {}, None
    reasons = {}
    for model, row in metrics[metrics["split"] == "test"].set_index("model").iterrows():
        why = []
        if not bool(row["passes_gate"]):
            why.append(
                f"{model} below the competence gate (validation AUC {row['best_val_auc']:.3f} < {row['min_val_auc']:g})"
            )
        if bool(row["degenerate"]):
            why.append(
                f"{model} degenerate ({max(row['predicted_positive_rate'], 1 - row['predicted_positive_rate']):.0%}"
                " of the test images one class)"
            )
        reasons[str(model)] = "; ".join(why)
    reference = metrics.loc[metrics["reference"].astype(bool), "model"]
    return reasons, (str(reference.iloc[0]) if len(reference) else None)


def masking_reasons(sanity: pd.DataFrame | None) -> dict[str, str] | None:
    """The gradient-masking checks each model of notebook 03's ``attack_sanity`` table failed.

    Returns:
        model -> its failed checks joined by ``+`` ("" when it passed every one); None without a table.
    """
    if sanity is None:
        return None
    flags = masking_suspected(sanity)
    return dict(zip(flags["model"].astype(str), flags["failed_checks"].fillna("").astype(str), strict=True))


def _masking(effect: Effect, read: list[str | None], masking: dict[str, str] | None) -> dict[str, Any]:
    """The ``masking_suspected`` and ``masking`` cells of an effect: NA for an effect that reads no robustness table."""
    if effect.table not in ROBUSTNESS_TABLES:
        return {"masking_suspected": None, "masking": ""}
    if masking is None:
        return {"masking_suspected": None, "masking": f"not checked: no {SANITY_TABLE} table"}
    failed = [f"{m} failed {masking[m]}" for m in read if m and masking.get(m)]
    return {"masking_suspected": bool(failed), "masking": "; ".join(failed)}


def evaluate_effect(
    effect: Effect,
    table: pd.DataFrame,
    test: SplitCounts,
    seed: int,
    competence: tuple[dict[str, str], str | None] = ({}, None),
    masking: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One row of ``effects.csv`` for ``effect`` on its table.

    Args:
        competence: :func:`competence_reasons` of the run (no competence check without it).
        masking: :func:`masking_reasons` of the run: an effect that reads a robustness table
            (:data:`ROBUSTNESS_TABLES`) is ``masking_suspected`` when a model it reads failed a check, and ``masking``
            names the model and the checks (NA and a note without the checks).

    Returns:
        A dict with the :data:`EFFECT_COLUMNS`; value NaN, holds None and a note when a model is absent or the rows
        it reads hold no finite value (alignment scores on a data set without lesion masks); a note too when the
        reference is not the first the effect declares (``vgg_erm`` for ``vgg_erm_matched``: not in the table).
    """
    present = set(table["model"].astype(str)) if "model" in table.columns else set()
    reference = next((r for r in effect.reference if r in present), None)
    absent = [m for m in ([effect.model] if effect.model else []) if m not in present]
    if effect.reference and reference is None:
        absent.append(" or ".join(effect.reference))
    reasons, run_reference = competence
    read = [m for m in (effect.model, reference) if m] if "model" in table.columns else [run_reference]
    flags = "; ".join(reasons[m] for m in read if m in reasons and reasons[m])
    row = {
        "effect": effect.name,
        "expected": effect.expected_text,
        "paper_value": effect.paper_value,
        "paper": effect.paper,
        "statistic": effect.statistic,
        "model": effect.model,
        "reference": reference,
        "reads": _reads(effect, effect.model, reference),
        "interpretable": not flags,
        "competence": flags,
        **_masking(effect, read, masking),
    }
    if absent:
        return row | {
            "value": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "holds": None,
            "n": 0,
            "p_value": math.nan,
            "ci_method": "",
            "note": f"not evaluated: {', '.join(absent)} not in {effect.table}",
        }
    rows = select_rows(table, effect, effect.model)
    ref_rows = select_rows(table, effect, reference) if reference else None
    if rows.empty or (ref_rows is not None and ref_rows.empty):
        raise ConfigError(
            f"effect {effect.name}: rows {dict(effect.rows)} select nothing in table {effect.table}; "
            f"check the filter values against the table."
        )
    est = estimate(effect, rows, ref_rows, test, seed)
    notes = []
    if not np.isfinite(pd.to_numeric(rows[effect.column], errors="coerce")).any():
        # a data set without lesion masks scores no map against a lesion: every alignment score is NaN
        notes.append(f"not evaluated: no finite {effect.column} in the rows it reads of {effect.table}")
    if reference is not None and reference != effect.reference[0]:
        notes.append(f"reference {reference}: {effect.reference[0]}, declared first, is not in {effect.table}")
    return row | dataclasses.asdict(est) | {"holds": _holds(effect, est), "note": "; ".join(notes)}


def evaluate_effects(
    effects: Sequence[Effect],
    tables: Mapping[str, pd.DataFrame],
    test: SplitCounts,
    seed: int,
    metrics: pd.DataFrame | None = None,
    sanity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every declared effect on a run's tables.

    Args:
        effects: the declared effects (:func:`declared_effects`).
        tables: table name -> its DataFrame (every table an effect reads).
        test: the run's test positives and negatives (the denominators of the accuracy tables).
        seed: seeds the bootstrap (the run's seed).
        metrics: notebook 01's ``classifier_metrics`` with its competence columns, for ``interpretable``.
        sanity: notebook 03's ``attack_sanity`` (the gradient-masking checks), for ``masking_suspected``.

    Returns:
        ``effects.csv``'s table: one row per effect, columns :data:`EFFECT_COLUMNS`.
    """
    competence, masking = competence_reasons(metrics), masking_reasons(sanity)
    rows = [evaluate_effect(e, tables[e.table], test, seed, competence, masking) for e in effects]
    out = pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))
    return out.astype({"holds": "boolean", "interpretable": "boolean", "masking_suspected": "boolean", "n": "Int64"})


def load_tables(run_dir: str | Path, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The run's ``tables/<name>.csv`` for each name; a :class:`RunError` names a missing one.

    Returns:
        name -> DataFrame.
    """
    out = {}
    for name in dict.fromkeys(names):
        path = RunLayout(run_dir).table(name)
        if not path.is_file():
            maker = EFFECT_TABLES.get(name, "that writes it")
            raise RunError(
                f"{path} is missing: an effect of the profile reads it; run notebook {maker} for this run folder first."
            )
        out[name] = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return out


def evaluate_run(run_dir: str | Path) -> pd.DataFrame:
    """The effects declared in a run folder's ``config.json``, evaluated from its tables (what notebook 04 saves as
    ``tables/effects.csv``; anyone can recompute it from the folder), with ``interpretable`` read from notebook 01's
    ``classifier_metrics.csv``.

    Returns:
        The effects table of :func:`evaluate_effects`.
    """
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    config = read_json(layout.config)
    if config is None:
        raise RunError(f"{layout.config} is missing; {run_dir} is not a run folder.")
    profile = profile_from_dict(config["profile"])
    effects = declared_effects(profile)
    cohort = pd.read_csv(layout.cohort, usecols=["split", "label"])
    sanity = [SANITY_TABLE] if any(e.table in ROBUSTNESS_TABLES for e in effects) else []
    tables = load_tables(run_dir, [e.table for e in effects] + [METRICS_TABLE] + sanity)
    return evaluate_effects(
        effects,
        tables,
        SplitCounts.of(cohort.loc[cohort["split"] == "test", "label"]),
        profile.seed,
        tables[METRICS_TABLE],
        tables.get(SANITY_TABLE),
    )
