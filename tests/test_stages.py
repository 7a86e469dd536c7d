"""The stage modules (one per notebook): configs loaded by ``Config.from_profile`` and the logic moved out of the
notebooks, on tiny inputs."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from medadv.attacks.robustness import AttackConfig, Robustness
from medadv.config import PROFILE_NAMES, load_profile, profile_from_dict
from medadv.data.images import SplitArrays
from medadv.detect.config import DetectionConfig
from medadv.errors import ConfigError, DataError
from medadv.explain.study import ExplainConfig
from medadv.layout import RunLayout
from medadv.reader_app.config import ReaderConfig
from medadv.report import RunContext
from medadv.stages import (
    attack_evaluation,
    classifier_training,
    data_prep,
    gan_training,
    gradcam_alignment,
    input_detection,
    reader_study,
    replication,
)
from medadv.stages.competence import competence_of
from medadv.stats.accuracy import is_degenerate
from medadv.train.evaluate import COMPETENCE_COLUMNS, SplitMetrics, competence_columns
from medadv.train.gan import GanConfig, GanResult
from medadv.train.loop import ClassifierConfig, TrainedClassifier, TrainResult, TrainSpec
from torch import nn

# ---------------------------------------------------------------- configs


def _domain_loaders(profile):  # noqa: ANN001, ANN202 - (stage config class, the domain package's own loading)
    return [
        (data_prep.DataPrepConfig, profile.data),
        (classifier_training.ClassifierTrainingConfig, ClassifierConfig.from_profile(profile)),
        (gan_training.GanTrainingConfig, GanConfig.from_profile(profile)),
        (attack_evaluation.AttackEvaluationConfig, AttackConfig.from_profile(profile)),
        (gradcam_alignment.GradcamAlignmentConfig, ExplainConfig.from_profile(profile)),
        (reader_study.ReaderStudyConfig, ReaderConfig.from_profile(profile)),
        (input_detection.DetectConfig, DetectionConfig.from_profile(profile)),
    ]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_stage_config_loads_from_the_profile_as_the_domain_loader_does(name: str) -> None:
    profile = load_profile(name)
    for cls, expected in _domain_loaders(profile):
        config = cls.from_profile(profile)
        assert type(config) is cls
        assert isinstance(config, type(expected))
        assert dataclasses.asdict(config) == dataclasses.asdict(expected), cls.__name__
    assert replication.ReplicationConfig.from_profile(profile) == replication.ReplicationConfig(seed=0)


def test_a_stage_config_refuses_an_unknown_key_naming_its_section() -> None:
    profile = profile_from_dict({"name": "x", "seed": 1, "classifier": {"epochs": 3, "epochz": 4}})
    with pytest.raises(ConfigError, match=r"'classifier'.*epochz"):
        classifier_training.ClassifierTrainingConfig.from_profile(profile)
    with pytest.raises(ConfigError, match="gradcam"):
        gradcam_alignment.GradcamAlignmentConfig.from_profile(
            profile_from_dict({"explain": {"methods": ["gradcam"], "primary_metric": "gradcam"}})
        )


def test_a_stage_config_takes_the_profiles_values_and_validates_them() -> None:
    profile = profile_from_dict(
        {
            "seed": 3,
            "classifier": {"epochs": 50},
            "attacks": {"steps": 5},
            "data": {"n_patients": 40, "image_size": [16, 16]},
        }
    )
    assert classifier_training.ClassifierTrainingConfig.from_profile(profile).epochs == 50
    attacks = attack_evaluation.AttackEvaluationConfig.from_profile(profile)
    assert attacks.steps == 5 and attacks.ifgsm_eps == pytest.approx(25 * 0.1 / 255)  # the domain class's property
    data = data_prep.DataPrepConfig.from_profile(profile)
    assert (data.n_patients, tuple(data.image_size)) == (40, (16, 16))
    with pytest.raises(ConfigError, match="session_counts"):
        reader_study.ReaderStudyConfig.from_profile(profile_from_dict({"reader": {"session_counts": [1, 2, 3, 4, 5]}}))


# ---------------------------------------------------------------- 01 classifier training


def _trained(name: str, best_epoch: int, init: str) -> TrainedClassifier:
    history = pd.DataFrame({"epoch": [1, 2], "loss": [0.7, 0.5], "seconds": [1.0, 1.5]})
    spec = TrainSpec(
        name=name,
        recipe="erm",
        epochs=2,
        warmup_epochs=1,
        lr_head=1e-3,
        lr_features=1e-4,
        betas=(0.5, 0.9),
        batch_per_class=4,
        init=init,
    )
    return TrainedClassifier(
        name, name.split("_", 1)[1], nn.Linear(1, 2), TrainResult(name, "erm", history, best_epoch, 0.8, 2.5), spec
    )


def test_checkpoint_files_list_the_model_and_its_last_state_per_classifier(tmp_path: Path) -> None:
    trained = [_trained("vgg_erm", 2, "kit"), _trained("vgg_rtda", 1, "vgg_erm")]
    layout = RunLayout(tmp_path)
    names = [
        p.relative_to(layout.checkpoints).as_posix() for p in classifier_training.checkpoint_files(layout, trained)
    ]
    assert names == [
        "vgg_erm.safetensors",
        "vgg_erm.json",
        "training/vgg_erm_last.safetensors",
        "training/vgg_erm_last.json",
        "vgg_rtda.safetensors",
        "vgg_rtda.json",
        "training/vgg_rtda_last.safetensors",
        "training/vgg_rtda_last.json",
    ]


def _metrics_with_competence(val_auc: float, positive_rate: float) -> pd.DataFrame:
    rows = []
    for model, test_auc in (("vgg_erm", 0.912345), ("vgg_rtda", 0.876543)):
        for split, auc in (("val", val_auc), ("test", test_auc)):
            rows.append(
                SplitMetrics(
                    split,
                    auc,
                    auc - 0.061234,
                    min(auc + 0.054315, 1.0),
                    0.8,
                    0.7,
                    0.5,
                    0.75,
                    0.74,
                    positive_rate,
                    0.7,
                    is_degenerate(np.arange(100) < 100 * positive_rate),
                )
            )
    table = pd.DataFrame(
        [
            {"model": m, "recipe": "erm", **dataclasses.asdict(r)}
            for m, r in zip(["vgg_erm"] * 2 + ["vgg_rtda"] * 2, rows, strict=True)
        ]
    )
    return competence_columns(table, 0.8, "vgg_erm")


def test_classifier_headline_reads_the_test_rows_and_the_competence() -> None:
    trained = [_trained("vgg_erm", 2, "kit"), _trained("vgg_rtda", 1, "vgg_erm")]
    metrics = _metrics_with_competence(0.85, 0.4)
    head = classifier_training.headline(trained, metrics, "vgg_erm")
    assert head["test_auc"] == {"vgg_erm": 0.9123, "vgg_rtda": 0.8765}
    assert head["test_auc_ci"] == {"vgg_erm": [0.8511, 0.9667], "vgg_rtda": [0.8153, 0.9309]}
    assert head["best_epoch"] == {"vgg_erm": 2, "vgg_rtda": 1} and head["init"] == {
        "vgg_erm": "kit",
        "vgg_rtda": "vgg_erm",
    }
    assert head["competence"] == {
        "model": "vgg_erm",
        "val_auc": 0.85,
        "min_val_auc": 0.8,
        "passes_gate": True,
        "degenerate": False,
        "competent": True,
    }
    starts = classifier_training.initialisation(trained)
    assert starts.loc["vgg_erm", "start"].startswith("Vnet from the kit's pretrained Vnet")
    assert starts.loc["vgg_rtda", "start"] == "fine-tuned from vgg_erm"
    assert list(classifier_training.test_metrics(metrics).index) == ["vgg_erm", "vgg_rtda"]
    assert list(classifier_training.training_histories(trained)) == ["vgg_erm", "vgg_rtda"]


def test_a_classifier_below_the_gate_or_degenerate_gets_a_banner() -> None:
    good = competence_of(_metrics_with_competence(0.85, 0.4), "vgg_erm")
    assert good.competent and good.banner() is None and "has learned" in good.text()
    low = competence_of(_metrics_with_competence(0.65, 0.4), "vgg_erm")
    assert not low.competent and "0.650, below the profile's competence gate" in low.banner()
    constant = competence_of(_metrics_with_competence(0.85, 0.99), "vgg_erm")
    assert constant.passes_gate and constant.degenerate and not constant.competent
    assert "calls 99% of the test images positive (degenerate" in constant.text()
    assert good.gate_words() == "gate 0.8"
    ungated = dataclasses.replace(good, min_val_auc=float("nan"))  # the smoke profile's (its log said 'gate nan')
    assert ungated.gate_words() == "no gate (classifier.min_val_auc: null)" and "no gate" in ungated.text()
    assert competence_columns(
        _metrics_with_competence(0.65, 0.4).drop(columns=list(COMPETENCE_COLUMNS)), None, "vgg_erm"
    )["passes_gate"].all()  # no gate: only the degenerate flag counts


# ---------------------------------------------------------------- 02 GAN training


class _Shift(nn.Module):
    """A stand-in generator: adds ``delta`` to every pixel, clipped to [0, 1]."""

    def __init__(self, delta: float) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.delta).clamp(0, 1)


def _split(split: str, labels: list[int], size: int = 8) -> SplitArrays:
    n = len(labels)
    images = np.linspace(0.2, 0.6, n * size * size, dtype=np.float32).reshape(n, 1, size, size)
    rows = pd.DataFrame({"image_id": [f"{split}{i}" for i in range(n)], "split": split, "label": labels})
    return SplitArrays(images, np.array(labels, np.int64), np.zeros(images.shape, bool), np.zeros(n, bool), rows)


def _gan_inputs() -> gan_training.GanInputs:
    splits = {"train": _split("train", [1, 0, 1, 0]), "val": _split("val", [1, 0]), "test": _split("test", [0, 1, 1])}
    cohort = pd.concat([s.rows for s in splits.values()], ignore_index=True)
    return gan_training.GanInputs(cohort, splits, "vgg_erm", nn.Identity())


def test_adversarial_and_education_sets_are_written_validated_and_registered(tmp_path: Path) -> None:
    ctx = RunContext.open(tmp_path, "02_gan_training", profile="smoke", device="cpu")
    inputs = _gan_inputs()
    generators = {"remove": _Shift(-0.1), "insert": _Shift(0.25)}
    adversarial = gan_training.build_adversarial_set(ctx, inputs, generators)
    assert inputs.sizes() == {"train": 4, "val": 2, "test": 3}
    test = inputs.splits["test"]
    expected = test.images + np.where(test.labels == 1, -0.1, 0.25)[:, None, None, None]
    np.testing.assert_allclose(adversarial.fakes["test"], expected, atol=1e-6)
    assert list(adversarial.index["image_id"]) == ["val0", "val1", "test0", "test1", "test2"]
    assert list(adversarial.index["fake_label"]) == [0, 1, 1, 0, 0]
    np.testing.assert_allclose(adversarial.index["mean_abs_change"], [0.1, 0.25, 0.25, 0.1, 0.1], atol=1e-4)
    edu = gan_training.education_set(ctx, inputs, generators, dataclasses.replace(GanConfig(), education_triplets=1))
    assert len(edu) == 2
    manifest = json.loads((tmp_path / "manifest.json").read_text())["outputs"]
    pngs = sorted(k for k in manifest if k.endswith(".png"))
    assert len(pngs) == 5 + 2 * 3 and all((tmp_path / k).is_file() for k in pngs)
    broken = inputs.cohort.assign(label=1 - inputs.cohort["label"])
    with pytest.raises(DataError, match="labels not flipped"):
        gan_training.build_adversarial_set(ctx, dataclasses.replace(inputs, cohort=broken), generators)


def test_direction_titles_warning_text_and_the_gan_headline() -> None:
    assert gan_training.direction_titles(["a", "b"], [1, 0]) == ["a (remove)", "b (insert)"]
    with pytest.raises(ValueError):
        gan_training.direction_titles(["a"], [1, 0])
    assert gan_training.warning_text([]) == "Every stage reached its target."
    assert gan_training.warning_text(["x", "y"]) == "WARNING: x\nWARNING: y"
    history = pd.DataFrame({"epoch": [1, 2, 1], "epoch_seconds": [1.5, 2.0, 0.5]})
    results = {
        d: GanResult(d, nn.Identity(), nn.Identity(), history.iloc[rows])  # type: ignore[arg-type]
        for d, rows in (("remove", [0, 1]), ("insert", [2]))
    }
    training = gan_training.GanTraining(results, history, ["late"])
    flips = pd.DataFrame({"source_label": [1, 0], "flip_rate": [0.75, 0.5]})
    fidelity = pd.DataFrame(
        {"generator": ["remove", "insert"], "metric": ["ssim", "discriminator_auc"], "mean": [0.9, 0.6]}
    )
    assert gan_training.headline(flips, fidelity, {"share_inside": 0.4}, training) == {
        "erm_flip_rate_1": 0.75,
        "erm_flip_rate_0": 0.5,
        "remove_ssim": 0.9,
        "insert_discriminator_auc": 0.6,
        "share_inside": 0.4,
        "remove_epochs": 2,
        "insert_epochs": 1,
        "gan_warnings": ["late"],
        "train_seconds": 4.0,
    }
    assert set(training.generators) == {"remove", "insert"}


# ---------------------------------------------------------------- 03 attack evaluation


class _Constant(nn.Module):
    """A stand-in classifier: positive-class logit ``scale`` x the image's mean minus ``bias``."""

    def __init__(self, scale: float, bias: float) -> None:
        super().__init__()
        self.scale, self.bias = scale, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scale * x.mean(dim=(1, 2, 3)) - self.bias
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_gan_attack_by_recipe_scores_every_model_on_the_same_fakes() -> None:
    test = _split("test", [1, 1, 0, 0])
    test.images[:] = np.array([0.9, 0.8, 0.1, 0.2], np.float32)[:, None, None, None]
    fakes = np.array([0.1, 0.7, 0.9, 0.3], np.float32)[:, None, None, None] * np.ones_like(test.images)
    models = {"vgg_erm": (_Constant(20.0, 10.0), "erm"), "vgg_rtda": (_Constant(-20.0, -10.0), "rtda")}
    inputs = attack_evaluation.AttackInputs(pd.DataFrame(), test, models, "vgg_erm", models["vgg_erm"][0])
    table = attack_evaluation.gan_attack_by_recipe(inputs, fakes, AttackConfig(), torch.device("cpu"))
    assert list(table["model"]) == ["vgg_erm", "vgg_rtda"] and list(table["recipe"]) == ["erm", "rtda"]
    erm, inverted = table.iloc[0], table.iloc[1]
    # vgg_erm gets all four right; the fakes of image 0 (0.1) and image 2 (0.9) cross the threshold, 1 and 3 do not
    assert (erm["accuracy_positive"], erm["accuracy_negative"]) == (1.0, 1.0)
    assert (erm["n_correct"], erm["n_fooled"], erm["fooling_rate_overall"]) == (4, 2, 0.5)
    assert inverted["n_correct"] == 0 and inverted["auc_real"] == 0.0
    assert inputs.model_table().to_dict(orient="index") == {
        "vgg_erm": {"recipe": "erm", "test_images": 4},
        "vgg_rtda": {"recipe": "rtda", "test_images": 4},
    }
    assert attack_evaluation.multitask_example(inputs, AttackConfig(), torch.device("cpu"), 0) is None  # none trained
    named = dataclasses.replace(AttackConfig(), ifgsm_model="vgg_rtda", n_examples=2)  # the profile names the model
    fig = attack_evaluation.multitask_example(inputs, named, torch.device("cpu"), 0)
    assert isinstance(fig, Figure) and fig.get_suptitle().endswith("against vgg_rtda (paper 004)")


