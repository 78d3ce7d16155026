"""The built-in architectures' builders (:data:`BUILTIN`, registered by :mod:`.registry`).

Every builder is keyword-only: ``fn(*, in_channels, num_classes, **options)``. The options
``pretrained`` (``None``, ``"imagenet"`` for the backbone, ``"coco"`` for torchvision's
COCO-with-VOC-labels models), ``weights_file`` and ``progress`` choose initial weights only and
are not recorded in the model's architecture (a saved model file holds the weights itself).

The FCN and DeepLab modules (and U-Net's ResNet encoder) import torchvision, whose import pulls
in ``torch._dynamo`` and sympy (about 1.3 s and 150 000 objects that every full garbage
collection walks); their builders import them, so a plain U-Net (the bundled models) never does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..errors import DeepsegError
from . import pretrained as pt
from .unet import UNet

PathLike = str | os.PathLike | None
_FCN_VARIANTS = ({"backbone": "resnet18"}, {"backbone": "resnet34"}, {"backbone": "resnet50"})
# (name, builder, description, pretrained weights, variants), in table order
BUILTIN: list[tuple[str, Callable[..., nn.Module], str, tuple[str, ...], tuple[dict[str, Any], ...]]] = []


def builtin(
    name: str, description: str, pretrained: tuple[str, ...] = (), variants: tuple[dict[str, Any], ...] = ()
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Collect a built-in builder into :data:`BUILTIN` (``registry.register_model`` registers each)."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        BUILTIN.append((name, fn, description, tuple(pretrained), tuple(variants)))
        return fn

    return decorator


def _fetch(kind: str | None, arch: str, backbone: str, weights_file: PathLike, progress: bool):
    """(state dict, description naming the file) of the requested weights, or None."""
    if kind is None:
        return None
    weights = pt.weights_for(kind, arch, backbone)
    source = weights_file or pt.checkpoint_path(weights)
    return pt.fetch_state_dict(weights, weights_file, progress), f"{weights} from {source}"


def _load_imagenet(encoder: nn.Module, backbone: str, fetched, fc: nn.Module | None = None) -> None:
    """ImageNet weights into a backbone module (and VGG's fc6/fc7 into ``fc`` when they fit)."""
    state, source = fetched
    if backbone == "mobilenet_v3_large":
        state = pt.strip_prefix(state, "features.")
    pt.load_into(encoder, state, source)
    if fc is not None and backbone == "vgg16" and "classifier.0.weight" in state:
        w0, w3 = state["classifier.0.weight"], state["classifier.3.weight"]
        if isinstance(fc[0], nn.Conv2d) and fc[0].weight.numel() == w0.numel():
            conv_state = {
                "0.weight": w0.reshape(fc[0].weight.shape), "0.bias": state["classifier.0.bias"],
                "3.weight": w3.reshape(fc[3].weight.shape), "3.bias": state["classifier.3.bias"],
            }  # fmt: skip
            pt.load_into(fc, conv_state, source)


@builtin(
    "unet",
    "Ronneberger U-Net: encoder/decoder with skip connections (or a ResNet encoder)",
    pretrained=("imagenet (encoder resnet18/34/50)",),
    variants=({"encoder": "resnet18"}, {"encoder": "resnet34"}, {"encoder": "resnet50"}),
)
def unet(*, in_channels: int = 1, num_classes: int = 2, base: int = 64, depth: int = 4, padding: str = "same",
         encoder: str | None = None, pretrained: str | None = None, weights_file: PathLike = None,
         progress: bool = True, extra_outputs: int = 0) -> nn.Module:  # fmt: skip
    """U-Net; see :class:`napari_deepseg.models.unet.UNet`."""
    if pretrained is not None and (encoder is None or pretrained != "imagenet"):
        raise DeepsegError(
            "U-Net pretrained weights exist only as pretrained='imagenet' with encoder='resnet*'"
        )
    fetched = _fetch(pretrained, "unet", encoder or "", weights_file, progress)
    model = UNet(
        in_channels,
        num_classes,
        base=base,
        depth=depth,
        padding=padding,
        encoder=encoder,
        extra_outputs=extra_outputs,
    )
    if fetched:
        _load_imagenet(model.encoder.backbone, encoder, fetched)
    return model


def _fcn(stride: int, in_channels: int, num_classes: int, backbone: str, width: float, head_channels: int,
         pretrained: str | None, weights_file: PathLike, progress: bool) -> nn.Module:  # fmt: skip
    if pretrained not in (None, "imagenet"):
        raise DeepsegError(f"fcn{stride}s has only pretrained='imagenet' (backbone) weights")
    from .fcn import FCN

    fetched = _fetch(pretrained, f"fcn{stride}s", backbone, weights_file, progress)
    model = FCN(in_channels, num_classes, stride, backbone, width, head_channels)
    if fetched:
        _load_imagenet(model.encoder, backbone, fetched, model.fc)
    return model


def _register_fcn(stride: int, text: str) -> None:
    @builtin(
        f"fcn{stride}s",
        f"FCN-{stride}s: {text} (vgg16, resnet18/34/50)",
        pretrained=("imagenet (backbone)",),
        variants=_FCN_VARIANTS,
    )
    def builder(*, in_channels: int = 3, num_classes: int = 21, backbone: str = "vgg16", width: float = 1.0,
                head_channels: int = 4096, pretrained: str | None = None, weights_file: PathLike = None,
                progress: bool = True) -> nn.Module:  # fmt: skip
        return _fcn(stride, in_channels, num_classes, backbone, width, head_channels,
                    pretrained, weights_file, progress)  # fmt: skip

    builder.__doc__ = f"FCN-{stride}s; see :class:`napari_deepseg.models.fcn.FCN`."


_register_fcn(8, "1x1 scores at strides 32/16/8 fused by learnable transposed convs")
_register_fcn(16, "1x1 scores at strides 32/16 fused by learnable transposed convs")
_register_fcn(32, "1x1 scores at stride 32, one learnable x32 transposed conv")


def _register_tv_fcn(resnet: str) -> None:
    @builtin(
        f"fcn_{resnet}",
        f"torchvision FCN-{resnet.capitalize()}: dilated {resnet} (stride 8), 3x3 FCN head",
        pretrained=("coco (COCO_WITH_VOC_LABELS_V1, 21 classes)", "imagenet (backbone)"),
    )
    def builder(*, in_channels: int = 3, num_classes: int = 21, width: float = 1.0, aux: bool = False,
                pretrained: str | None = None, weights_file: PathLike = None,
                progress: bool = True) -> nn.Module:  # fmt: skip
        from .fcn import torchvision_fcn

        fetched = _fetch(pretrained, f"fcn_{resnet}", resnet, weights_file, progress)
        model = torchvision_fcn(resnet, in_channels, num_classes, width, aux)
        _load_torchvision(model, resnet, pretrained, fetched)
        return model


_register_tv_fcn("resnet50")
_register_tv_fcn("resnet101")


def _load_torchvision(model: nn.Module, backbone: str, kind: str | None, fetched) -> None:
    """COCO weights into a whole torchvision model (final classifiers kept if K != 21), or
    ImageNet weights into its backbone."""
    if fetched is None:
        return
    if kind == "coco":
        state, source = fetched
        pt.load_into(model, state, source, optional=("classifier.4.", "aux_classifier.4."))
    else:
        _load_imagenet(model.backbone, backbone, fetched)


@builtin(
    "deeplabv3",
    "DeepLabv3: atrous backbone + ASPP (1x1, rates 6/12/18 at stride 16, image pooling)",
    pretrained=("coco (resnet50/101, mobilenet_v3_large; 21 classes)", "imagenet (backbone)"),
    variants=({"backbone": "resnet101"}, {"backbone": "mobilenet_v3_large"}),
)
def deeplabv3_builder(*, in_channels: int = 3, num_classes: int = 21, backbone: str = "resnet50",
                      width: float = 1.0, output_stride: int | None = None,
                      rates: Sequence[int] | None = None,
                      head_channels: int = 256, aux: bool = False, pretrained: str | None = None,
                      weights_file: PathLike = None, progress: bool = True) -> nn.Module:  # fmt: skip
    """DeepLabv3; see :func:`napari_deepseg.models.deeplab.deeplabv3`."""
    from .deeplab import deeplabv3

    fetched = _fetch(pretrained, "deeplabv3", backbone, weights_file, progress)
    model = deeplabv3(backbone, in_channels, num_classes, width=width, output_stride=output_stride,
                      rates=rates, head_channels=head_channels, aux=aux)  # fmt: skip
    _load_torchvision(model, backbone, pretrained, fetched)
    return model


@builtin(
    "deeplabv3plus",
    "DeepLabv3+: stride-16 encoder, separable ASPP, decoder with stride-4 features",
    pretrained=("imagenet (resnet backbones)",),
    variants=({"backbone": "resnet18"}, {"backbone": "resnet101"}, {"backbone": "xception"}),
)
def deeplabv3plus(*, in_channels: int = 3, num_classes: int = 21, backbone: str = "resnet50",
                  width: float = 1.0, output_stride: int = 16, rates: Sequence[int] | None = None,
                  decoder_channels: int = 256, middle_blocks: int = 16, pretrained: str | None = None,
                  weights_file: PathLike = None, progress: bool = True) -> nn.Module:  # fmt: skip
    """DeepLabv3+; see :class:`napari_deepseg.models.deeplab.DeepLabV3Plus`."""
    if pretrained not in (None, "imagenet"):
        raise DeepsegError("deeplabv3plus has only pretrained='imagenet' (resnet backbone) weights")
    from .deeplab import DeepLabV3Plus

    fetched = _fetch(pretrained, "deeplabv3plus", backbone, weights_file, progress)
    model = DeepLabV3Plus(in_channels, num_classes, backbone, width, output_stride, rates,
                          decoder_channels, middle_blocks)  # fmt: skip
    if fetched:
        _load_imagenet(model.encoder, backbone, fetched)
    return model
