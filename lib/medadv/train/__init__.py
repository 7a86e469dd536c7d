"""Training of the study's classifiers: losses (:mod:`~medadv.train.losses`), augmentation
(:mod:`~medadv.train.augment`), recipes (:mod:`~medadv.train.recipes`), the training loop (:mod:`~medadv.train.loop`),
evaluation (:mod:`~medadv.train.evaluate`) and data-parallel training under ``torchrun``
(:mod:`~medadv.train.distributed`). Checkpoints are written in the format of :mod:`medadv.models.checkpoint`, beside
the models they hold. Import from the submodule you need; this package imports nothing itself.
"""

from __future__ import annotations