def test_erm_variants_and_the_attack_headline() -> None:
    by_recipe = pd.DataFrame(
        {
            "model": ["vgg_erm", "vgg_pgd_at", "vgg_erm_features"],
            "recipe": ["erm", "pgd_at", "erm"],
            "clean_accuracy": [0.9, 0.8, 0.85],
        }
    )
    assert list(attack_evaluation.erm_variants(by_recipe, "vgg_erm")["model"]) == ["vgg_erm", "vgg_erm_features"]
    assert list(attack_evaluation.erm_variants(by_recipe, "vgg_pgd_at")["model"]) == ["vgg_pgd_at"]

    class _Result:
        def summary(self) -> dict[str, float]:
            return {"fooling_rate_overall": 0.6}

    gan = attack_evaluation.GanAttack(_Result(), np.zeros(1), np.zeros(1), np.zeros(1))  # type: ignore[arg-type]
    worst = pd.DataFrame(
        {
            "model": ["vgg_erm", "vgg_pgd_at"],
            "norm": "linf",
            "eps": 2 / 255,
            "worst_case_accuracy": [0.1, 0.5],
            "worst_case_balanced_accuracy": [0.15, 0.55],
        }
    )
    robust = Robustness(
        by_recipe, pd.DataFrame(), pd.DataFrame(), worst, _sanity(vgg_erm=(), vgg_pgd_at=("a_unbounded",))
    )
    assert attack_evaluation.headline(gan, robust) == {
        "gan_attack": {"fooling_rate_overall": 0.6},
        "robust_accuracy": {
            "vgg_erm": {"clean_accuracy": 0.9},
            "vgg_pgd_at": {"clean_accuracy": 0.8},
            "vgg_erm_features": {"clean_accuracy": 0.85},
        },
        "worst_case": {
            "vgg_erm": {"linf 0.00784314": {"accuracy": 0.1, "balanced_accuracy": 0.15}},
            "vgg_pgd_at": {"linf 0.00784314": {"accuracy": 0.5, "balanced_accuracy": 0.55}},
        },
        "masking_suspected": {"vgg_erm": "", "vgg_pgd_at": "a_unbounded"},
    }


