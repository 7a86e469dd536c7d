"""The training loop (balanced batches, checkpoints, resume) and the evaluation (AUC, CI, threshold on val)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _classifier_data import synthetic_split
from medadv.config import load_profile
from medadv.errors import ConfigError
from medadv.models.checkpoint import load_checkpoint, split_prefix
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.registry import load_trained, trained_models
from medadv.train.evaluate import compare_classifiers, evaluate_scores, sensitivity_specificity, youden_threshold
from medadv.train.loop import BalancedBatches, ClassifierConfig, TrainSpec, fit, vgg_runs, vgg_spec
from medadv.train.recipes import PaperObjective, Recipe, RecipeParams
from sklearn.metrics import roc_auc_score

TRAIN = synthetic_split(24, size=96, seed=1, contrast=0.6)
VAL = synthetic_split(12, size=96, seed=2, contrast=0.6, prefix="val")


def _spec(epochs: int, recipe: str = "erm") -> TrainSpec:
    return TrainSpec(
        name=f"vgg_{recipe}",
        recipe=recipe,
        epochs=epochs,
        warmup_epochs=1,
        lr_head=3e-3,
        lr_features=3e-3,
        betas=(0.5, 0.9),
        batch_per_class=2,
        steps_per_epoch=3,
    )


def _run(tmp: Path, epochs: int, recipe: str = "erm") -> tuple[VGGClassifier, object]:
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=1 / 16, init="random"))
    params = RecipeParams(eps=2 / 255, alpha=1 / 255, steps=1)
    result = fit(
        model,
        _spec(epochs, recipe),
        PaperObjective(),
        Recipe(recipe, params),
        TRAIN,
        VAL,
        tmp,
        seed=3,
        device=torch.device("cpu"),
    )
    return model, result


def test_balanced_batches_hold_n_of_each_class() -> None:
    labels = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    batches = list(BalancedBatches(labels, per_class=3, steps=4, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 4
    for idx in batches:
        assert labels[idx[:3].numpy()].tolist() == [1, 1, 1] and labels[idx[3:].numpy()].tolist() == [0, 0, 0]
    negatives = torch.cat([b[3:] for b in batches[:2]]).tolist()
    assert sorted(negatives[:6]) == sorted(set(negatives[:6]))  # without replacement within a pass


def test_fit_writes_checkpoints_and_history(tmp_path: Path) -> None:
    model, result = _run(tmp_path / "checkpoints", epochs=2)
    assert list(result.history.columns) == ["epoch", "loss", "train_accuracy", "val_auc", "seconds"]
    assert result.history["epoch"].tolist() == [1, 2]
    assert result.best_val_auc == pytest.approx(result.history["val_auc"].max())
    assert list(trained_models(tmp_path / "checkpoints")) == ["vgg_erm"]
    sidecar = json.loads((tmp_path / "checkpoints" / "vgg_erm.json").read_text())
    assert sidecar["recipe"] == "erm" and sidecar["epoch"] == result.best_epoch and sidecar["model"]["kind"] == "vgg"
    x = torch.from_numpy(VAL.images)
    with torch.no_grad():
        assert torch.allclose(
            load_trained(tmp_path / "checkpoints", "vgg_erm")(x), model.eval()(x)
        )  # best weights kept in the model
    state = json.loads((tmp_path / "checkpoints" / "training" / "vgg_erm_last.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2


@pytest.mark.parametrize("recipe", ["erm", "fast_at"])
def test_resume_after_a_kill_gives_the_uninterrupted_weights(tmp_path: Path, recipe: str) -> None:
    full, _ = _run(tmp_path / "a", epochs=2, recipe=recipe)
    _run(tmp_path / "b", epochs=1, recipe=recipe)  # killed after epoch 1 ...
    resumed, result = _run(tmp_path / "b", epochs=2, recipe=recipe)  # ... and started again
    assert result.history["epoch"].tolist() == [1, 2]
    a, _ = load_checkpoint(tmp_path / "a" / "training" / f"vgg_{recipe}_last")
    b, _ = load_checkpoint(tmp_path / "b" / "training" / f"vgg_{recipe}_last")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_auc_and_operating_point_against_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_val, y_test = rng.integers(0, 2, 80), rng.integers(0, 2, 90)
    s_val, s_test = y_val + rng.normal(0, 1, 80), y_test + rng.normal(0, 1, 90)
    val, test = evaluate_scores(y_val, s_val, y_test, s_test)
    assert test.auc == pytest.approx(roc_auc_score(y_test, s_test), abs=1e-12)
    assert val.auc == pytest.approx(roc_auc_score(y_val, s_val), abs=1e-12)
    assert test.auc_ci_low < test.auc < test.auc_ci_high
    t = youden_threshold(y_val, s_val)
    assert val.threshold == test.threshold == t
    j_best = max(sum(sensitivity_specificity(y_val, s_val, c)) for c in s_val)
    assert sum(sensitivity_specificity(y_val, s_val, t)) == pytest.approx(j_best)
    sens, spec = sensitivity_specificity(y_test, s_test, t)
    assert sens == pytest.approx(np.mean(s_test[y_test == 1] >= t)) and spec == pytest.approx(
        np.mean(s_test[y_test == 0] < t)
    )
    same = compare_classifiers(y_test, s_test, s_test)
    assert same["auc_difference"] == 0.0
    better = compare_classifiers(y_test, s_test + 3 * y_test, s_test)
    assert better["auc_difference"] > 0 and better["p_value"] < 0.05


def test_frozen_parts_are_bit_identical_after_their_phases(tmp_path: Path) -> None:
    """Paper 001's phases: epoch 1 the last layer alone, epoch 2 Fnet too (Vnet frozen), epoch 3 everything.

    Each run's last weights (the training state, not the best-validation model) are compared with the start."""
    torch.manual_seed(0)
    start = VGGClassifier(VGGConfig(width=1 / 16, dropout=0.0, init="random")).state_dict()
    part_of = {
        "features": lambda k: k.startswith("features."),
        "last": lambda k: k.startswith("head.out."),
        "head": lambda k: k.startswith("head.") and not k.startswith("head.out."),
    }
    changed: dict[int, set[str]] = {}
    for epochs in (1, 2, 3):
        spec = TrainSpec(
            name=f"phase{epochs}",
            recipe="erm_noaug",
            epochs=epochs,
            last_layer_epochs=1,
            warmup_epochs=1,
            lr_head=3e-3,
            lr_features=3e-3,
            betas=(0.5, 0.9),
            batch_per_class=2,
            steps_per_epoch=2,
        )
        model = VGGClassifier(VGGConfig(width=1 / 16, dropout=0.0, init="random"))
        model.load_state_dict(start)
        fit(
            model,
            spec,
            PaperObjective(),
            Recipe("erm_noaug", RecipeParams()),
            TRAIN,
            VAL,
            tmp_path,
            seed=3,
            device=torch.device("cpu"),
            resume=False,
        )
        tensors, _ = load_checkpoint(tmp_path / "training" / f"phase{epochs}_last")
        last = split_prefix(tensors, "model")
        changed[epochs] = {
            part
            for part, member in part_of.items()
            if any(member(k) and not torch.equal(last[k], v) for k, v in start.items())
        }
    assert changed == {1: {"last"}, 2: {"last", "head"}, 3: {"last", "head", "features"}}


