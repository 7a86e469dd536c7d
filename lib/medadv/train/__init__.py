"""Training of the study's classifiers: losses (:mod:`~medadv.train.losses`), augmentation
(:mod:`~medadv.train.augment`), recipes (:mod:`~medadv.train.recipes`), the training loop (:mod:`~medadv.train.loop`),
checkpoints (:mod:`~medadv.train.checkpoint`), evaluation (:mod:`~medadv.train.evaluate`) and data-parallel training
under ``torchrun`` (:mod:`~medadv.train.distributed`). Import from the submodule you need; this package imports
nothing itself, so that ``medadv.train.checkpoint`` stays light.
"""
from __future__ import annotations
