"""Pretrained weights through the torch hub cache, tested with random-tensor files of the right
shapes in a temporary TORCH_HOME (never downloaded: the fixture makes downloads raise)."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18, resnet101
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, deeplabv3_resnet101

from napari_deepseg.errors import DeepsegError, ModelFileError
from napari_deepseg.models import build_model, load_model, save_model
from napari_deepseg.models.pretrained import (
    VOC_CLASSES,
    adapt_input_conv,
    checkpoint_path,
    weights_for,
)

from ._helpers import random_checkpoint

MOBILENET_COCO = weights_for("coco", "deeplabv3", "mobilenet_v3_large")


def _tv_mobilenet():
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=True)


def test_imagenet_backbone_into_gray_unet_encoder(torch_home):
    path = checkpoint_path(weights_for("imagenet", "unet", "resnet18"))
    assert path.parent == torch_home.checkpoints
    state = random_checkpoint(lambda: resnet18(weights=None), path)
    model = build_model("unet", in_channels=1, num_classes=3, encoder="resnet18", pretrained="imagenet")
    enc = model.encoder.backbone
    assert torch.allclose(enc.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(enc.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert "pretrained" not in model.deepseg_arch.options
    assert torch_home.calls == []


def test_coco_weights_reproduce_torchvision(torch_home):
    state = random_checkpoint(_tv_mobilenet, checkpoint_path(MOBILENET_COCO))
    ours = build_model(
        "deeplabv3", in_channels=3, num_classes=21, backbone="mobilenet_v3_large", pretrained="coco"
    )
    reference = _tv_mobilenet()
    reference.load_state_dict(state)
    x = torch.rand(1, 3, 72, 56)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), reference.eval()(x)["out"], atol=1e-5)
    # other class counts keep everything but the final 1x1 classifier
    three = build_model("deeplabv3", num_classes=3, backbone="mobilenet_v3_large", pretrained="coco")
    assert torch.equal(three.classifier[1].weight, state["classifier.1.weight"])
    assert three.classifier[4].weight.shape[0] == 3


def test_ready_model_has_voc_classes_and_round_trips(torch_home, tmp_path):
    random_checkpoint(_tv_mobilenet, checkpoint_path(MOBILENET_COCO))
    model = load_model("deeplabv3_mobilenet_v3_large_coco")
    meta = model.deepseg_meta
    assert meta.class_names == VOC_CLASSES
    assert len(meta.class_names) == 21
    assert meta.class_names[:2] == ["background", "aeroplane"]
    assert meta.normalization["method"] == "meanstd"
    assert meta.channel_mode == "rgb"
    loaded = load_model(save_model(tmp_path / "coco.pt", model))
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.deepseg_meta.class_names == VOC_CLASSES


def test_offline_error_names_the_file_to_place(torch_home):
    with pytest.raises(DeepsegError) as info:
        load_model("deeplabv3_resnet101_coco")
    message = str(info.value)
    assert "deeplabv3_resnet101_coco-586e9e4e.pth" in message
    assert str(torch_home.checkpoints) in message
    assert "--weights FILE" in message
    assert len(torch_home.calls) == 1  # tried the cache's download once, which failed


def test_deepseg_offline_never_tries_to_download(torch_home, monkeypatch):
    monkeypatch.setenv("DEEPSEG_OFFLINE", "1")
    with pytest.raises(DeepsegError, match=r"resnet34-b627a593\.pth"):
        build_model("fcn8s", backbone="resnet34", pretrained="imagenet")
    assert torch_home.calls == []


def test_corrupt_cached_weights_name_the_file(torch_home):
    path = checkpoint_path(weights_for("imagenet", "unet", "resnet18"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match=str(path)):
        build_model("deeplabv3plus", backbone="resnet18", pretrained="imagenet")


def test_weights_file_that_does_not_fit(torch_home, tmp_path):
    random_checkpoint(lambda: resnet18(weights=None), tmp_path / "r18.pth")
    with pytest.raises(ModelFileError, match="do not fit"):
        build_model(
            "fcn16s", backbone="resnet18", width=0.5, pretrained="imagenet", weights_file=tmp_path / "r18.pth"
        )


def test_no_such_pretrained_weights():
    with pytest.raises(DeepsegError, match="no 'imagenet' pretrained weights"):
        build_model("deeplabv3plus", backbone="xception", pretrained="imagenet")


def test_adapt_input_conv_channels():
    w = torch.rand(8, 3, 7, 7)
    assert torch.allclose(adapt_input_conv(w, 1), w.sum(1, keepdim=True))
    four = adapt_input_conv(w, 4)
    assert four.shape == (8, 4, 7, 7)
    assert torch.allclose(four[:, :3], w * 0.75)
    assert torch.allclose(four[:, 3], w[:, 0] * 0.75)


@pytest.mark.slow
def test_seed_demo_deeplabv3_resnet101_coco(torch_home):
    """The seed's demo model from a (random) weights file in the cache; ~60M parameters."""
    weights = weights_for("coco", "deeplabv3", "resnet101")
    state = random_checkpoint(lambda: deeplabv3_resnet101(weights=None, weights_backbone=None, aux_loss=True),
                              checkpoint_path(weights))  # fmt: skip
    model = load_model("deeplabv3_resnet101_coco")
    assert model.deepseg_meta.class_names == VOC_CLASSES
    assert torch.equal(model.backbone.layer3[22].conv3.weight, state["backbone.layer3.22.conv3.weight"])
    with torch.no_grad():
        assert model(torch.rand(1, 3, 33, 47)).shape == (1, 21, 33, 47)
    assert torch_home.calls == []


