"""Small building blocks shared by the architectures (torchvision-style nn.Sequential heads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class SeparableConv2d(nn.Sequential):
    """Depthwise ``kernel_size`` conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU.

    As in DeepLabv3+ / aligned Xception (BN and ReLU after the depthwise conv too). For a C_in
    -> C_out layer with a k x k kernel this costs ``C_in * k * k + C_in * C_out`` multiplications
    per output pixel instead of ``C_in * k * k * C_out``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1
    ) -> None:
        pad = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, in_ch, kernel_size, stride, pad, dilation, groups=in_ch, bias=False),
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad an (N, C, H, W) tensor on all sides so H and W are multiples of ``multiple``.

    Reflect padding where the tensor is large enough, replicate otherwise; crop the result back
    with :func:`center_crop` (the padding is split evenly, the extra pixel at the bottom/right).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)


def bilinear_kernel_(weight: torch.Tensor) -> torch.Tensor:
    """Fill a (C, C, k, k) transposed-conv weight with per-channel bilinear upsampling (in place)."""
    if weight.device.type == "meta":
        return weight
    k = weight.shape[-1]
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=weight.dtype, device=weight.device)
    filt1d = 1 - (og - center).abs() / factor
    with torch.no_grad():
        weight.zero_()
        for c in range(min(weight.shape[0], weight.shape[1])):
            weight[c, c] = filt1d[:, None] * filt1d[None, :]
    return weight
