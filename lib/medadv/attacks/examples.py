"""Adversarial examples computed once: notebook 03's attacks keep the examples of the models later notebooks read,
and this module writes them to the run folder and reads them back.

What an example is. For a model, an L-inf attack of the ensemble (not Square, not a transfer attack: notebook 06 reads
the white-box attacks' examples) and a budget, every test image the model classifies
correctly unattacked has one example: the image the attack returned when it attacked that image at that budget, or,
when the evaluation skipped the image because an earlier run had already fooled it (PGD at a smaller budget, whose
ball lies inside this one; the attack before it in AutoAttack's cascade), the example that fooled it there
(:mod:`medadv.attacks.catalogue`). Every example lies within the budget's ball around its image, and the attacks stop
on an image at the first iterate that fools it (``early_stop``), so an example is the first one the attack found, not
the last iterate of a fixed number of steps. Images the model gets wrong unattacked have none.

On disk, per model, in a folder of the run (``data/attack_examples``):

* ``<model>.npz``: one float32 array (n, 1, H, W) per (attack, norm, budget), named ``attack|norm|eps`` with the
  budget written by ``repr`` (so it reads back as the same float); uncompressed, so that reading is fast (the
  images read back bit for bit in any case);
* ``<model>.csv``: the index, one row per example: ``attack``, ``norm``, ``eps``, ``image_id`` (the cohort's) and
  ``row`` (its place in the array).

Written by hand: the examples are a few arrays and a table, for which NumPy's ``.npz`` and a CSV are the plain
formats; no library of the field stores attack outputs keyed by image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medadv.errors import DataError, RunError

INDEX_COLUMNS = ("attack", "norm", "eps", "image_id", "row")
#: (attack, norm, eps) -> the examples, (n, 1, H, W) float32, one per image of ``AttackExamples.image_ids``.
ExampleSets = dict[tuple[str, str, float], np.ndarray]


@dataclasses.dataclass(frozen=True)
class AttackExamples:
    """One model's adversarial examples (module docstring).

    Attributes:
        model: the classifier's name.
        image_ids: the images that have an example (those the model gets right unattacked), in test order.
        images: (attack, norm, eps) -> their examples, (len(image_ids), 1, H, W) float32, in the order of
            ``image_ids``.
    """

    model: str
    image_ids: tuple[str, ...]
    images: ExampleSets

    def at(self, attack: str, eps: float, norm: str = "linf") -> np.ndarray:
        """The examples of ``attack`` at (``norm``, ``eps``).

        Returns:
            (len(image_ids), 1, H, W) float32.

        Raises:
            RunError: notebook 03 did not keep that attack at that budget.
        """
        for (a, n, e), images in self.images.items():
            if a == attack and n == norm and np.isclose(e, eps, rtol=1e-9, atol=0.0):
                return images
        kept = sorted({(a, n, float(e)) for a, n, e in self.images})
        raise RunError(
            f"notebook 03 kept no {attack} examples of {self.model} at {norm} {eps:g}; it kept {kept}. "
            "Rerun notebook 03_attack_evaluation with this profile."
        )


def _key(attack: str, norm: str, eps: float) -> str:
    return f"{attack}|{norm}|{float(eps)!r}"


def _parse(key: str) -> tuple[str, str, float]:
    attack, norm, eps = key.split("|")
    return attack, norm, float(eps)


def write_examples(folder: Path, examples: AttackExamples) -> list[Path]:
    """Write one model's examples as ``<model>.npz`` and ``<model>.csv`` in ``folder`` (created).

    Returns:
        The two paths (for the run's manifest).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, rows = {}, []
    for (attack, norm, eps), images in examples.images.items():
        if len(images) != len(examples.image_ids):
            raise DataError(
                f"{examples.model} {attack} {norm} {eps:g}: {len(images)} examples for "
                f"{len(examples.image_ids)} images."
            )
        arrays[_key(attack, norm, eps)] = np.ascontiguousarray(images, dtype=np.float32)
        rows += [
            {"attack": attack, "norm": norm, "eps": eps, "image_id": i, "row": r}
            for r, i in enumerate(examples.image_ids)
        ]
    npz, csv = folder / f"{examples.model}.npz", folder / f"{examples.model}.csv"
    with npz.open("wb") as handle:
        np.savez(handle, **arrays)
    pd.DataFrame(rows, columns=list(INDEX_COLUMNS)).to_csv(csv, index=False, float_format="%.17g")
    return [npz, csv]


def read_examples(folder: Path, model: str, test_ids: Sequence[str]) -> AttackExamples:
    """Read one model's examples (:func:`write_examples`), checked against the run's test images.

    Args:
        folder: the run's ``data/attack_examples``; model: the classifier's name; test_ids: the test split's
            image ids, in order (the examples come back in this order).

    Returns:
        :class:`AttackExamples`.

    Raises:
        RunError: the files are missing (notebook 03 has not run, or kept no examples of ``model``).
        DataError: the index and the arrays disagree, or an example's image is not a test image of this run.
    """
    npz, csv = Path(folder) / f"{model}.npz", Path(folder) / f"{model}.csv"
    if not npz.is_file() or not csv.is_file():
        raise RunError(
            f"{npz} or {csv.name} is missing; notebook 03_attack_evaluation writes the adversarial "
            f"examples of {model} that this notebook reads: run it first (with detect.classifier "
            f"{model!r} in the profile)."
        )
    index = pd.read_csv(csv, dtype={"image_id": str})
    if list(index.columns) != list(INDEX_COLUMNS):
        raise DataError(f"{csv}: columns {list(index.columns)}; expected {list(INDEX_COLUMNS)}. Rerun notebook 03.")
    position = {image_id: k for k, image_id in enumerate(test_ids)}
    unknown = sorted(set(index["image_id"]) - set(position))
    if unknown:
        raise DataError(
            f"{csv}: image(s) {unknown[:5]} are not test images of this run's cohort; the examples were "
            "made for another cohort. Rerun notebook 03_attack_evaluation."
        )
    image_ids: tuple[str, ...] | None = None
    images: ExampleSets = {}
    with np.load(npz) as stored:
        names = {_parse(name): name for name in stored.files}
        for (attack, norm, eps), rows in index.groupby(["attack", "norm", "eps"], sort=False):
            ids = tuple(sorted(rows["image_id"], key=position.__getitem__))
            if image_ids is None:
                image_ids = ids
            found = [k for k in names if k[:2] == (attack, norm) and np.isclose(k[2], eps, rtol=1e-12, atol=0.0)]
            if ids != image_ids or len(found) != 1 or len(stored[names[found[0]]]) != len(rows):
                raise DataError(
                    f"{npz}: the examples of {attack} {norm} {eps:g} do not match the index {csv.name}. "
                    "Rerun notebook 03."
                )
            order = rows.set_index("image_id").loc[list(ids), "row"].to_numpy()
            images[found[0]] = stored[names[found[0]]][order]
    return AttackExamples(model, image_ids or (), images)
