"""Small building blocks shared by the architectures (torchvision-style nn.Sequential heads)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """3x3 (or ``kernel_size``) convolution, batch norm, ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1, dilation: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + BN + ReLU, as in each U-Net stage. ``padding`` is 1 ("same") or 0 ("valid")."""

    def __init__(self, in_ch: int, out_ch: int, padding: int = 1) -> None:
        super().__init__(ConvBNReLU(in_ch, out_ch, 3, padding), ConvBNReLU(out_ch, out_ch, 3, padding))


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the spatial centre of an (N, C, H, W) tensor to (height, width)."""
    dh, dw = x.shape[-2] - height, x.shape[-1] - width
    top, left = dh // 2, dw // 2
    return x[..., top : top + height, left : left + width]
