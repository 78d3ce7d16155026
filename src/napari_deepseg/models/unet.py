"""Ronneberger's U-Net (2015) with batch norm, as encoder / decoder / head parts.

Shapes: input (N, C_in, H, W) -> logits (N, K, H', W'), where H' = H and W' = W for
``padding="same"`` and H' = H - 2 * output_margin for ``padding="valid"`` (the original design:
unpadded convolutions, skip features centre-cropped). ``encoder="resnet18|resnet34|resnet50"``
replaces the contracting path by a torchvision ResNet (skips at strides 2, 4, 8, 16; bottleneck
at 32), with a last transposed conv + DoubleConv back to full resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from ..errors import DeepsegError
from .blocks import DoubleConv, center_crop, pad_to_multiple
from .contract import SegmentationNet
from .encoders import UNET_ENCODERS

MAX_DEPTH = 10  # inputs in multiples of 1024 pixels; deeper nets fit no microscopy tile


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


class ResNetUNetEncoder(nn.Module):
    """A ResNet as contracting path: skips = stem, layer1..layer3 (strides 2..16); bottleneck = layer4."""

    def __init__(self, name: str, in_channels: int, base: int = 64) -> None:
        super().__init__()
        from .backbones import ResNet  # imports torchvision: only U-Nets with a ResNet encoder need it

        self.backbone = ResNet(name, in_channels, base=base)
        self.skip_channels = self.backbone.channels[:4]
        self.out_channels = self.backbone.channels[4]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.backbone(x)
        return feats[:4], feats[4]


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


class UNet(SegmentationNet, nn.Module):
    """U-Net: encoder, decoder and a 1x1 head.

    Args:
        in_channels: input channels C_in.
        num_classes: output classes K.
        base: width of the first stage (64 in the paper); stage i has ``base * 2**i`` features.
        depth: number of pooling stages (4 in the paper).
        padding: ``"same"`` pads inputs to a multiple of ``2**depth`` inside and crops the
            logits back, so output size = input size; ``"valid"`` uses unpadded convolutions and
            returns logits smaller by ``output_margin`` pixels on every side.
        encoder: ``None`` (the paper's contracting path) or ``resnet18``/``resnet34``/``resnet50``
            (``base`` is then the ResNet stem width, 64 for the published network; depth is 5).
        extra_outputs: maps the head gives after the K class logits (1 for a model with a
            distance output: logits (N, K + 1, H, W), the last one a distance logit).
    """

    classifier_names = ("head.0",)

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base: int = 64,
        depth: int = 4,
        padding: str = "same",
        encoder: str | None = None,
        extra_outputs: int = 0,
    ) -> None:
        super().__init__()
        self.extra_outputs = _checks.integer(extra_outputs, "extra_outputs", minimum=0)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
        base, depth = _checks.integer(base, "base", minimum=1), _checks.integer(depth, "depth", minimum=1)
        if depth > MAX_DEPTH:
            raise DeepsegError(
                f"depth={depth}: a U-Net of depth {depth} takes only inputs that are multiples of 2^{depth} "
                f"pixels; use depth=1..{MAX_DEPTH} (4 is usual)"
            )
        pad = 1 if padding == "same" else 0
        self.padding, self.depth, self.in_channels = padding, depth, in_channels
        self.final: nn.Module = nn.Identity()
        if encoder is None:
            self.encoder: nn.Module = UNetEncoder(in_channels, base, depth, pad)
        elif encoder in UNET_ENCODERS:
            if padding != "same":
                raise ValueError("a U-Net with a ResNet encoder supports only padding='same'")
            self.encoder, self.depth = ResNetUNetEncoder(encoder, in_channels, base), 5
        else:
            raise ValueError(f"unknown U-Net encoder {encoder!r}; choose one of: {', '.join(UNET_ENCODERS)}")
        self.decoder = UNetDecoder(self.encoder.out_channels, self.encoder.skip_channels, pad)
        out_ch = self.decoder.out_channels
        if encoder is not None:
            half = max(out_ch // 2, 1)
            self.final = nn.Sequential(nn.ConvTranspose2d(out_ch, half, 2, stride=2), DoubleConv(half, half))
            out_ch = half
        self.head = SegmentationHead(out_ch, num_classes + self.extra_outputs)
        self.size_multiple = 2**self.depth
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
            x = pad_to_multiple(x, self.size_multiple)
        elif self._valid_output_size(h) <= 0 or self._valid_output_size(w) <= 0:
            raise ValueError(f"valid U-Net cannot take {h}x{w}: use sizes from model.valid_input_size()")
        skips, x = self.encoder(x)
        x = self.head(self.final(self.decoder(skips, x)))
        if self.padding == "same":
            x = center_crop(x, h, w)
        return x
