"""Every figure a notebook saves prints at a column or the text width with text of at least 7 pt
(:func:`medadv.style.print_problems`), maps carry a colourbar, ROC legends their AUC's CI, and accuracy axes the
decision rule they count at; ``RunContext.save_figure`` logs the problems of a figure that does not print.

Each figure function is called as its notebook calls it, on small synthetic inputs at the default profile's counts
(4 models, 6 attribution methods, 9 corruptions, the full profile's 11 recipes for the ROC curves).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import Container, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from medadv.attacks.plots import (
    attack_examples_figure,
    corruption_curves_figure,
    corruption_examples_figure,
    gan_scores_figure,
    robustness_curves_figure,
)
from medadv.data.adversarial import plot_triplets
from medadv.data.plots import plot_examples, plot_intensity_histograms
from medadv.detect.plots import detection_auc_figure
from medadv.explain.plots import alignment_boxplot, fgsm_shift_figure, manipulation_panels, map_gallery
from medadv.reader_app.figures import accuracy_figure, reading_time_figure
from medadv.report import RunContext
from medadv.stages.replication import ReplicationConfig, aggregate, forest_figure
from medadv.stats.auc import delong_ci
from medadv.style import COLUMN, MAP_CMAP, SMOKE_MARK, TEXT, print_problems, text_inches, wrap
from medadv.train.evaluate import roc_figure, training_curves_figure
from PIL import Image

RNG = np.random.default_rng(0)
MODELS = ["vgg_erm", "vgg_pgd_at", "vgg_rtda", "multitask_erm"]
METHODS = ["gradcam", "guided_gradcam", "saliency", "integrated_gradients", "deeplift", "occlusion"]
CORRUPTIONS = (
    "gaussian_noise",
    "speckle_noise",
    "defocus_blur",
    "motion_blur",
    "contrast",
    "brightness",
    "gamma",
    "jpeg",
    "pixelate",
)
RECIPES = [
    "erm",
    "erm_noaug",
    "vanilla",
    "adversarial_l2",
    "augmix",
    "rtda",
    "pgd_at",
    "pgd_at_l2",
    "trades",
    "fast_at",
    "rtda_focal_linf",
]


def _images(n: int, side: int = 32) -> np.ndarray:
    return RNG.random((n, 1, side, side)).astype(np.float32)


def _masks(n: int, side: int = 32) -> np.ndarray:
    masks = np.zeros((n, 1, side, side), dtype=bool)
    masks[:, :, 10:20, 12:22] = True
    return masks


def _cohort(root: Path) -> pd.DataFrame:
    """Six positive and six negative 40 x 32 PNG images (positives with a mask) under ``root``."""
    rows = []
    for k in range(12):
        label = int(k < 6)
        Image.fromarray((RNG.random((40, 32)) * 255).astype(np.uint8)).save(root / f"img{k}.png")
        mask_path = ""
        if label:
            mask = np.zeros((40, 32), np.uint8)
            mask[12:24, 8:20] = 255
            Image.fromarray(mask).save(root / f"mask{k}.png")
            mask_path = f"mask{k}.png"
        rows.append(
            {
                "image_id": f"Calc-Test_P_{k:05d}_LEFT_CC",
                "patient_id": f"p{k}",
                "label": label,
                "split": "test",
                "path": f"img{k}.png",
                "mask_path": mask_path,
                "source_label": "MALIGNANT" if label else "BENIGN_WITHOUT_CALLBACK",
            }
        )
    return pd.DataFrame(rows)


def _roc() -> Figure:
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    return roc_figure(y, {r: y * 0.3 + RNG.random(60) for r in RECIPES})


def _training_curves() -> Figure:
    epochs = np.arange(1, 6)
    return training_curves_figure(
        {r: pd.DataFrame({"epoch": epochs, "loss": 1.0 / epochs, "val_auc": 0.5 + 0.05 * epochs}) for r in RECIPES}
    )


def _triplets() -> Figure:
    real = _images(6)
    titles = [f"Calc-Test_P_{k:05d}_LEFT_CC ({'remove' if k < 3 else 'insert'})" for k in range(6)]
    return plot_triplets(real, np.clip(real + 0.05 * RNG.standard_normal(real.shape), 0, 1), titles)


def _attack_examples() -> Figure:
    x = _images(4)
    return attack_examples_figure(
        x,
        np.clip(x + 2 / 255, 0, 1),
        RNG.random(4),
        RNG.random(4),
        np.array([1, 0, 1, 0]),
        attack="Iterative FGSM, 25 steps of 0.1/255 (budget 2.5/255), against multitask_erm (paper 004)",
    )


def _curves() -> pd.DataFrame:
    rows = [
        {"model": m, "recipe": m, "attack": "clean", "norm": "", "eps": 0.0, "balanced_accuracy": 0.9} for m in MODELS
    ]
    for k, m in enumerate(MODELS):
        for norm, budgets in (("linf", (1 / 255, 2 / 255, 4 / 255, 8 / 255)), ("l2", (0.25, 0.5, 1.0))):
            rows += [
                {
                    "model": m,
                    "recipe": m,
                    "attack": "pgd",
                    "norm": norm,
                    "eps": e,
                    "balanced_accuracy": 0.9 - (0.9 - 0.15 * k) * j / len(budgets),
                }
                for j, e in enumerate(budgets, 1)
            ]
    return pd.DataFrame(rows)


def _corruption_curves() -> Figure:
    rows = [
        {"model": m, "recipe": m, "corruption": c, "severity": s, "balanced_accuracy": 0.9 - 0.1 * s, "auc": 0.8}
        for m in MODELS
        for c in CORRUPTIONS
        for s in range(1, 6)
    ]
    return corruption_curves_figure(pd.DataFrame(rows))


def _gan_scores() -> Figure:
    labels = np.r_[np.ones(20), np.zeros(20)].astype(int)
    return gan_scores_figure(labels, RNG.random(40), RNG.random(40))


def _alignment_boxplot() -> Figure:
    scores = pd.DataFrame(
        [
            {"model": m, "method": meth, "metric": "energy_in_mask", "score": float(RNG.random())}
            for m in MODELS
            for meth in METHODS
            for _ in range(8)
        ]
    )
    return alignment_boxplot(scores, "energy_in_mask", MODELS, METHODS)


def _gallery(maps_by: str) -> Figure:
    images, masks = _images(6), _masks(6)
    keys = MODELS if maps_by == "models" else METHODS
    maps = {k: RNG.standard_normal((6, 32, 32)) for k in keys}
    return map_gallery(images, masks, maps, [f"Calc-Test_P_{k:05d}_LEFT_CC" for k in range(6)], list(range(4)))


def _manipulation_rows(n: int) -> list[tuple]:
    images, masks = _images(n), _masks(n)
    return [
        (
            f"{MODELS[k % 4]}\nlabel kept (Fig. 2)",
            images[k],
            np.clip(images[k] + 0.01, 0, 1),
            RNG.random((32, 32)),
            RNG.random((32, 32)),
            masks[k],
            1,
            k % 2,
        )
        for k in range(n)
    ]


def _fgsm_shift() -> Figure:
    table = pd.DataFrame(
        {
            "model": np.repeat(["multitask_erm", "vgg_erm"], 10),
            "label_changed": np.tile([True, False], 10),
            "peak_shift_px": RNG.random(20) * 20,
            "topk_overlap": RNG.random(20),
        }
    )
    return fgsm_shift_figure(table, 25, 0.1)


def _reader_accuracy() -> Figure:
    rows = [
        {"reader": r, "session": s, "truth": t, "label": "all", "accuracy": 0.7, "ci_low": 0.5, "ci_high": 0.85}
        for r in ("sim_novice", "sim_resident", "sim_expert")
        for s in (1, 2, 3)
        for t in ("real", "fake", "all")
        if not (s == 2 and t == "fake")
    ]
    return accuracy_figure(pd.DataFrame(rows), "simulated")


def _reader_times() -> Figure:
    rows = [
        {"reader": r, "session": s, "total_minutes": 10.0 + s}
        for r in ("sim_novice", "sim_resident", "sim_expert")
        for s in (1, 2, 3, 4)
    ]
    return reading_time_figure(pd.DataFrame(rows), "simulated")


def _detection() -> Figure:
    sets = [("gan", 0.0)] + [(a, e) for a in ("fgsm", "pgd", "apgd") for e in (1 / 255, 2 / 255, 4 / 255)]
    sets += [(f"{a} adaptive", 8 / 255) for a in ("pgd", "apgd")]  # the detector-aware attacks of the last rows
    rows = [
        {
            "detector": d,
            "attack": a,
            "eps": e,
            "auc": auc,
            "auc_ci_low": max(0.0, auc - 0.1),
            "auc_ci_high": min(1.0, auc + 0.1),
        }
        for k, d in enumerate(("feature_squeezing", "mahalanobis", "kernel_density"))
        for j, (a, e) in enumerate(sets)
        for auc in [1.0 if j < 4 else min(1.0, 0.15 + 0.1 * j + 0.1 * k)]
    ]
    return detection_auc_figure(pd.DataFrame(rows))


def _forest() -> Figure:
    rows = [
        {
            "seed": s,
            "setting": "",
            "effect": f"effect_{k}_pgd_at_beats_erm_under_attack",
            "value": 0.1 * k + 0.01 * s,
            "holds": "True",
            "interpretable": str(s < 3),
            "paper_value": 0.3 if k % 2 else np.nan,
            "expected": ">= 0.1",
        }
        for s in range(5)
        for k in range(8)
    ]
    per_seed = pd.DataFrame(rows)
    return forest_figure(per_seed, aggregate(per_seed, ReplicationConfig()))


FIGURES: dict[str, Callable[[Path], Figure]] = {
    "cohort_examples": lambda root: plot_examples(_cohort(root), root, n=6, seed=0),
    "intensity_histograms": lambda root: plot_intensity_histograms(_cohort(root), root, max_images=200, seed=0),
    "classifier_roc_curves": lambda root: _roc(),
    "classifier_training_curves": lambda root: _training_curves(),
    "gan_triplets": lambda root: _triplets(),
    "gan_attack_scores": lambda root: _gan_scores(),
    "attack_examples": lambda root: _attack_examples(),
    "robustness_curves": lambda root: robustness_curves_figure(_curves()),
    "corruption_curves": lambda root: _corruption_curves(),
    "corruption_examples": lambda root: corruption_examples_figure(_images(1)[0, 0], CORRUPTIONS, (1, 2, 3, 4, 5)),
    "alignment_boxplot": lambda root: _alignment_boxplot(),
    "alignment_gallery_models": lambda root: _gallery("models"),
    "alignment_gallery_methods": lambda root: _gallery("methods"),
    "fgsm_gradcam_shift": lambda root: _fgsm_shift(),
    "fgsm_gradcam_shift_examples": lambda root: manipulation_panels(_manipulation_rows(4)),
    "explanation_attack_examples": lambda root: manipulation_panels(_manipulation_rows(2)),
    "reader_accuracy": lambda root: _reader_accuracy(),
    "reader_times": lambda root: _reader_times(),
    "detection_auc": lambda root: _detection(),
    "replication_forest": lambda root: _forest(),
}
OVERLAYS = (
    "alignment_gallery_models",
    "alignment_gallery_methods",
    "fgsm_gradcam_shift_examples",
    "explanation_attack_examples",
)


def _labels(fig: Figure) -> list[str]:
    """Every axis label of ``fig`` (the figure's own x and y labels included)."""
    return [label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel())] + [
        t.get_text() for t in (fig._supylabel, fig._supxlabel) if t is not None
    ]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_saved_figure_prints_at_a_page_width_and_names_its_decision_rule(name: str, tmp_path: Path) -> None:
    fig = FIGURES[name](tmp_path)
    assert print_problems(fig) == [], name
    assert min(abs(fig.get_size_inches()[0] - w) for w in (COLUMN, TEXT)) < 1e-6
    for label in _labels(fig):
        if "accuracy" in label:
            assert "threshold 0.5" in label or "unsure = wrong" in label, (name, label)
    plt.close(fig)


