"""Data-parallel training across processes (``torchrun``): process group set-up, batch sharding, gradient averaging.

Launch with ``torchrun`` (one process per GPU; several nodes with ``--nnodes``/``--rdzv-endpoint``), e.g.
``torchrun --nproc-per-node 4 -m medadv.stages.classifier_training --run-dir results/full --profile full`` (see
``docs/training.md``). Every process draws the same global batch (same seeded generator) and trains on its own share
of it (:func:`shard`); after the backward pass the gradients are averaged over the processes (:func:`average_gradients`)
so every process takes the same optimizer step. That is what ``DistributedDataParallel`` does, written out because
paper 001's gradient penalty needs double back-propagation, which ``DistributedDataParallel`` does not support.
On the CPU the ``gloo`` backend is used, on CUDA ``nccl``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from medadv.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Rank and world size of this process (rank 0, world 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``, ...).

    Outside ``torchrun`` (no ``WORLD_SIZE`` or a world of one) nothing is set up and a single-process context comes
    back.

    Returns:
        This process's :class:`DistContext`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """This process's GPU under ``torchrun`` (``cuda:LOCAL_RANK``), else ``device``.

    Returns:
        The device.
    """
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def shard(indices: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This process's share of a global batch of indices (every ``world_size``-th, from ``rank``).

    Returns:
        The indices of this process.
    """
    if not ctx.active:
        return indices
    if len(indices) % ctx.world_size:
        raise ConfigError(
            f"a global batch of {len(indices)} images cannot be shared equally by {ctx.world_size} processes; "
            "make classifier.batch_per_class a multiple of the number of processes."
        )
    return indices[ctx.rank :: ctx.world_size]


def broadcast_parameters(model: nn.Module, ctx: DistContext) -> None:
    """Give every process rank 0's parameters and buffers."""
    if ctx.active:
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(model: nn.Module, ctx: DistContext) -> None:
    """Average the parameters' gradients over the processes (one flattened all-reduce)."""
    if not ctx.active:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))
        offset += n


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op when not distributed)."""
    if ctx.active:
        dist.barrier()
