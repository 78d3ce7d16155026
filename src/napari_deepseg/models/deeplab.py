"""DeepLabv3 (Chen et al. 2017) and DeepLabv3+ (Chen et al. 2018).

DeepLabv3: an atrous backbone (ResNet at output stride 8 or 16, MobileNetV3-Large at 16) and
ASPP: a 1x1 branch, three 3x3 atrous branches (rates 6, 12, 18 at output stride 16, doubled at
8) and an image-pooling branch, concatenated and projected, then a 3x3 conv and a 1x1 classifier;
logits are bilinearly upsampled to the input size. Built from torchvision's classes with
torchvision's parameter names, so its COCO-with-VOC-labels weights load.

DeepLabv3+: encoder at output stride 16 (ResNet or aligned Xception), ASPP of depthwise-separable
convs; decoder upsamples the ASPP output x4, concatenates the 1x1-projected stride-4 features,
applies two separable 3x3 convs; a 1x1 head and a x4 upsampling give logits at the input size.

Shapes: (N, C_in, H, W) -> logits (N, K, H, W) for any H, W.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP
from torchvision.models.segmentation.deeplabv3 import DeepLabV3 as _TorchvisionDeepLabV3
from torchvision.models.segmentation.fcn import FCNHead

from .backbones import RESNETS, ResNet, make_backbone, scaled
from .blocks import ConvBNReLU, SeparableConv2d
from .contract import SegmentationNet
from .encoders import DEEPLAB_BACKBONES, choices


def default_rates(output_stride: int) -> tuple[int, int, int]:
    """ASPP rates of the paper: (6, 12, 18) at output stride 16, doubled at output stride 8."""
    return (12, 24, 36) if output_stride == 8 else (6, 12, 18)


class DeepLabHead(nn.Sequential):
    """ASPP(rates, C) -> 3x3 conv C + BN + ReLU -> 1x1 classifier (torchvision's layout)."""

    def __init__(self, in_ch: int, num_classes: int, rates: Sequence[int], channels: int = 256) -> None:
        super().__init__(
            ASPP(in_ch, list(rates), channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, num_classes, 1),
        )


class DeepLabV3(SegmentationNet, _TorchvisionDeepLabV3):
    """torchvision's DeepLabV3 returning the logits tensor instead of a dict (same names).

    ``size_multiple`` is the output stride (sizes in between are interpolated)."""

    classifier_names = ("classifier.4", "aux_classifier.4")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(N, C_in, H, W) -> logits (N, K, H, W)."""
        return super().forward(x)["out"]


def _mobilenet_body(in_channels: int, width: float, aux: bool) -> tuple[nn.Module, int, int]:
    """MobileNetV3-Large features at output stride 16, as torchvision's deeplabv3 uses them."""
    features = mobilenet_v3_large(weights=None, dilated=True, width_mult=width).features
    first = features[0][0]
    if in_channels != first.in_channels:
        features[0][0] = nn.Conv2d(in_channels, first.out_channels, 3, 2, 1, bias=False)
    stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    out_pos, aux_pos = stages[-1], stages[-4]
    layers = {str(out_pos): "out", str(aux_pos): "aux"} if aux else {str(out_pos): "out"}
    body = IntermediateLayerGetter(features, return_layers=layers)
    return body, features[out_pos].out_channels, features[aux_pos].out_channels


def deeplabv3(
    backbone: str, in_channels: int, num_classes: int, *, width: float = 1.0,
    output_stride: int | None = None, rates: Sequence[int] | None = None,
    head_channels: int = 256, aux: bool = False,
) -> DeepLabV3:  # fmt: skip
    """DeepLabv3 over ``resnet18/34/50/101`` (output stride 8 default, or 16) or
    ``mobilenet_v3_large`` (output stride 16). ``rates`` default: :func:`default_rates`, except
    (12, 24, 36) for MobileNetV3, which torchvision's COCO weights were trained with.
    ``aux`` adds torchvision's auxiliary FCN head on the stride-8/16 features (training only).
    """
    if backbone == "mobilenet_v3_large":
        if output_stride not in (None, 16):
            raise ValueError("mobilenet_v3_large runs at output_stride=16 only")
        body, out_ch, aux_ch = _mobilenet_body(in_channels, width, aux)
        rates, output_stride = rates or (12, 24, 36), 16
    elif backbone in RESNETS:
        output_stride = output_stride or 8
        if output_stride not in (8, 16):
            raise ValueError(f"deeplabv3 output_stride must be 8 or 16, not {output_stride}")
        net = ResNet(backbone, in_channels, base=scaled(64, width), output_stride=output_stride)
        out_ch, aux_ch = net.channels[4], net.channels[3]
        body = IntermediateLayerGetter(net, {"layer4": "out", "layer3": "aux"} if aux else {"layer4": "out"})
        rates = rates or default_rates(output_stride)
    else:
        raise ValueError(f"deeplabv3 has no backbone {backbone!r}; choose {choices(DEEPLAB_BACKBONES)}")
    head = DeepLabHead(out_ch, num_classes, rates, head_channels)
    model = DeepLabV3(body, head, FCNHead(aux_ch, num_classes) if aux else None)
    model.in_channels, model.size_multiple = in_channels, output_stride
    return model


class SeparableASPP(nn.Module):
    """ASPP with depthwise-separable atrous branches: 1x1, three separable 3x3 (rates), pooling."""

    def __init__(self, in_ch: int, rates: Sequence[int], channels: int = 256) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(in_ch, channels, 1, 0)])
        self.branches.extend(SeparableConv2d(in_ch, channels, 3, dilation=r) for r in rates)
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, channels, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.project = nn.Sequential(ConvBNReLU((len(rates) + 2) * channels, channels, 1, 0), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, channels, h, w)."""
        outs = [b(x) for b in self.branches]
        outs.append(F.interpolate(self.pooling(x), size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on the top features, x4 upsampling, concat projected stride-4 features, 2 sep. convs."""

    def __init__(self, channels: list[int], rates: Sequence[int], width: int = 256, low: int = 48) -> None:
        super().__init__()
        self.aspp = SeparableASPP(channels[4], rates, width)
        self.low_project = ConvBNReLU(channels[1], low, 1, 0)
        self.fuse = nn.Sequential(SeparableConv2d(width + low, width), SeparableConv2d(width, width))
        self.out_channels = width

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features (strides 2..16) -> decoder features at stride 4."""
        low = self.low_project(feats[1])
        x = F.interpolate(self.aspp(feats[4]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, low], dim=1))


class DeepLabV3Plus(SegmentationNet, nn.Module):
    """DeepLabv3+: encoder (output stride 16), separable-ASPP decoder, 1x1 head, x4 upsampling.

    Args:
        in_channels: input channels C_in.
        num_classes: classes K.
        backbone: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` or ``xception``.
        width: backbone channel multiplier (1.0 = the published network).
        output_stride: 16 (default) or 8; rates follow :func:`default_rates` unless given.
        decoder_channels: ASPP and decoder width (256 in the paper).
        middle_blocks: Xception middle-flow blocks (16 in the paper).

    ``size_multiple`` is the output stride (sizes in between are interpolated).
    """

    classifier_names = ("head",)

    def __init__(self, in_channels: int, num_classes: int, backbone: str = "resnet50", width: float = 1.0,
                 output_stride: int = 16, rates: Sequence[int] | None = None, decoder_channels: int = 256,
                 middle_blocks: int = 16) -> None:  # fmt: skip
        super().__init__()
        if backbone == "vgg16" or output_stride not in (8, 16):
            raise ValueError("deeplabv3plus needs a resnet or xception backbone at output_stride 8 or 16")
        self.encoder = make_backbone(
            backbone, in_channels=in_channels, width=width, output_stride=output_stride,
            middle_blocks=middle_blocks,
        )  # fmt: skip
        rates = rates or default_rates(output_stride)
        self.decoder = DeepLabV3PlusDecoder(self.encoder.channels, rates, decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 1)
        self.in_channels, self.size_multiple = in_channels, output_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> logits (N, K, H, W)."""
        logits = self.head(self.decoder(self.encoder(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
