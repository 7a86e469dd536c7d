"""Notebook 06, detecting manipulated inputs: the detectors of :mod:`medadv.detect` built from a run folder, the
detection study (GAN fakes; notebook 03's FGSM and PGD examples at every L-inf budget of the ``attacks`` section and
its APGD examples at the headline budget; adaptive PGD against each detector), and each detector as one more reader of
Sessions 3 and 5 of notebook 05's packages.

Choices where the issue was silent (README, "Detecting manipulated images"):

* **Images.** Clean images are the test split's real images; the GAN's manipulated images are their fakes (notebook
  02); the gradient attacks' images are notebook 03's adversarial examples of the protected classifier
  (``detect.classifier``, ``vgg_erm``), computed once there and read here (:mod:`medadv.attacks.examples`): for every
  test image the classifier gets right unattacked, the first example the attack found in the budget's ball (PGD's
  from its nested budgets, APGD's from AutoAttack's cascade PGD -> APGD-CE -> APGD-margin at the headline budget,
  :data:`medadv.detect.config.ENSEMBLE_ATTACK`). Every example counts, fooled or not; the ``fooled`` column gives the
  share the classifier gets wrong. Images it gets wrong unattacked have no example (an attacker has nothing to do).
* **The real-vs-fake classifier** is the protected classifier's network (rebuilt from its checkpoint's spec with
  :func:`medadv.models.registry.build_model`), started from its weights (``detect.fake_init: classifier``) or at
  random, trained by the kit's loop with paper 001's recipe on the training split's real images (0) against fakes of
  them made by notebook 02's generators (1), the model kept at the best validation AUC on the validation images and
  their fakes. Its checkpoint lives in ``checkpoints/detect`` so it is never mistaken for a diagnostic classifier.
* **Mahalanobis** is fitted on the clean training images with their diagnostic labels; **feature squeezing** needs no
  fitting; the **GAN discriminator** baseline loads both discriminators of notebook 02.
* **Adaptive attacks** (``attack = adaptive_pgd``) target one detector each, at ``detect.adaptive_eps`` (empty: every
  L-inf budget): PGD on the classifier's loss until it is fooled, then on the detector's score; only the targeted
  detector's AUC is reported for them, beside its non-adaptive PGD row at the same budget.
* **The detector as a reader** answers *not real* when its score is at or above the Youden threshold chosen on the
  validation split's real images against their fakes, *real* otherwise (never *unsure*); its confidence 1-5 is the
  quantile of its distance from the threshold among the validation scores on the same side
  (:func:`medadv.detect.metrics.confidence_levels`). It reads the PNGs of the session folders, exactly what the
  human readers see, and its reading time is its measured scoring time per image.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from medadv.attacks.examples import EXAMPLES_DIR, AttackExamples, read_examples
from medadv.attacks.gan_attack import load_fakes
from medadv.attacks.robustness import AttackConfig
from medadv.core import read_json
from medadv.data.adversarial import read_adversarial_index
from medadv.data.images import SplitArrays, load_split, read_image, resize
from medadv.data.pixels import quantize
from medadv.detect import (Detector, DiscriminatorScore, FeatureSqueezing, MahalanobisDetector, RealFakeClassifier,
                           adaptive_pgd, detection_metrics)
from medadv.detect.config import ENSEMBLE_ATTACK, DetectionConfig
from medadv.detect.metrics import confidence_levels
from medadv.errors import CheckpointError, RunError
from medadv.models.checkpoint import CheckpointLedger, checkpoint_paths, load_checkpoint, split_prefix
from medadv.models.gan import DIRECTIONS, Discriminator, flipped_fakes
from medadv.models.registry import build_model, load_model_checkpoint, trained_models
from medadv.reader_app.analysis import MRMC_TREATMENTS, analyse_responses, load_responses
from medadv.reader_app.packages import ANSWER_KEY_FILE, PACKAGES_DIR, SESSION_MANIFEST_FILE, session_dir_name
from medadv.reader_app.responses import RESPONSE_COLUMNS, read_responses, validate_responses
from medadv.reader_app.simulate import write_responses
from medadv.report import SUMMARY_FILE, RunContext
from medadv.stages.reader_study import SIMULATED_DIR
from medadv.stats.reader import accuracy_table, ratings_from_responses, session_tests
from medadv.stats.standalone import standalone_vs_readers
from medadv.train.evaluate import youden_threshold
from medadv.train.gan import load_generator
from medadv.train.loop import ClassifierConfig, TrainSpec, fit
from medadv.train.recipes import PaperObjective, Recipe

ADAPTIVE = "adaptive_pgd"
GAN_ATTACK = "gan"
MACHINE_SESSIONS = MRMC_TREATMENTS  # the blinded half-real, half-fake sessions 3 and 5
MACHINE_DIR = "reader_responses_machine"
DETECT_CHECKPOINTS = "detect"
REAL_FAKE_NAME = "real_fake_classifier"

__all__ = ["ADAPTIVE", "DetectConfig", "DetectionInputs", "DetectionStudy", "MachineReaderStudy",
           "adaptive_comparison", "build_detectors", "citations", "detection_study", "load_inputs",
           "machine_reader_study", "machine_responses", "panel_folder", "train_real_fake"]


@dataclasses.dataclass(frozen=True)
class DetectConfig(DetectionConfig):
    """The profile's ``detect`` section (``DetectConfig.from_profile(profile)``): :class:`medadv.detect.config.
    DetectionConfig`, whose attributes and defaults it keeps."""


# ---------------------------------------------------------------- the detectors


@dataclasses.dataclass(frozen=True)
class DetectionInputs:
    """The images of the detection study.

    Attributes:
        splits: the cohort's train, val and test splits at the profile's image size.
        fakes: ``val`` and ``test`` -> notebook 02's fake of every image of the split, in the split's order.
        examples: notebook 03's adversarial examples of ``detect.classifier`` on the test images.
    """

    splits: dict[str, SplitArrays]
    fakes: dict[str, np.ndarray]
    examples: AttackExamples


def load_inputs(ctx: RunContext) -> DetectionInputs:
    """The run's three splits, notebook 02's adversarial set and notebook 03's adversarial examples (validated
    against the cohort).

    Returns:
        :class:`DetectionInputs`.

    Raises:
        RunError: notebook 02 has not written ``adversarial_index``, or notebook 03 its examples; DataError: the
            index or the examples do not match the cohort.
    """
    cohort = ctx.cohort()
    size = tuple(ctx.profile.data.image_size)
    splits = {s: load_split(cohort, ctx.image_root, size, s) for s in ("train", "val", "test")}
    index = read_adversarial_index(ctx.run_dir, cohort)
    examples = read_examples(ctx.data_dir / EXAMPLES_DIR, DetectConfig.from_profile(ctx.profile).classifier,
                             list(splits["test"].rows["image_id"]))
    return DetectionInputs(splits, {s: load_fakes(ctx.run_dir, index, splits[s].rows["image_id"], size)
                                    for s in ("val", "test")}, examples)


def load_discriminators(run_dir: Path, classifier: nn.Module, device: torch.device) -> dict[str, nn.Module]:
    """Notebook 02's trained discriminators (``checkpoints/gan_remove``, ``gan_insert``), in eval mode.

    Returns:
        ``{"remove": discriminator, "insert": discriminator}``, each in eval mode on ``device``.
    """
    out = {}
    for direction in DIRECTIONS:
        stem = Path(run_dir) / "checkpoints" / f"gan_{direction}"
        if not all(p.is_file() for p in checkpoint_paths(stem)):
            raise RunError(f"{stem}.safetensors is missing; it is made by notebook 02_gan_training: run it first.")
        tensors, _ = load_checkpoint(stem)
        disc = Discriminator(classifier)
        try:
            disc.load_state_dict(split_prefix(tensors, "discriminator"))
        except RuntimeError as exc:
            raise CheckpointError(f"{stem}: the discriminator weights do not fit the classifier {exc}") from exc
        out[direction] = disc.to(device).eval().requires_grad_(False)
    return out


def real_fake_arrays(real: np.ndarray, fake: np.ndarray, prefix: str) -> SplitArrays:
    """Real images (label 0) and fakes (label 1) as one split for the kit's training loop.

    Returns:
        The split: real images then fakes, labels 0 then 1, masks all False.
    """
    images = np.concatenate([real, fake]).astype(np.float32)
    labels = np.concatenate([np.zeros(len(real)), np.ones(len(fake))]).astype(np.int64)
    rows = pd.DataFrame({"image_id": [f"{prefix}_{'fake' if y else 'real'}_{i}" for i, y in enumerate(labels)],
                         "label": labels})
    return SplitArrays(images, labels, np.zeros(images.shape, bool), np.zeros(len(labels), bool), rows)


def train_real_fake(spec_of: Mapping[str, Any], init: Mapping[str, torch.Tensor] | None, train: SplitArrays,
                    val: SplitArrays, config: DetectConfig, classifier_section: Mapping[str, Any],
                    checkpoints_dir: Path, seed: int, device: torch.device,
                    ledger: CheckpointLedger | None = None) -> tuple[RealFakeClassifier, Any]:
    """Train the real-vs-fake classifier with paper 001's recipe (:func:`medadv.train.loop.fit`).

    Args:
        spec_of: the network's spec (the protected classifier's, :func:`build_model`).
        init: weights to start from, or None for the network's initialisation.
        train, val: real (0) and fake (1) images (:func:`real_fake_arrays`).
        config: the ``detect`` section; classifier_section: the profile's ``classifier`` section (paper 001's loss).
        checkpoints_dir: where the model and its training state go; seed, device: as everywhere.
        ledger: the run folder's record of its checkpoints (:func:`medadv.train.loop.fit`), or None.

    Returns:
        (the detector, the training result with its history).
    """
    torch.manual_seed(seed)
    model = build_model(spec_of, weights_follow=True)
    if init is not None:
        model.load_state_dict(init)
    cfg = ClassifierConfig.from_section(classifier_section)
    spec = TrainSpec(name=REAL_FAKE_NAME, recipe="erm", epochs=config.fake_epochs, warmup_epochs=0,
                     lr_head=config.fake_lr_head, lr_features=config.fake_lr_features, betas=cfg.betas,
                     batch_per_class=config.fake_batch_per_class, steps_per_epoch=config.fake_steps_per_epoch,
                     eval_batch=config.batch_size, init="protected classifier" if init is not None else "initial weights")
    result = fit(model.to(device), spec, PaperObjective(cfg.focal_gamma, cfg.gp_k, cfg.gp_power),
                 Recipe("erm", cfg.recipe_params()), train, val, checkpoints_dir, seed, device,
                 extra_meta={"role_in_study": "detector of GAN fakes"}, ledger=ledger)
    return RealFakeClassifier(model, device), result


def _generators(run_dir: Path, device: torch.device) -> dict[str, nn.Module]:
    return {d: load_generator(Path(run_dir) / "checkpoints" / f"gan_{d}", device) for d in DIRECTIONS}


def build_detectors(ctx: RunContext, config: DetectConfig, splits: Mapping[str, SplitArrays],
                    val_fakes: np.ndarray) -> tuple[nn.Module, dict[str, Detector], pd.DataFrame]:
    """The protected classifier and the four detectors of a run; the real-vs-fake classifier's training history.

    ``splits`` holds the ``train`` and ``val`` splits; ``val_fakes`` the validation images' fakes (notebook 02).

    Returns:
        The classifier, the detectors by name, and the real-vs-fake classifier's per-epoch history.
    """
    available = trained_models(ctx.run_dir)
    if config.classifier not in available:
        raise RunError(f"detect.classifier {config.classifier!r} is not among the trained classifiers "
                       f"{sorted(available)}; run notebook 01_classifier_training, or name one of those.")
    classifier, meta = load_model_checkpoint(available[config.classifier].with_suffix(""), ctx.device)
    classifier.requires_grad_(False)
    train = splits["train"]
    train_fakes = flipped_fakes(_generators(ctx.run_dir, ctx.device), train.images, train.labels, config.batch_size,
                                ctx.device)
    train_fakes = quantize(train_fakes, 16).astype(np.float32) / 65535.0  # as notebook 02 stores its fakes
    init = classifier.state_dict() if config.fake_init == "classifier" else None
    ckpt_dir = ctx.checkpoints_dir / DETECT_CHECKPOINTS
    real_fake, result = train_real_fake(
        meta["model"], init, real_fake_arrays(train.images, train_fakes, "train"),
        real_fake_arrays(splits["val"].images, val_fakes, "val"), config, ctx.profile.section("classifier"),
        ckpt_dir, ctx.profile.seed, ctx.device, ledger=ctx)
    ctx.register_many(list(checkpoint_paths(ckpt_dir / REAL_FAKE_NAME)))
    detectors: dict[str, Detector] = {
        RealFakeClassifier.name: real_fake,
        FeatureSqueezing.name: FeatureSqueezing(classifier, config.squeeze_bits, config.squeeze_median, ctx.device),
        MahalanobisDetector.name: MahalanobisDetector.fit(classifier, train.images, train.labels, ctx.device,
                                                          config.batch_size),
        DiscriminatorScore.name: DiscriminatorScore(load_discriminators(ctx.run_dir, classifier, ctx.device),
                                                    ctx.device),
    }
    return classifier, detectors, result.history.rename(columns={"seconds": "epoch_seconds"})


def citations(detectors: Mapping[str, Detector]) -> pd.DataFrame:
    """One row per detector: its name and the paper it follows.

    Returns:
        The table, columns detector and citation.
    """
    return pd.DataFrame([{"detector": n, "citation": d.citation} for n, d in detectors.items()])


# ---------------------------------------------------------------- the detection study


@dataclasses.dataclass(frozen=True)
class DetectionStudy:
    """The detection study: ``table`` (``detection.csv``) and the manipulated image sets by (attack, eps)."""

    table: pd.DataFrame
    manipulated: dict[tuple[str, float], np.ndarray]


def _fooled(classifier: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """Share of images the classifier assigns to another class than ``labels`` (the source images' labels)."""
    with torch.no_grad():
        pred = torch.cat([classifier(c.to(device)).argmax(1).cpu() for c in torch.from_numpy(images).split(128)])
    return float((pred.numpy() != labels).mean())


def _rows(detectors: Mapping[str, Detector], attack: str, eps: float, clean: Mapping[str, np.ndarray],
          manipulated: np.ndarray, fooled: float, config: DetectConfig) -> list[dict[str, Any]]:
    return [{"detector": name, "attack": attack, "eps": eps, "fooled": fooled,
             **detection_metrics(clean[name], det.score(manipulated, config.batch_size), fpr=config.fpr)}
            for name, det in detectors.items()]


def adaptive_images(classifier: nn.Module, detector: Detector, test: SplitArrays, eps: float,
                    attacks: AttackConfig, config: DetectConfig, seed: int) -> np.ndarray:
    """Adaptive PGD against ``detector`` on the test images, batch by batch with one seeded generator.

    Returns:
        The adversarial images (N, 1, H, W) as float32 numpy, in the order of ``test``.
    """
    generator = torch.Generator().manual_seed(seed)
    alpha = attacks.step_ratio * eps / config.adaptive_steps
    out = []
    for xb, yb in zip(torch.from_numpy(test.images).split(config.batch_size),
                      torch.from_numpy(test.labels).split(config.batch_size), strict=True):
        out.append(adaptive_pgd(classifier, detector, xb.to(detector.device), yb.to(detector.device), eps, alpha,
                                config.adaptive_steps, generator).cpu())
    return torch.cat(out).numpy()


def gradient_sets(examples: AttackExamples, test: SplitArrays,
                  config: DetectConfig) -> dict[tuple[str, float], tuple[np.ndarray, np.ndarray]]:
    """Notebook 03's examples of each of ``detect.attacks`` at each L-inf budget it kept, with their images' labels.

    Returns:
        (attack, eps) -> (examples (n, 1, H, W), labels (n,)), in the order of ``config.attacks`` and the budgets.
    """
    position = {image_id: k for k, image_id in enumerate(test.rows["image_id"])}
    labels = test.labels[[position[i] for i in examples.image_ids]]
    return {(name, eps): (images, labels) for name in config.attacks
            for (attack, norm, eps), images in sorted(examples.images.items(), key=lambda kv: kv[0][2])
            if attack == ENSEMBLE_ATTACK[name] and norm == "linf"}


def detection_study(classifier: nn.Module, detectors: Mapping[str, Detector], test: SplitArrays,
                    test_fakes: np.ndarray, examples: AttackExamples, attacks: AttackConfig, config: DetectConfig,
                    seed: int, device: torch.device) -> DetectionStudy:
    """Detection AUC (DeLong CI) and TPR at ``config.fpr`` of every detector for the GAN fakes, notebook 03's
    examples of every gradient attack of ``detect.attacks`` (:func:`gradient_sets`), and the adaptive PGD against each
    detector at every L-inf budget (see the module docstring).

    Returns:
        :class:`DetectionStudy`; its table has columns detector, attack, eps (0 for the GAN fakes), fooled,
        n_clean, n_manipulated, auc, auc_ci_low, auc_ci_high, tpr_at_5fpr.
    """
    clean = {n: d.score(test.images, config.batch_size) for n, d in detectors.items()}
    sets = {(GAN_ATTACK, 0.0): (test_fakes, test.labels), **gradient_sets(examples, test, config)}
    rows = []
    for (name, eps), (images, labels) in sets.items():
        rows += _rows(detectors, name, eps, clean, images, _fooled(classifier, images, labels, device), config)
    for name, det in detectors.items():
        for eps in config.adaptive_eps or attacks.linf_eps:
            images = adaptive_images(classifier, det, test, eps, attacks, config, seed)
            sets[(f"{ADAPTIVE}:{name}", eps)] = images, test.labels
            rows += _rows({name: det}, ADAPTIVE, eps, clean, images,
                          _fooled(classifier, images, test.labels, device), config)
    return DetectionStudy(pd.DataFrame(rows), {key: images for key, (images, _) in sets.items()})


def adaptive_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Each adaptive row beside the non-adaptive PGD row of the same detector and budget: how much detection AUC
    and attack success survive an attacker who knows the detector.

    Returns:
        One row per adaptive row of ``table``, with the matching non-adaptive numbers beside it.
    """
    base = table[table["attack"] == "pgd"][["detector", "eps", "auc", "tpr_at_5fpr", "fooled"]]
    adaptive = table[table["attack"] == ADAPTIVE][["detector", "eps", "auc", "tpr_at_5fpr", "fooled"]]
    out = adaptive.merge(base, on=["detector", "eps"], suffixes=("_adaptive", "_pgd"))
    out["auc_drop"] = out["auc_pgd"] - out["auc_adaptive"]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- the detector as a reader


def panel_folder(ctx: RunContext, responses_dir: str | None) -> tuple[Path, bool]:
    """The folder of the human panel's responses that notebook 05 analysed, and whether the panel is simulated.

    Returns:
        The responses folder and whether its panel is simulated.

    Raises:
        RunError: notebook 05 has not run, or it analysed real responses and ``responses_dir`` is not given (or the
            reverse).
    """
    label = read_json(ctx.run_dir / SUMMARY_FILE, default={}).get("05_reader_study", {}).get("responses")
    if label is None:
        raise RunError(f"{ctx.run_dir / SUMMARY_FILE} holds no reader study; run notebook 05_reader_study first.")
    simulated = responses_dir is None
    if simulated != (label == "simulated"):
        raise RunError(f"notebook 05 analysed {label} responses but responses_dir is {responses_dir!r}; give notebook "
                       "06 the same responses_dir as notebook 05.")
    if simulated:
        return ctx.require(f"data/{SIMULATED_DIR}", made_by="05_reader_study"), True
    return Path(responses_dir), False


def session_images(packages_root: Path, session: int, image_size: tuple[int, int]) -> tuple[pd.DataFrame, np.ndarray]:
    """A session's manifest (order, image_id, file) and its displayed PNGs as (N, 1, H, W) in [0, 1].

    Returns:
        The session's manifest (order, image_id, file) and its images (N, 1, H, W) float32 in [0, 1].
    """
    folder = Path(packages_root) / session_dir_name(session)
    path = folder / SESSION_MANIFEST_FILE
    if not path.is_file():
        raise RunError(f"{path} is missing; it is made by notebook 05_reader_study: run it first.")
    manifest = pd.read_csv(path, dtype={"image_id": str})
    images = np.stack([resize(read_image(folder / f), image_size) for f in manifest["file"]])
    return manifest, images[:, None].astype(np.float32)


def machine_responses(detector: Detector, packages_root: Path, threshold: float, reference: np.ndarray,
                      image_size: tuple[int, int], batch_size: int = 64) -> pd.DataFrame:
    """The detector's reads of Sessions 3 and 5, in the reader app's columns plus its raw ``score``.

    Answer ``not_real`` at or above ``threshold``, else ``real``; confidence from
    :func:`medadv.detect.metrics.confidence_levels` against the ``reference`` (validation) scores; reading time
    the measured scoring time per image.

    Returns:
        One row per read (the reader app's response columns plus ``score``), Session 3 then 5.
    """
    frames = []
    for session in MACHINE_SESSIONS:
        manifest, images = session_images(packages_root, session, image_size)
        start = time.perf_counter()
        scores = detector.score(images, batch_size)
        seconds = (time.perf_counter() - start) / len(images)
        frames.append(pd.DataFrame({
            "reader": machine_reader_id(detector.name), "session": session, "image_id": manifest["image_id"],
            "answer": np.where(scores >= threshold, "not_real", "real"),
            "confidence": confidence_levels(scores, threshold, reference), "reading_seconds": seconds,
            "order": manifest["order"].astype(int), "score": scores}))
    return pd.concat(frames, ignore_index=True)


def machine_reader_id(detector: str) -> str:
    """The reader id a detector reads under: ``machine_<detector>``.

    Returns:
        The reader id.
    """
    return f"machine_{detector}"


@dataclasses.dataclass(frozen=True)
class MachineReaderStudy:
    """The detectors as readers beside the human (or simulated) panel.

    Attributes:
        thresholds: per detector, the validation AUC, the Youden threshold and the validation images it came from.
        responses: the machine reads as written (reader app columns) plus ``score``.
        accuracy, session_tests: :func:`medadv.stats.reader.accuracy_table` / :func:`session_tests` of the panel
            and of the machines together, ``reader_kind`` first (``human``, ``simulated`` or ``machine``).
        standalone: each detector's AUC against the panel's mean AUC on the same images, per session
            (:func:`medadv.stats.standalone.standalone_vs_readers`); empty without confidence ratings or with one
            reader.
        panel_kind: ``human`` or ``simulated``.
        files: the machine response CSVs written.
    """

    thresholds: pd.DataFrame
    responses: pd.DataFrame
    accuracy: pd.DataFrame
    session_tests: pd.DataFrame
    standalone: pd.DataFrame
    panel_kind: str
    files: list[Path]


def _thresholds(detectors: Mapping[str, Detector], val_real: np.ndarray, val_fakes: np.ndarray,
                batch_size: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rows, reference = [], {}
    y = np.concatenate([np.zeros(len(val_real)), np.ones(len(val_fakes))])
    for name, det in detectors.items():
        s = np.concatenate([det.score(val_real, batch_size), det.score(val_fakes, batch_size)])
        reference[name] = s
        rows.append({"detector": name, "n_val_real": len(val_real), "n_val_fake": len(val_fakes),
                     **{k: v for k, v in detection_metrics(s[y == 0], s[y == 1]).items() if k.startswith("auc")},
                     "threshold": youden_threshold(y, s)})
    return pd.DataFrame(rows), reference


def standalone_table(panel_reads: pd.DataFrame, machine: pd.DataFrame, panel_kind: str) -> pd.DataFrame:
    """Each detector's AUC against the panel's mean AUC, per session, readers and cases random (1T-RRRC).

    Returns:
        One row per detector and session: the detector's AUC, the panel's mean AUC, their difference with its CI
        and p-value.
    """
    rows = []
    for session in MACHINE_SESSIONS:
        ratings = ratings_from_responses(panel_reads, treatments=(session,))
        cube = ratings.pivot(index="reader", columns="case", values="rating")
        truth = ratings.groupby("case")["truth"].first().reindex(cube.columns)
        for reader, reads in machine[machine["session"] == session].groupby("reader", sort=True):
            scores = reads.set_index("image_id")["score"].reindex(cube.columns)
            res = standalone_vs_readers(cube.to_numpy(), scores.to_numpy(), truth.to_numpy(), list(cube.index))
            rows.append({"detector": str(reader).removeprefix("machine_"), "session": session, "panel": panel_kind,
                         **res.row()})
    return pd.DataFrame(rows)


def machine_reader_study(ctx: RunContext, detectors: Mapping[str, Detector], val_real: np.ndarray,
                         val_fakes: np.ndarray, panel_dir: Path, simulated: bool, n_subgroups: int,
                         batch_size: int = 64) -> MachineReaderStudy:
    """Let every detector read Sessions 3 and 5; write, register and validate its responses as notebook 05 does;
    analyse them with the panel's (notebook 05's responses, re-read from ``panel_dir``).

    Returns:
        The thresholds, the machine reads and the tables comparing each detector with the panel.
    """
    thresholds, reference = _thresholds(detectors, val_real, val_fakes, batch_size)
    root = ctx.require(f"data/{PACKAGES_DIR}", made_by="05_reader_study")
    key = pd.read_csv(ctx.require(f"data/{PACKAGES_DIR}/{ANSWER_KEY_FILE}", made_by="05_reader_study"),
                      dtype={"image_id": str, "source_image_id": str})
    machine = pd.concat([machine_responses(det, root, float(thresholds.set_index("detector").at[name, "threshold"]),
                                           reference[name], tuple(ctx.profile.data.image_size), batch_size)
                         for name, det in detectors.items()], ignore_index=True)
    files = write_responses(machine[list(RESPONSE_COLUMNS)], ctx.data_dir / MACHINE_DIR)
    ctx.register_many(files)
    machine_reads = validate_responses(read_responses(files), key[key["session"].isin(MACHINE_SESSIONS)],
                                       sessions=MACHINE_SESSIONS)
    panel = analyse_responses(load_responses(panel_dir), key, n_subgroups, simulated)
    kind = "simulated" if simulated else "human"
    accuracy = pd.concat([panel.accuracy.assign(reader_kind=kind),
                          accuracy_table(machine_reads).assign(reader_kind="machine")], ignore_index=True)
    tests = pd.concat([panel.session_tests.assign(reader_kind=kind),
                       session_tests(machine_reads, MACHINE_SESSIONS, n_groups=n_subgroups).assign(reader_kind="machine")],
                      ignore_index=True)
    standalone = (standalone_table(panel.reads, machine, kind) if panel.mrmc is not None
                  else pd.DataFrame(columns=["detector", "session", "panel"]))
    first = ["reader_kind"]
    return MachineReaderStudy(thresholds, machine, accuracy[first + [c for c in accuracy if c not in first]],
                              tests[first + [c for c in tests if c not in first]], standalone, kind, files)
