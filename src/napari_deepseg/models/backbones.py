"""Encoders (backbones) shared by FCN, U-Net and DeepLab: ResNet, VGG16 and aligned Xception.

Every backbone maps (N, C_in, H, W) to a list of 5 feature maps at nominal strides
2, 4, 8, 16 and 32 (finest first; with dilation the last ones stay at the output stride) and
lists their channel counts in ``backbone.channels``. ResNet and VGG keep torchvision's module
names, so torchvision's ImageNet weights load into them unchanged (at ``width=1``).
``width`` scales every channel count (tests use tiny widths); 1.0 is the published network.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1, conv3x3

from .blocks import SeparableConv2d
from .encoders import BACKBONES as BACKBONES
from .encoders import RESNET_NAMES

RESNETS = dict(
    zip(
        RESNET_NAMES,
        ((BasicBlock, (2, 2, 2, 2)), (BasicBlock, (3, 4, 6, 3)), (Bottleneck, (3, 4, 6, 3)),
         (Bottleneck, (3, 4, 23, 3))),
        strict=True,
    )
)  # fmt: skip
_DILATE = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 4."""
    return max(4, round(channels * width))


class DilatedBasicBlock(BasicBlock):
    """torchvision's BasicBlock, which refuses dilation, with dilated 3x3 convs (same names)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, groups=1,
                 base_width=64, dilation: int = 1, norm_layer=None) -> None:  # fmt: skip
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, 1, norm_layer)
        if dilation > 1:
            self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
            self.conv2 = conv3x3(planes, planes, dilation=dilation)


class ResNet(nn.Module):
    """torchvision's ResNet without avgpool/fc, with a stem width ``base`` and dilated stages.

    Args:
        name: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        in_channels: input channels C_in.
        base: stem width (64 in the published networks); stage i has ``base * 2**i`` planes.
        output_stride: 32 (plain), 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).
    """

    def __init__(self, name: str, in_channels: int = 3, base: int = 64, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in _DILATE:
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        block, layers = RESNETS[name]
        block = DilatedBasicBlock if block is BasicBlock else block
        self.inplanes, self.dilation = base, 1
        self.conv1 = nn.Conv2d(in_channels, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        dilate = _DILATE[output_stride]
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(block, base * 4, layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(block, base * 8, layers[3], 2, dilate[2])
        e = block.expansion
        self.channels = [base, base * e, base * 2 * e, base * 4 * e, base * 8 * e]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(
        self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        downsample, previous_dilation = None, self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, dilation=previous_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C_in, H, W) -> [stem (stride 2), layer1 (4), layer2 (8), layer3 (16), layer4 (32)]."""
        s2 = self.relu(self.bn1(self.conv1(x)))
        s4 = self.layer1(self.maxpool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        return [s2, s4, s8, s16, self.layer4(s16)]


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision's VGG16 ``features`` (13 3x3 convs + ReLU, 5 max-pools; same indices)."""

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.pool_indices, self.channels = [], []
        ch = in_channels
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                self.pool_indices.append(len(layers) - 1)
                self.channels.append(ch)
            else:
                out = scaled(v, width)
                layers += [nn.Conv2d(ch, out, 3, padding=1), nn.ReLU(inplace=True)]
                ch = out
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C_in, H, W) -> outputs of pool1..pool5 (strides 2..32); H, W multiples of 32."""
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.pool_indices:
                feats.append(x)
        return feats


class XceptionBlock(nn.Module):
    """Three separable convs ``chs[0] -> chs[1] -> chs[2] -> chs[3]`` (the last strided) + residual."""

    def __init__(self, chs: tuple[int, int, int, int], stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            SeparableConv2d(chs[0], chs[1], dilation=dilation),
            SeparableConv2d(chs[1], chs[2], dilation=dilation),
            SeparableConv2d(chs[2], chs[3], stride=stride, dilation=dilation),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or chs[0] != chs[3]:
            self.skip = nn.Sequential(
                nn.Conv2d(chs[0], chs[3], 1, stride, bias=False), nn.BatchNorm2d(chs[3])
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + self.skip(x)


class AlignedXception(nn.Module):
    """Aligned Xception of DeepLabv3+ (Chen et al. 2018): strided separable convs, no max-pool.

    Entry flow (two 3x3 convs, three strided blocks 128/256/728), ``middle_blocks`` residual
    blocks of three separable 728 convs, exit flow (block to 1024, separable 1536, 1536, 2048).
    ``output_stride`` 16 replaces the exit stride by dilation 2, 8 also the third entry block's.
    """

    def __init__(
        self, in_channels: int = 3, width: float = 1.0, output_stride: int = 16, middle_blocks: int = 16
    ) -> None:
        super().__init__()
        if output_stride not in _DILATE:
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        c = {k: scaled(k, width) for k in (32, 64, 128, 256, 728, 1024, 1536, 2048)}
        s3, d_mid = (1, 2) if output_stride == 8 else (2, 1)
        s_exit, d_exit = (2, 1) if output_stride == 32 else (1, 2 * d_mid)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c[32], 3, 2, 1, bias=False), nn.BatchNorm2d(c[32]), nn.ReLU(inplace=True),
            nn.Conv2d(c[32], c[64], 3, 1, 1, bias=False), nn.BatchNorm2d(c[64]), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.block1 = XceptionBlock((c[64], c[128], c[128], c[128]), stride=2)
        self.block2 = XceptionBlock((c[128], c[256], c[256], c[256]), stride=2)
        self.block3 = XceptionBlock((c[256], c[728], c[728], c[728]), stride=s3, dilation=1)
        mid = (c[728],) * 4
        self.middle = nn.Sequential(*[XceptionBlock(mid, dilation=d_mid) for _ in range(middle_blocks)])
        self.exit_block = XceptionBlock((c[728], c[728], c[1024], c[1024]), stride=s_exit, dilation=d_mid)
        self.exit_convs = nn.Sequential(
            SeparableConv2d(c[1024], c[1536], dilation=d_exit),
            SeparableConv2d(c[1536], c[1536], dilation=d_exit),
            SeparableConv2d(c[1536], c[2048], dilation=d_exit),
        )
        self.channels = [c[64], c[128], c[256], c[728], c[2048]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C_in, H, W) -> features at strides 2, 4, 8, 16 and the exit flow's output."""
        s2 = self.stem(x)
        s4 = self.block1(s2)
        s8 = self.block2(s4)
        s16 = self.middle(self.block3(s8))
        return [s2, s4, s8, s16, self.exit_convs(self.exit_block(s16))]


def make_backbone(
    name: str, *, in_channels: int, width: float = 1.0, output_stride: int = 32, middle_blocks: int = 16
) -> nn.Module:
    """Build a backbone by name (see :data:`BACKBONES`); VGG16 supports only output stride 32."""
    if name in RESNETS:
        return ResNet(name, in_channels, base=scaled(64, width), output_stride=output_stride)
    if name == "vgg16":
        if output_stride != 32:
            raise ValueError("backbone vgg16 supports only output_stride=32")
        return VGG16(in_channels, width)
    if name == "xception":
        return AlignedXception(in_channels, width, output_stride, middle_blocks)
    raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