def _sanity(**failed: tuple[str, ...]) -> pd.DataFrame:
    """attack_sanity rows: model -> the checks it fails, each with a meaning that names it."""
    checks = ("a_large_budget", "a_unbounded", "c_white_box_vs_black_box")
    return pd.DataFrame(
        [
            {"model": m, "check": c, "value": 0.0, "passes": c not in fails, "meaning": f"{c} said so"}
            for m, fails in failed.items()
            for c in checks
        ]
    )


def _penalty_run(pgd: dict[str, float], worst: dict[str, float], failed: dict[str, tuple[str, ...]]) -> Robustness:
    """Curves and worst case of vgg_erm and its penalty readings at 2/255 (balanced accuracies as given)."""
    eps, rows = 2 / 255, []
    for model in pgd:
        rows += [
            {"model": model, "attack": "clean", "norm": "none", "eps": 0.0, "balanced_accuracy": 0.8},
            {"model": model, "attack": "pgd", "norm": "linf", "eps": eps, "balanced_accuracy": pgd[model]},
            {"model": model, "attack": "square", "norm": "linf", "eps": eps, "balanced_accuracy": worst[model]},
        ]
    worst_case = pd.DataFrame(
        {"model": list(worst), "norm": "linf", "eps": eps, "worst_case_balanced_accuracy": list(worst.values())}
    )
    return Robustness(pd.DataFrame(), pd.DataFrame(rows), pd.DataFrame(), worst_case, _sanity(**failed))


