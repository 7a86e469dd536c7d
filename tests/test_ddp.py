"""Data-parallel training: two gloo processes on the CPU end with the weights of one process on the same global batch.

The networks train in double precision here: summing a gradient over two processes instead of one changes its last
bits, and Adam, which divides each update by the gradient's running magnitude, turns those bits into visible weight
differences for parameters whose gradient is nearly zero. In double precision those bits are ~1e-16, so the 1e-5
comparison tests the data-parallel arithmetic (sharding, averaging, broadcast), not rounding.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _classifier_data import synthetic_split
from medadv.models.checkpoint import load_checkpoint
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.stages import classifier_training
from medadv.train.distributed import DistContext
from medadv.train.loop import TrainSpec, fit
from medadv.train.recipes import PaperObjective, Recipe, RecipeParams

SPEC = TrainSpec(
    name="vgg_erm",
    recipe="erm_noaug",
    epochs=2,
    warmup_epochs=1,
    lr_head=1e-3,
    lr_features=1e-3,
    betas=(0.5, 0.9),
    batch_per_class=2,
    steps_per_epoch=3,
)


def _train(out: Path, ctx: DistContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=1 / 16, dropout=0.0, init="random")).double()
    train, val = synthetic_split(16, size=96, seed=1), synthetic_split(8, size=96, seed=2, prefix="val")
    fit(
        model,
        SPEC,
        PaperObjective(),
        Recipe("erm_noaug", RecipeParams()),
        train,
        val,
        out,
        seed=5,
        device=torch.device("cpu"),
        dist_ctx=ctx,
    )


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _train(Path(out), DistContext(rank=rank, world_size=world))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    _train(tmp_path / "single", DistContext())
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    single, _ = load_checkpoint(tmp_path / "single" / "training" / "vgg_erm_last")
    ddp, meta = load_checkpoint(tmp_path / "ddp" / "training" / "vgg_erm_last")
    assert meta["epoch"] == 2
    weights = [k for k in single if k.startswith("model.")]
    assert weights and set(weights) <= set(ddp)
    moved = max(float((single[k] - ddp[k]).abs().max()) for k in weights)
    assert moved <= 1e-5
    torch.manual_seed(0)
    start = VGGClassifier(VGGConfig(width=1 / 16, dropout=0.0, init="random")).double()
    assert (
        float((start.features[0].weight.detach() - single["model.features.0.weight"]).abs().max()) > 1e-3
    )  # it did train


def test_the_torchrun_launcher_is_notebook_01s_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert classifier_training.NOTEBOOK == "01_classifier_training"
    with pytest.raises(SystemExit) as done:
        classifier_training.main(["--help"])
    assert done.value.code == 0 and "--run-dir" in capsys.readouterr().out
    with pytest.raises(SystemExit) as missing:
        classifier_training.main([])  # --run-dir is required
    assert missing.value.code == 2
