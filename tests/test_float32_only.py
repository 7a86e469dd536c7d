"""The attack and explanation code paths compute in single precision only, as Apple's MPS device demands (it has no
float64): each path runs here under a torch function mode that refuses any float64 tensor, the stand-in for an MPS
device on a machine that has none. Results may become float64 only in NumPy, after they left torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medadv.attacks import apgd, fgsm, ifgsm, pgd, predict
from medadv.attacks.ensemble import evaluate_models
from medadv.attacks.robustness import AttackConfig, attack_examples
from medadv.explain.attribute import METHODS, attribute
from medadv.explain.manipulation import manipulate_gradcam
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.inference import positive_scores
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

CPU = torch.device("cpu")


class RefuseFloat64(TorchFunctionMode):
    """Raise on a torch call that asks for float64 (``dtype=torch.float64``, ``.double()``) or returns a float64
    tensor, naming the call."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        asked = kwargs.get("dtype") is torch.float64 or any(a is torch.float64 for a in args)
        if asked or func is torch.Tensor.double:
            raise AssertionError(f"float64 asked for by {getattr(func, '__name__', func)}")
        out = func(*args, **kwargs)
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor) and leaf.dtype is torch.float64:
                raise AssertionError(f"{getattr(func, '__name__', func)} returned a float64 tensor")
        return out


@pytest.fixture(scope="module")
def model_and_data() -> tuple[VGGClassifier, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=0.125, dropout=0.0, init="random")).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 96, 96, generator=gen) * 0.8 + 0.1
    return model, x, torch.tensor([0, 1, 0, 1, 0, 1])


def test_the_stub_refuses_what_mps_refuses() -> None:
    with RefuseFloat64():
        with pytest.raises(AssertionError, match="double"):
            torch.ones(2).double()
        with pytest.raises(AssertionError, match="float64"):
            torch.zeros(2, dtype=torch.float64)
        with pytest.raises(AssertionError, match="returned a float64"):
            torch.from_numpy(np.zeros(2)).to(CPU)  # from_numpy itself is not seen by a mode; its first use is
        with pytest.raises(AssertionError, match="returned a float64"):
            torch.as_tensor(np.zeros(2))
        torch.ones(2).float().sum()


def test_gradient_attacks_and_scores_stay_in_float32(model_and_data) -> None:  # noqa: ANN001
    model, x, y = model_and_data
    with RefuseFloat64():
        for adv in (
            fgsm(model, x, y, 0.03),
            pgd(model, x, y, 0.03, 0.01, 2),
            pgd(model, x, y, 0.5, 0.2, 2, norm="l2"),
            ifgsm(model, x, y, eps=0.03, steps=2),
            apgd(model, x, y, 0.03, steps=3),
        ):
            assert adv.dtype is torch.float32 and adv.shape == x.shape
        predict(model, x)
        scores = positive_scores(model, x, CPU)
        config = AttackConfig(
            linf_eps=(0.02,),
            l2_eps=(0.5,),
            steps=2,
            headline_linf_eps=0.02,
            headline_l2_eps=0.5,
            apgd_steps=3,
            ifgsm_steps=2,
            corruptions=("defocus_blur", "gaussian_noise", "jpeg"),
            severities=(1, 3),
            ensemble=("fgsm", "pgd", "apgd_ce", "apgd_margin", "square"),
            square_queries=4,
            check_images=4,
            check_steps=3,
        )
        result = evaluate_models({"vgg_erm": (model, "erm")}, x, y, config, CPU, seed=0)
        attack_examples(model, x, y, config.pgd_attack(0.02, "linf"), 2, CPU, seed=0)
    assert scores.dtype == np.float64 and scores.shape == (6,)  # float64 only after leaving torch
    assert len(result.corruptions) == 3 * 2


def test_attributions_and_the_map_attack_stay_in_float32(model_and_data) -> None:  # noqa: ANN001
    model, x, _ = model_and_data
    region = np.zeros((6, 96, 96), dtype=bool)
    region[:, 8:16, 8:16] = True
    with RefuseFloat64():
        for method in METHODS:
            maps = attribute(model, x, method, ig_steps=4, occlusion_window=8, occlusion_stride=8)
            assert maps.shape == (6, 96, 96)
        for flip in (False, True):
            result = manipulate_gradcam(model, x, region, eps=0.03, steps=2, flip_label=flip)
            assert result.x_adv.dtype is torch.float32 and (result.x_adv - x).abs().max() <= 0.03 + 1e-6
