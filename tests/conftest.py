"""Shared fixtures: tiny models and synthetic images keep the suite fast on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

from napari_deepseg.models import ModelMeta, build_model
from napari_deepseg.samples import synthetic_nuclei

from ._display import missing_display


def pytest_configure(config):
    """Stop at once, with one line, where napari's GUI tests cannot start (see tests/_display.py)."""
    message = missing_display()
    if message:
        pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu`` tests where no CUDA or MPS device is present."""
    has_gpu = torch.cuda.is_available() or (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    )
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="no CUDA or MPS device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def user_models(tmp_path_factory, monkeypatch):
    """A private, empty user models folder (``DEEPSEG_MODELS_DIR``) per test."""
    folder = tmp_path_factory.mktemp("user_models")
    monkeypatch.setenv("DEEPSEG_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def tiny_unet():
    """A 3-class instance-boundary U-Net of base width 4 (random weights, eval mode)."""
    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="tiny", task="instance-boundary").complete(3)
    return model.eval()


@pytest.fixture
def nuclei_image():
    """A (128, 128) uint16 synthetic nuclei image and its uint16 instance labels."""
    return synthetic_nuclei((128, 128), seed=3)
