"""Model-zoo fixtures: a private torch hub cache and no network, ever."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.error import URLError

import pytest
import torch


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch) -> SimpleNamespace:
    """A temporary TORCH_HOME (``.path``, ``.checkpoints``); downloads raise and are recorded
    in ``.calls``."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("DEEPSEG_OFFLINE", raising=False)
    calls: list[str] = []

    def no_download(url, dst, *args, **kwargs):
        calls.append(url)
        raise URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return SimpleNamespace(path=home, checkpoints=home / "hub" / "checkpoints", calls=calls)
