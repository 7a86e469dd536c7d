"""The optional interactive cells of notebooks 02 and 03, for teaching (ipywidgets).

* Notebook 03, :func:`eps_explorer`: a slider over the attack budget eps showing, for one test image, the image, the
  perturbation (amplified to the full grey range), the adversarial image, the classifier's prediction on each and
  the Grad-CAM of the adversarial image (paper 001's PGD L-inf attack and paper 004's Grad-CAM;
  :mod:`medadv.attacks`, :mod:`medadv.explain`).
* Notebook 02, :func:`triplet_viewer`: a real / fake / difference viewer over the GAN's (real, fake) pairs.

What the widgets draw is computed by plain functions (:func:`eps_panel`, :func:`triplet_panel`) that the tests call;
the widgets only wire a slider to them and draw with matplotlib into an ``Output``. Nothing is computed until a
widget is made (one image, the first budget) and then on each slider move, one image at a time.

In a batch run (the kit's runner sets ``MEDADV_BATCH=1`` for the kernels it starts) no widget is made: there is no
front end to move a slider, and nbclient, which papermill drives, can wait forever for a cell whose widget messages
race with its reply (jupyter/nbclient#312; it stopped two of seven CPU runs here). The cell then draws the widget's
first frame as an ordinary figure and says how to get the slider.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medadv.attacks.gradient import pgd
from medadv.config import BATCH_ENV
from medadv.explain.attribute import attribute
from medadv.models.inference import positive_scores

__all__ = ["eps_explorer", "eps_panel", "in_batch_run", "triplet_panel", "triplet_viewer"]


def in_batch_run() -> bool:
    """Whether this kernel was started by the kit's runner, where nobody can move a slider.

    Returns:
        True when ``MEDADV_BATCH`` is ``1`` (:data:`medadv.config.BATCH_ENV`).
    """
    return os.environ.get(BATCH_ENV) == "1"


def eps_panel(
    model: nn.Module, image: np.ndarray, label: int, eps: float, steps: int, device: torch.device, seed: int = 0
) -> dict[str, Any]:
    """One image under a PGD L-inf attack of budget ``eps`` (step 2.5 eps / steps, paper 001's budgets in [0, 1]).

    Args:
        model: a classifier returning logits (class 1 = positive).
        image: (1, H, W) or (H, W) in [0, 1].
        label: the image's true class (0 / 1).
        eps: the L-inf budget; 0 shows the clean image.
        steps: PGD iterations.
        device: where the model runs.
        seed: seeds PGD's random start.

    Returns:
        ``image``, ``adversarial`` (H, W), ``perturbation_shown`` (adversarial - image scaled to [0, 1], 0.5 = no
        change), ``max_change`` (the largest absolute change), ``p_clean`` and ``p_adversarial`` (probability of
        the positive class), ``gradcam`` (H, W, of the adversarial image, for its predicted class).
    """
    x = torch.as_tensor(np.asarray(image, dtype=np.float32)).reshape(1, 1, *np.shape(image)[-2:]).to(device)
    y = torch.tensor([int(label)], device=device)
    if eps > 0:
        gen = torch.Generator(device=device).manual_seed(seed)
        adv = pgd(model, x, y, eps, 2.5 * eps / steps, steps, norm="linf", generator=gen, early_stop=False)
    else:
        adv = x.clone()
    delta = (adv - x).detach().cpu().numpy()[0, 0]
    scale = float(np.abs(delta).max())
    return {
        "image": x.cpu().numpy()[0, 0],
        "adversarial": adv.detach().cpu().numpy()[0, 0],
        "perturbation_shown": 0.5 + delta / (2 * scale) if scale > 0 else np.full_like(delta, 0.5),
        "max_change": scale,
        "p_clean": float(positive_scores(model, x, device)[0]),
        "p_adversarial": float(positive_scores(model, adv, device)[0]),
        "gradcam": attribute(model, adv, "gradcam")[0],
    }


def triplet_panel(real: np.ndarray, fake: np.ndarray) -> dict[str, np.ndarray]:
    """A (real, fake) pair as paper 001's education triplet: real, fake and the difference real - fake.

    Returns:
        ``real``, ``fake`` (H, W) and ``difference`` (real - fake mapped to [0, 1]: 0.5 = no change, scaled by the
        pair's largest change so that a faint edit stays visible), ``max_change``.
    """
    real, fake = np.asarray(real, dtype=np.float32).squeeze(), np.asarray(fake, dtype=np.float32).squeeze()
    diff = real - fake
    scale = float(np.abs(diff).max())
    shown = 0.5 + diff / (2 * scale) if scale > 0 else np.full_like(diff, 0.5)
    return {"real": real, "fake": fake, "difference": shown, "max_change": scale}


def _figure(panels: Sequence[tuple[str, np.ndarray, str]], title: str) -> Any:
    """Grey panels (name, image, colour map) side by side, as one matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (name, img, cmap) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if cmap == "gray" else None)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return fig


def _show(output: Any, panels: Sequence[tuple[str, np.ndarray, str]], title: str) -> None:
    """Draw the panels into an ipywidgets ``Output``, or, with ``output=None`` (a batch run), into the cell itself."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    if output is None:
        display(_figure(panels, title))
        plt.close("all")
        display(
            Markdown(
                "Batch run: the first frame of the interactive viewer; open the notebook in Jupyter for its sliders."
            )
        )
        return
    with output:
        output.clear_output(wait=True)
        fig = _figure(panels, title)
        display(fig)
        plt.close(fig)


def _eps_frame(
    model: nn.Module, image: np.ndarray, label: int, eps: float, steps: int, device: torch.device, seed: int
) -> tuple[list[tuple[str, np.ndarray, str]], str]:
    """The panels and title :func:`eps_explorer` shows for one image at one budget."""
    p = eps_panel(model, image, label, eps, steps, device, seed)
    magnified = f"perturbation x{0.5 / p['max_change']:.0f}" if p["max_change"] > 0 else "no perturbation (eps 0)"
    panels = [
        ("image", p["image"], "gray"),
        (magnified, p["perturbation_shown"], "gray"),
        ("adversarial", p["adversarial"], "gray"),
        ("Grad-CAM (adversarial)", p["gradcam"], "jet"),
    ]
    return panels, (
        f"true class {label}: P(positive) {p['p_clean']:.2f} -> {p['p_adversarial']:.2f} at eps {eps * 255:g}/255"
    )


def eps_explorer(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    eps_values: Sequence[float],
    steps: int,
    device: torch.device,
    seed: int = 0,
) -> Any:
    """A widget: sliders over the image and eps (``eps_values``, e.g. the profile's ``attacks.linf_eps`` with 0)
    drawing :func:`eps_panel`.

    Returns:
        The ipywidgets ``VBox`` (display it; the last expression of a cell does); ``None`` in a batch run
        (:func:`in_batch_run`), where the first frame (first image, smallest non-zero budget) is drawn instead.
    """
    budgets = sorted({0.0, *map(float, eps_values)})
    first = budgets[min(1, len(budgets) - 1)]
    if in_batch_run():
        _show(None, *_eps_frame(model, images[0], int(labels[0]), first, steps, device, seed))
        return None
    import ipywidgets as w

    eps = w.SelectionSlider(
        options=[(f"{e * 255:g}/255", e) for e in budgets], value=first, description="eps", continuous_update=False
    )
    pick = w.IntSlider(0, 0, len(labels) - 1, description="image", continuous_update=False)
    out = w.Output()

    def redraw(_: Any = None) -> None:
        _show(out, *_eps_frame(model, images[pick.value], int(labels[pick.value]), eps.value, steps, device, seed))

    eps.observe(redraw, "value")
    pick.observe(redraw, "value")
    redraw()
    return w.VBox([w.HBox([pick, eps]), out])


def _triplet_frame(real: np.ndarray, fake: np.ndarray) -> list[tuple[str, np.ndarray, str]]:
    """The panels :func:`triplet_viewer` shows for one pair."""
    p = triplet_panel(real, fake)
    return [
        ("real", p["real"], "gray"),
        ("fake", p["fake"], "gray"),
        (f"real - fake (largest change {p['max_change'] * 255:.1f}/255)", p["difference"], "gray"),
    ]


def triplet_viewer(real: np.ndarray, fake: np.ndarray, titles: Sequence[str]) -> Any:
    """A widget: a slider over (real, fake) pairs drawing real, fake and their difference (:func:`triplet_panel`).

    Returns:
        The ipywidgets ``VBox``; ``None`` in a batch run (:func:`in_batch_run`), where the first pair is drawn instead.
    """
    if in_batch_run():
        _show(None, _triplet_frame(real[0], fake[0]), str(titles[0]))
        return None
    import ipywidgets as w

    pick = w.IntSlider(0, 0, len(real) - 1, description="pair", continuous_update=False)
    out = w.Output()

    def redraw(_: Any = None) -> None:
        _show(out, _triplet_frame(real[pick.value], fake[pick.value]), str(titles[pick.value]))

    pick.observe(redraw, "value")
    redraw()
    return w.VBox([pick, out])