def test_profiles_parse_into_the_classifier_config() -> None:
    for name in ("smoke", "default", "full"):
        cfg = ClassifierConfig.from_profile(load_profile(name))
        assert set(cfg.recipes) >= {"erm"} and cfg.epochs >= 1
    with pytest.raises(ConfigError, match="unknown recipes"):
        ClassifierConfig(recipes=("erm", "nonsense"))
    with pytest.raises(ConfigError, match="finetune_from_erm"):
        ClassifierConfig(recipes=("pgd_at",), finetune_from_erm=True)
    with pytest.raises(ConfigError, match="erm_matched"):
        ClassifierConfig(recipes=("erm", "erm_matched"))
    with pytest.raises(ConfigError, match="gp_at"):
        ClassifierConfig(erm_also_gp_at=("pixels",))
    default = ClassifierConfig.from_profile(load_profile("default"))
    assert [run.name for run in vgg_runs(default)] == [
        "vgg_erm",
        "vgg_erm_gp_features",
        "vgg_erm_gp_none",
        "vgg_erm_init_random",
        "vgg_erm_matched",
        "vgg_pgd_at",
        "vgg_rtda",
    ]
    assert [run.from_erm for run in vgg_runs(default)] == [False, False, False, False, True, True, True]
    assert [run.init for run in vgg_runs(default)] == ["kit", "kit", "kit", "random", "kit", "kit", "kit"]
    assert [run.gp_at for run in vgg_runs(default)][:3] == ["image", "features", "none"]
    with pytest.raises(ConfigError, match="init / erm_also_init has 'imagenet21k'"):
        ClassifierConfig(erm_also_init=("imagenet21k",))
    with pytest.raises(ConfigError, match="min_val_auc is 1.2"):
        ClassifierConfig(min_val_auc=1.2)
    common = {"betas": default.betas, "batch_per_class": 2}
    specs = {run.name: vgg_spec(default, run, common) for run in vgg_runs(default)}
    assert (specs["vgg_erm"].warmup_epochs, specs["vgg_erm"].lr_features) == (
        default.warmup_epochs,
        default.lr_features,
    )
    assert (
        default.warmup_epochs > 0 and default.lr_features < default.lr_head
    )  # paper 001's schedule, for a pretrained Vnet
    random_start = specs["vgg_erm_init_random"]  # the schedule made for random weights
    assert (random_start.warmup_epochs, random_start.lr_features, random_start.init) == (0, default.lr_head, "random")
    assert random_start.epochs == default.random_epochs > default.epochs == specs["vgg_erm"].epochs
    assert specs["vgg_pgd_at"].init == "vgg_erm"


