"""The profile's ``detect`` section: what notebook 06 detects and how its detectors are trained.

:class:`DetectionConfig` is the section's registered config (:class:`medadv.config.ProfileSection`); the runner builds
it before any notebook runs, like every other section.
"""

from __future__ import annotations

import dataclasses

from medadv.attacks.gradient import check_linf_budgets
from medadv.config import ProfileSection, check_ranges
from medadv.errors import ConfigError

GRADIENT_ATTACKS = ("fgsm", "pgd", "apgd")
#: Each of ``detect.attacks`` as notebook 03's ensemble runs it (notebook 06 reads those examples): APGD is the end of
#: AutoAttack's cascade PGD -> APGD-CE -> APGD-margin, at the headline budget only.
ENSEMBLE_ATTACK = {"fgsm": "fgsm", "pgd": "pgd", "apgd": "apgd_margin"}

__all__ = ["ENSEMBLE_ATTACK", "GRADIENT_ATTACKS", "DetectionConfig"]


@dataclasses.dataclass(frozen=True)
class DetectionConfig(ProfileSection, section="detect"):
    """The profile's ``detect`` section.

    Attributes:
        classifier: the protected classifier of notebook 01 (attacked, and the real-vs-fake network's start).
        attacks: gradient attacks to detect, from ``fgsm``, ``pgd``, ``apgd``: notebook 03's examples of them
            (:data:`ENSEMBLE_ATTACK`; FGSM and PGD at every ``attacks.linf_eps``, APGD at the headline budget).
        fake_epochs, fake_steps_per_epoch (0 = images // (2 x batch)), fake_batch_per_class, fake_lr_head,
        fake_lr_features: training of the real-vs-fake classifier (paper 001's loop and recipe).
        fake_init: ``classifier`` (start from the protected classifier's weights) or ``random``.
        squeeze_bits, squeeze_median: feature squeezing's bit depth and median window (0 leaves one out).
        adaptive_eps: L-inf budgets of the adaptive attacks, each in (0, 1] (empty = every ``attacks.linf_eps``).
        adaptive_steps: the adaptive PGD's steps (step size ``attacks.step_ratio x eps / steps``).
        fpr: the false-positive rate of the ``tpr_at_5fpr`` column.
        batch_size: images per batch where the detectors score, are fitted and are attacked (the training split's
            fakes are made in :func:`~medadv.models.gan_networks.fake_batch`'s batches).

    Defaults: paper 001's classifier learning rates (``fake_lr_head``, ``fake_lr_features``) and batch size
    (``fake_batch_per_class``); every other default is the kit's choice.
    """

    classifier: str = "vgg_erm"
    attacks: tuple[str, ...] = GRADIENT_ATTACKS
    fake_epochs: int = 10
    fake_steps_per_epoch: int = 0
    fake_batch_per_class: int = 4
    fake_lr_head: float = 1e-4
    fake_lr_features: float = 1e-5
    fake_init: str = "classifier"
    squeeze_bits: int = 5
    squeeze_median: int = 2
    adaptive_eps: tuple[float, ...] = ()
    adaptive_steps: int = 20
    fpr: float = 0.05
    batch_size: int = 64

    def __post_init__(self) -> None:
        unknown = sorted(set(self.attacks) - set(GRADIENT_ATTACKS))
        if unknown:
            raise ConfigError(f"detect.attacks has unknown attacks {unknown}; choose from {GRADIENT_ATTACKS}.")
        if self.fake_init not in ("classifier", "random"):
            raise ConfigError(f"detect.fake_init is {self.fake_init!r}; expected 'classifier' or 'random'.")
        if min(self.fake_epochs, self.fake_batch_per_class, self.adaptive_steps, self.batch_size) < 1:
            raise ConfigError("detect: fake_epochs, fake_batch_per_class, adaptive_steps and batch_size must be >= 1.")
        check_ranges(
            "detect", self, at_least={"fake_steps_per_epoch": 0}, above={"fake_lr_head": 0, "fake_lr_features": 0}
        )
        if not 0 < self.fpr < 1:
            raise ConfigError(f"detect.fpr is {self.fpr}; expected a false-positive rate in (0, 1).")
        check_linf_budgets({"detect.adaptive_eps": self.adaptive_eps})
