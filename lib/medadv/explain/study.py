"""The studies of notebook 04: alignment of attribution maps with lesion masks across standard and robust models
(paper 000), and the manipulation of Grad-CAM maps by small perturbations: paper 004's own experiment lives in
:mod:`medadv.explain.fgsm_shift`, the targeted attack of Ghorbani et al. here (:func:`explanation_attack`).

Each function takes loaded models and arrays and returns a tidy table; the notebook saves them, plots them and
narrates. Settings come from the profile's ``explain`` section (:class:`ExplainConfig`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from medadv.attacks.gradient import check_linf_budgets
from medadv.config import ProfileSection, check_ranges
from medadv.core import in_notebook_progress
from medadv.data.images import SplitArrays, load_split
from medadv.errors import ConfigError, DataError
from medadv.explain.alignment import metric_functions, score_all, topk_coverage
from medadv.explain.attribute import METHODS, attribute
from medadv.explain.manipulation import manipulate_gradcam, peak_position, topk_region
from medadv.models.inference import predicted_labels
from medadv.models.multitask import MULTITASK_NAME
from medadv.stats.paired import holm, wilcoxon_paired

log = logging.getLogger(__name__)

ALL_METRICS = tuple(metric_functions())
POSITIVE = 1


@dataclasses.dataclass(frozen=True)
class ExplainConfig(ProfileSection, section="explain"):
    """The profile's ``explain`` section.

    Attributes:
        models: trained classifiers to compare (names of notebook 01's checkpoints).
        reference: the standard (ERM) model every other model is tested against (paper 000).
        methods: attribution methods (:data:`medadv.explain.attribute.METHODS`).
        metrics: alignment metrics (:func:`medadv.explain.alignment.metric_functions`).
        primary_metric: the metric of the headline numbers and the box plot.
        n_images: test positives with a lesion mask to study (0 = all of them).
        pointing_tolerance: pointing-game tolerance in pixels.
        ig_steps: integrated-gradients steps; occlusion_window, occlusion_stride: occluding square, pixels.
        batch_size: images per attribution call.
        attack_models: models whose Grad-CAM the targeted attack of Ghorbani et al. moves (the stronger attack,
            different from paper 004's).
        attack_eps: its L-inf budgets in [0, 1] pixel units; attack_steps: its iterations.
        fgsm_models: models of paper 004's own experiment (:mod:`medadv.explain.fgsm_shift`; the paper: its
            multi-task network and VGG).
        fgsm_step_grey, fgsm_steps: paper 004's iterative FGSM: steps of 0.1 grey level of 255 (0.1/255 in [0, 1]
            units), 25 of them.
        attack_topk: top-k fraction of the original map protected by the attack and used for the top-k overlap.
        softplus_beta: sharpness of the softplus copy the attack differentiates (Ghorbani et al. 2019).
        flip_weight: weight of the cross-entropy ascent in the label-flipping variant.
        attack_metric: alignment metric reported before and after the attack.
        gallery_images: images in the map gallery and the manipulation figure.

    Defaults: paper 004's ``fgsm_step_grey`` and ``fgsm_steps``; the models, methods, metrics and every other default
    are the kit's choices.
    """

    models: tuple[str, ...] = ("vgg_erm", "vgg_pgd_at", "vgg_rtda", MULTITASK_NAME)
    reference: str = "vgg_erm"
    methods: tuple[str, ...] = METHODS
    metrics: tuple[str, ...] = ALL_METRICS
    primary_metric: str = "relevance_mass_accuracy"
    n_images: int = 0
    pointing_tolerance: float = 2.0
    ig_steps: int = 32
    occlusion_window: int = 8
    occlusion_stride: int = 4
    batch_size: int = 32
    attack_models: tuple[str, ...] = ("vgg_erm", MULTITASK_NAME)
    fgsm_models: tuple[str, ...] = (MULTITASK_NAME, "vgg_erm")
    fgsm_step_grey: float = 0.1
    fgsm_steps: int = 25
    attack_eps: tuple[float, ...] = (0.01, 0.03)
    attack_steps: int = 25
    attack_topk: float = 0.05
    softplus_beta: float = 10.0
    flip_weight: float = 1.0
    attack_metric: str = "relevance_mass_accuracy"
    gallery_images: int = 4

    def __post_init__(self) -> None:
        bad_methods = sorted(set(self.methods) - set(METHODS))
        bad_metrics = sorted(set(self.metrics) - set(ALL_METRICS))
        if bad_methods or bad_metrics:
            raise ConfigError(
                f"explain: unknown methods {bad_methods} / metrics {bad_metrics}; methods are {list(METHODS)}, "
                f"metrics {list(ALL_METRICS)}."
            )
        if self.reference not in self.models:
            raise ConfigError(f"explain.reference {self.reference!r} is not among explain.models {list(self.models)}.")
        for key in ("attack_models", "fgsm_models"):
            if not set(getattr(self, key)) <= set(self.models):
                raise ConfigError(
                    f"explain.{key} {list(getattr(self, key))} must be among explain.models {list(self.models)}."
                )
        if not self.fgsm_step_grey > 0 or self.fgsm_steps < 1:
            raise ConfigError(
                f"explain: fgsm_step_grey={self.fgsm_step_grey}, fgsm_steps={self.fgsm_steps}; expected a "
                "positive step in grey levels of 255 (paper 004: 0.1) and at least one step (25)."
            )
        if self.primary_metric not in self.metrics or self.attack_metric not in ALL_METRICS:
            raise ConfigError(
                f"explain.primary_metric {self.primary_metric!r} must be one of explain.metrics and "
                f"explain.attack_metric {self.attack_metric!r} one of {list(ALL_METRICS)}."
            )
        if self.n_images < 0 or self.attack_steps < 1:
            raise ConfigError(
                f"explain: n_images={self.n_images}, attack_steps={self.attack_steps}; expected "
                "n_images >= 0 and attack_steps >= 1."
            )
        check_linf_budgets({"explain.attack_eps": self.attack_eps})
        check_ranges(
            "explain",
            self,
            at_least={
                "pointing_tolerance": 0,
                "ig_steps": 1,
                "occlusion_window": 1,
                "occlusion_stride": 1,
                "batch_size": 1,
                "gallery_images": 0,
                "flip_weight": 0,
            },
            above={"softplus_beta": 0, "attack_topk": 0},
        )
        if self.attack_topk > 1:
            raise ConfigError(
                f"explain.attack_topk is {self.attack_topk}; expected a share of the map in (0, 1] (0.05: its top 5%)."
            )
        if not self.methods:
            raise ConfigError(f"explain.methods is empty; name at least one attribution method of {list(METHODS)}.")


def study_images(
    cohort: pd.DataFrame, root: str | Path, image_size: tuple[int, int], n_images: int, seed: int
) -> SplitArrays:
    """The test positives with a lesion mask (paper 000 scored maps against annotated regions), all of them or a
    seeded sample of ``n_images``, in image-id order.

    A data set without lesion masks (BreastMNIST, PneumoniaMNIST) gives its test positives with empty masks: their
    maps are made and attacked as any others, and every score against a lesion is NaN (a warning says so), so that
    notebook 04's attacks on the maps and the later notebooks run on it. An annotated positive whose mask is empty
    is left out with a warning.

    Returns:
        The images, masks and rows of the chosen positives.

    Raises:
        DataError: the cohort has lesion masks but none of its test positives has a non-empty one.
    """
    positives = cohort[(cohort["split"] == "test") & (cohort["label"] == POSITIVE)]
    annotated = bool((cohort["mask_path"] != "").any())
    rows = positives[positives["mask_path"] != ""] if annotated else positives
    if annotated and len(rows) == 0:
        raise DataError(
            f"none of the cohort's {len(positives)} test positives has a lesion mask, though "
            f"{int((cohort['mask_path'] != '').sum())} of its images have one; alignment needs annotated test "
            "positives. Check the data set's masks, or draw another split (another seed)."
        )
    if not annotated:
        log.warning(
            "the data set has no lesion masks: the maps of its %d test positives are made and attacked, but every "
            "score against a lesion (alignment, the attacks' alignment before and after) is NaN",
            len(rows),
        )
    if 0 < n_images < len(rows):
        rows = rows.sample(n=n_images, random_state=seed)
    arrays = load_split(rows.sort_values("image_id"), root, image_size)
    keep = arrays.masks.reshape(len(rows), -1).any(axis=1) | (not annotated)
    if not keep.any():
        raise DataError(
            f"every one of the {len(rows)} annotated test positives has an empty lesion mask; check the mask files."
        )
    if not keep.all():
        log.warning(
            "%d annotated test positive(s) have an empty lesion mask and are left out: %s",
            int((~keep).sum()),
            arrays.rows.loc[~keep, "image_id"].tolist()[:5],
        )
    return SplitArrays(
        arrays.images[keep],
        arrays.labels[keep],
        arrays.masks[keep],
        arrays.has_mask[keep],
        arrays.rows[keep].reset_index(drop=True),
    )


def attribution_maps(
    models: Mapping[str, nn.Module], images: np.ndarray, cfg: ExplainConfig
) -> dict[tuple[str, str], np.ndarray]:
    """Maps (N, H, W) of every model x method for the positive class, keyed (model, method).

    Returns:
        ``{(model, method): maps (N, H, W)}``.
    """
    x = torch.as_tensor(images)
    pairs = [(m, meth) for m in models for meth in cfg.methods]
    out = {}
    for name, method in tqdm(pairs, desc="attributions", disable=not in_notebook_progress()):
        out[name, method] = attribute(
            models[name],
            x,
            method,
            target=POSITIVE,
            batch_size=cfg.batch_size,
            ig_steps=cfg.ig_steps,
            occlusion_window=cfg.occlusion_window,
            occlusion_stride=cfg.occlusion_stride,
        )
    return out


def alignment_scores(
    maps: Mapping[tuple[str, str], np.ndarray], masks: np.ndarray, image_ids: list[str], cfg: ExplainConfig
) -> pd.DataFrame:
    """Long table ``image_id, model, method, metric, score`` of every map against its lesion mask.

    Returns:
        The long table, one row per image, model, method and metric.
    """
    masks = np.asarray(masks).reshape(len(image_ids), *np.asarray(masks).shape[-2:])
    frames = []
    for (model, method), sal in maps.items():
        for metric, scores in score_all(sal, masks, cfg.metrics, cfg.pointing_tolerance).items():
            frames.append(
                pd.DataFrame(
                    {"image_id": image_ids, "model": model, "method": method, "metric": metric, "score": scores}
                )
            )
    return pd.concat(frames, ignore_index=True)


#: The columns of :func:`alignment_tests`.
TEST_COLUMNS = (
    "metric",
    "method",
    "model",
    "reference",
    "n",
    "mean_model",
    "mean_reference",
    "median_difference",
    "statistic",
    "p_value",
    "rank_biserial",
    "p_holm",
)


def alignment_tests(scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Paired two-sided Wilcoxon signed-rank tests of every model against ``reference`` on the same images, per
    method and metric, with the matched-pairs rank-biserial effect size (positive = the model aligns better) and
    Holm-adjusted p-values; the Holm family is every (method, model) comparison of one metric.

    Returns:
        One row per metric, method and model: the paired test, its effect size and Holm-adjusted p-value; no row
        when no score is finite (a data set without lesion masks).
    """
    if not np.isfinite(scores["score"]).any():
        return pd.DataFrame(columns=TEST_COLUMNS)
    wide = scores.pivot_table(index=["metric", "method", "image_id"], columns="model", values="score", dropna=False)
    rows = []
    for (metric, method), block in wide.groupby(level=["metric", "method"], sort=True):
        for model in sorted(c for c in block.columns if c != reference):
            res = wilcoxon_paired(block[model].to_numpy(), block[reference].to_numpy(), f"{metric}/{method}/{model}")
            rows.append(
                {
                    "metric": metric,
                    "method": method,
                    "model": model,
                    "reference": reference,
                    "n": res.n,
                    "mean_model": block[model].mean(),
                    "mean_reference": block[reference].mean(),
                    "median_difference": res.median_difference,
                    "statistic": res.statistic,
                    "p_value": res.p_value,
                    "rank_biserial": res.rank_biserial,
                    "p_holm": np.nan,
                }
            )
    table = pd.DataFrame(rows, columns=TEST_COLUMNS)
    for _, idx in table.groupby("metric").groups.items():
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p_value"].to_numpy())
    return table


