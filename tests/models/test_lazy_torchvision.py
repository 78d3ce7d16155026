"""torchvision (and the torch._dynamo / sympy it imports) is loaded only for the architectures
that use it: a plain U-Net, as the bundled models are, is built, loaded and run without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.models import build_model
from napari_deepseg.models.pretrained import (
    COCO,
    IMAGENET,
    VOC_CLASSES,
    checkpoint_path,
    coco_checkpoint_path,
    weights_for,
)


def _modules_after(code: str) -> set[str]:
    """Top-level module names loaded by ``code`` in a fresh interpreter."""
    script = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_bundled_model_loads_and_runs_without_torchvision():
    loaded = _modules_after(
        "import numpy as np\n"
        "from napari_deepseg import models\n"
        "from napari_deepseg.inference import segment\n"
        "model = models.load_model('nuclei')\n"
        'segment(np.random.default_rng(0).random((64, 64), dtype=np.float32), model, object_diameter="off")'
    )
    assert "napari_deepseg" in loaded
    assert "torchvision" not in loaded
    assert "sympy" not in loaded


def test_an_architecture_that_needs_torchvision_still_builds():
    loaded = _modules_after(
        "from napari_deepseg.models import build_model\n"
        "build_model('deeplabv3plus', in_channels=1, num_classes=2, backbone='resnet18', width=0.25)"
    )
    assert "torchvision" in loaded
    model = build_model("unet", in_channels=1, num_classes=2, base=4, depth=2, encoder="resnet18")
    assert type(model.encoder.backbone).__name__ == "ResNet"


def test_weight_tables_name_torchvision_weights():
    tv = pytest.importorskip("torchvision.models")
    for backbone in IMAGENET:
        assert weights_for("imagenet", "unet", backbone).url.endswith(".pth")
    for arch, backbone in COCO:
        weights = weights_for("coco", arch, backbone)
        assert ["background", *weights.meta["categories"][1:]] == VOC_CLASSES
        assert coco_checkpoint_path(arch, backbone) == checkpoint_path(weights)
    assert isinstance(weights_for("imagenet", "fcn8s", "vgg16"), tv.VGG16_Weights)


def test_a_widget_session_lists_the_models_without_torchvision():
    """The model list (ready models: are their weights cached?) is what every widget shows."""
    loaded = _modules_after("from napari_deepseg.models import model_catalog\nmodel_catalog()")
    assert "torchvision" not in loaded


def test_unknown_coco_weights_name_the_ones_there_are():
    with pytest.raises(DeepsegError, match="deeplabv3/resnet101"):
        coco_checkpoint_path("deeplabv3", "vgg16")
