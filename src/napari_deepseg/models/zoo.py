"""Registration of the built-in architectures (imported lazily by the registry)."""

from __future__ import annotations

from torch import nn

from .registry import register_model
from .unet import UNet


@register_model("unet", "Ronneberger U-Net: 4-stage encoder/decoder with skip connections")
def unet(
    *,
    in_channels: int = 1,
    num_classes: int = 2,
    base: int = 64,
    depth: int = 4,
    padding: str = "same",
) -> nn.Module:
    """U-Net; see :class:`napari_deepseg.models.unet.UNet`."""
    return UNet(in_channels, num_classes, base=base, depth=depth, padding=padding)