def peak_shift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Distance in pixels between the peaks of two stacks of maps (N, H, W) (:func:`peak_position`); returns (N,).

    Returns:
        The distances (N,) in pixels.
    """
    return np.linalg.norm(peak_position(before) - peak_position(after), axis=1)


@dataclasses.dataclass(frozen=True)
class AttackExample:
    """What the manipulation figure shows for one model, budget and variant."""

    model: str
    variant: str
    eps: float
    images: np.ndarray
    adversarial: np.ndarray
    map_before: np.ndarray
    map_after: np.ndarray
    masks: np.ndarray
    label_before: np.ndarray
    label_after: np.ndarray

    def figure_row(self, i: int, title: str) -> tuple:
        """Image ``i`` as one row of a manipulation figure (:func:`medadv.explain.plots.manipulation_panels`: the
        explanation attack's and the FGSM shift's examples): its title, image, adversarial image, maps before and
        after, mask and labels.

        Returns:
            (title, image, adversarial, map before, map after, mask, label before, label after).
        """
        return (
            title,
            self.images[i],
            self.adversarial[i],
            self.map_before[i],
            self.map_after[i],
            self.masks[i],
            int(self.label_before[i]),
            int(self.label_after[i]),
        )


def explanation_attack(
    models: Mapping[str, nn.Module], images: np.ndarray, masks: np.ndarray, image_ids: list[str], cfg: ExplainConfig
) -> tuple[pd.DataFrame, list[AttackExample]]:
    """The targeted Grad-CAM attack (Ghorbani et al. 2019), stronger than and different from paper 004's plain
    iterative FGSM (:mod:`medadv.explain.fgsm_shift`), aimed at paper 004's Figs. 2-3: for each attacked model, budget
    and variant (``keep_label``, ``flip_label``), perturb every image so that the Grad-CAM map of the originally
    predicted class leaves the lesion and its original top-k pixels.
    The maps compared are what a reader of the tool would see: Grad-CAM of the predicted class before and after
    (the same class unless the label flipped).

    Returns the table ``image_id, model, variant, eps, label_before, label_after, label_kept, linf, topk_overlap,
    peak_shift_px, alignment_before, alignment_after`` and the arrays of every run for the figure.

    Returns:
        The long table of attacked images (one row per image, model, budget and variant) and the examples for
        the figure.
    """
    x = torch.as_tensor(images)
    masks = np.asarray(masks).reshape(len(image_ids), *x.shape[-2:])
    metric = metric_functions(cfg.pointing_tolerance)[cfg.attack_metric]
    rows, examples = [], []
    runs = [(m, e, v) for m in cfg.attack_models for e in cfg.attack_eps for v in ("keep_label", "flip_label")]
    for name, eps, variant in tqdm(runs, desc="Grad-CAM manipulation", disable=not in_notebook_progress()):
        model = models[name]
        before_label = predicted_labels(model, x)
        before = attribute(model, x, "gradcam", target=before_label, batch_size=cfg.batch_size)
        top_before = topk_region(before, cfg.attack_topk)
        region = masks | top_before
        res = manipulate_gradcam(
            model,
            x,
            region,
            eps=eps,
            steps=cfg.attack_steps,
            flip_label=variant == "flip_label",
            beta=cfg.softplus_beta,
            flip_weight=cfg.flip_weight,
            batch_size=cfg.batch_size,
        )
        after = attribute(model, res.x_adv, "gradcam", target=res.label_after, batch_size=cfg.batch_size)
        rows.append(
            pd.DataFrame(
                {
                    "image_id": image_ids,
                    "model": name,
                    "variant": variant,
                    "eps": eps,
                    "label_before": res.label_before.numpy(),
                    "label_after": res.label_after.numpy(),
                    "label_kept": (res.label_before == res.label_after).numpy(),
                    "linf": (res.x_adv - x).abs().amax(dim=(1, 2, 3)).numpy(),
                    "topk_overlap": topk_coverage(after, top_before, k=cfg.attack_topk),
                    "peak_shift_px": peak_shift(before, after),
                    "alignment_before": metric(before, masks),
                    "alignment_after": metric(after, masks),
                }
            )
        )
        examples.append(
            AttackExample(
                name,
                variant,
                eps,
                images,
                res.x_adv.numpy(),
                before,
                after,
                masks,
                res.label_before.numpy(),
                res.label_after.numpy(),
            )
        )
    return pd.concat(rows, ignore_index=True), examples


def alignment_summary(scores: pd.DataFrame, tests: pd.DataFrame, cfg: ExplainConfig) -> dict[str, object]:
    """Headline numbers for ``summary.json``: mean score per model and method (every metric), and for the primary
    metric each comparison's Holm p-value and effect size, and how many comparisons favour the robust model.

    Returns:
        The headline numbers, JSON-able.
    """
    mean_alignment: dict[str, dict[str, dict[str, float]]] = {}
    for (metric, model, method), value in scores.groupby(["metric", "model", "method"])["score"].mean().items():
        mean_alignment.setdefault(metric, {}).setdefault(model, {})[method] = float(value)
    prim = tests[tests["metric"] == cfg.primary_metric]
    significant = prim[prim["p_holm"] < 0.01]
    return {
        "n_images": int(scores["image_id"].nunique()),
        "primary_metric": cfg.primary_metric,
        "reference": cfg.reference,
        "mean_alignment": mean_alignment,
        "tests": {
            f"{r.model}_vs_{r.reference}/{r.method}": {
                "p_holm": float(r.p_holm),
                "rank_biserial": float(r.rank_biserial),
            }
            for r in prim.itertuples()
        },
        "better_than_reference_p01": int((significant["rank_biserial"] > 0).sum()),
        "worse_than_reference_p01": int((significant["rank_biserial"] < 0).sum()),
        "comparisons": int(len(prim)),
    }


def attack_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, variant and budget: share of labels kept, mean top-k overlap, median peak shift, mean alignment
    before and after.

    Returns:
        One row per model, variant and budget.
    """
    return (
        table.groupby(["model", "variant", "eps"], sort=True)
        .agg(
            n=("image_id", "size"),
            label_kept_rate=("label_kept", "mean"),
            topk_overlap=("topk_overlap", "mean"),
            peak_shift_px=("peak_shift_px", "median"),
            alignment_before=("alignment_before", "mean"),
            alignment_after=("alignment_after", "mean"),
        )
        .reset_index()
    )