@pytest.mark.parametrize("name", OVERLAYS)
def test_saliency_overlays_have_a_magma_colourbar_from_0_to_1(name: str, tmp_path: Path) -> None:
    fig = FIGURES[name](tmp_path)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1, name
    bar = bars[0]._colorbar
    assert bar.cmap.name == MAP_CMAP and (bar.vmin, bar.vmax) == (0.0, 1.0)
    assert "maximum" in bar.ax.get_ylabel()
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == MAP_CMAP]
    assert maps and all(im.get_alpha() is None for im in maps)  # opaque: the map's lightness is its value
    plt.close(fig)


def test_roc_legend_carries_each_auc_with_its_delong_ci() -> None:
    y = np.r_[np.ones(20), np.zeros(20)].astype(int)
    scores = {"vgg_erm": y * 0.5 + RNG.random(40), "vgg_rtda": RNG.random(40)}
    fig = roc_figure(y, scores)
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert len(texts) == 2
    for (name, score), text in zip(scores.items(), texts, strict=True):
        auc, low, high = delong_ci(y, score)
        assert text == f"{name} (AUC {auc:.2f}, 95% CI {low:.2f}-{high:.2f})"
        assert low < auc < high
    plt.close(fig)


def test_the_kits_text_is_at_least_7_pt_where_matplotlibs_default_is_not() -> None:
    fig, ax = plt.subplots(figsize=(7.0, 3.0), layout="constrained")
    ax.set_title("a title", fontsize=6)
    problems = print_problems(fig)
    assert problems == ["text 'a title' at 6.0 pt; at least 7.0"]
    plt.close(fig)


