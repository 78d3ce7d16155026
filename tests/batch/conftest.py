"""Batch fixtures: a tiny model file, a folder of small synthetic images, a fake engine."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_deepseg.models import save_model
from napari_deepseg.samples import synthetic_nuclei

from . import fakes


@pytest.fixture
def model_file(tmp_path, tiny_unet):
    """The 3-class instance-boundary tiny U-Net saved as a model file."""
    return save_model(tmp_path / "models" / "tiny.pt", tiny_unet)


@pytest.fixture
def image_dir(tmp_path):
    """``images/`` with three 64x64 uint16 synthetic nuclei TIFFs a.tif, b.tif, c.tif."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, name in enumerate("abc"):
        image, _ = synthetic_nuclei((64, 64), seed=i)
        tifffile.imwrite(folder / f"{name}.tif", image)
    return folder


@pytest.fixture
def fake():
    """The fake engine with its call log cleared."""
    fakes.CALLS.clear()
    return fakes.fake_segment_iter


def expected_classes(image: np.ndarray) -> np.ndarray:
    return (np.asarray(image) > 100).astype(np.uint8)
