"""Notebook 06, detecting manipulated inputs: the stage that opens the run folder for :mod:`medadv.detect`. It builds
the detectors from the run's checkpoints and splits, hands the detection study
(:func:`medadv.detect.evaluation.detection_study`) the run's test images, GAN fakes (notebook 02) and adversarial
examples (notebook 03), and lets each detector read Sessions 3 and 5 of notebook 05's packages as one more reader.

Choices where the issue was silent (README, "Detecting manipulated images"); the study's own are in
:mod:`medadv.detect.evaluation`:

* **The real-vs-fake classifier** (:func:`medadv.detect.training.train_real_fake`) is the protected classifier's
  network, started from its weights or at random, trained on the training split's real images against fakes of them
  made by notebook 02's generators, the model kept at the best validation AUC on the validation images and their
  fakes. Its checkpoint lives in ``checkpoints/detect`` so it is never mistaken for a diagnostic classifier.
* **Mahalanobis** is fitted on the clean training images with their diagnostic labels; **feature squeezing** needs no
  fitting; the **GAN discriminator** baseline loads both discriminators of notebook 02.
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

import numpy as np
import pandas as pd
import torch
from torch import nn

from medadv.attacks.examples import AttackExamples, read_examples
from medadv.attacks.gan_attack import load_fakes
from medadv.core import read_json
from medadv.data.adversarial import read_adversarial_index
from medadv.data.images import SplitArrays, load_split, read_image, resize
from medadv.data.pixels import quantize
from medadv.detect import (
    Detector,
    DiscriminatorScore,
    FeatureSqueezing,
    MahalanobisDetector,
    RealFakeClassifier,
    detection_metrics,
)
from medadv.detect.config import DetectionConfig
from medadv.detect.metrics import confidence_levels
from medadv.detect.training import REAL_FAKE_NAME, real_fake_arrays, train_real_fake
from medadv.errors import CheckpointError, RunError
from medadv.layout import RunLayout
from medadv.models.checkpoint import checkpoint_paths, load_checkpoint, split_prefix
from medadv.models.gan_networks import DIRECTIONS, Discriminator, flipped_fakes
from medadv.models.registry import load_model_checkpoint, trained_models
from medadv.reader_app.analysis import MRMC_TREATMENTS, analyse_responses, load_responses
from medadv.reader_app.packages import SESSION_MANIFEST_FILE, session_dir_name
from medadv.reader_app.responses import RESPONSE_COLUMNS, read_responses, validate_responses
from medadv.reader_app.simulate import write_responses
from medadv.report import RunContext
from medadv.stats.reader import accuracy_table, ratings_from_responses, session_tests
from medadv.stats.standalone import standalone_vs_readers
from medadv.train.evaluate import youden_threshold
from medadv.train.gan import load_generator

MACHINE_SESSIONS = MRMC_TREATMENTS  # the blinded half-real, half-fake sessions 3 and 5

__all__ = [
    "DetectConfig",
    "DetectionInputs",
    "MachineReaderStudy",
    "build_detectors",
    "citations",
    "load_inputs",
    "machine_reader_study",
    "machine_responses",
    "panel_folder",
]


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
    index = read_adversarial_index(ctx.layout.adversarial_index, cohort)
    examples = read_examples(
        ctx.layout.attack_examples,
        DetectConfig.from_profile(ctx.profile).classifier,
        list(splits["test"].rows["image_id"]),
    )
    return DetectionInputs(
        splits,
        {s: load_fakes(ctx.layout.root, index, splits[s].rows["image_id"], size) for s in ("val", "test")},
        examples,
    )


def load_discriminators(layout: RunLayout, classifier: nn.Module, device: torch.device) -> dict[str, nn.Module]:
    """Notebook 02's trained discriminators (``checkpoints/gan_remove``, ``gan_insert``: ``layout.gan``), in eval mode.

    Returns:
        ``{"remove": discriminator, "insert": discriminator}``, each in eval mode on ``device``.
    """
    out = {}
    for direction in DIRECTIONS:
        stem = layout.gan(direction)
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


def _generators(layout: RunLayout, device: torch.device) -> dict[str, nn.Module]:
    return {d: load_generator(layout.gan(d), device) for d in DIRECTIONS}


def build_detectors(
    ctx: RunContext, config: DetectConfig, splits: Mapping[str, SplitArrays], val_fakes: np.ndarray
) -> tuple[nn.Module, dict[str, Detector], pd.DataFrame]:
    """The protected classifier and the four detectors of a run; the real-vs-fake classifier's training history.

    ``splits`` holds the ``train`` and ``val`` splits; ``val_fakes`` the validation images' fakes (notebook 02).

    Returns:
        The classifier, the detectors by name, and the real-vs-fake classifier's per-epoch history.
    """
    available = trained_models(ctx.layout.checkpoints)
    if config.classifier not in available:
        raise RunError(
            f"detect.classifier {config.classifier!r} is not among the trained classifiers "
            f"{sorted(available)}; run notebook 01_classifier_training, or name one of those."
        )
    classifier, meta = load_model_checkpoint(available[config.classifier].with_suffix(""), ctx.device)
    classifier.requires_grad_(False)
    train = splits["train"]
    train_fakes = flipped_fakes(_generators(ctx.layout, ctx.device), train.images, train.labels, ctx.device)
    train_fakes = quantize(train_fakes, 16).astype(np.float32) / 65535.0  # as notebook 02 stores its fakes
    init = classifier.state_dict() if config.fake_init == "classifier" else None
    ckpt_dir = ctx.layout.detect_checkpoints
    real_fake, result = train_real_fake(
        meta["model"],
        init,
        real_fake_arrays(train.images, train_fakes, "train"),
        real_fake_arrays(splits["val"].images, val_fakes, "val"),
        config,
        ctx.profile.section("classifier"),
        ckpt_dir,
        ctx.profile.seed,
        ctx.device,
        ledger=ctx,
    )
    ctx.register_many(list(checkpoint_paths(ckpt_dir / REAL_FAKE_NAME)))
    detectors: dict[str, Detector] = {
        RealFakeClassifier.name: real_fake,
        FeatureSqueezing.name: FeatureSqueezing(classifier, config.squeeze_bits, config.squeeze_median, ctx.device),
        MahalanobisDetector.name: MahalanobisDetector.fit(
            classifier, train.images, train.labels, ctx.device, config.batch_size
        ),
        DiscriminatorScore.name: DiscriminatorScore(
            load_discriminators(ctx.layout, classifier, ctx.device), ctx.device
        ),
    }
    return classifier, detectors, result.history.rename(columns={"seconds": "epoch_seconds"})


def citations(detectors: Mapping[str, Detector]) -> pd.DataFrame:
    """One row per detector: its name and the paper it follows.

    Returns:
        The table, columns detector and citation.
    """
    return pd.DataFrame([{"detector": n, "citation": d.citation} for n, d in detectors.items()])


# ---------------------------------------------------------------- the detector as a reader


def panel_folder(ctx: RunContext) -> tuple[Path, bool]:
    """The folder of the panel's reads that notebook 05 analysed (``data/reader_responses/``: the simulated panel's,
    or the readers' from a folder of exports or a workshop's database), and whether the panel is simulated.

    Returns:
        The responses folder and whether its panel is simulated.

    Raises:
        RunError: notebook 05 has not made them.
    """
    record = read_json(ctx.require(ctx.layout.panel_record, made_by="05_reader_study"), default={})
    return ctx.layout.panel_responses, record.get("readers") == "simulated"


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


def machine_responses(
    detector: Detector,
    packages_root: Path,
    threshold: float,
    reference: np.ndarray,
    image_size: tuple[int, int],
    batch_size: int = 64,
) -> pd.DataFrame:
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
        frames.append(
            pd.DataFrame(
                {
                    "reader": machine_reader_id(detector.name),
                    "session": session,
                    "image_id": manifest["image_id"],
                    "answer": np.where(scores >= threshold, "not_real", "real"),
                    "confidence": confidence_levels(scores, threshold, reference),
                    "reading_seconds": seconds,
                    "order": manifest["order"].astype(int),
                    "score": scores,
                }
            )
        )
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


def _thresholds(
    detectors: Mapping[str, Detector], val_real: np.ndarray, val_fakes: np.ndarray, batch_size: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rows, reference = [], {}
    y = np.concatenate([np.zeros(len(val_real)), np.ones(len(val_fakes))])
    for name, det in detectors.items():
        s = np.concatenate([det.score(val_real, batch_size), det.score(val_fakes, batch_size)])
        reference[name] = s
        rows.append(
            {
                "detector": name,
                "n_val_real": len(val_real),
                "n_val_fake": len(val_fakes),
                **{k: v for k, v in detection_metrics(s[y == 0], s[y == 1]).items() if k.startswith("auc")},
                "threshold": youden_threshold(y, s),
            }
        )
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
            rows.append(
                {"detector": str(reader).removeprefix("machine_"), "session": session, "panel": panel_kind, **res.row()}
            )
    return pd.DataFrame(rows)


def _machine_reads(
    detectors: Mapping[str, Detector],
    packages_root: Path,
    thresholds: pd.DataFrame,
    reference: Mapping[str, np.ndarray],
    image_size: tuple[int, ...],
    batch_size: int,
) -> pd.DataFrame:
    """Every detector's reads of Sessions 3 and 5 of the reader packages under ``packages_root``, at its threshold.

    Returns:
        one table of all detectors' responses (:func:`medadv.detect.readers.machine_responses`), in detector order.
    """
    at = thresholds.set_index("detector")["threshold"]
    return pd.concat(
        [
            machine_responses(det, packages_root, float(at[name]), reference[name], image_size, batch_size)
            for name, det in detectors.items()
        ],
        ignore_index=True,
    )


def machine_reader_study(
    ctx: RunContext,
    detectors: Mapping[str, Detector],
    val_real: np.ndarray,
    val_fakes: np.ndarray,
    panel_dir: Path,
    simulated: bool,
    n_subgroups: int,
    batch_size: int = 64,
) -> MachineReaderStudy:
    """Let every detector read Sessions 3 and 5; write, register and validate its responses as notebook 05 does;
    analyse them with the panel's (notebook 05's responses, re-read from ``panel_dir``).

    Returns:
        The thresholds, the machine reads and the tables comparing each detector with the panel.
    """
    thresholds, reference = _thresholds(detectors, val_real, val_fakes, batch_size)
    root = ctx.require(ctx.layout.reader_packages, made_by="05_reader_study")
    key = pd.read_csv(
        ctx.require(ctx.layout.answer_key, made_by="05_reader_study"),
        dtype={"image_id": str, "source_image_id": str},
    )
    size = tuple(ctx.profile.data.image_size)
    machine = _machine_reads(detectors, root, thresholds, reference, size, batch_size)
    files = write_responses(machine[list(RESPONSE_COLUMNS)], ctx.layout.machine_responses)
    ctx.register_many(files)
    machine_reads = validate_responses(
        read_responses(files), key[key["session"].isin(MACHINE_SESSIONS)], sessions=MACHINE_SESSIONS
    )
    panel = analyse_responses(load_responses(panel_dir), key, n_subgroups, simulated)
    kind = "simulated" if simulated else "human"
    accuracy = pd.concat(
        [panel.accuracy.assign(reader_kind=kind), accuracy_table(machine_reads).assign(reader_kind="machine")],
        ignore_index=True,
    )
    tests = pd.concat(
        [
            panel.session_tests.assign(reader_kind=kind),
            session_tests(machine_reads, MACHINE_SESSIONS, n_groups=n_subgroups).assign(reader_kind="machine"),
        ],
        ignore_index=True,
    )
    standalone = (
        standalone_table(panel.reads, machine, kind)
        if panel.mrmc is not None
        else pd.DataFrame(columns=["detector", "session", "panel"])
    )
    first = ["reader_kind"]
    return MachineReaderStudy(
        thresholds,
        machine,
        accuracy[first + [c for c in accuracy if c not in first]],
        tests[first + [c for c in tests if c not in first]],
        standalone,
        kind,
        files,
    )
