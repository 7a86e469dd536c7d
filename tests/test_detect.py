"""The detectors of medadv.detect on small synthetic tasks: each separates what it can see from clean images and is
at chance on a manipulation invisible to it; the adaptive attack lowers the AUC of the detector it targets; the
metrics by hand; the detector's reads pass the reader study's validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _classifier_data import synthetic_split
from _small_classifier import SmallClassifier
from medadv.attacks.gradient import pgd
from medadv.detect import (
    DiscriminatorScore,
    FeatureSqueezing,
    MahalanobisDetector,
    adaptive_pgd,
    detection_metrics,
    tpr_at_fpr,
)
from medadv.detect.metrics import confidence_levels
from medadv.detect.squeezing import median_filter, reduce_bit_depth
from medadv.detect.training import real_fake_arrays, train_real_fake
from medadv.errors import ConfigError, DataError
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.gan_networks import Discriminator
from medadv.reader_app.responses import RESPONSE_COLUMNS, read_responses, validate_responses
from medadv.reader_app.simulate import write_responses
from medadv.stages.input_detection import DetectConfig, machine_responses
from PIL import Image

SIZE = 32  # the small test classifier's images (paper 001's classifier needs 96: see _small_classifier)
EPS = 8 / 255


def _train(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, steps: int = 80, seed: int = 0) -> None:
    """A plain Adam loop for the test's own classifier (the detectors' inputs, not what is tested)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (16,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()


def tiny_vgg(seed: int = 0) -> VGGClassifier:
    """Paper 001's classifier at an eighth of its width: what the kit's training loop builds from a spec."""
    torch.manual_seed(seed)
    return VGGClassifier(VGGConfig(width=0.125, dropout=0.0, init="random"))


def small_classifier(seed: int = 0) -> SmallClassifier:
    torch.manual_seed(seed)
    return SmallClassifier()


@pytest.fixture(scope="module")
def task() -> dict[str, object]:
    """A disc-vs-no-disc classifier and held-out clean test images."""
    train = synthetic_split(96, SIZE, seed=1, contrast=0.5)
    test = synthetic_split(48, SIZE, seed=2, contrast=0.5)
    model = small_classifier()
    _train(model, train.images, train.labels)
    model.requires_grad_(False)
    return {"model": model, "train": train, "test": test}


def _noise(images: np.ndarray, eps: float, seed: int) -> np.ndarray:
    """Random-sign noise of L-inf size eps: a change of the same size as the attack that carries no attack."""
    rng = np.random.default_rng(seed)
    return np.clip(images + eps * rng.choice([-1.0, 1.0], size=images.shape), 0, 1).astype(np.float32)


def _with_disc(images: np.ndarray, contrast: float, seed: int, size: int = SIZE) -> np.ndarray:
    """Every image with a faint disc inserted at a random place (a visible manipulation)."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    yy, xx = np.mgrid[:size, :size]
    for img in out:
        cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 8) ** 2
        img[0][disc] = np.clip(img[0][disc] + contrast, 0, 1)
    return out


def _auc(detector, clean: np.ndarray, manipulated: np.ndarray) -> float:  # noqa: ANN001
    return detection_metrics(detector.score(clean), detector.score(manipulated))["auc"]


def _pgd(model, images, labels, eps=EPS):  # noqa: ANN001, ANN202
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return pgd(model, x, y, eps, 2.5 * eps / 10, 10, generator=torch.Generator().manual_seed(0)).numpy()


def test_classifier_of_the_task_works(task) -> None:  # noqa: ANN001
    test = task["test"]
    with torch.no_grad():
        acc = (task["model"](torch.from_numpy(test.images)).argmax(1).numpy() == test.labels).mean()
    assert acc >= 0.9


def test_feature_squeezing_sees_gradient_attacks_not_random_noise(task) -> None:  # noqa: ANN001
    model, test = task["model"], task["test"]
    det = FeatureSqueezing(model, bits=3, median=2)
    x, y = torch.from_numpy(test.images), torch.from_numpy(test.labels)
    # the first iterate that fools the classifier: the near-boundary examples squeezing undoes (Xu et al.)
    adv = pgd(model, x, y, 0.1, 0.025, 10, generator=torch.Generator().manual_seed(0), early_stop=True).numpy()
    assert _auc(det, test.images, adv) >= 0.8
    assert abs(_auc(det, test.images, _noise(test.images, 1 / 255, 3)) - 0.5) <= 0.15


def test_mahalanobis_sees_pgd_not_random_noise(task) -> None:  # noqa: ANN001
    model, train, test = task["model"], task["train"], task["test"]
    det = MahalanobisDetector.fit(model, train.images, train.labels)
    adv = _pgd(model, test.images, test.labels, eps=0.05)
    assert _auc(det, test.images, adv) >= 0.8
    assert abs(_auc(det, test.images, _noise(test.images, 1 / 255, 4)) - 0.5) <= 0.15


def test_discriminator_score_flags_images_of_neither_class(task) -> None:  # noqa: ANN001
    """Discriminators started from the classifier's log-odds (gan.dnet_init: classifier): an image with half a
    lesion looks like a real image of neither class; tiny noise is invisible to them."""
    model, test = task["model"], task["test"]
    det = DiscriminatorScore({"remove": Discriminator(model, 0), "insert": Discriminator(model, 1)})
    half = synthetic_split(48, SIZE, seed=2, contrast=0.12)
    fakes = half.images[half.labels == 1]
    assert _auc(det, test.images[test.labels == 1], fakes) >= 0.75
    assert abs(_auc(det, test.images, _noise(test.images, 1 / 255, 5)) - 0.5) <= 0.15


def test_real_fake_classifier_learns_the_fakes_and_misses_what_it_never_saw(tmp_path) -> None:  # noqa: ANN001
    """Paper 001's classifier trained by the kit's loop on real images against images with a faint inserted disc
    (at 96 x 96, the smallest images it takes)."""
    size = 96
    real = {
        s: synthetic_split(n, size, seed=k, contrast=0.0, prefix=s)
        for s, n, k in (("train", 64, 11), ("val", 24, 12), ("test", 32, 13))
    }
    fakes = {s: _with_disc(a.images, 0.3, k, size) for k, (s, a) in enumerate(real.items())}
    config = DetectConfig(fake_epochs=3, fake_steps_per_epoch=8, fake_lr_head=3e-3, fake_lr_features=3e-3)
    spec = tiny_vgg().spec()
    det, result = train_real_fake(
        spec,
        None,
        real_fake_arrays(real["train"].images, fakes["train"], "train"),
        real_fake_arrays(real["val"].images, fakes["val"], "val"),
        config,
        {"width": 0.125, "dropout": 0.0, "init": "random"},
        tmp_path,
        0,
        torch.device("cpu"),
    )
    assert (tmp_path / "real_fake_classifier.safetensors").is_file() and result.best_val_auc > 0.5
    assert _auc(det, real["test"].images, fakes["test"]) >= 0.8
    assert abs(_auc(det, real["test"].images, _noise(real["test"].images, 1 / 255, 6)) - 0.5) <= 0.15


def test_adaptive_attack_lowers_the_auc_of_the_detector_it_targets(task) -> None:  # noqa: ANN001
    model, train, test = task["model"], task["train"], task["test"]
    det = MahalanobisDetector.fit(model, train.images, train.labels)
    eps, steps = 0.1, 20
    x, y = torch.from_numpy(test.images), torch.from_numpy(test.labels)
    plain = pgd(model, x, y, eps, 2.5 * eps / steps, steps, generator=torch.Generator().manual_seed(0))
    adaptive = adaptive_pgd(model, det, x, y, eps, 2.5 * eps / steps, steps, generator=torch.Generator().manual_seed(0))
    assert (adaptive - x).abs().max() <= eps + 1e-6 and adaptive.min() >= 0 and adaptive.max() <= 1
    auc_plain = _auc(det, test.images, plain.numpy())
    auc_adaptive = _auc(det, test.images, adaptive.numpy())
    assert auc_plain >= 0.7 and auc_adaptive <= auc_plain - 0.3
    with torch.no_grad():
        assert (model(adaptive).argmax(1) != y).float().mean() >= 0.9  # and it still fools the classifier


def test_squeezers_by_hand() -> None:
    x = torch.tensor([[[[0.0, 0.26], [0.74, 1.0]]]], requires_grad=True)
    q = reduce_bit_depth(x, 1)
    assert q.detach().flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad(q.sum(), x)
    assert torch.equal(grad, torch.ones_like(x))  # BPDA: the identity's gradient
    img = torch.arange(9.0).reshape(1, 1, 3, 3)
    med = median_filter(img, 2)  # window: the pixel, right, down, down-right; edges reflected
    # (0, 0): {0, 1, 3, 4} -> lower middle 1; (2, 2) reflects to {8, 7, 5, 4} -> 5
    assert med[0, 0, 0, 0] == 1.0 and med[0, 0, 2, 2] == 5.0 and med.shape == img.shape
    with pytest.raises(ConfigError):
        FeatureSqueezing(tiny_vgg(), bits=0, median=0)


def test_metrics_by_hand() -> None:
    clean = np.arange(20, dtype=float)  # 0..19
    manipulated = np.array([18.5, 19.5, 25.0, 3.0])
    # 5% of 20 = 1 false positive allowed: threshold at the 2nd largest clean score (18); flagged > 18
    assert tpr_at_fpr(clean, manipulated, 0.05) == pytest.approx(0.75)
    assert tpr_at_fpr(clean, manipulated, 0.01) == pytest.approx(0.5)  # none allowed: > 19
    m = detection_metrics(clean, manipulated)
    assert m["auc"] == pytest.approx((19 + 20 + 20 + 3.5) / 80)  # 3 beats 0, 1, 2 and ties 3
    assert m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"]
    ref = np.array([-4.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    levels = confidence_levels(np.array([-10.0, -0.5, 0.5, 10.0, 0.0]), 0.0, ref)
    assert levels.tolist() == [5, 1, 1, 5, 1]
    with pytest.raises(DataError):
        detection_metrics(np.array([np.nan, 1.0]), manipulated)


def _package(root, n: int = 8) -> pd.DataFrame:  # noqa: ANN001
    """A minimal reader package: sessions 3 and 5 with half real, half fake PNGs, and its answer key."""
    rng = np.random.default_rng(0)
    rows = []
    for session in (3, 5):
        folder = root / f"session{session}"
        (folder / "images").mkdir(parents=True)
        items = []
        for order in range(1, n + 1):
            truth = "fake" if order % 2 else "real"
            pixels = rng.uniform(0.2, 0.5, (SIZE, SIZE)) + (0.4 if truth == "fake" else 0.0)
            Image.fromarray(np.uint8(np.clip(pixels, 0, 1) * 255)).save(folder / f"images/{order:04d}.png")
            code = f"s{session}i{order:03d}"
            items.append({"order": order, "image_id": code, "file": f"images/{order:04d}.png"})
            rows.append(
                {
                    "session": session,
                    "order": order,
                    "image_id": code,
                    "source_image_id": f"c{order}",
                    "truth": truth,
                    "split": "test",
                    "source_label": order % 2,
                    "shown_label": 0,
                }
            )
        pd.DataFrame(items).to_csv(folder / "manifest.csv", index=False)
    return pd.DataFrame(rows)


class _BrightnessDetector(FeatureSqueezing.__mro__[1]):  # a Detector whose score is the mean grey level
    name = "brightness"

    def score_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


def test_machine_reads_pass_the_reader_study_validation(tmp_path) -> None:  # noqa: ANN001
    key = _package(tmp_path / "packages")
    det = _BrightnessDetector()
    responses = machine_responses(
        det, tmp_path / "packages", threshold=0.55, reference=np.linspace(0.3, 0.8, 10), image_size=(SIZE, SIZE)
    )
    files = write_responses(responses[list(RESPONSE_COLUMNS)], tmp_path / "machine")
    assert [f.name for f in files] == [
        "responses_session3_machine_brightness.csv",
        "responses_session5_machine_brightness.csv",
    ]
    reads = validate_responses(read_responses(files), key, sessions=(3, 5))
    assert len(reads) == 16 and reads["correct"].all()
    assert set(reads["answer"]) == {"real", "not_real"} and reads["confidence"].between(1, 5).all()
    with pytest.raises(DataError, match="unanswered"):
        validate_responses(read_responses(files[:1]), key, sessions=(3, 5))


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_profiles_have_a_detect_section(name: str) -> None:
    from medadv.config import load_profile
    from medadv.detect.config import DetectionConfig

    config = DetectionConfig.from_profile(load_profile(name))
    assert config.classifier == "vgg_erm" and set(config.attacks) == {"fgsm", "pgd", "apgd"}
    with pytest.raises(ConfigError, match="unknown attacks"):
        DetectionConfig.from_section({"attacks": ["cw"]})