def test_the_masking_verdict_and_the_penalty_verdict_read_the_runs_numbers() -> None:
    text = attack_evaluation.masking_verdict(_sanity(vgg_erm=(), vgg_pgd_at=("c_white_box_vs_black_box",)))
    assert "**vgg_erm** passes every check" in text
    assert "**vgg_pgd_at**: masking suspected (c_white_box_vs_black_box: c_white_box_vs_black_box said so)" in text
    config = AttackConfig(square_queries=10, ensemble=("fgsm", "pgd", "square"))
    models = ("vgg_erm", "vgg_erm_gp_features", "vgg_erm_gp_none")
    masked = _penalty_run(
        dict(zip(models, (0.6, 0.3, 0.2))),
        dict(zip(models, (0.22, 0.2, 0.2))),
        {"vgg_erm": ("c_white_box_vs_black_box",), "vgg_erm_gp_features": (), "vgg_erm_gp_none": ()},
    )
    table = attack_evaluation.penalty_table(masked, "vgg_erm", config)
    assert table["model"].tolist() == list(models) and table["penalty"].tolist() == ["image", "features", "none"]
    assert table.set_index("model").loc["vgg_erm", ["pgd", "square", "worst_case"]].tolist() == [0.6, 0.22, 0.22]
    verdict = attack_evaluation.penalty_verdict(table, "vgg_erm", 0.02)
    assert "**Masked gradients**" in verdict and "0.600" in verdict and "gap +0.400" in verdict
    assert "fails c_white_box_vs_black_box" in verdict
    real = _penalty_run(
        dict(zip(models, (0.6, 0.3, 0.2))), dict(zip(models, (0.55, 0.2, 0.2))), {m: () for m in models}
    )
    verdict = attack_evaluation.penalty_verdict(
        attack_evaluation.penalty_table(real, "vgg_erm", config), "vgg_erm", 0.02
    )
    assert "**Robustness, as far as this ensemble can tell**" in verdict and "gap +0.350" in verdict
    none = _penalty_run(
        dict(zip(models, (0.21, 0.3, 0.2))), dict(zip(models, (0.2, 0.2, 0.2))), {m: () for m in models}
    )
    verdict = attack_evaluation.penalty_verdict(
        attack_evaluation.penalty_table(none, "vgg_erm", config), "vgg_erm", 0.02
    )
    assert "**No resistance to explain**" in verdict
    partial = _penalty_run({"vgg_erm": 0.6}, {"vgg_erm": 0.2}, {"vgg_erm": ()})
    verdict = attack_evaluation.penalty_verdict(
        attack_evaluation.penalty_table(partial, "vgg_erm", config), "vgg_erm", 0.02
    )
    assert "did not train both vgg_erm and vgg_erm_gp_none" in verdict


