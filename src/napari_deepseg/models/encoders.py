"""The encoder (backbone) names: one list that the builders, the weight tables and the error
messages all use (no torch or torchvision import, so any module may ask it)."""

from __future__ import annotations

#: ResNet depths the backbones build, in order
RESNET_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101")
#: U-Net's optional ResNet encoders (resnet101's deep features add little at U-Net's scales)
UNET_ENCODERS = RESNET_NAMES[:3]
#: FCN and DeepLabv3+ backbones
BACKBONES = (*RESNET_NAMES, "vgg16", "xception")
#: DeepLabv3 (torchvision layout) backbones
DEEPLAB_BACKBONES = (*RESNET_NAMES, "mobilenet_v3_large")


def choices(names: tuple[str, ...]) -> str:
    """``"a, b or c"`` for an error message."""
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
