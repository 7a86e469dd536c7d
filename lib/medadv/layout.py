"""The run folder's layout, declared once: every path that the notebooks write and read (docs/design.md, "The run
folder").

A run folder holds the run's records at its top (``config.json``, ``manifest.json``, ``summary.json``, ``cohort.csv``,
``run.lock``, ``pipeline.log``, a sweep's run's ``profile.yaml``), and five folders: ``tables/`` (every CSV table,
notebook 02's image indexes included), ``figures/`` (PNG and PDF), ``checkpoints/`` (classifiers, their training
states, the GANs, the detectors), ``data/`` (files a notebook makes for later ones: phantom images, fakes, attack
examples, reader packages, responses) and ``notebooks/`` (the executed notebooks); ``logs/`` and ``report/`` beside
them.

Every writer and reader takes its paths from a :class:`RunLayout`: the stages from their run context
(``ctx.layout``), the library's functions as the layout itself or as the one path they need. Moving a file is one edit
here. Imports nothing of the kit, so that every layer may use it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = [
    "ANSWER_KEY_FILE",
    "COHORT_FILE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "SUBFOLDERS",
    "SUMMARY_FILE",
    "RunLayout",
    "training_state",
]

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
COHORT_FILE = "cohort.csv"
LOCK_FILE = "run.lock"
SWEEP_FILE = "sweep.json"  # a sweep folder's record of its runs (medadv.sweep)
#: The answer key inside a reader-packages folder (notebook 05 writes it; a package folder can travel on its own).
ANSWER_KEY_FILE = "answer_key.csv"
#: The folders a run folder is made with (:func:`medadv.report.ensure_folders`).
SUBFOLDERS = ("figures", "tables", "checkpoints", "notebooks", "data")


def training_state(checkpoints: Path, name: str) -> Path:
    """Where a model's last training state lies in a checkpoints folder (the run's, or notebook 06's ``detect``).

    Returns:
        ``<checkpoints>/training/<name>_last`` (a checkpoint stem).
    """
    return Path(checkpoints) / "training" / f"{name}_last"


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """Every path of the run folder ``root`` (absolute or relative, as given)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ---- the records at the top -----------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        """``config.json``: the resolved profile and the run's settings (written once, compared on resuming)."""
        return self.root / CONFIG_FILE

    @property
    def manifest(self) -> Path:
        """``manifest.json``: every output with its sha256 and maker, and each notebook's status."""
        return self.root / MANIFEST_FILE

    @property
    def summary(self) -> Path:
        """``summary.json``: each notebook's headline numbers."""
        return self.root / SUMMARY_FILE

    @property
    def cohort(self) -> Path:
        """``cohort.csv``: notebook 00's cohort table (image paths, labels, splits)."""
        return self.root / COHORT_FILE

    @property
    def lock(self) -> Path:
        """``run.lock``: held while a run writes to the folder."""
        return self.root / LOCK_FILE

    @property
    def profile(self) -> Path:
        """``profile.yaml``: a sweep's run's profile (the sweep's, with this run's seed and grid value)."""
        return self.root / "profile.yaml"

    def foreign_entries(self) -> list[str]:
        """What keeps an existing folder from being a run folder: its entries, when it is not empty and holds none of
        a run's records (``config.json``, ``manifest.json``, ``run.lock``, a sweep's run's ``profile.yaml``).

        Returns:
            The entries' names, sorted (empty for a run folder, an empty folder or one that does not exist yet).
        """
        if not self.root.is_dir():
            return []
        entries = sorted(p.name for p in self.root.iterdir())
        records = {self.config.name, self.manifest.name, self.lock.name, self.profile.name}
        return [] if records & set(entries) else entries

    @property
    def pipeline_log(self) -> Path:
        """``pipeline.log``: the runner's log."""
        return self.root / "pipeline.log"

    @property
    def logs(self) -> Path:
        """``logs/``: one log file per notebook."""
        return self.root / "logs"

    @property
    def notebooks(self) -> Path:
        """``notebooks/``: the executed notebooks."""
        return self.root / "notebooks"

    @property
    def report(self) -> Path:
        """``report/``: the run's HTML report."""
        return self.root / "report"

    def log(self, notebook: str) -> Path:
        """A notebook's log file.

        Returns:
            ``logs/<notebook>.log``.
        """
        return self.logs / f"{notebook}.log"

    # ---- tables and figures ---------------------------------------------------------------------------------------
    @property
    def tables(self) -> Path:
        """``tables/``: every CSV table."""
        return self.root / "tables"

    @property
    def figures(self) -> Path:
        """``figures/``: every figure, as PNG and PDF."""
        return self.root / "figures"

    def table(self, name: str) -> Path:
        """A table's CSV file.

        Returns:
            ``tables/<name>.csv``.
        """
        return self.tables / f"{name}.csv"

    def figure(self, name: str, suffix: str = ".png") -> Path:
        """A figure's file.

        Returns:
            ``figures/<name><suffix>`` (``.png`` or ``.pdf``).
        """
        return self.figures / f"{name}{suffix}"

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: the trained classifiers (``<name>.safetensors`` and ``<name>.json``) and the rest."""
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """A trained classifier's checkpoint stem (weights and sidecar lie at ``<stem>.safetensors`` and ``.json``).

        Returns:
            ``checkpoints/<name>``.
        """
        return self.checkpoints / name

    def training_state(self, name: str) -> Path:
        """The stem of a classifier's last training state (what an interrupted training resumes from).

        Returns:
            ``checkpoints/training/<name>_last``.
        """
        return training_state(self.checkpoints, name)

    def gan(self, direction: str) -> Path:
        """The stem of a GAN's checkpoint (generator, discriminator and training state) for ``remove`` or ``insert``.

        Returns:
            ``checkpoints/gan_<direction>``.
        """
        return self.checkpoints / f"gan_{direction}"

    @property
    def detect_checkpoints(self) -> Path:
        """``checkpoints/detect/``: notebook 06's detectors (the real-vs-fake classifier)."""
        return self.checkpoints / "detect"

    # ---- files a notebook makes for later ones --------------------------------------------------------------------
    @property
    def data(self) -> Path:
        """``data/``: files a notebook makes for later notebooks."""
        return self.root / "data"

    @property
    def phantom(self) -> Path:
        """``data/phantom/``: notebook 00's phantom images and lesion masks."""
        return self.data / "phantom"

    @property
    def adversarial(self) -> Path:
        """``data/adversarial/``: notebook 02's fakes of the validation and test images."""
        return self.data / "adversarial"

    @property
    def adversarial_index(self) -> Path:
        """``tables/adversarial_index.csv``: each fake's image id, labels and path (relative to the run folder)."""
        return self.table("adversarial_index")

    @property
    def education(self) -> Path:
        """``data/education/``: notebook 02's triplets for reader education (real, removed, inserted)."""
        return self.data / "education"

    @property
    def education_index(self) -> Path:
        """``tables/education_index.csv``: each education triplet's files (relative to the run folder)."""
        return self.table("education_index")

    @property
    def attack_examples(self) -> Path:
        """``data/attack_examples/``: notebook 03's adversarial examples that notebook 06 reads."""
        return self.data / "attack_examples"

    @property
    def reader_packages(self) -> Path:
        """``data/reader_packages/``: notebook 05's reader sessions, answer key and reader app."""
        return self.data / "reader_packages"

    @property
    def answer_key(self) -> Path:
        """``data/reader_packages/answer_key.csv``: the truth behind every packaged image."""
        return self.reader_packages / ANSWER_KEY_FILE

    @property
    def panel_responses(self) -> Path:
        """``data/reader_responses/``: the panel's reads that notebook 05 analysed (the simulated panel's, or the
        readers' from a folder of CSV exports or a workshop's database), one CSV per reader and session in the app's
        export format, with ``panel.json`` (:attr:`panel_record`) saying whose; notebook 06 reads them from here."""
        return self.data / "reader_responses"

    @property
    def panel_record(self) -> Path:
        """``data/reader_responses/panel.json``: whose reads ``panel_responses`` holds (``readers``: simulated or
        real; ``source``: where notebook 05 read them, ``given_as``: through which parameter, responses_dir or
        responses_db; ``left_out``: unfinished readers of a database)."""
        return self.panel_responses / "panel.json"

    @property
    def machine_responses(self) -> Path:
        """``data/reader_responses_machine/``: notebook 06's detectors' reads, as reader responses."""
        return self.data / "reader_responses_machine"

    @property
    def reader_db(self) -> Path:
        """``data/reader.sqlite``: the served reader study's answers (``medadv-reader serve``)."""
        return self.data / "reader.sqlite"

    def relative(self, path: str | Path) -> str:
        """A path of this run folder as the manifest and the image indexes record it.

        Returns:
            ``path`` relative to the run folder, with forward slashes.
        """
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:  # the same folder spelled another way (a link, a relative root)
            return path.resolve().relative_to(self.root.resolve()).as_posix()
