"""Paper 004's own experiment: plain iterative FGSM and how it moves the Grad-CAM map (Rasaee & Rivaz, Figs. 2-4).

Paper 004 (Sec. II-D) perturbs each image with the fast gradient sign method, Eq. 1, ``eta = eps sign(grad_x J(theta,
x, y))`` with ``y`` the label the model predicts for the image, repeated for 25 iterations with ``eps = 0.1`` grey
level of the 0-255 B-mode image (its Fig. 4: the largest change is 1 grey level, "visually identical"). In the kit's
[0, 1] units a step is ``0.1 / 255`` and 25 steps can move a pixel by at most 2.5/255. The paper then compares the
Grad-CAM map before and after and shows both outcomes: the map moves while the label stays (Fig. 2) and the map moves
with the label (Fig. 3). Nothing in this attack aims at the map; any change of the map is a side effect of pushing
the prediction.

:func:`predicted_label_ifgsm` is that attack: :func:`medadv.attacks.gradient.fgsm` (Eq. 1) applied 25 times, each time
against the label predicted on the *original* image, and the image after the last step is kept (no early stop, no
projection needed: 25 steps of ``eps`` cannot leave the 25 ``eps`` ball). The kit's
:func:`medadv.attacks.gradient.ifgsm` returns the strongest fooling iterate instead, which is what a robustness
evaluation wants but not what the paper shows.

:func:`fgsm_gradcam_shift` runs it on the study images of notebook 04 for each model of ``explain.fgsm_models``
(paper 004: its multi-task network and the VGG it compares with) and measures the Grad-CAM map of the predicted class
before and after: the share of the original top-k pixels still in the top k (``topk_overlap``, Ghorbani et al.'s
top-k intersection), how far the map's peak moved (``peak_shift_px``) and the alignment with the lesion mask before
and after (``explain.attack_metric``), split by whether the label changed. The targeted attack of
:mod:`medadv.explain.manipulation` (Ghorbani et al. 2019), which aims at the map itself, is the stronger, different
attack of the same notebook.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from medadv.attacks.gradient import fgsm
from medadv.core import in_notebook_progress
from medadv.errors import ConfigError
from medadv.explain.alignment import metric_functions, topk_coverage
from medadv.explain.attribute import attribute
from medadv.explain.manipulation import topk_region
from medadv.explain.study import POSITIVE, AttackExample, ExplainConfig, peak_shift
from medadv.models.inference import predicted_labels

GREY_LEVELS = 255.0
SHIFT_COLUMNS = (
    "image_id",
    "model",
    "label_changed",
    "topk_overlap",
    "peak_shift_px",
    "alignment_before",
    "alignment_after",
    "label_before",
    "label_after",
    "max_change_grey",
)


def predicted_label_ifgsm(
    model: nn.Module, x: torch.Tensor, step: float, steps: int, batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper 004's iterative FGSM: ``steps`` applications of Eq. 1 with step ``step`` ([0, 1] units) against the label
    the model predicts on ``x``, clipped to [0, 1] after each step; the last iterate is returned.

    Args:
        model: a classifier returning logits (eval mode is set for the attack and restored).
        x: images (N, 1, H, W) in [0, 1], on the CPU; batches run on the model's device.
        step: the per-step change in [0, 1] units (paper 004: 0.1/255).
        steps: iterations (paper 004: 25).
        batch_size: images per batch.

    Returns:
        (perturbed images on the CPU, within ``steps * step`` of ``x``; the labels predicted on ``x`` (N,)).
    """
    if not step > 0 or steps < 1:
        raise ConfigError(f"paper 004's iterative FGSM: step {step} and steps {steps}; expected step > 0, steps >= 1.")
    device = next(model.parameters()).device
    labels = predicted_labels(model, x, batch_size)
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
        for _ in range(steps):
            xb = fgsm(model, xb, yb, step)
        out.append(xb.cpu())
    return torch.cat(out), labels


