"""The model contract: what the engine, tiling and training may ask of a segmentation network.

Every registered architecture implements :class:`SegmentationNet` (a mixin next to
``nn.Module``) and declares, instead of leaving callers to guess:

- ``in_channels``: C_in of the (N, C_in, H, W) input;
- ``size_multiple``: input H and W that are multiples of it map exactly (others are padded or
  interpolated inside the network); tiles and training windows are at least this large;
- ``output_margin``: logits are smaller than the input by this many pixels on every side
  (valid-padding networks), 0 otherwise; ``valid_input_size(n)`` is the smallest input size
  >= n such a network maps without rounding (``n`` for the others);
- ``classifier_names``: the dotted names of the layers whose outputs are the K class maps (the
  final 1x1 convolution, plus e.g. an auxiliary head or FCN's score and upsampling layers);
  :meth:`SegmentationNet.classifiers` reads them and :meth:`SegmentationNet.replace_classifier`
  gives them a new class count, keeping the weights of the classes that remain;
- :meth:`SegmentationNet.check_input`: a one-line error for an input the network cannot take.

:func:`contract_of` answers for any module: a :class:`SegmentationNet` answers for itself; a
plain ``nn.Module`` (not made by ``build_model``) is taken as size multiple 1, margin 0, no
declared classifier, and the input channels of its first convolution or linear layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import DeepsegError
from .blocks import bilinear_kernel_


class SegmentationNet:
    """Mixin declaring the model contract (see the module docstring); subclasses set the values."""

    in_channels: int = 1
    size_multiple: int = 1
    output_margin: int = 0
    classifier_names: tuple[str, ...] = ()
    #: maps after the K class logits (a distance output: 1); the final classifier has K + this
    extra_outputs: int = 0

    def valid_input_size(self, n: int) -> int:
        """Smallest input size >= ``n`` the network maps without rounding (``n`` unless valid-padding)."""
        return n

    def window_sizes(self, n: int) -> tuple[int, int]:
        """(input, output) window sizes for an output of about ``n`` pixels: equal, rounded up to
        ``size_multiple``, for same-size networks; valid-padding ones lose ``output_margin`` a side."""
        if self.output_margin:
            size = self.valid_input_size(n)
            return size, size - 2 * self.output_margin
        size = -(-n // self.size_multiple) * self.size_multiple
        return size, size

    def check_input(self, shape: Sequence[int]) -> None:
        """Raise :class:`DeepsegError` when an (N, C, H, W) input of ``shape`` does not fit."""
        if len(shape) != 4:
            raise DeepsegError(f"the model takes (N, C, H, W) inputs, not shape {tuple(shape)}")
        if int(shape[1]) != self.in_channels:
            raise DeepsegError(
                f"the model takes {self.in_channels} input channel(s), not {shape[1]}; "
                "pick channels or use a model made for this image"
            )
        for n in shape[2:]:
            if self.output_margin and self.valid_input_size(int(n)) != int(n):
                raise DeepsegError(
                    f"this valid-padding model cannot take size {n}; use model.valid_input_size({n}) "
                    f"= {self.valid_input_size(int(n))}"
                )

    def classifiers(self) -> list[nn.Module]:
        """The layers named by ``classifier_names`` (those present), final classifier first."""
        found = []
        for name in self.classifier_names:
            parent, attr = _parent(self, name)
            if parent is not None:
                found.append(parent._modules[attr])
        if not found:
            raise DeepsegError(f"{type(self).__name__} declares no final classifier")
        return found

    def replace_classifier(self, num_classes: int) -> None:
        """Give every classifier layer ``num_classes`` outputs (in place).

        The weights of the first ``min(old, new)`` classes are kept; new classes start from
        PyTorch's default initialisation (bilinear kernels for class-to-class upsamplers).
        """
        self.classifiers()  # raises when none is declared
        for i, name in enumerate(self.classifier_names):
            parent, attr = _parent(self, name)
            if parent is not None:  # the final classifier (first) also gives the extra maps
                extra = self.extra_outputs if i == 0 else 0
                parent._modules[attr] = _resized(parent._modules[attr], num_classes + extra, extra)


def _parent(root: object, dotted: str) -> tuple[nn.Module | None, str]:
    """(module holding the last part of ``dotted``, that part), or (None, part) when absent."""
    *path, last = dotted.split(".")
    module = root
    for part in path:
        module = module._modules.get(part) if isinstance(module, nn.Module) else None
        if module is None:
            return None, last
    if not isinstance(module, nn.Module) or module._modules.get(last) is None:
        return None, last
    return module, last


def _resized(layer: nn.Module, k: int, extra: int = 0) -> nn.Module:
    """A copy of a Conv2d (K outputs) or a K-to-K ConvTranspose2d with ``k`` outputs; the last
    ``extra`` outputs of a Conv2d (maps after the classes) keep their weights, moved last."""
    w = layer.weight
    if isinstance(layer, nn.ConvTranspose2d):
        new = nn.ConvTranspose2d(k, k, layer.kernel_size, layer.stride, layer.padding,
                                 layer.output_padding, bias=layer.bias is not None)  # fmt: skip
        bilinear_kernel_(new.weight)
        m = min(k, w.shape[0])
        rows = (slice(0, m), slice(0, m))
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, k, layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, bias=layer.bias is not None)  # fmt: skip
        m = min(k, w.shape[0])
        rows = (slice(0, m),)
    else:
        raise DeepsegError(f"cannot change the classes of a {type(layer).__name__} classifier")
    new = new.to(device=w.device, dtype=w.dtype)
    if extra:  # classes first (the kept ones), then the extra maps, which stay last
        m = min(k, w.shape[0]) - extra
        rows = (slice(0, m),)
    with torch.no_grad():
        new.weight[rows] = w[rows]
        if layer.bias is not None:
            new.bias[:m] = layer.bias[:m]
        if extra:
            new.weight[-extra:] = w[-extra:]
            if layer.bias is not None:
                new.bias[-extra:] = layer.bias[-extra:]
    return new


class PlainContract:
    """The contract of a module not made by ``build_model``: size multiple 1, margin 0, the input
    channels of its first convolution or linear layer, no declared classifier."""

    size_multiple = 1
    output_margin = 0
    classifier_names: tuple[str, ...] = ()
    valid_input_size = SegmentationNet.valid_input_size
    window_sizes = SegmentationNet.window_sizes
    check_input = SegmentationNet.check_input
    classifiers = SegmentationNet.classifiers

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Conv3d):
                self.in_channels = int(layer.in_channels)
                return
            if isinstance(layer, nn.Linear):
                self.in_channels = int(layer.in_features)
                return
        raise DeepsegError("cannot tell how many input channels the model takes; build it with build_model()")


def contract_of(model: nn.Module | PlainContract) -> SegmentationNet | PlainContract:
    """The model's contract: itself when it implements :class:`SegmentationNet` (or is already a
    contract), else a :class:`PlainContract`."""
    return model if isinstance(model, SegmentationNet | PlainContract) else PlainContract(model)


def class_count(model: nn.Module) -> int | None:
    """THE NUMBER OF CLASSES K a model outputs: its architecture's (``deepseg_arch``), else its
    file's class names, else None (a plain module: known only from its output)."""
    arch = getattr(model, "deepseg_arch", None)
    if arch is not None:
        return int(arch.num_classes)
    meta = getattr(model, "deepseg_meta", None)
    names = getattr(meta, "class_names", None)
    return len(names) if names else None


def map_count(model: nn.Module) -> int | None:
    """The maps a model outputs: its K classes plus its extra maps (a distance output), or None
    when its classes are unknown (see :func:`class_count`)."""
    k = class_count(model)
    return None if k is None else k + int(getattr(model, "extra_outputs", 0))
