"""The MAC counter: the seed's arithmetic, torchvision's published figures, the model table."""

from __future__ import annotations

import torch
from torch import nn

from napari_deepseg.cli import main
from napari_deepseg.models import build_model, count_macs, list_models, model_macs


def test_seed_arithmetic_normal_versus_depthwise_separable():
    x = torch.zeros(1, 3, 12, 12)
    normal = nn.Conv2d(3, 256, 5, bias=False)
    separable = nn.Sequential(nn.Conv2d(3, 3, 5, groups=3, bias=False), nn.Conv2d(3, 256, 1, bias=False))
    assert count_macs(normal, x) == 8 * 8 * 256 * 5 * 5 * 3 == 1_228_800
    assert count_macs(separable, x) == 8 * 8 * 3 * 25 + 8 * 8 * 3 * 256 == 53_952


def test_transposed_conv_and_linear():
    up = nn.ConvTranspose2d(4, 2, 2, stride=2)
    assert count_macs(up, torch.zeros(1, 4, 5, 5)) == 25 * 4 * 2 * 4
    assert count_macs(nn.Linear(10, 7), torch.zeros(3, 10)) == 3 * 70


def test_meta_device_count_equals_real_count():
    params, macs = model_macs("unet", size=48, in_channels=1, num_classes=3, base=4, depth=2)
    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    assert macs == count_macs(model.eval(), torch.zeros(1, 1, 48, 48))
    assert params == sum(p.numel() for p in model.parameters())


def test_torchvision_published_deeplabv3_resnet50_figures():
    """torchvision: 178.722 GFLOPS (MACs) and 42,004,074 parameters at 520x520 with its aux head."""
    params, macs = model_macs("deeplabv3", size=520, aux=True)
    assert params == 42_004_074
    assert abs(macs / 1e9 - 178.722) / 178.722 < 0.01


def test_list_models_and_cli_table(capsys):
    rows = {r["name"]: r for r in list_models()}
    assert {
        "unet",
        "fcn8s",
        "fcn16s",
        "fcn32s",
        "fcn_resnet50",
        "fcn_resnet101",
        "deeplabv3",
        "deeplabv3plus",
    } <= set(rows)
    assert rows["deeplabv3"]["pretrained"] == ["coco", "imagenet"]
    assert rows["unet"]["pretrained"] == []
    assert 150 < rows["deeplabv3"]["gmac"] < 170  # 512x512, 3 channels, 21 classes
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for text in ("GMAC@512", "deeplabv3plus", "deeplabv3_resnet101_coco"):
        assert text in out
