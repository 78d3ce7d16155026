"""Shared fixtures: tiny models and synthetic images keep the suite fast on 2 CPU cores."""

from __future__ import annotations

import sys

import pytest
import tifffile
import torch

from napari_deepseg.models import ModelMeta, build_model, save_model
from napari_deepseg.samples import synthetic_nuclei

from ._display import missing_display

# The suite runs napari viewers (Mesa's OpenGL maps libLLVM) and training (a torch optimizer
# imports torch._dynamo, which imports triton and its own LLVM) in one process: whichever LLVM
# loads second crashes it. The GUI layer keeps triton out of napari (_napari.guard_triton); the
# tests do the same for the whole session, whatever order the folders run in.
sys.modules.setdefault("triton", None)


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


@pytest.fixture(autouse=True)
def recovery_dir(tmp_path_factory, monkeypatch):
    """A private recovery-copies folder (``DEEPSEG_RECOVERY_DIR``) per test: Correct's copies
    never reach the user cache."""
    folder = tmp_path_factory.mktemp("recovery")
    monkeypatch.setenv("DEEPSEG_RECOVERY_DIR", str(folder))
    return folder


#: test folders whose tiny models train or export: one intra-op thread is faster there (tiny
#: models are overhead-bound, and on a shared 2-core machine OpenMP's spinning threads make every
#: step several times slower)
ONE_THREAD_FOLDERS = ("training", "models", "sharing", "cli")


@pytest.fixture(autouse=True)
def _one_thread(request):
    if request.node.path.parent.name not in ONE_THREAD_FOLDERS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