# ---------------------------------------------------------------- 04 Grad-CAM alignment


def test_alignment_tables_text_and_headline() -> None:
    cfg = ExplainConfig(
        models=("vgg_erm", "vgg_rtda"), methods=("gradcam",), attack_models=("vgg_erm",), fgsm_models=("vgg_erm",)
    )
    scores = pd.DataFrame(
        {
            "model": ["vgg_erm", "vgg_erm", "vgg_rtda", "vgg_rtda", "vgg_erm"],
            "method": ["gradcam"] * 5,
            "metric": [cfg.primary_metric] * 4 + ["pointing_game"],
            "score": [0.2, 0.4, 0.6, 0.7, 1.0],
        }
    )
    table = gradcam_alignment.primary_table(scores, cfg)
    assert table.loc["vgg_erm", "gradcam"] == 0.3 and table.loc["vgg_rtda", "gradcam"] == 0.65
    summary = {"better_than_reference_p01": 1, "comparisons": 4, "worse_than_reference_p01": 2, "tests": []}
    assert gradcam_alignment.headline_text(summary, cfg) == (
        "relevance_mass_accuracy: 1 of 4 comparisons find a model better aligned than vgg_erm (Holm p < 0.01), "
        "2 find it worse."
    )
    shift = gradcam_alignment.MapAttack(
        pd.DataFrame({"model": ["a", "a", "b"], "label_changed": [True, False, False]}),
        pd.DataFrame({"model": ["a"], "shift": [0.5]}),
        [],
    )
    attack = gradcam_alignment.MapAttack(pd.DataFrame(), pd.DataFrame({"model": ["a"], "drop": [0.25]}), [])
    out = gradcam_alignment.headline(summary, attack, shift, cfg, time.perf_counter() - 2.0)
    assert out["attack"] == [{"model": "a", "drop": 0.25}] and out["fgsm_gradcam_shift"] == [
        {"model": "a", "shift": 0.5}
    ]
    assert out["fgsm_label_changed_rate"] == {"a": 0.5, "b": 0.0} and out["attack_metric"] == cfg.attack_metric
    assert 2.0 <= out["seconds"] < 60 and out["comparisons"] == 4
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = True  # half of the first image, none of the second: a quarter on average
    inputs = gradcam_alignment.AlignmentInputs(np.zeros((2, 1, 4, 4)), masks, ["p1", "p2"], {}, 0.0)
    assert inputs.description() == "2 test positives with lesion masks; lesion area 25.0% of the image on average"


