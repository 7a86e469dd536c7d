"""The optional interactive cells of notebooks 02 and 03, for teaching (ipywidgets).

* Notebook 03, :func:`eps_explorer`: a slider over the attack budget eps showing, for one test image, the image, the
  perturbation (amplified to the full grey range), the adversarial image, the classifier's prediction on each and
  the Grad-CAM of the adversarial image (paper 001's PGD L-inf attack and paper 004's Grad-CAM;
  :mod:`medadv.attacks`, :mod:`medadv.explain`).
* Notebook 02, :func:`triplet_viewer`: a real / fake / difference viewer over the GAN's (real, fake) pairs.

What the widgets draw is computed by plain functions (:func:`eps_panel`, :func:`triplet_panel`) that the tests call;
the widgets only wire a slider to them and draw with matplotlib into an ``Output``. Nothing is computed until a
widget is made (one image, the first budget) and then on each slider move, one image at a time, so that papermill,
which has no front end, runs the cells in a moment (it stores the widget's state, which renders nothing).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medadv.attacks.gradient import pgd
from medadv.explain.attribute import attribute
from medadv.models.inference import positive_scores

__all__ = ["eps_explorer", "eps_panel", "triplet_panel", "triplet_viewer"]


def eps_panel(model: nn.Module, image: np.ndarray, label: int, eps: float, steps: int, device: torch.device,
              seed: int = 0) -> dict[str, Any]:
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
        "image": x.cpu().numpy()[0, 0], "adversarial": adv.detach().cpu().numpy()[0, 0],
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


def _draw(output: Any, panels: Sequence[tuple[str, np.ndarray, str]], title: str) -> None:
    """Draw grey panels (name, image, colour map) side by side into an ipywidgets ``Output``."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    with output:
        output.clear_output(wait=True)
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
        for ax, (name, img, cmap) in zip(axes, panels, strict=True):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if cmap == "gray" else None)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        fig.suptitle(title, fontsize=10)
        display(fig)
        plt.close(fig)


def eps_explorer(model: nn.Module, images: np.ndarray, labels: np.ndarray, eps_values: Sequence[float], steps: int,
                 device: torch.device, seed: int = 0) -> Any:
    """A widget: sliders over the image and eps (``eps_values``, e.g. the profile's ``attacks.linf_eps`` with 0)
    drawing :func:`eps_panel`.

    Returns:
        The ipywidgets ``VBox`` (display it; the last expression of a cell does).
    """
    import ipywidgets as w

    budgets = sorted({0.0, *map(float, eps_values)})
    eps = w.SelectionSlider(options=[(f"{e * 255:g}/255", e) for e in budgets], value=budgets[min(1, len(budgets) - 1)],
                            description="eps", continuous_update=False)
    pick = w.IntSlider(0, 0, len(labels) - 1, description="image", continuous_update=False)
    out = w.Output()

    def redraw(_: Any = None) -> None:
        p = eps_panel(model, images[pick.value], int(labels[pick.value]), eps.value, steps, device, seed)
        _draw(out, [("image", p["image"], "gray"), (f"perturbation x{0.5 / max(p['max_change'], 1e-12):.0f}",
                                                    p["perturbation_shown"], "gray"),
                    ("adversarial", p["adversarial"], "gray"), ("Grad-CAM (adversarial)", p["gradcam"], "jet")],
              f"true class {int(labels[pick.value])}: P(positive) {p['p_clean']:.2f} -> {p['p_adversarial']:.2f} "
              f"at eps {eps.value * 255:g}/255")

    eps.observe(redraw, "value")
    pick.observe(redraw, "value")
    redraw()
    return w.VBox([w.HBox([pick, eps]), out])


def triplet_viewer(real: np.ndarray, fake: np.ndarray, titles: Sequence[str]) -> Any:
    """A widget: a slider over (real, fake) pairs drawing real, fake and their difference (:func:`triplet_panel`).

    Returns:
        The ipywidgets ``VBox``.
    """
    import ipywidgets as w

    pick = w.IntSlider(0, 0, len(real) - 1, description="pair", continuous_update=False)
    out = w.Output()

    def redraw(_: Any = None) -> None:
        p = triplet_panel(real[pick.value], fake[pick.value])
        _draw(out, [("real", p["real"], "gray"), ("fake", p["fake"], "gray"),
                    (f"real - fake (largest change {p['max_change'] * 255:.1f}/255)", p["difference"], "gray")],
              str(titles[pick.value]))

    pick.observe(redraw, "value")
    redraw()
    return w.VBox([pick, out])
