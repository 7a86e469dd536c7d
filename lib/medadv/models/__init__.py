"""Classifiers: paper 001's VGG11-GroupNorm-global-max-pool network, paper 004's multi-task ResNet, any torchvision
backbone by name, the checkpoint format (:mod:`~medadv.models.checkpoint`: safetensors plus a JSON sidecar), batched
inference in eval mode (:mod:`~medadv.models.inference`) and the registry of a run folder's trained models."""

from __future__ import annotations

from medadv.models.backbones import GreyToImageNet, TorchvisionClassifier
from medadv.models.classifier import Fnet, VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet
from medadv.models.registry import build_model, load_trained, trained_models

__all__ = [
    "Fnet",
    "GreyToImageNet",
    "MultiTaskConfig",
    "MultiTaskResNet",
    "TorchvisionClassifier",
    "VGGClassifier",
    "VGGConfig",
    "build_model",
    "load_trained",
    "trained_models",
]