# ---------------------------------------------------------------- 05 reader study


def test_reader_study_views_and_headline(tmp_path: Path) -> None:
    accuracy = pd.DataFrame(
        {
            "responses": "simulated",
            "reader": ["r1", "r1", "r2", "r1"],
            "label": ["all"] * 3 + ["1"],
            "truth": ["real", "fake", "real", "real"],
            "session": [3, 3, 5, 3],
            "accuracy": [0.8, 0.4, 0.6, 0.1],
        }
    )
    tests = pd.DataFrame(
        {c: [0, 1, 2] for c in reader_study.SESSION_TEST_COLUMNS}
        | {"label": ["all", "all", "1"], "truth": ["all", "fake", "fake"]}
    )
    reads = pd.DataFrame({"reader": ["r1", "r1", "r2"]})

    class _Results:
        label = "simulated"

    _Results.reads = reads  # type: ignore[attr-defined]
    study = reader_study.ReaderStudy(
        _Results(),
        {"reader_accuracy": accuracy, "reader_session_tests": tests},  # type: ignore[arg-type]
        "data/x",
        ["r9", "r8"],
    )
    pivot = reader_study.accuracy_by_session(study)
    assert (
        pivot.loc["r1", ("real", 3)] == 0.8
        and pivot.loc["r1", ("fake", 3)] == 0.4
        and pivot.loc["r2", ("real", 5)] == 0.6
    )
    changes = reader_study.session_changes(study)
    assert list(changes.columns) == reader_study.SESSION_TEST_COLUMNS and list(changes["reader"]) == [1]
    assert study.description() == (
        "**Simulated readers**: 2 readers, 3 reads in sessions 2, 3 and 5, from `data/x`. Left out, unfinished: r9, r8."
    )

    class _Packages:
        root = tmp_path / "data" / "reader_packages"
        sessions = pd.DataFrame({"session": [1, 2], "built": [10, 12]})

    ctx = RunContext.open(tmp_path, "05_reader_study", profile="smoke", device="cpu")
    assert reader_study.packages_headline(ctx, _Packages()) == {  # type: ignore[arg-type]
        "sessions_built": {"1": 10, "2": 12},
        "packages": "data/reader_packages",
    }
