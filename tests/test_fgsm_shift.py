"""Paper 004's own experiment (issue 11 item 6): 25 steps of 0.1/255 of plain FGSM against the predicted label, and
the Grad-CAM maps before and after, split by whether the label changed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from medadv.errors import ConfigError
from medadv.explain.alignment import relevance_mass_accuracy
from medadv.explain.attribute import attribute
from medadv.explain.fgsm_shift import (
    SHIFT_COLUMNS,
    fgsm_figure_rows,
    fgsm_gradcam_shift,
    fgsm_shift_summary,
    predicted_label_ifgsm,
)
from medadv.explain.plots import fgsm_shift_figure, manipulation_panels
from medadv.explain.study import ExplainConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from torch import nn


class SignNet(nn.Module):
    """Logits (-w.x, w.x) with a fixed +-1 pattern w: the cross-entropy's input gradient has sign -+w everywhere."""

    def __init__(self, side: int = 8) -> None:
        super().__init__()
        w = torch.where(torch.arange(side * side) % 2 == 0, 1.0, -1.0).reshape(1, 1, side, side)
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).sum(dim=(1, 2, 3))[:, None]
        return torch.cat([-s, s], dim=1)


def test_predicted_label_ifgsm_takes_25_steps_against_the_predicted_label() -> None:
    net = SignNet().eval()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    predicted = net(x).argmax(1)
    assert 0 < int(predicted.sum()) < 6  # both predicted classes occur
    step = 0.1 / 255
    x_adv, labels = predicted_label_ifgsm(net, x, step, 25, batch_size=4)
    assert torch.equal(labels, predicted)
    # ascending CE of the predicted class: class 1 lowers w.x (step -sign w), class 0 raises it; all 25 steps land
    direction = torch.where(predicted[:, None, None, None] == 1, -1.0, 1.0) * net.w.detach().sign()
    torch.testing.assert_close(x_adv, x + 25 * step * direction, atol=1e-6, rtol=0)
    assert (x_adv - x).abs().max().item() == pytest.approx(2.5 / 255, abs=1e-6)  # paper 004 Fig. 4: about 1 level
    with pytest.raises(ConfigError, match="step"):
        predicted_label_ifgsm(net, x, 0.0, 25)


@pytest.fixture(scope="module")
def study() -> tuple[dict[str, nn.Module], np.ndarray, np.ndarray, list[str]]:
    torch.manual_seed(4)
    net = MultiTaskResNet(MultiTaskConfig(encoder="resnet18", width=0.125, decoder_width=8, imagenet=False)).eval()
    gen = torch.Generator().manual_seed(1)
    images = (torch.rand(6, 1, 32, 32, generator=gen) * 0.5 + 0.25).numpy()
    masks = np.zeros((6, 32, 32), dtype=bool)
    masks[:, 8:16, 8:16] = True
    return {"multitask_erm": net, "vgg_erm": net}, images, masks, [f"img{i}" for i in range(6)]


def _cfg(**kw: object) -> ExplainConfig:
    base = dict(models=("vgg_erm", "multitask_erm"), fgsm_models=("multitask_erm",), batch_size=4)
    return ExplainConfig(**{**base, **kw})


def test_gradcam_shift_table_by_hand(study) -> None:
    models, images, masks, ids = study
    table, examples = fgsm_gradcam_shift(models, images, masks, ids, _cfg(fgsm_step_grey=40.0))  # a large step
    assert list(table.columns) == list(SHIFT_COLUMNS) and len(table) == 6 and set(table["model"]) == {"multitask_erm"}
    ex = examples[0]
    net = models["multitask_erm"]
    before = attribute(net, torch.as_tensor(images), "gradcam", target=torch.as_tensor(ex.label_before))
    after = attribute(net, torch.as_tensor(ex.adversarial), "gradcam", target=torch.as_tensor(ex.label_after))
    np.testing.assert_allclose(table["alignment_before"], relevance_mass_accuracy(before, masks), rtol=1e-5)
    np.testing.assert_allclose(table["alignment_after"], relevance_mass_accuracy(after, masks), rtol=1e-5)
    assert (table["label_changed"] == (table["label_before"] != table["label_after"])).all()
    assert table["max_change_grey"].max() <= 25 * 40.0 + 1e-3 and table["max_change_grey"].min() > 0
    assert table["topk_overlap"].between(0, 1).all() and (table["peak_shift_px"] >= 0).all()
    small, _ = fgsm_gradcam_shift(models, images, masks, ids, _cfg())  # paper 004: 25 x 0.1/255
    assert small["max_change_grey"].max() == pytest.approx(2.5, abs=1e-3)


def test_summary_and_figure_rows_split_by_label_change() -> None:
    table = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "model": "m",
            "label_changed": [False, False, True, True],
            "topk_overlap": [0.5, 0.7, 0.1, 0.3],
            "peak_shift_px": [1.0, 3.0, 8.0, 4.0],
            "alignment_before": 0.6,
            "alignment_after": [0.5, 0.4, 0.1, 0.2],
            "label_before": [1, 0, 1, 1],
            "label_after": [1, 0, 0, 0],
            "max_change_grey": 2.5,
        }
    )
    summary = fgsm_shift_summary(table).set_index("label_changed")
    assert summary.loc[False, "n"] == 2 and summary.loc[True, "peak_shift_px"] == pytest.approx(6.0)
    assert summary.loc[False, "topk_overlap"] == pytest.approx(0.6)
    from medadv.explain.study import AttackExample

    img = np.zeros((4, 1, 8, 8), dtype=np.float32)
    maps = np.random.default_rng(0).random((4, 8, 8))
    ex = AttackExample(
        "m",
        "paper004_ifgsm",
        2.5 / 255,
        img,
        img,
        maps,
        maps,
        np.zeros((4, 8, 8), bool),
        table["label_before"].to_numpy(),
        table["label_after"].to_numpy(),
    )
    rows = fgsm_figure_rows([ex], table)
    assert [r[0] for r in rows] == ["m\nlabel kept (Fig. 2)", "m\nlabel changed (Fig. 3)"]
    # kept: image a (positive preferred over b's larger shift); changed: c (largest shift)
    assert [(r[6], r[7]) for r in rows] == [(1, 1), (1, 0)]
    assert len(manipulation_panels(rows).axes) == 10 + 1  # two rows of five panels and the Grad-CAM colourbar
    assert len(fgsm_shift_figure(table, 25, 0.1).axes) == 2


def test_config_checks_the_experiment_settings() -> None:
    with pytest.raises(ConfigError, match="fgsm_models"):
        _cfg(fgsm_models=("vgg_rtda",))
    with pytest.raises(ConfigError, match="fgsm_step_grey"):
        _cfg(fgsm_step_grey=0.0)
