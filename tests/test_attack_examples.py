"""Adversarial examples computed once (notebook 03) and read by notebook 06: what is kept, how it is stored, and that
the detection table from the stored examples is the one recomputing them gives (tests/_hand_models.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from _hand_models import halves_images, halves_model, halves_weight, single_thread  # noqa: F401
from medadv import ConfigError
from medadv.attacks.ensemble import evaluate_models
from medadv.attacks.examples import read_examples, write_examples
from medadv.attacks.robustness import AttackConfig
from medadv.config import load_profile, profile_from_dict
from medadv.data.images import SplitArrays
from medadv.detect import FeatureSqueezing
from medadv.detect.evaluation import detection_study
from medadv.errors import DataError, RunError
from medadv.pipeline import check_profile
from medadv.report import write_csv
from medadv.stages.input_detection import DetectConfig

E2, E4, E8 = 2 / 255, 4 / 255, 8 / 255
CPU = torch.device("cpu")
CONFIG = AttackConfig(
    linf_eps=(E2, E4, E8),
    l2_eps=(0.5,),
    steps=10,
    headline_linf_eps=E4,
    headline_l2_eps=0.5,
    apgd_steps=5,
    ifgsm_steps=3,
    corruptions=("contrast",),
    severities=(1,),
    batch_size=16,
    square_queries=20,
    black_box_budgets="headline",
    transfer_from=("surrogate",),
    check_images=8,
    check_steps=20,
    check_restarts=1,
)
N = 40


def _evaluate() -> tuple:
    y = torch.arange(N) % 2
    x = halves_images(torch.linspace(0.005, 0.06, N), y, noise=0.1, seed=7)
    surrogate = halves_model(
        weight=halves_weight() + 0.5 * torch.randn(256, generator=torch.Generator().manual_seed(1))
    )
    models = {"plain": (halves_model(), "erm"), "surrogate": (surrogate, "erm")}
    ids = [f"img{k:03d}" for k in range(N)]
    return evaluate_models(models, x, y, CONFIG, CPU, seed=3, keep_examples=["plain"], image_ids=ids), x, y, ids


@pytest.fixture(scope="module")
def evaluated(single_thread: None) -> tuple:  # noqa: F811
    return _evaluate()


def test_every_right_image_has_one_example_per_attack_in_its_ball_and_the_curves_count_them(evaluated: tuple):
    robust, x, y, ids = evaluated
    kept = robust.examples["plain"]
    assert set(robust.examples) == {"plain"}  # only the model asked for
    clean = robust.curves.query("model == 'plain' and attack == 'clean'")["accuracy"].iloc[0]
    assert len(kept.image_ids) == round(clean * N) > 0
    rows = [ids.index(i) for i in kept.image_ids]
    assert {a for a, _, _ in kept.images} == {"fgsm", "pgd", "apgd_ce", "apgd_margin", "ifgsm", "ifgsm_extra"}
    model = halves_model()
    for (attack, norm, eps), images in kept.images.items():
        assert norm == "linf"  # the L2 runs are not kept: notebook 06 reads L-inf examples
        bound = (torch.from_numpy(images) - x[rows]).abs().amax(dim=(1, 2, 3))
        assert float(bound.max()) <= eps * (1 + 1e-5) + 1e-6, (attack, norm, eps)
        right = (model(torch.from_numpy(images)).argmax(1) == y[rows]).numpy()
        curve = robust.curves.query("model == 'plain' and attack == @attack and norm == @norm")
        accuracy = curve[np.isclose(curve["eps"], eps)]["accuracy"].iloc[0]
        assert right.sum() == round(accuracy * N), (attack, norm, eps)  # PGD's nested budgets carry what fooled
    fooled_early = ~(model(torch.from_numpy(kept.at("pgd", E2))).argmax(1) == y[rows]).numpy()
    assert fooled_early.any()
    np.testing.assert_array_equal(kept.at("pgd", E8)[fooled_early], kept.at("pgd", E2)[fooled_early])


def test_stored_examples_read_back_bit_for_bit_in_the_test_order(evaluated: tuple, tmp_path):
    robust, _, _, ids = evaluated
    kept = robust.examples["plain"]
    paths = write_examples(tmp_path, kept)
    assert [p.name for p in paths] == ["plain.npz", "plain.csv"]
    index = pd.read_csv(paths[1])
    assert list(index.columns) == ["attack", "norm", "eps", "image_id", "row"]
    assert len(index) == len(kept.image_ids) * len(kept.images)
    back = read_examples(tmp_path, "plain", ids)
    assert back.image_ids == kept.image_ids and list(back.images) == list(kept.images)
    for key, images in kept.images.items():
        assert back.images[key].dtype == np.float32
        np.testing.assert_array_equal(back.images[key], images)
    with pytest.raises(RunError, match="no apgd_margin examples of plain at linf 0.0313725"):
        back.at("apgd_margin", E8)


def test_missing_or_foreign_examples_are_named(evaluated: tuple, tmp_path):
    robust, _, _, ids = evaluated
    with pytest.raises(RunError, match="notebook 03_attack_evaluation writes the adversarial examples of plain"):
        read_examples(tmp_path, "plain", ids)
    write_examples(tmp_path, robust.examples["plain"])
    with pytest.raises(DataError, match=r"image\(s\) \['img000'.*not test images of this run's cohort"):
        read_examples(tmp_path, "plain", [f"other{k}" for k in range(N)])


def test_the_detection_table_from_stored_examples_is_the_one_recomputing_them_gives(evaluated: tuple, tmp_path):
    robust, x, y, ids = evaluated
    write_examples(tmp_path, robust.examples["plain"])
    stored = read_examples(tmp_path, "plain", ids)
    recomputed = _evaluate()[0].examples["plain"]  # a fresh evaluation, in memory
    test = SplitArrays(
        x.numpy(),
        y.numpy(),
        np.zeros(x.shape, bool),
        np.zeros(N, bool),
        pd.DataFrame({"image_id": ids, "label": y.numpy()}),
    )
    model = halves_model()
    detectors = {FeatureSqueezing.name: FeatureSqueezing(model, bits=4, median=2)}
    config = DetectConfig(attacks=("fgsm", "pgd", "apgd"), adaptive_eps=(E4,), adaptive_steps=3, batch_size=16)
    fakes = np.clip(x.numpy() + 0.05, 0, 1)
    tables = [
        detection_study(model, detectors, test, fakes, ex, CONFIG, config, 0, CPU).table for ex in (stored, recomputed)
    ]
    a, b = (write_csv(t, tmp_path / f"detection_{k}.csv").read_bytes() for k, t in enumerate(tables))
    assert a == b
    table = tables[0]
    assert set(table["attack"]) == {"gan", "fgsm", "pgd", "apgd", "adaptive_pgd"}
    assert sorted(table.loc[table["attack"] == "pgd", "eps"]) == pytest.approx([E2, E4, E8])
    assert table.loc[table["attack"] == "apgd", "eps"].tolist() == pytest.approx([E4])  # the cascade's budget
    kept = len(robust.examples["plain"].image_ids)
    assert (table.loc[table["attack"].isin(["fgsm", "pgd", "apgd"]), "n_manipulated"] == kept).all()
    assert (table.loc[table["attack"] == "gan", "n_manipulated"] == N).all()


def test_detect_attacks_need_the_ensemble_attacks_they_read() -> None:
    raw = load_profile("smoke").to_dict()
    raw["attacks"]["ensemble"] = ["fgsm", "pgd", "square", "transfer"]
    with pytest.raises(
        ConfigError,
        match=r"detect.attacks \['fgsm', 'pgd', 'apgd'\] are read from notebook 03's "
        r"examples of \['apgd_margin', 'fgsm', 'pgd'\]",
    ):
        check_profile(profile_from_dict(raw))
    raw["detect"]["attacks"] = ["fgsm", "pgd"]
    check_profile(profile_from_dict(raw))


def test_keeping_examples_needs_every_image_id(single_thread: None) -> None:  # noqa: F811
    y = torch.arange(4) % 2
    x = halves_images(torch.full((4,), 0.05), y)
    small = dataclasses.replace(CONFIG, ensemble=("fgsm", "pgd", "square"))
    with pytest.raises(DataError, match="needs the id of every test image"):
        evaluate_models(
            {"plain": (halves_model(), "erm")}, x, y, small, CPU, seed=0, keep_examples=["plain"], image_ids=["a"]
        )
