"""Multiply-accumulate (MAC) counter: forward hooks on Conv, ConvTranspose and Linear layers.

A convolution producing an output of N x C_out x H' x W' with kernel k_h x k_w over C_in / groups
input channels costs ``N * C_out * H' * W' * (C_in / groups) * k_h * k_w`` MACs; a transposed
convolution costs ``N * C_in * H * W * (C_out / groups) * k_h * k_w`` (every input pixel is
spread over a kernel); a linear layer ``batch * in_features * out_features``. Biases, batch norm,
activations, pooling and interpolation are not counted (they are a few % at most). This is
the convention of torchvision's published GFLOPS figures (which are MACs).

Counting runs the model on the ``meta`` device by default: shapes only, no arithmetic, so a
512x512 count of a large model takes well under a second.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .registry import build_model

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, _TRANSPOSED):
        per_in = module.out_channels // module.groups * math.prod(module.kernel_size)
        return inputs[0].numel() * per_in
    if isinstance(module, _CONV):
        per_out = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output.numel() * per_out
    return output.numel() * module.in_features  # nn.Linear


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of ``model(x)`` (conv, transposed conv and linear layers; see module doc).

    ``model`` and ``x`` must be on the same device (use :func:`model_macs` for the meta device).
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (*_CONV, *_TRANSPOSED, nn.Linear))
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def model_macs(name: str, *, size: int | tuple[int, int] = 512, in_channels: int = 3, num_classes: int = 21,
               **options: Any) -> tuple[int, int]:  # fmt: skip
    """(parameters, MACs) of ``build_model(name, ...)`` for one ``size`` x ``size`` image.

    Built and run on the ``meta`` device: nothing is allocated or computed.
    """
    h, w = (size, size) if isinstance(size, int) else size
    with torch.device("meta"):
        model = build_model(name, in_channels=in_channels, num_classes=num_classes, **options).eval()
        x = torch.empty(1, in_channels, h, w)
    params = sum(p.numel() for p in model.parameters())
    return params, count_macs(model, x)
