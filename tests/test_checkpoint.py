"""Checkpoints: safetensors + JSON sidecar round trip, optimizer state, and refusal of pickled files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from medadv.errors import CheckpointError
from medadv.models.checkpoint import (
    checkpoint_paths,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)
from medadv.models.registry import load_trained


def test_round_trip(tmp_path: Path) -> None:
    tensors = {"model.w": torch.arange(6.0).view(2, 3), "model.b": torch.tensor([1, 2], dtype=torch.int64)}
    weights, sidecar = save_checkpoint(tmp_path / "ck", tensors, {"role": "trained_model", "metrics": {"auc": 0.9}})
    assert (weights.name, sidecar.name) == ("ck.safetensors", "ck.json")
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded["model.w"], tensors["model.w"]) and torch.equal(loaded["model.b"], tensors["model.b"])
    assert meta["metrics"] == {"auc": 0.9} and meta["format_version"] == 1
    assert checkpoint_paths(tmp_path / "ck.safetensors") == (weights, sidecar)
    # the weights get the mode of the run folder's other files (safetensors alone writes 0600)
    assert weights.stat().st_mode & 0o777 == sidecar.stat().st_mode & 0o777
    old = os.umask(0o027)
    try:
        assert save_checkpoint(tmp_path / "group", tensors, {})[0].stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    flat, extra = optimizer_to_flat(opt)
    save_checkpoint(tmp_path / "state", flat, {"optimizer": extra})
    tensors, meta = load_checkpoint(tmp_path / "state")
    opt2 = torch.optim.Adam(net.parameters(), lr=5.0)
    optimizer_from_flat(opt2, tensors, meta["optimizer"])
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx in a["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(a["state"][idx][key]), torch.as_tensor(b["state"][idx][key]))


class _Payload:
    """Unpickling this object would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (str(self.marker),))


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "vgg_erm.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    (ckpt / "vgg_erm.json").write_text(
        json.dumps({"format_version": 1, "role": "trained_model", "model": {"kind": "vgg"}})
    )
    with pytest.raises(CheckpointError, match="not a safetensors file.*pickled"):
        load_checkpoint(ckpt / "vgg_erm")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_trained(ckpt, "vgg_erm")
    torch.save({"w": torch.zeros(2)}, ckpt / "vgg_erm.safetensors")  # a torch .pt file (zip of pickles) renamed
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(ckpt / "vgg_erm")
    assert not marker.exists()


def test_missing_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "ck", {"a": torch.zeros(1)}, {})
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck.json").write_text(json.dumps({"format_version": 1}))
    data = (tmp_path / "ck.safetensors").read_bytes()
    (tmp_path / "ck.safetensors").write_bytes(data[:-2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")
