"""Alignment metrics on hand-made 4 x 4 maps whose scores are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medadv.errors import DataError
from medadv.explain import alignment as al

# Lesion = the top-left 2 x 2 block: flat pixel indices 0, 1, 4, 5 (4 of 16 pixels).
MASK = np.zeros((1, 4, 4), bool)
MASK[0, :2, :2] = True
DESC = (15.0 - np.arange(16.0)).reshape(1, 4, 4)  # values 15..0, highest at index 0
ASC = np.arange(16.0).reshape(1, 4, 4)  # the lesion holds the lowest values
ALL = [
    al.pointing_game,
    al.energy_pointing_game,
    al.relevance_mass_accuracy,
    al.relevance_rank_accuracy,
    al.topk_coverage,
    al.topk_iou,
    al.mask_auroc,
]


def test_pointing_game_hit_miss_and_tolerance() -> None:
    assert al.pointing_game(DESC, MASK)[0] == 1.0
    peak_far = np.zeros((1, 4, 4))
    peak_far[0, 3, 3] = 1.0  # sqrt(8) = 2.83 px from the nearest lesion pixel (1, 1)
    assert al.pointing_game(peak_far, MASK)[0] == 0.0
    assert al.pointing_game(peak_far, MASK, tolerance=2.8)[0] == 0.0
    assert al.pointing_game(peak_far, MASK, tolerance=2.9)[0] == 1.0


def test_pointing_game_tied_maxima_score_share_that_hits() -> None:
    two_peaks = np.zeros((1, 4, 4))
    two_peaks[0, 0, 0] = two_peaks[0, 3, 3] = 2.0
    assert al.pointing_game(two_peaks, MASK)[0] == 0.5


def test_rank_metrics_on_ordered_maps() -> None:
    # DESC: top-4 pixels are indices 0..3, two of them (0, 1) in the lesion.
    assert al.topk_coverage(DESC, MASK, k=0.25)[0] == pytest.approx(0.5)
    assert al.topk_iou(DESC, MASK, k=0.25)[0] == pytest.approx(2 / (4 + 4 - 2))
    assert al.relevance_rank_accuracy(DESC, MASK)[0] == pytest.approx(0.5)
    # top-8 (k = 0.5): indices 0..7 hold all four lesion pixels.
    assert al.topk_coverage(DESC, MASK, k=0.5)[0] == pytest.approx(0.5)
    assert al.topk_iou(DESC, MASK, k=0.5)[0] == pytest.approx(4 / 8)
    # AUROC: lesion ranks 16, 15, 12, 11 -> U = 54 - 10 = 44 of 4 * 12.
    assert al.mask_auroc(DESC, MASK)[0] == pytest.approx(44 / 48)
    assert al.mask_auroc(ASC, MASK)[0] == pytest.approx(4 / 48)
    assert al.topk_coverage(ASC, MASK, k=0.25)[0] == 0.0


def test_mass_metrics_count_positive_relevance_only() -> None:
    # DESC: lesion holds 15 + 14 + 11 + 10 = 50 of 120.
    assert al.relevance_mass_accuracy(DESC, MASK)[0] == pytest.approx(50 / 120)
    assert al.energy_pointing_game(DESC, MASK)[0] == pytest.approx(50 / 120)
    signed = DESC - 10.0  # positives: 5, 4, 3, 2, 1 at indices 0..4 (15 in all), lesion holds 5 + 4 + 1
    assert al.relevance_mass_accuracy(signed, MASK)[0] == pytest.approx(10 / 15)


def test_energy_pointing_game_uses_the_bounding_box() -> None:
    l_shape = np.zeros((1, 4, 4), bool)
    l_shape[0, 0, 0] = l_shape[0, 0, 1] = l_shape[0, 1, 0] = True  # box = top-left 2 x 2
    sal = np.zeros((1, 4, 4))
    sal[0, 1, 1] = 3.0  # inside the box, outside the L
    sal[0, 0, 0] = 1.0
    assert al.energy_pointing_game(sal, l_shape)[0] == pytest.approx(1.0)
    assert al.relevance_mass_accuracy(sal, l_shape)[0] == pytest.approx(0.25)


def test_ties_at_the_topk_cut_are_shared() -> None:
    sal = np.zeros((1, 4, 4))
    sal[0, 0, 0], sal[0, 0, 1], sal[0, 1, 0] = 9.0, 8.0, 7.0  # three lesion pixels above the cut
    sal[0, 1, 1] = sal[0, 3, 3] = 5.0  # one lesion and one background pixel tie for the 4th slot
    assert al.topk_coverage(sal, MASK, k=0.25)[0] == pytest.approx(3.5 / 4)
    assert al.topk_iou(sal, MASK, k=0.25)[0] == pytest.approx(3.5 / (4 + 4 - 3.5))
    assert al.relevance_rank_accuracy(sal, MASK)[0] == pytest.approx(3.5 / 4)


@pytest.mark.parametrize("value", [0.0, 0.7])
def test_constant_map_scores_chance(value: float) -> None:
    flat = np.full((1, 4, 4), value)
    assert al.pointing_game(flat, MASK)[0] == pytest.approx(4 / 16)
    assert al.pointing_game(flat, MASK, tolerance=1.0)[0] == pytest.approx(8 / 16)  # lesion dilated by 1 px
    assert al.topk_coverage(flat, MASK, k=0.25)[0] == pytest.approx(0.25)
    assert al.topk_iou(flat, MASK, k=0.25)[0] == pytest.approx(1 / 7)
    assert al.relevance_rank_accuracy(flat, MASK)[0] == pytest.approx(0.25)
    assert al.relevance_mass_accuracy(flat, MASK)[0] == pytest.approx(0.25)
    assert al.energy_pointing_game(flat, MASK)[0] == pytest.approx(0.25)
    assert al.mask_auroc(flat, MASK)[0] == pytest.approx(0.5)


def test_empty_mask_is_nan_and_batches_stay_aligned() -> None:
    masks = np.concatenate([MASK, np.zeros((1, 4, 4), bool)])
    maps = np.concatenate([DESC, DESC])
    for fn in ALL:
        scores = fn(maps, masks)
        assert scores.shape == (2,)
        assert np.isfinite(scores[0]) and np.isnan(scores[1]), fn.__name__


def test_full_mask_auroc_is_nan_others_perfect() -> None:
    full = np.ones((1, 4, 4), bool)
    assert np.isnan(al.mask_auroc(DESC, full)[0])
    assert al.relevance_mass_accuracy(DESC, full)[0] == 1.0
    assert al.topk_coverage(DESC, full)[0] == 1.0


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(DataError, match="same shape"):
        al.topk_coverage(DESC, MASK[:, :3])
    with pytest.raises(DataError, match="NaN"):
        al.mask_auroc(np.full((1, 4, 4), np.nan), MASK)
    with pytest.raises(DataError, match="fraction"):
        al.topk_coverage(DESC, MASK, k=5)
    with pytest.raises(DataError, match="boolean"):
        al.relevance_mass_accuracy(DESC, MASK * 3)
    with pytest.raises(DataError, match="unknown alignment metrics"):
        al.score_all(DESC, MASK, ["pointing"])


def test_score_all_names_every_metric() -> None:
    names = list(al.metric_functions())
    scores = al.score_all(DESC, MASK.astype(int), names, pointing_tolerance=1.0)
    assert set(scores) == {
        "pointing_game",
        "energy_pointing_game",
        "topk_coverage_5",
        "topk_coverage_25",
        "topk_coverage_50",
        "topk_iou_5",
        "topk_iou_25",
        "topk_iou_50",
        "relevance_mass_accuracy",
        "relevance_rank_accuracy",
        "mask_auroc",
    }
    assert scores["topk_coverage_25"][0] == pytest.approx(0.5)
    assert all(0.0 <= v[0] <= 1.0 for v in scores.values())


def test_alignment_tests_pair_by_image_and_holm_within_metric() -> None:
    import pandas as pd
    from medadv.explain.study import alignment_tests

    ids = [f"img{i}" for i in range(8)]
    ref = np.linspace(0.1, 0.8, 8)
    rows = []
    for metric in ("mask_auroc", "pointing_game"):
        for model, scores in (("erm", ref), ("robust", ref + np.arange(1, 9) / 100), ("same", ref)):
            rows += [
                {"image_id": i, "model": model, "method": "gradcam", "metric": metric, "score": s}
                for i, s in zip(ids[::-1] if model == "robust" else ids, scores[::-1] if model == "robust" else scores)
            ]
    table = alignment_tests(pd.DataFrame(rows), "erm")
    assert len(table) == 4 and set(table["model"]) == {"robust", "same"}
    robust = table[(table["model"] == "robust") & (table["metric"] == "mask_auroc")].iloc[0]
    # paired by image id despite the shuffled row order: all 8 differences positive -> exact p = 2 / 2**8
    assert robust["rank_biserial"] == 1.0 and robust["p_value"] == pytest.approx(2 / 256)
    assert robust["p_holm"] == pytest.approx(2 / 256 * 2)  # family: the two comparisons of this metric
    same = table[(table["model"] == "same") & (table["metric"] == "mask_auroc")].iloc[0]
    assert same["p_value"] == 1.0 and same["p_holm"] == 1.0 and same["rank_biserial"] == 0.0
    # a data set without lesion masks scores nothing: no test, the table's columns kept
    empty = alignment_tests(pd.DataFrame(rows).assign(score=np.nan), "erm")
    assert empty.empty and list(empty.columns) == list(table.columns)


def test_a_data_set_without_masks_gives_its_test_positives_and_one_with_masks_its_annotated_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pandas as pd
    from medadv.explain.study import study_images
    from PIL import Image

    rows = []
    for i in range(6):
        Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(tmp_path / f"i{i}.png")
        rows.append(
            {"image_id": f"i{i}", "path": f"i{i}.png", "label": int(i < 4), "split": "test" if i % 3 else "train"}
        )
    cohort = pd.DataFrame(rows).assign(mask_path="")
    study = study_images(cohort, tmp_path, (12, 12), 0, seed=0)
    assert study.rows["image_id"].tolist() == ["i1", "i2"] and not study.masks.any()
    assert "the data set has no lesion masks" in caplog.text
    Image.fromarray(np.pad(np.full((3, 3), 255, np.uint8), ((2, 7), (2, 7)))).save(tmp_path / "m.png")
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "empty.png")
    annotated = cohort.assign(mask_path=["", "m.png", "empty.png", "", "", ""])
    study = study_images(annotated, tmp_path, (12, 12), 0, seed=0)
    assert study.rows["image_id"].tolist() == ["i1"] and study.masks.sum() == 9
    assert "1 annotated test positive(s) have an empty lesion mask and are left out: ['i2']" in caplog.text
    with pytest.raises(DataError, match=r"none of the cohort's 2 test positives has a lesion mask, though 1 of its"):
        study_images(annotated.assign(mask_path=["m.png", "", "", "", "", ""]), tmp_path, (12, 12), 0, seed=0)


def _lesion_masks() -> np.ndarray:
    """Three 12 x 12 masks: a 3 x 4 block, an L shape (box larger than the lesion) and a single pixel."""
    masks = np.zeros((3, 12, 12), bool)
    masks[0, 2:5, 3:7] = True
    masks[1, 6:11, 1:3] = True
    masks[1, 9:11, 3:8] = True
    masks[2, 8, 9] = True
    return masks


def test_every_metric_says_its_direction_range_and_chance() -> None:
    assert list(al.METRICS) == list(al.metric_functions())
    for info in al.METRICS.values():
        assert info.higher_is_better and info.score_range == (0.0, 1.0) and info.chance
    masks = _lesion_masks()
    rank = al.METRICS["relevance_rank_accuracy"].chance_level(masks)
    np.testing.assert_allclose(rank, [12 / 144, 20 / 144, 1 / 144])
    box = al.METRICS["energy_pointing_game"].chance_level(masks)
    np.testing.assert_allclose(box, [12 / 144, 35 / 144, 1 / 144])
    near = al.METRICS["pointing_game"].chance_level(masks[2:], pointing_tolerance=1.0)
    np.testing.assert_allclose(near, [5 / 144])  # the pixel and its four neighbours
    empty = np.zeros((1, 12, 12), bool)
    assert all(np.isnan(info.chance_level(empty)[0]) for info in al.METRICS.values())
    assert np.isnan(al.METRICS["mask_auroc"].chance_level(~empty)[0])


def test_a_constant_map_scores_the_chance_level_exactly() -> None:
    masks = _lesion_masks()
    flat = np.full(masks.shape, 0.3)
    for name, metric in al.metric_functions(pointing_tolerance=1.5).items():
        chance = al.METRICS[name].chance_level(masks, pointing_tolerance=1.5)
        np.testing.assert_allclose(metric(flat, masks), chance, rtol=1e-12, err_msg=name)


def test_random_maps_score_the_chance_level_on_average() -> None:
    """By simulation: 4000 maps of independent uniform pixels per mask; the mean is within 4 standard errors (the
    top-k IoU, a ratio, may also differ by its small Jensen gap, bounded here by 0.01)."""
    masks = np.repeat(_lesion_masks()[:2], 2000, axis=0)
    maps = np.random.default_rng(0).random(masks.shape)
    for name, metric in al.metric_functions(pointing_tolerance=1.0).items():
        scores = metric(maps, masks).reshape(2, -1)
        chance = al.METRICS[name].chance_level(masks, pointing_tolerance=1.0).reshape(2, -1)[:, 0]
        se = scores.std(axis=1) / np.sqrt(scores.shape[1])
        slack = 4 * se + (0.01 if name.startswith("topk_iou") else 0.0)
        assert np.all(np.abs(scores.mean(axis=1) - chance) <= slack), (name, scores.mean(axis=1), chance)
    # the simulation can tell a wrong chance level apart: the lesion fraction is not the box fraction for the L shape
    boxy = al.METRICS["energy_pointing_game"].chance_level(masks[2000:2001])[0]
    mass = al.relevance_mass_accuracy(maps[2000:], masks[2000:]).mean()
    assert abs(mass - boxy) > 0.05
