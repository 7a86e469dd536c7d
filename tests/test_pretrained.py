"""The kit's pretrained Vnet: the shipped weights and their model cards, the corpus's seeds, the pretraining command."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from medadv.config import PRETRAIN_SEEDS, PROFILE_NAMES, load_profile
from medadv.core import sha256_file
from medadv.errors import ConfigError
from medadv.models.checkpoint import checkpoint_paths, load_checkpoint, split_prefix
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.inference import positive_scores
from medadv.models.pretrained import WEIGHTS_DIR, kit_card, kit_stem, load_kit_vnet, shipped_widths
from medadv.stats.auc import roc_auc
from medadv.sweep import parse_seeds
from medadv.train.pretrain import (
    PORTABLE_ENV,
    SHIPPED,
    PretextNet,
    PretrainConfig,
    corpus_set,
    pretrain,
    write_pretrained,
)
from medadv.train.pretrain import main as pretrain_main

CARD_FIELDS = {"corpus", "pretext_task", "training", "validation", "check", "code_version", "sha256", "intended_use"}


def test_every_profile_width_has_shipped_weights() -> None:
    assert shipped_widths() == sorted(SHIPPED)
    for name in PROFILE_NAMES:
        section = load_profile(name).section("classifier")
        if section.get("init") == "kit":
            assert section["width"] in shipped_widths(), name


@pytest.mark.parametrize("width", sorted(SHIPPED))
def test_shipped_weights_match_their_card_and_load_into_vnet(width: float) -> None:
    card = kit_card(width)
    weights, _ = checkpoint_paths(kit_stem(width))
    assert CARD_FIELDS <= set(card)
    assert card["sha256"] == sha256_file(weights)
    assert weights.stat().st_size < 5 * 2**20  # a few MB at most
    assert set(card["corpus"]["sets"]["train"]["seeds"]) <= set(PRETRAIN_SEEDS)
    model = VGGClassifier(VGGConfig(width=width, init="kit"))
    assert model.pretrained
    tensors, _ = load_checkpoint(kit_stem(width))
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, tensors[f"features.{key}"])


@pytest.mark.parametrize("width", sorted(SHIPPED))
def test_shipped_weights_give_their_cards_check_auc_and_random_weights_do_not(width: float) -> None:
    config = SHIPPED[width]
    card = kit_card(width)
    check = corpus_set(config, "check")
    net = PretextNet(width)
    tensors, _ = load_checkpoint(kit_stem(width))
    net.features.load_state_dict(split_prefix(tensors, "features"))
    net.pretext.load_state_dict(split_prefix(tensors, "pretext"))
    auc = roc_auc(check.labels, positive_scores(net, check.images))
    assert auc == pytest.approx(card["check"]["presence_auc"], abs=0.01)
    torch.manual_seed(0)
    untrained = roc_auc(check.labels, positive_scores(PretextNet(width), check.images))
    assert untrained < card["check"]["presence_auc"] - 0.2


def test_a_damaged_or_missing_weights_file_is_refused(tmp_path: Path) -> None:
    width = min(SHIPPED)
    for path in checkpoint_paths(kit_stem(width)):
        shutil.copy(path, tmp_path / path.name)
    weights, _ = checkpoint_paths(kit_stem(width, tmp_path))
    assert load_kit_vnet(width, tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"sha256 .* differs from its model card's .*medadv pretrain --width 0.0625"):
        load_kit_vnet(width, tmp_path)
    weights.unlink()
    with pytest.raises(ConfigError, match="ships no pretrained Vnet of width 0.0625"):
        load_kit_vnet(width, tmp_path)


def test_no_pretraining_seed_is_a_study_seed() -> None:
    corpus = {
        s for config in SHIPPED.values() for which in ("train", "validation", "check") for s in config.seeds(which)
    }
    assert corpus <= set(PRETRAIN_SEEDS)
    for name in PROFILE_NAMES:
        assert load_profile(name).seed not in PRETRAIN_SEEDS
    assert not set(parse_seeds("1000")) & set(PRETRAIN_SEEDS)
    reserved = PRETRAIN_SEEDS[0]
    with pytest.raises(ConfigError, match="reserved for the kit's pretraining corpus"):
        load_profile("smoke", {"seed": reserved})
    with pytest.raises(ConfigError, match="reserved for the kit's pretraining corpus"):
        parse_seeds(f"3,{reserved}")


def test_pretraining_is_deterministic_and_writes_weights_card_and_markdown(tmp_path: Path) -> None:
    config = PretrainConfig(
        width=0.0625, image_size=96, patients=12, val_patients=10, check_patients=10, epochs=2, batch_size=16
    )
    digests, threads = [], torch.get_num_threads()
    for k in range(2):
        torch.manual_seed(100 + k)  # the global generator must not matter
        done = pretrain(config)
        weights = write_pretrained(done, config, tmp_path / str(k))
        digests.append(sha256_file(weights))
    assert digests[0] == digests[1]
    folder = tmp_path / "0"
    card = kit_card(0.0625, folder)
    assert card["sha256"] == digests[0] and card["training"]["best_epoch"] in (1, 2)
    assert card["validation"]["presence_auc"] == pytest.approx(done.val_auc, abs=1e-6)
    assert (folder / "vnet_w0.0625.md").read_text().startswith("# Model card: vnet_w0.0625")
    # what decides bit-identity, in the card and its Markdown (called in-process: not the pinned environment)
    capability = torch.backends.cpu.get_cpu_capability()
    numbers = card["training"]["numerics"]
    assert numbers["aten_cpu_capability"] == capability and numbers["onednn"] is False and numbers["threads"] == 2
    assert numbers["pinned"] is False and card["command"] == "medadv pretrain --width 0.0625 --epochs 2 --patients 12"
    assert f"torch's {capability} kernels" in (folder / "vnet_w0.0625.md").read_text()
    assert torch.backends.mkldnn.enabled and torch.get_num_threads() == threads  # both put back
    assert set(load_kit_vnet(0.0625, folder)) == set(VGGClassifier(VGGConfig(width=0.0625)).features.state_dict())
    assert dataclasses.replace(config, epochs=3) != config


def test_medadv_pretrain_writes_the_same_bits_whatever_kernels_the_host_would_pick(tmp_path: Path) -> None:
    """The command trains in the pinned numerical environment (oneDNN off, MKL's COMPATIBLE branch, ATen's AVX2
    kernels, 2 threads). Started with those variables set otherwise (ATen's plain kernels, MKL's automatic branch,
    and oneDNN capped at AVX2 besides), it runs itself again pinned and writes the same file as a start that is
    pinned already; the card says how the file was made and by which command. (That pinning makes the file
    independent of the CPU is what the environment is for; one machine cannot show it.)"""
    quick = ["pretrain", "--width", "0.125", "--epochs", "1", "--patients", "10"]
    pinned = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"} | PORTABLE_ENV
    steered = pinned | {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AUTO", "MKL_DYNAMIC": "TRUE"}
    steered |= {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    digests = []
    for name, env in (("pinned", pinned), ("steered", steered)):
        out = tmp_path / name
        done = subprocess.run(
            [sys.executable, "-m", "medadv", *quick, "--out", str(out)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr  # a quick look is not compared with the shipped file, and says so
        assert ("running in the pinned numerical environment" in done.stderr) == (name == "steered")
        assert "a quick look (--epochs 1, --patients 10): not compared with the shipped file" in done.stderr
        card = kit_card(0.125, out)
        assert card["training"]["numerics"] == {
            "aten_cpu_capability": "AVX2",
            "mkl_cbwr": "COMPATIBLE",
            "onednn": False,
            "threads": 2,
            "pinned": True,
        }
        assert "MKL_CBWR COMPATIBLE, oneDNN off (pinned)" in (out / "vnet_w0.125.md").read_text()
        assert card["command"] == "medadv pretrain --width 0.125 --epochs 1 --patients 10"
        digests.append(sha256_file(out / "vnet_w0.125.safetensors"))
    assert digests[0] == digests[1]


def test_medadv_pretrain_refuses_bad_options_and_never_writes_over_a_vnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each refusal comes from the option parser, before any training (in-process: no torch start-up per case)."""
    quick = ["--width", "0.125", "--epochs", "1", "--patients", "10"]
    (tmp_path / "a_file").touch()
    made = tmp_path / "made"
    made.mkdir()
    (made / "vnet_w0.125.safetensors").write_bytes(b"")  # a folder an earlier run wrote
    before = sha256_file(WEIGHTS_DIR / "vnet_w0.125.safetensors")
    for argv, said in (
        ([*quick[:-1], "4"], "--patients 4: expected a whole number of at least 10"),
        # the package's own weights folder is one that holds a Vnet of that width: never written over
        ([*quick, "--out", str(WEIGHTS_DIR)], "holds vnet_w0.125.safetensors, vnet_w0.125.json already"),
        ([*quick, "--out", str(made)], "holds vnet_w0.125.safetensors already, which this run would replace"),
        ([*quick, "--out", str(tmp_path / "a_file")], "a_file: is a file; give a folder"),
    ):
        with pytest.raises(SystemExit) as stop:
            pretrain_main(argv)
        assert stop.value.code == 2 and said in capsys.readouterr().err
    assert sha256_file(WEIGHTS_DIR / "vnet_w0.125.safetensors") == before
