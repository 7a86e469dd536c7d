"""Paper 001's five reader-study sessions as folders a reader opens in a browser, and their answer key.

Paper 001 ("Human reader study", Table 2): Session 1, real TRAIN images, readers told they are real (familiarisation);
Session 2, other real TRAIN images, readers not told; Session 3, half real, half GAN fakes from the VAL and TEST
sets, blinded; Session 4, the education triplets (real, fake, difference real - fake) from TRAIN images, side by
side; Session 5, a new half-real, half-fake set from VAL and TEST. "Except Session 4, the real images and their fake
counterparts were all randomly selected without any overlapping among the sessions"; the readers answer real / not
real / unsure and may not go back.

Choices made here (docs/reader_study.md explains them to a study's organiser):

* **No image twice.** Sessions 1 and 2 draw disjoint TRAIN images. Sessions 3 and 5 draw disjoint VAL/TEST images,
  and each drawn image is shown *either* as itself *or* as its fake, never both, in either session: a reader never
  meets an image and its own fake, so no read is a side-by-side comparison (which would be Session 4's education
  inside Sessions 3 and 5) and every read is of a different source image. Session 4 may reuse Session 1/2 images,
  as in the paper ("selected from the whole training set").
* **Sessions 3 and 5 drawn by patient.** A patient's VAL/TEST images go, all of them, to one of four bins
  (Session 3 real, Session 3 fake, Session 5 real, Session 5 fake): no patient is shown both as real and as fake, nor
  in both sessions, so a reader cannot match a fake against the same breast's other real view. Patients are taken in
  a seeded random order; a patient with more images than its bin has room for contributes only as many as fit (the
  rest are shown nowhere), so the counts come out exact.
* **Half real, half fake, balanced by class.** Each bin has a room per class (the pool's share of positive images
  of its size, the rest negative); a patient goes to the bin with the most room for the classes of its images, and
  each of its classes is cut to that room. Real and fake bins of a session have the same rooms, so exactly half of
  a session is real and each class is split evenly between real and fake when the pool has enough images of each
  class; a class that runs short is made up from the other, and a session whose real and fake bins still came out
  unequal (too few images) is trimmed to the smaller one, with a warning.
* **Too few images.** When the cohort holds fewer images than a profile asks for, the sessions that draw on the same
  pool (1 and 2: TRAIN; 3 and 5: VAL/TEST; 4: the education triplets) are shrunk in proportion (Sessions 3 and 5 to
  even counts), a warning is logged, and the requested and built counts are both returned (``sessions`` table) so
  that the notebook records them. A session that would be left empty is an error.
* **Same look for real and fake.** Every displayed image (real or fake) is read at its full bit depth, resized to the
  study's image size (bicubic, :func:`medadv.data.images.resize`) and written as an 8-bit grey PNG, so that file
  format, size and grey levels tell nothing about the answer. File names are the reading position only
  (``images/0001.png``).
* **The answer key lives outside the session folders** (``<root>/answer_key.csv``); each session folder holds only
  ``index.html`` (the app, :mod:`medadv.reader_app.page`), ``manifest.csv`` (reading order and image ids, no labels)
  and ``images/``. The image ids the readers see (and export) are codes (:func:`image_code`): a cohort id can carry
  the class, which would give a fake away; the answer key maps each code to the cohort's ``source_image_id``.
* **Order fixed by seed.** One ``numpy.random.Generator`` seeded with the profile's seed plus ``reader.seed_offset``
  draws every selection and reading order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medadv.data.adversarial import EDUCATION_COLUMNS, validate_adversarial_index
from medadv.data.images import read_image, resize
from medadv.data.pixels import save_png8
from medadv.errors import DataError
from medadv.layout import ANSWER_KEY_FILE
from medadv.reader_app.config import SESSIONS
from medadv.reader_app.page import render_page

log = logging.getLogger(__name__)

SESSION_MANIFEST_FILE = "manifest.csv"
APP_FILE = "index.html"
IMAGES_DIR = "images"
ANSWER_KEY_COLUMNS = (
    "session",
    "order",
    "image_id",
    "source_image_id",
    "truth",
    "split",
    "source_label",
    "shown_label",
)
SESSION_MODES = {1: "observe", 2: "read", 3: "read", 4: "educate", 5: "read"}
SESSION_POOLS = {1: "train", 2: "train", 3: "val+test", 4: "education", 5: "val+test"}
TRIPLET_PARTS = ("real", "fake", "diff")

__all__ = [
    "ANSWER_KEY_COLUMNS",
    "APP_FILE",
    "SESSION_MANIFEST_FILE",
    "SessionPackages",
    "build_sessions",
    "image_code",
    "plan_sessions",
    "session_dir_name",
]


@dataclasses.dataclass(frozen=True)
class SessionPackages:
    """The built sessions.

    Attributes:
        root: folder holding ``answer_key.csv`` and one folder per session (``session1`` ... ``session5``).
        answer_key: one row per item: session, order (1-based reading position), image_id (the package's code of
            the image, which the readers' files carry), source_image_id (the cohort's image id; for a fake, of the
            image it was made from), truth (``real`` / ``fake``; ``triplet`` in Session 4), split, source_label (class
            of the source image), shown_label (class the shown image carries: the flipped label for a fake).
        sessions: one row per session: session, mode (``observe`` / ``read`` / ``educate``), pool, requested, built,
            n_real, n_fake.
        files: every file written (for :meth:`medadv.report.RunContext.register_many`).
    """

    root: Path
    answer_key: pd.DataFrame
    sessions: pd.DataFrame
    files: tuple[Path, ...]

    def session_dir(self, session: int) -> Path:
        """The folder of one session (what is handed to the readers).

        Returns:
            The folder's path.
        """
        return self.root / session_dir_name(session)


def session_dir_name(session: int) -> str:
    """Folder name of a session: ``session1`` ... ``session5``.

    Returns:
        The folder name.
    """
    return f"session{int(session)}"


def _fit(requested: Sequence[int], available: int, step: int, what: str) -> list[int]:
    """Shrink ``requested`` counts that share one pool of ``available`` images in proportion (multiples of ``step``)."""
    requested = [int(r) for r in requested]
    if sum(requested) <= available:
        return requested
    exact = [r * available / sum(requested) for r in requested]
    fitted = [int(e) // step * step for e in exact]
    for k in sorted(range(len(exact)), key=lambda k: fitted[k] - exact[k]):  # largest remainders first
        if sum(fitted) + step <= available and fitted[k] + step <= requested[k]:
            fitted[k] += step
    log.warning(
        "%s: %d images requested but only %d available; built %s instead of %s.",
        what,
        sum(requested),
        available,
        fitted,
        requested,
    )
    return fitted


def _check_tables(cohort: pd.DataFrame, adversarial_index: pd.DataFrame, education_index: pd.DataFrame) -> None:
    validate_adversarial_index(adversarial_index, cohort)
    missing = [c for c in EDUCATION_COLUMNS if c not in education_index.columns]
    if missing:
        raise DataError(
            f"education_index: missing columns {missing}; expected {list(EDUCATION_COLUMNS)} (notebook 02)."
        )
    train = set(cohort.loc[cohort["split"] == "train", "image_id"])
    strangers = sorted(set(education_index["image_id"].astype(str)) - train)
    if strangers:
        raise DataError(
            f"education_index: image ids {strangers[:5]} are not TRAIN images of the cohort; paper 001's education "
            "triplets come from the training set. Rerun notebook 02 for this run folder."
        )
    if education_index["image_id"].astype(str).duplicated().any():
        raise DataError("education_index: an image id appears twice; expected one triplet per image.")


def plan_sessions(
    cohort: pd.DataFrame,
    adversarial_index: pd.DataFrame,
    education_index: pd.DataFrame,
    counts: Sequence[int],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Choose the images of the five sessions and their reading order (no files are written).

    Args:
        cohort: the cohort table (:mod:`medadv.data.cohort`), with splits.
        adversarial_index: notebook 02's ``adversarial_index`` (one fake for every val and test image).
        education_index: notebook 02's ``education_index`` (triplets of train images).
        counts: requested images per session 1-5 (Sessions 3 and 5 even).
        seed: seed of the draws (the profile's seed plus ``reader.seed_offset``).

    Returns:
        (answer key with :data:`ANSWER_KEY_COLUMNS`, sessions table); see :class:`SessionPackages`.

    Raises:
        DataError: tables that break notebook 02's contract, or a session that would be empty.
    """
    if len(counts) != len(SESSIONS):
        raise DataError(f"counts has {len(counts)} entries; expected one per session {SESSIONS}.")
    _check_tables(cohort, adversarial_index, education_index)
    rng = np.random.default_rng(seed)
    labels = dict(zip(cohort["image_id"], cohort["label"].astype(int), strict=True))
    splits = dict(zip(cohort["image_id"], cohort["split"], strict=True))
    train = rng.permutation(np.sort(cohort.loc[cohort["split"] == "train", "image_id"].to_numpy(str)))
    heldout = rng.permutation(np.sort(adversarial_index["image_id"].astype(str).to_numpy()))
    education = rng.permutation(np.sort(education_index["image_id"].astype(str).to_numpy()))
    n1, n2 = _fit(counts[0:2], len(train), 1, "sessions 1-2 (train images)")
    n3, n5 = _fit((counts[2], counts[4]), len(heldout), 2, "sessions 3 and 5 (val/test images)")
    (n4,) = _fit(counts[3:4], len(education), 1, "session 4 (education triplets)")
    patients = dict(zip(cohort["image_id"], cohort["patient_id"].astype(str), strict=True))
    chosen = {1: _all(train[:n1], "real"), 2: _all(train[n1 : n1 + n2], "real"), 4: _all(education[:n4], "triplet")}
    chosen |= _draw_by_patient(heldout, patients, labels, {3: n3 // 2, 5: n5 // 2})
    built = {s: len(chosen[s][0]) for s in SESSIONS}
    empty = [s for s, n in built.items() if n == 0]
    if empty:
        raise DataError(
            f"reader sessions {empty} would be empty: the cohort has {len(train)} train images, {len(heldout)} "
            f"val/test images with fakes and {len(education)} education triplets. Use a larger cohort or "
            "smaller reader.session_counts."
        )
    rows = []
    for session in SESSIONS:
        ids, truth = chosen[session]
        for order, k in enumerate(rng.permutation(len(ids)), start=1):
            image_id = str(ids[k])
            label = labels[image_id]
            rows.append(
                {
                    "session": session,
                    "order": order,
                    "image_id": image_code(image_id, seed),
                    "source_image_id": image_id,
                    "truth": truth[k],
                    "split": splits[image_id],
                    "source_label": label,
                    "shown_label": 1 - label if truth[k] == "fake" else label,
                }
            )
    key = pd.DataFrame(rows, columns=list(ANSWER_KEY_COLUMNS))
    if key.groupby("image_id")["source_image_id"].nunique().max() > 1:
        raise DataError("two cohort images got the same package code; change reader.seed_offset.")
    return key, _sessions_table(counts, built, key)


def _sessions_table(counts: Sequence[int], built: dict[int, int], key: pd.DataFrame) -> pd.DataFrame:
    """One row per session: its mode and pool, the images requested and built, and how many are real and fake.

    Returns:
        the sessions table of :class:`SessionPackages`.
    """
    return pd.DataFrame(
        {
            "session": list(SESSIONS),
            "mode": [SESSION_MODES[s] for s in SESSIONS],
            "pool": [SESSION_POOLS[s] for s in SESSIONS],
            "requested": [int(c) for c in counts],
            "built": [built[s] for s in SESSIONS],
            "n_real": [int(((key["session"] == s) & (key["truth"] == "real")).sum()) for s in SESSIONS],
            "n_fake": [int(((key["session"] == s) & (key["truth"] == "fake")).sum()) for s in SESSIONS],
        }
    )


def image_code(image_id: str, seed: int) -> str:
    """The code under which the readers see an image: ``i`` + 10 hex digits of sha256(seed, image id).

    Cohort ids of real data sets can carry the class (``Mass-Training_P_00001_LEFT_CC``), and knowing the class of
    an image whose fake shows the other one would give the fake away; the code hides it and stays the same for one
    image across sessions.

    Returns:
        The code, ``i`` and 10 hex digits.
    """
    return "i" + hashlib.sha256(f"{seed}/{image_id}".encode()).hexdigest()[:10]


def _all(ids: np.ndarray, truth: str) -> tuple[np.ndarray, np.ndarray]:
    return ids, np.full(len(ids), truth, dtype=object)


Bin = tuple[int, str]


def _deal(
    groups: list[list[str]], room: dict[Bin, dict[int, int]], bins: dict[Bin, list[str]], labels: dict[str, int]
) -> list[list[str]]:
    """Deal whole groups (one patient's images) into ``bins``: each group to the bin with the most ``room`` (per
    class, updated) for the classes it holds, cut to that room. Returns the groups no bin had room for."""
    left = []
    for group in groups:
        by_class = {c: [i for i in group if labels[i] == c] for c in (0, 1)}
        held = [c for c in (0, 1) if by_class[c]]
        target = max(room, key=lambda b: sum(room[b][c] for c in held))
        if sum(room[target][c] for c in held) <= 0:
            left.append(group)
            continue
        for c in held:
            take = by_class[c][: room[target][c]]
            bins[target] += take
            room[target][c] -= len(take)
    return left


def _draw_by_patient(
    ids: np.ndarray, patients: dict[str, str], labels: dict[str, int], per_half: dict[int, int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Sessions 3 and 5 from the shuffled held-out ``ids``, by patient (module docstring): ``per_half[s]`` real and as
    many fake images for each session ``s``, every patient in one (session, real / fake) bin only.

    Returns:
        {session: (cohort image ids, truth ``real`` / ``fake`` of each)}.
    """
    groups: dict[str, list[str]] = {}
    for image_id in ids:  # patients in order of their first image in the shuffle: a seeded random order
        groups.setdefault(patients[str(image_id)], []).append(str(image_id))
    share = sum(labels[str(i)] for i in ids) / max(1, len(ids))
    bins: dict[Bin, list[str]] = {(s, t): [] for s in per_half for t in ("real", "fake")}
    positives = {b: int(round(per_half[b[0]] * share)) for b in bins}
    room = {b: {1: positives[b], 0: per_half[b[0]] - positives[b]} for b in bins}
    left = _deal(list(groups.values()), room, bins, labels)
    # a class that ran short is made up from the other (any class counts now)
    _deal(left, {b: {0: per_half[b[0]] - len(bins[b]), 1: 0} for b in bins}, bins, dict.fromkeys(labels, 0))
    out = {}
    for s in per_half:
        n = min(len(bins[s, "real"]), len(bins[s, "fake"]))
        if n < per_half[s]:
            log.warning(
                "session %d: only %d real and %d fake images could be drawn by patient; %d of each are shown.",
                s,
                len(bins[s, "real"]),
                len(bins[s, "fake"]),
                n,
            )
        picked = bins[s, "real"][:n] + bins[s, "fake"][:n]
        out[s] = (np.array(picked, dtype=str), np.array(["real"] * n + ["fake"] * n, dtype=object))
    return out


def _write_display_png(source: Path, target: Path, size: tuple[int, int]) -> Path:
    """Read ``source`` at full bit depth, resize to ``size`` and write an 8-bit grey PNG (no metadata)."""
    return save_png8(target, resize(read_image(source), size))


def _package_id(session: int, items: list[dict[str, str]], seed: int) -> str:
    digest = hashlib.sha256(json.dumps({"session": session, "seed": seed, "items": items}, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def _image_sources(
    cohort: pd.DataFrame,
    image_root: Path,
    run_dir: Path,
    adversarial_index: pd.DataFrame,
    education_index: pd.DataFrame,
) -> dict[tuple[str, str], Path]:
    """Source file of every displayable image, by (kind, cohort image id); kind is real, fake or a triplet part."""
    out = {("real", i): image_root / p for i, p in zip(cohort["image_id"], cohort["path"], strict=True)}
    out |= {
        ("fake", str(i)): run_dir / p
        for i, p in zip(adversarial_index["image_id"], adversarial_index["path"], strict=True)
    }
    for part in TRIPLET_PARTS:
        column = education_index[f"{part}_path"]
        out |= {(part, str(i)): run_dir / p for i, p in zip(education_index["image_id"], column, strict=True)}
    return out


def _write_item(
    row: tuple, sources: dict[tuple[str, str], Path], folder: Path, size: tuple[int, int], files: list[Path]
) -> dict[str, str]:
    """Write the PNG(s) of one answer-key row into a session folder (appending to ``files``); its manifest entry."""
    stem = f"{IMAGES_DIR}/{row.order:04d}"
    if row.truth != "triplet":
        files.append(_write_display_png(sources[(row.truth, row.source_image_id)], folder / f"{stem}.png", size))
        return {"image_id": row.image_id, "file": f"{stem}.png"}
    item = {"image_id": row.image_id}
    for part in TRIPLET_PARTS:
        item[f"{part}_file"] = f"{stem}_{part}.png"
        files.append(_write_display_png(sources[(part, row.source_image_id)], folder / item[f"{part}_file"], size))
    return item


def build_sessions(
    cohort: pd.DataFrame,
    image_root: str | Path,
    run_dir: str | Path,
    adversarial_index: pd.DataFrame,
    education_index: pd.DataFrame,
    out_dir: str | Path,
    counts: Sequence[int],
    seed: int,
    image_size: tuple[int, int],
    modality: str = "mammography",
    ask_confidence: bool = True,
) -> SessionPackages:
    """Build paper 001's five session folders and the answer key (see the module docstring for the design).

    Args:
        cohort: the cohort table (real images; paths relative to ``image_root``).
        image_root: root of the cohort's paths (``ctx.image_root``).
        run_dir: the run folder that the paths of ``adversarial_index`` and ``education_index`` are relative to.
        adversarial_index, education_index: notebook 02's tables (:mod:`medadv.data.adversarial`).
        out_dir: folder to write (``<run>/data/reader_packages``); its ``session*`` folders are replaced.
        counts: requested images per session 1-5 (``reader.session_counts``).
        seed: the profile's seed plus ``reader.seed_offset``.
        image_size: (height, width) every displayed image is resized to (the study's image size).
        modality: named in the readers' instructions.
        ask_confidence: whether the app asks for a confidence rating 1-5 with each real / not-real answer.

    Returns:
        :class:`SessionPackages`.
    """
    image_root, run_dir, out_dir = Path(image_root), Path(run_dir), Path(out_dir)
    key, sessions = plan_sessions(cohort, adversarial_index, education_index, counts, seed)
    sources = _image_sources(cohort, image_root, run_dir, adversarial_index, education_index)
    files: list[Path] = []
    for session in SESSIONS:
        folder = out_dir / session_dir_name(session)
        for old in sorted(folder.glob(f"{IMAGES_DIR}/*.png")):
            old.unlink()
        rows = key[key["session"] == session]
        items = [_write_item(row, sources, folder, image_size, files) for row in rows.itertuples(index=False)]
        manifest = pd.DataFrame(items).assign(order=rows["order"].to_numpy())
        manifest = manifest[["order", *[c for c in manifest.columns if c != "order"]]]
        manifest.to_csv(folder / SESSION_MANIFEST_FILE, index=False, lineterminator="\n")
        payload = {
            "package_id": _package_id(session, items, seed),
            "session": session,
            "mode": SESSION_MODES[session],
            "modality": modality,
            "ask_confidence": bool(ask_confidence),
            "items": items,
        }
        (folder / APP_FILE).write_text(render_page(payload), encoding="utf-8")
        files += [folder / SESSION_MANIFEST_FILE, folder / APP_FILE]
    key_path = out_dir / ANSWER_KEY_FILE
    key.to_csv(key_path, index=False, lineterminator="\n")
    files.append(key_path)
    return SessionPackages(root=out_dir, answer_key=key, sessions=sessions, files=tuple(files))