def test_save_figure_logs_the_problems_of_a_figure_that_does_not_print(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = RunContext.open(tmp_path / "run", "01_classifier_training", profile="smoke", device="cpu")
    screen, _ = plt.subplots(figsize=(6.4, 4.8))
    with caplog.at_level(logging.WARNING, logger="medadv.report"):
        ctx.save_figure(screen, "screen_sized")
        ctx.save_figure(_reader_times(), "reader_times")
    messages = [r.getMessage() for r in caplog.records if r.name == "medadv.report"]
    assert len(messages) == 1
    assert re.search(r"figure 'screen_sized' does not print at its size: width 6\.40 in; expected 3\.5", messages[0])
    assert (ctx.layout.figures / "screen_sized.png").is_file() and (ctx.layout.figures / "reader_times.pdf").is_file()
    plt.close("all")


def test_wrap_breaks_at_separators_and_inside_words_too_wide_for_the_line() -> None:
    text = "Calc-Test_P_00038_LEFT_CC\nBENIGN_WITHOUT_CALLBACK"
    lines = wrap(text, 1.1, 7.0).split("\n")
    assert "".join(lines) == text.replace("\n", "")
    assert len(lines) >= 4 and all(text_inches(line, 7.0) <= 1.1 for line in lines)
    assert wrap("integrated gradients", 0.8, 8.0) == "integrated\ngradients"
    assert wrap("|perturbation|", 2.0, 8.0) == "|perturbation|"
    assert all(len(line) < 12 for line in wrap("x" * 40, 0.6, 8.0).split("\n"))


def _dash_family(line: Line2D) -> str:
    """What a reader tells apart in print: solid, dashed, dotted or dash-dot (``:`` and ``(0, (1, 2))`` are both
    dotted; ``-.`` and ``(0, (3, 1, 1, 1, 1, 1))`` both dash-dot); no line at all is ``none``."""
    if line.get_linestyle() in ("None", "", " "):
        return "none"
    _, dashes = line._unscaled_dash_pattern
    if not dashes:
        return "solid"
    kinds = {"dot" if on <= 1.5 else "dash" for on in dashes[0::2]}
    return {frozenset({"dash"}): "dashed", frozenset({"dot"}): "dotted"}.get(frozenset(kinds), "dash-dot")


def _series_styles(fig: Figure) -> dict[str, tuple]:
    """Each labelled series' (colour, line style as print shows it, marker), by its label, over every axes of
    ``fig`` (an error bar's data line stands for it; a scatter or a bar by its colours and shape)."""
    styles: dict[str, tuple] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if isinstance(handle, ErrorbarContainer):
                handle = handle.lines[0]
            elif isinstance(handle, Container):  # bars: the first bar's patch
                handle = handle[0]
            if isinstance(handle, Line2D):
                style = (
                    to_hex(handle.get_color()),
                    _dash_family(handle),
                    handle.get_marker() if handle.get_marker() not in (None, "") else "None",
                )
            else:
                paths = handle.get_paths() if hasattr(handle, "get_paths") else [handle.get_path()]
                style = (
                    str(np.round(handle.get_facecolor(), 3).tolist()),
                    str(np.round(handle.get_edgecolor(), 3).tolist()),
                    str(np.round(paths[0].vertices, 2).tolist()) if paths else "",
                )
            styles.setdefault(label, style)
    return styles


def _drawn_points(ax) -> list[tuple[np.ndarray, float]]:
    """(display points, marker radius in pixels) of every line and scatter of ``ax``; a line's segments are sampled
    between its points, so a legend over the middle of a segment is seen too."""
    out = []
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = np.asarray(line.get_xydata(), dtype=float)
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) > 1 and line.get_linestyle() not in ("None", ""):
            xy = np.concatenate([np.linspace(a, b, 12) for a, b in zip(xy[:-1], xy[1:], strict=True)])
        radius = line.get_markersize() / 2 * ax.figure.dpi / 72 if line.get_marker() not in (None, "", "None") else 0.0
        out.append((line.get_transform().transform(xy), radius))
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if (
            collection.get_visible()
            and len(offsets)
            and hasattr(collection, "get_sizes")
            and len(collection.get_sizes())
        ):
            radius = float(np.sqrt(collection.get_sizes().max())) / 2 * ax.figure.dpi / 72
            out.append((collection.get_offset_transform().transform(offsets), radius))
    return out