def fgsm_gradcam_shift(
    models: Mapping[str, nn.Module], images: np.ndarray, masks: np.ndarray, image_ids: list[str], cfg: ExplainConfig
) -> tuple[pd.DataFrame, list[AttackExample]]:
    """Paper 004's experiment on every model of ``cfg.fgsm_models`` (module docstring).

    Returns:
        the table with :data:`SHIFT_COLUMNS` (one row per model and image; ``max_change_grey`` is the largest pixel
        change in grey levels of 255) and one :class:`medadv.explain.study.AttackExample` per model for the figure.
    """
    x = torch.as_tensor(images)
    masks = np.asarray(masks).reshape(len(image_ids), *x.shape[-2:])
    metric = metric_functions(cfg.pointing_tolerance)[cfg.attack_metric]
    step = cfg.fgsm_step_grey / GREY_LEVELS
    rows, examples = [], []
    for name in tqdm(cfg.fgsm_models, desc="paper 004 FGSM", disable=not in_notebook_progress()):
        model = models[name]
        x_adv, before_label = predicted_label_ifgsm(model, x, step, cfg.fgsm_steps, cfg.batch_size)
        after_label = predicted_labels(model, x_adv, cfg.batch_size)
        before = attribute(model, x, "gradcam", target=before_label, batch_size=cfg.batch_size)
        after = attribute(model, x_adv, "gradcam", target=after_label, batch_size=cfg.batch_size)
        rows.append(
            pd.DataFrame(
                {
                    "image_id": image_ids,
                    "model": name,
                    "label_changed": (before_label != after_label).numpy(),
                    "topk_overlap": topk_coverage(after, topk_region(before, cfg.attack_topk), k=cfg.attack_topk),
                    "peak_shift_px": peak_shift(before, after),
                    "alignment_before": metric(before, masks),
                    "alignment_after": metric(after, masks),
                    "label_before": before_label.numpy(),
                    "label_after": after_label.numpy(),
                    "max_change_grey": ((x_adv - x).abs().amax(dim=(1, 2, 3)) * GREY_LEVELS).numpy(),
                }
            )
        )
        examples.append(
            AttackExample(
                name,
                "paper004_ifgsm",
                step * cfg.fgsm_steps,
                images,
                x_adv.numpy(),
                before,
                after,
                masks,
                before_label.numpy(),
                after_label.numpy(),
            )
        )
    return pd.concat(rows, ignore_index=True)[list(SHIFT_COLUMNS)], examples


def fgsm_shift_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and ``label_changed``: images, mean top-k overlap, mean and median peak shift, mean alignment before
    and after, and the largest change in grey levels.

    Returns:
        one row per (model, label_changed) that occurs.
    """
    return (
        table.groupby(["model", "label_changed"], sort=True)
        .agg(
            n=("image_id", "size"),
            topk_overlap=("topk_overlap", "mean"),
            peak_shift_px=("peak_shift_px", "mean"),
            peak_shift_px_median=("peak_shift_px", "median"),
            alignment_before=("alignment_before", "mean"),
            alignment_after=("alignment_after", "mean"),
            max_change_grey=("max_change_grey", "max"),
        )
        .reset_index()
    )


def fgsm_figure_rows(examples: list[AttackExample], table: pd.DataFrame) -> list[tuple]:
    """Rows of :func:`medadv.explain.plots.manipulation_panels` after paper 004's Figs. 2 and 3: for each model, the
    image whose map moved furthest with the label kept and the one with the label changed (each only when such an
    image exists), preferring images predicted positive.

    Returns:
        (title, image, perturbed image, map before, map after, mask, label before, label after) per row.
    """
    rows = []
    for ex in examples:
        sub = table[table["model"] == ex.model]
        changed = sub["label_changed"].to_numpy(bool)
        shift = sub["peak_shift_px"].to_numpy(float)
        for flag, words in ((False, "label kept (Fig. 2)"), (True, "label changed (Fig. 3)")):
            pool = changed == flag
            if not pool.any():
                continue
            preferred = pool & (ex.label_before == POSITIVE)
            pool = preferred if preferred.any() else pool
            i = int(np.where(pool, shift, -np.inf).argmax())
            rows.append(ex.figure_row(i, f"{ex.model}\n{words}"))
    return rows
