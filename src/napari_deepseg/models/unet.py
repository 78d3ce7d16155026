"""Ronneberger's U-Net (2015) with batch norm, as encoder / decoder / head parts.

Shapes: input (N, C_in, H, W) -> logits (N, K, H', W'), where H' = H and W' = W for
``padding="same"`` and H' = H - 2 * output_margin for ``padding="valid"`` (the original design:
unpadded convolutions, skip features centre-cropped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DoubleConv, center_crop


class UNetEncoder(nn.Module):
    """Contracting path: ``depth`` stages of DoubleConv then 2x2 max-pool, widths doubling.

    ``forward`` returns the skip features of every stage (finest first) and the bottleneck output.
    """

    def __init__(self, in_channels: int, base: int, depth: int, padding: int) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth)]
        self.stages = nn.ModuleList()
        ch = in_channels
        for w in widths:
            self.stages.append(DoubleConv(ch, w, padding))
            ch = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(ch, ch * 2, padding)
        self.skip_channels = widths
        self.out_channels = ch * 2

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        return skips, self.bottleneck(x)


class UNetDecoder(nn.Module):
    """Expanding path: per stage a 2x2 transposed conv, concatenation with the skip, DoubleConv."""

    def __init__(self, in_channels: int, skip_channels: list[int], padding: int) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        ch = in_channels
        for skip_ch in reversed(skip_channels):
            self.ups.append(nn.ConvTranspose2d(ch, skip_ch, 2, stride=2))
            self.convs.append(DoubleConv(2 * skip_ch, skip_ch, padding))
            ch = skip_ch
        self.out_channels = ch

    def forward(self, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips)):
            x = up(x)
            skip = center_crop(skip, x.shape[-2], x.shape[-1])
            x = conv(torch.cat([skip, x], dim=1))
        return x


class SegmentationHead(nn.Sequential):
    """1x1 convolution from decoder features to per-class logits."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(nn.Conv2d(in_channels, num_classes, 1))


class UNet(nn.Module):
    """U-Net: encoder, decoder and a 1x1 head.

    Args:
        in_channels: input channels C_in.
        num_classes: output classes K.
        base: width of the first stage (64 in the paper); stage i has ``base * 2**i`` features.
        depth: number of pooling stages (4 in the paper).
        padding: ``"same"`` pads inputs to a multiple of ``2**depth`` inside and crops the
            logits back, so output size = input size; ``"valid"`` uses unpadded convolutions and
            returns logits smaller by ``output_margin`` pixels on every side.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base: int = 64,
        depth: int = 4,
        padding: str = "same",
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
        if depth < 1 or base < 1:
            raise ValueError("U-Net depth and base width must be positive")
        pad = 1 if padding == "same" else 0
        self.padding, self.depth = padding, depth
        self.encoder = UNetEncoder(in_channels, base, depth, pad)
        self.decoder = UNetDecoder(self.encoder.out_channels, self.encoder.skip_channels, pad)
        self.head = SegmentationHead(self.decoder.out_channels, num_classes)
        self.size_multiple = 2**depth
        self.output_margin = 0 if padding == "same" else self._valid_margin()

    def _valid_margin(self) -> int:
        n = self.valid_input_size(4 * self.size_multiple)
        return (n - self._valid_output_size(n)) // 2

    def _valid_output_size(self, n: int) -> int:
        for _ in range(self.depth):
            n -= 4
            if n <= 0 or n % 2:
                return -1
            n //= 2
        n -= 4
        if n <= 0:
            return -1
        for _ in range(self.depth):
            n = 2 * n - 4
        return n

    def valid_input_size(self, n: int) -> int:
        """Smallest input size >= n that a ``valid`` U-Net maps without rounding (n for "same")."""
        if self.padding == "same":
            return n
        while self._valid_output_size(n) <= 0:
            n += 1
        return n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.padding == "same":
            m = self.size_multiple
            ph, pw = (-h) % m, (-w) % m
            if ph or pw:
                mode = "reflect" if ph < h and pw < w else "replicate"
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
        elif self._valid_output_size(h) <= 0 or self._valid_output_size(w) <= 0:
            raise ValueError(f"valid U-Net cannot take {h}x{w}: use sizes from model.valid_input_size()")
        skips, x = self.encoder(x)
        x = self.head(self.decoder(skips, x))
        if self.padding == "same":
            x = center_crop(x, h, w)
        return x