def figure_rows(examples: list[AttackExample], table: pd.DataFrame) -> list[tuple]:
    """Rows of :func:`medadv.explain.plots.manipulation_panels`: for the largest budget of each attacked model and
    variant, the image predicted positive with a non-empty map that lost most of its alignment with the lesion while
    the variant's label condition held (relaxed in that order when no image qualifies).

    Returns:
        One row per attacked model and variant, in the order :func:`medadv.explain.plots.manipulation_panels`
        takes.
    """
    rows = []
    for ex in examples:
        if ex.eps != max(e.eps for e in examples if e.model == ex.model):
            continue
        sub = table[(table["model"] == ex.model) & (table["variant"] == ex.variant) & (table["eps"] == ex.eps)]
        kept = sub["label_kept"].to_numpy(bool)
        held = kept if ex.variant == "keep_label" else ~kept
        drop = (sub["alignment_before"] - sub["alignment_after"]).to_numpy()
        shown = ex.map_before.reshape(len(held), -1).max(axis=1) > 0
        for pool in (held & shown & (ex.label_before == POSITIVE), held & shown, held, np.ones_like(held)):
            if pool.any():
                i = int(np.where(pool, drop, -np.inf).argmax())
                break
        rows.append(ex.figure_row(i, f"{ex.model}\n{ex.variant.replace('_', ' ')}, eps {ex.eps:.3f}"))
    return rows
