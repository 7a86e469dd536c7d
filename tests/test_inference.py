"""The one batched-inference helper: eval mode during the pass, every training flag restored after it (also on an
error), no gradients, the model's dtype and device, and the two readings of a classifier's logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medadv.errors import DataError
from medadv.models.inference import batched_outputs, eval_mode, positive_scores, predicted_labels
from torch import nn


class _DropoutNet(nn.Module):
    """Two logits from the mean pixel, through a dropout that only eval mode switches off (p = 0.9 in training)."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.9)
        self.head = nn.Linear(1, 2)
        self.calls: list[int] = []
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-4.0], [4.0]]))
            self.head.bias.copy_(torch.tensor([2.0, -2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        return self.head(self.drop(x).mean(dim=(1, 2, 3)).unsqueeze(1))


def _images() -> np.ndarray:
    return np.stack([np.full((1, 3, 3), v, np.float32) for v in (0.1, 0.4, 0.6, 0.9, 0.2)])


def _eval_logits(net: nn.Module, x: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return net.head(torch.from_numpy(x).mean(dim=(1, 2, 3)).unsqueeze(1))


def test_scores_are_eval_mode_softmax_and_training_flags_come_back() -> None:
    torch.manual_seed(0)
    net = _DropoutNet().train()
    net.head.eval()  # a submodule in another mode than its parent keeps its own flag
    x = _images()
    scores = positive_scores(net, x, torch.device("cpu"), batch_size=2)
    expected = torch.softmax(_eval_logits(net, x), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert scores.dtype == np.float64 and scores.shape == (5,)
    assert net.calls == [2, 2, 1]  # in batches of two
    assert net.training and net.drop.training and not net.head.training


def test_labels_are_the_eval_mode_argmax() -> None:
    torch.manual_seed(0)
    net = _DropoutNet().train()  # in training mode the dropout would flip some of these labels
    x = torch.from_numpy(_images())
    labels = predicted_labels(net, x, batch_size=3)
    assert labels.tolist() == [0, 0, 1, 1, 0] and labels.dtype == torch.int64
    assert torch.equal(labels, _eval_logits(net, x.numpy()).argmax(dim=1)) and net.training


def test_outputs_follow_the_model_dtype_and_carry_no_gradient() -> None:
    net = _DropoutNet().double()
    out = batched_outputs(net, _images(), batch_size=4, head=lambda z: z * 2)
    assert out.dtype == torch.float64 and not out.requires_grad
    torch.testing.assert_close(out, 2 * _eval_logits(net, _images().astype(np.float64)))


def test_eval_mode_restores_the_flags_on_an_error() -> None:
    net = _DropoutNet().train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(net):
        assert not net.training and not net.drop.training
        raise RuntimeError("boom")
    assert net.training and net.drop.training


def test_no_images_or_no_batch_is_refused() -> None:
    with pytest.raises(DataError, match="no images"):
        batched_outputs(_DropoutNet(), np.zeros((0, 1, 3, 3), np.float32), batch_size=4)
    with pytest.raises(DataError, match="batch_size is 0"):
        positive_scores(_DropoutNet(), _images(), batch_size=0)