def test_the_reference_model_is_one_the_section_trains() -> None:
    default = ClassifierConfig.from_profile(load_profile("default"))
    assert default.model_names() == [
        "vgg_erm",
        "vgg_erm_gp_features",
        "vgg_erm_gp_none",
        "vgg_erm_init_random",
        "vgg_erm_matched",
        "vgg_pgd_at",
        "vgg_rtda",
        "multitask_erm",
    ]
    assert default.reference_model == "vgg_erm"
    assert ClassifierConfig(recipes=("pgd_at",), multitask=False, reference_model="vgg_pgd_at").model_names() == [
        "vgg_pgd_at"
    ]
    assert ClassifierConfig(reference_model="multitask_erm").reference_model == "multitask_erm"
    with pytest.raises(
        ConfigError,
        match=r"classifier.reference_model is 'vgg_erm', which this section does not train; "
        r"it trains \['vgg_pgd_at', 'multitask_erm'\]",
    ):
        ClassifierConfig(recipes=("pgd_at",))
    with pytest.raises(ConfigError, match=r"reference_model is 'multitask_erm'.*it trains \['vgg_erm'\]"):
        ClassifierConfig(recipes=("erm",), multitask=False, reference_model="multitask_erm")


def _fit_in(ctx: object, epochs: int) -> object:
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=1 / 16, init="random"))
    return fit(
        model,
        _spec(epochs),
        PaperObjective(),
        Recipe("erm", RecipeParams()),
        TRAIN,
        VAL,
        ctx.layout.checkpoints,
        seed=3,
        device=torch.device("cpu"),
        ledger=ctx,
    )


def _damage(path: Path) -> None:
    """Change one byte of the last tensor's data: the file still loads, with other weights."""
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_or_foreign_training_state_is_never_resumed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 32, item 9: a damaged vgg_erm.safetensors was resumed from ('after epoch 1 of 1') and registered."""
    import logging
    import shutil

    from medadv.core import sha256_file
    from medadv.report import RunContext

    def reopen(run: Path) -> RunContext:  # as notebook 01 does on each run
        return RunContext.open(run, "01_classifier_training", profile="smoke", device="cpu")

    _fit_in(reopen(tmp_path / "a"), 2)
    uninterrupted, _ = load_checkpoint(tmp_path / "a" / "checkpoints" / "vgg_erm")
    ckpt = tmp_path / "b" / "checkpoints"
    _fit_in(reopen(tmp_path / "b"), 1)  # killed after epoch 1: the state is registered epoch by epoch ...
    with caplog.at_level(logging.INFO, logger="medadv.train.loop"):
        assert _fit_in(reopen(tmp_path / "b"), 2).history["epoch"].tolist() == [1, 2]  # ... and resumed
    assert "resuming after epoch 1 of 2" in caplog.text
    for damaged in (ckpt / "vgg_erm.safetensors", ckpt / "training" / "vgg_erm_last.safetensors"):
        _damage(damaged)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="medadv.train.loop"):
            _fit_in(reopen(tmp_path / "b"), 2)
        assert (
            f"vgg_erm: training state not resumed ({damaged.name} is not the file this run folder recorded "
            "(damaged, or from another run)); training from the start"
        ) in caplog.text
        assert "resuming" not in caplog.text
        weights, _ = load_checkpoint(ckpt / "vgg_erm")
        assert all(torch.equal(weights[k], uninterrupted[k]) for k in weights)  # retrained to the same weights
        ctx = reopen(tmp_path / "b")
        assert ctx.recorded_sha256(damaged) == sha256_file(damaged)  # the new file is what the folder records
    shutil.copytree(tmp_path / "a" / "checkpoints" / "training", ckpt / "training", dirs_exist_ok=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="medadv.train.loop"):
        _fit_in(reopen(tmp_path / "b"), 2)  # another run folder's state, although it has the same fingerprint
    assert re.search(r"vgg_erm_last\.(json|safetensors) is not the file this run folder recorded", caplog.text)


def test_a_truncated_state_outside_a_run_folder_is_retrained_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    _run(tmp_path, epochs=1)
    state = tmp_path / "training" / "vgg_erm_last.safetensors"
    state.write_bytes(state.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, logger="medadv.train.loop"):
        _, result = _run(tmp_path, epochs=1)
    assert result.history["epoch"].tolist() == [1]
    assert "vgg_erm: training state not resumed" in caplog.text and "corrupt safetensors checkpoint" in caplog.text
