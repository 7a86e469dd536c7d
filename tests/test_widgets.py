"""The teaching widgets of notebooks 02 and 03 (medadv.stages.widgets): what they draw, and that they build."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medadv.stages.widgets import _eps_frame, eps_explorer, eps_panel, triplet_panel, triplet_viewer
from test_attribute import tiny_vgg  # noqa: F401 (a fixture)

CPU = torch.device("cpu")


def images(n: int = 3, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 0.8, size=(n, 1, size, size)).astype(np.float32)


def test_eps_panel_stays_in_the_budget_and_shows_the_perturbation(tiny_vgg) -> None:  # noqa: F811
    model = tiny_vgg
    x = images()
    clean = eps_panel(model, x[0], 1, 0.0, 5, CPU)
    assert np.array_equal(clean["adversarial"], clean["image"]) and clean["max_change"] == 0
    assert np.all(clean["perturbation_shown"] == 0.5) and clean["p_clean"] == pytest.approx(clean["p_adversarial"])
    eps = 8 / 255
    p = eps_panel(model, x[0], 1, eps, 5, CPU)
    change = p["adversarial"] - p["image"]
    assert 0 < np.abs(change).max() <= eps + 1e-6 and p["max_change"] == pytest.approx(np.abs(change).max())
    assert p["perturbation_shown"].min() >= 0 and p["perturbation_shown"].max() <= 1
    assert np.allclose(p["perturbation_shown"], 0.5 + change / (2 * p["max_change"]))
    assert p["p_adversarial"] < p["p_clean"]  # the attack pushes away from the true class 1
    assert p["gradcam"].shape == (96, 96) and np.isfinite(p["gradcam"]).all()
    titles = [panel[0] for panel in _eps_frame(model, x[0], 1, 0.0, 5, CPU, 0)[0]]
    assert titles[1] == "no perturbation (eps 0)"  # was "perturbation x500000000000"
    assert _eps_frame(model, x[0], 1, eps, 5, CPU, 0)[0][1][0] == f"perturbation x{0.5 / p['max_change']:.0f}"


def test_triplet_panel_is_real_fake_and_their_scaled_difference() -> None:
    real = images(1)[0]
    fake = real.copy()
    fake[0, 10:14, 10:14] -= 0.1
    p = triplet_panel(real, fake)
    assert p["real"].shape == p["fake"].shape == p["difference"].shape == (96, 96)
    assert p["max_change"] == pytest.approx(0.1, abs=1e-6)
    assert p["difference"][12, 12] == pytest.approx(1.0) and p["difference"][0, 0] == pytest.approx(0.5)
    same = triplet_panel(real, real)
    assert np.all(same["difference"] == 0.5)


def test_widgets_build_and_follow_their_sliders(tiny_vgg, monkeypatch) -> None:  # noqa: F811
    from medadv.config import BATCH_ENV

    pytest.importorskip("ipywidgets")
    monkeypatch.delenv(BATCH_ENV, raising=False)  # as in Jupyter (a runner called in this process sets it)
    x = images()
    box = eps_explorer(tiny_vgg, x, np.array([1, 0, 1]), [2 / 255, 8 / 255], 3, CPU)
    pick, eps = box.children[0].children
    assert [v for _, v in eps.options] == [0.0, 2 / 255, 8 / 255] and eps.value == 2 / 255
    eps.value = 8 / 255
    pick.value = 2
    viewer = triplet_viewer(x, x[::-1], ["a", "b", "c"])
    assert viewer.children[0].max == 2
    viewer.children[0].value = 1


def test_in_a_batch_run_the_widgets_draw_their_first_frame_and_make_no_widget(tiny_vgg, monkeypatch, capsys) -> None:  # noqa: F811
    """The runner sets MEDADV_BATCH=1: no ipywidgets object (nbclient can hang on its messages), one figure instead."""
    import sys

    import matplotlib.pyplot as plt
    from medadv.config import BATCH_ENV

    monkeypatch.setenv(BATCH_ENV, "1")
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # importing it would now fail
    shown = []
    notes = []
    monkeypatch.setattr(
        "IPython.display.display",
        lambda obj: shown.append(len(obj.axes)) if hasattr(obj, "axes") else notes.append(obj.data),
    )
    x = images()
    assert eps_explorer(tiny_vgg, x, np.array([1, 0, 1]), [2 / 255], 3, CPU) is None
    assert triplet_viewer(x, x[::-1], ["a", "b", "c"]) is None
    assert shown == [4, 3] and plt.get_fignums() == []
    assert len(notes) == 2 and all(n.startswith("Batch run: the first frame") for n in notes)
    assert capsys.readouterr().out == ""  # the note is shown in the cell, not printed
