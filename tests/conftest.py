"""Shared fixtures. Tests run on the CPU with one thread per process so that the suite's figures are stable."""

from __future__ import annotations

import os
import urllib.error

import pytest

os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("MEDADV_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test downloads anything: torch's download (behind torchvision's pretrained weights) fails as it does on a
    machine without a network."""
    import torch.hub

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"the tests never download ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