def _inside_legend(text: Text, legend) -> bool:
    return any(text is t for t in legend.findobj(Text))


def layout_defects(fig: Figure) -> list[str]:
    """Series that share a (colour, line style, marker), legends over plotted data or over a label, and markers cut
    by their axes.

    Returns:
        One line per defect.
    """
    problems = []
    styles = _series_styles(fig)
    if len(set(styles.values())) < len(styles):
        problems.append(f"series share a style: {styles}")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    ticks = {
        id(t)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in axis.get_major_ticks() + axis.get_minor_ticks()
        for t in (tick.label1, tick.label2)
    }
    for legend in legends:
        lb = legend.get_window_extent(renderer)
        for text in fig.findobj(Text):
            if (
                id(text) not in ticks
                and text.get_visible()
                and text.get_text().strip()
                and text.get_in_layout()
                and text.get_window_extent(renderer).overlaps(lb)
                and not _inside_legend(text, legend)
            ):
                problems.append(f"a legend overlaps the text {text.get_text()[:30]!r}")
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for points, radius in _drawn_points(ax):
            for legend in legends:
                lb = legend.get_window_extent(renderer)
                inside = (
                    (points[:, 0] > lb.x0 + 1)
                    & (points[:, 0] < lb.x1 - 1)
                    & (points[:, 1] > lb.y0 + 1)
                    & (points[:, 1] < lb.y1 - 1)
                )
                if inside.any():
                    problems.append(
                        f"a legend ({', '.join(t.get_text() for t in legend.get_texts())[:40]}) covers data "
                        f"of the axes titled {ax.get_title()!r}"
                    )
            if radius:
                cut = (
                    (points[:, 0] - radius < box.x0 - 0.5)
                    | (points[:, 0] + radius > box.x1 + 0.5)
                    | (points[:, 1] - radius < box.y0 - 0.5)
                    | (points[:, 1] + radius > box.y1 + 0.5)
                )
                if cut.any():
                    problems.append(f"{int(cut.sum())} marker(s) cut by the axes titled {ax.get_title()!r}")
    return problems


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_series_are_distinct_legends_leave_the_data_free_and_no_marker_is_cut(name: str, tmp_path: Path) -> None:
    fig = FIGURES[name](tmp_path)
    assert layout_defects(fig) == [], name
    texts = " ".join(t.get_text() for t in fig.findobj(Text))
    assert not [m for m in MODELS if m.replace("_", " ") in texts], f"{name}: a model name written without its '_'"
    plt.close(fig)