@pytest.mark.slow
def test_vgg16_fc_layers_become_convolutions(torch_home):
    from torchvision.models import vgg16

    path = checkpoint_path(weights_for("imagenet", "fcn8s", "vgg16"))
    state = random_checkpoint(lambda: vgg16(weights=None), path)
    model = build_model("fcn32s", pretrained="imagenet")
    assert torch.equal(model.fc[0].weight.flatten(1), state["classifier.0.weight"])
    assert torch.equal(model.encoder.features[28].weight, state["features.28.weight"])


def test_resnet_keys_match_torchvision():
    with torch.device("meta"):
        ours = build_model("deeplabv3", backbone="resnet101", in_channels=3, num_classes=21, aux=True)
        reference = deeplabv3_resnet101(weights=None, weights_backbone=None, aux_loss=True)
        backbone = build_model("fcn8s", backbone="resnet101", in_channels=3).encoder
        plain = resnet101(weights=None)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    assert {k: v.shape for k, v in backbone.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items() if not k.startswith("fc.")
    }


def test_predict_with_weights_file_offline(torch_home, tmp_path):
    """The offline fix the error names works: `deepseg predict --model NAME --weights FILE`."""
    import numpy as np
    import tifffile

    from napari_deepseg.cli import main

    weights = tmp_path / "downloaded_elsewhere.pth"
    random_checkpoint(_tv_mobilenet, weights)
    images = tmp_path / "images"
    images.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    tifffile.imwrite(images / "photo.tif", rgb)
    out = tmp_path / "out"
    args = ["predict", str(images), "-o", str(out), "--quiet", "--device", "cpu"]
    code = main([*args, "--model", "deeplabv3_mobilenet_v3_large_coco", "--weights", str(weights)])
    assert code == 0
    assert tifffile.imread(out / "photo_labels.tif").shape == (48, 40)
    assert load_model(out / "deeplabv3_mobilenet_v3_large_coco.pt").deepseg_meta.class_names == VOC_CLASSES
    assert torch_home.calls == []  # nothing was downloaded
    made = out / "deeplabv3_mobilenet_v3_large_coco.pt"
    stamp = made.stat().st_mtime_ns
    rerun = [*args, "--model", "deeplabv3_mobilenet_v3_large_coco", "--weights", str(weights)]
    assert main(rerun) == 0  # a rerun with the same weights uses the model file it made
    assert made.stat().st_mtime_ns == stamp
    other = tmp_path / "other.pth"
    random_checkpoint(_tv_mobilenet, other)
    assert main([*rerun[:-1], str(other)]) == 1  # other weights: the file is kept without --overwrite
    assert made.stat().st_mtime_ns == stamp
    assert main([*rerun[:-1], str(other), "--overwrite"]) == 0
    assert made.stat().st_mtime_ns != stamp
    assert main([*args, "--model", "nuclei", "--weights", str(weights)]) == 1
