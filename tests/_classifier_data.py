"""Synthetic splits for the classifier tests: noise images, positives carry a bright disc with its exact mask."""

from __future__ import annotations

import numpy as np
import pandas as pd
from medadv.data.images import SplitArrays


def synthetic_split(n: int, size: int = 32, seed: int = 0, contrast: float = 0.5, prefix: str = "img") -> SplitArrays:
    """``n`` images (N, 1, size, size) in [0, 1], alternating labels 1, 0; positives have a disc and its mask."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 0.5, size=(n, 1, size, size)).astype(np.float32)
    labels = (np.arange(n) % 2 == 0).astype(np.int64)
    masks = np.zeros((n, 1, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 8) ** 2
        masks[i, 0] = disc
        images[i, 0][disc] = np.clip(images[i, 0][disc] + contrast, 0, 1)
    rows = pd.DataFrame({"image_id": [f"{prefix}{i}" for i in range(n)], "label": labels})
    return SplitArrays(images, labels, masks, labels.astype(bool), rows)
