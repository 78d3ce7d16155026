"""Fully convolutional networks (Long, Shelhamer & Darrell 2015): FCN-32s, FCN-16s, FCN-8s.

Encoder: a backbone (VGG16 with fc6/fc7 as 7x7 and 1x1 convs, or a ResNet). Decoder: a 1x1
classifier scores the stride-32 features; FCN-16s adds 1x1 scores of the stride-16 features to
the 2x-upsampled stride-32 scores, FCN-8s also adds stride-8 scores; each upsampling is a
learnable transposed conv initialised to bilinear interpolation, the skip classifiers start at
zero (as in the paper), and a final transposed conv upsamples x8/x16/x32 to the input size.

Shapes: (N, C_in, H, W) -> logits (N, K, H, W); inputs are padded to a multiple of 32 inside
and the logits cropped back. Also torchvision's FCN (ResNet at output stride 8, 3x3 FCNHead)
for its COCO weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.fcn import FCN as _TorchvisionFCN
from torchvision.models.segmentation.fcn import FCNHead

from .backbones import ResNet, make_backbone, scaled
from .blocks import bilinear_kernel_, center_crop, pad_to_multiple
from .contract import SegmentationNet


def _upsampler(num_classes: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed conv (kernel 2f, stride f, padding f/2): exactly f times larger, bilinear init."""
    up = nn.ConvTranspose2d(num_classes, num_classes, 2 * factor, factor, factor // 2, bias=False)
    bilinear_kernel_(up.weight)
    return up


def _score(in_ch: int, num_classes: int, zero: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, num_classes, 1)
    if zero:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return conv


class VGGFullyConv(nn.Sequential):
    """VGG's fc6/fc7 as convolutions (7x7 and 1x1, same indices as torchvision's classifier)."""

    def __init__(self, in_ch: int, channels: int = 4096) -> None:
        super().__init__(
            nn.Conv2d(in_ch, channels, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(),
        )


class FCNDecoder(nn.Module):
    """Score stride-32 (and stride-16/8) features with 1x1 convs and fuse them coarse to fine."""

    def __init__(self, channels: list[int], top_channels: int, num_classes: int, stride: int) -> None:
        super().__init__()
        if stride not in (8, 16, 32):
            raise ValueError(f"FCN stride must be 8, 16 or 32, not {stride}")
        self.stride = stride
        self.score32 = _score(top_channels, num_classes, zero=False)
        if stride <= 16:
            self.score16 = _score(channels[3], num_classes, zero=True)
            self.up32 = _upsampler(num_classes, 2)
        if stride == 8:
            self.score8 = _score(channels[2], num_classes, zero=True)
            self.up16 = _upsampler(num_classes, 2)
        self.up_final = _upsampler(num_classes, stride)

    def forward(self, feats: list[torch.Tensor], top: torch.Tensor) -> torch.Tensor:
        """Backbone features (strides 2..32) and the stride-32 top features -> logits at stride 1."""
        x = self.score32(top)
        if self.stride <= 16:
            x = self.up32(x) + self.score16(feats[3])
        if self.stride == 8:
            x = self.up16(x) + self.score8(feats[2])
        return self.up_final(x)


class FCN(SegmentationNet, nn.Module):
    """FCN-``stride``s over a VGG16 or ResNet backbone.

    Args:
        in_channels: input channels C_in.
        num_classes: classes K.
        stride: 32, 16 or 8 (the finest skip fused).
        backbone: ``vgg16``, ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        width: backbone channel multiplier (1.0 = the published network).
        head_channels: VGG fc6/fc7 width (4096 in the paper); unused for ResNets.
    """

    size_multiple = 32
    # the score layers and the class-to-class upsamplers all carry the K classes
    classifier_names = tuple(
        f"decoder.{n}" for n in ("score32", "score16", "score8", "up32", "up16", "up_final")
    )

    def __init__(self, in_channels: int, num_classes: int, stride: int = 8, backbone: str = "vgg16",
                 width: float = 1.0, head_channels: int = 4096) -> None:  # fmt: skip
        super().__init__()
        self.encoder = make_backbone(backbone, in_channels=in_channels, width=width)
        top = self.encoder.channels[4]
        self.fc: nn.Module = nn.Identity()
        if backbone == "vgg16":
            self.fc = VGGFullyConv(top, head_channels)
            top = head_channels
        self.decoder = FCNDecoder(self.encoder.channels, top, num_classes, stride)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> logits (N, K, H, W)."""
        h, w = x.shape[-2:]
        feats = self.encoder(pad_to_multiple(x, self.size_multiple))
        return center_crop(self.decoder(feats, self.fc(feats[4])), h, w)


class TorchvisionFCN(SegmentationNet, _TorchvisionFCN):
    """torchvision's FCN returning the logits tensor instead of a dict (same parameter names)."""

    size_multiple = 8  # output stride 8; other sizes are interpolated
    classifier_names = ("classifier.4", "aux_classifier.4")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(N, C_in, H, W) -> logits (N, K, H, W)."""
        return super().forward(x)["out"]


def torchvision_fcn(
    resnet: str, in_channels: int, num_classes: int, width: float = 1.0, aux: bool = False
) -> TorchvisionFCN:
    """torchvision's ``fcn_resnet50``/``fcn_resnet101`` layout (ResNet at output stride 8, 3x3 head)."""
    backbone = ResNet(resnet, in_channels, base=scaled(64, width), output_stride=8)
    ch = backbone.channels
    layers = {"layer4": "out", "layer3": "aux"} if aux else {"layer4": "out"}
    body = IntermediateLayerGetter(backbone, return_layers=layers)
    model = TorchvisionFCN(body, FCNHead(ch[4], num_classes), FCNHead(ch[3], num_classes) if aux else None)
    model.in_channels = in_channels
    return model