def test_the_layout_check_sees_a_covering_legend_a_cut_marker_and_a_repeated_style() -> None:
    fig, ax = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    ax.plot([0, 1], [1, 1], "o-", color="k", label="a")
    ax.plot([0, 1], [0.9, 0.95], "o-", color="k", label="b")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    problems = layout_defects(fig)
    assert any("share a style" in p for p in problems) and any("cut by the axes" in p for p in problems)
    assert any("covers data" in p for p in problems)
    plt.close(fig)


def test_saved_figures_are_300_dpi_and_a_smoke_runs_carry_its_mark(tmp_path: Path) -> None:
    pngs = {}
    for profile in ("smoke", "default"):
        ctx = RunContext.open(tmp_path / profile, "05_reader_study", profile=profile, device="cpu")
        fig = _reader_times()
        pngs[profile] = Image.open(ctx.save_figure(fig, "reader_times"))
        marks = [t for t in fig.texts if t.get_text() == SMOKE_MARK]
        assert len(marks) == (profile == "smoke") and print_problems(fig) == []
        assert pngs[profile].info["dpi"] == pytest.approx((300, 300), abs=0.01)
        plt.close(fig)
    smoke, plain = (np.asarray(pngs[p].convert("RGB")).astype(int) for p in ("smoke", "default"))
    assert smoke.shape == plain.shape
    red = (smoke[..., 0] - smoke[..., 1] > 60) & ~(plain[..., 0] - plain[..., 1] > 60)
    assert red.sum() > 2000  # the mark is drawn in red over the figure, visible at print size
