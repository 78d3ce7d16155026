"""Pretrained weights from torchvision, through torch's hub cache (the ready COCO models that
use them are listed in :mod:`.catalog`).

Weights files live in ``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch``) under
torchvision's file names (``resnet50-0676ba61.pth``, ``deeplabv3_resnet101_coco-586e9e4e.pth``...).
A file already there is used as is; otherwise it is downloaded once with a progress bar. Where
there is no network (or ``DEEPSEG_OFFLINE=1``) the error names the exact file to place there or
to pass as ``weights_file=`` / ``--weights FILE``. Files are read with ``weights_only=True``.

Input channels: a pretrained RGB first conv (C_out, 3, k, k) is adapted to 1 input channel by
summing its weights over RGB (a gray image replicated to RGB gives the same response), and to
C_in != 3 channels by repeating the RGB weights cyclically and scaling by 3 / C_in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import DeepsegError, ModelFileError
from .encoders import RESNET_NAMES

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

#: ImageNet backbone weights: backbone -> (torchvision weights enum, member)
IMAGENET = {
    **{name: (f"ResNet{name[len('resnet') :]}_Weights", "IMAGENET1K_V1") for name in RESNET_NAMES},
    "vgg16": ("VGG16_Weights", "IMAGENET1K_V1"),
    "mobilenet_v3_large": ("MobileNet_V3_Large_Weights", "IMAGENET1K_V1"),
}
#: COCO (VOC labels) weights of whole models: (arch, backbone) -> (torchvision.models.segmentation
#: weights enum, member, file name in the hub cache)
_VOC = "COCO_WITH_VOC_LABELS_V1"
COCO = {
    ("fcn_resnet50", "resnet50"): ("FCN_ResNet50_Weights", _VOC, "fcn_resnet50_coco-1167a1af.pth"),
    ("fcn_resnet101", "resnet101"): ("FCN_ResNet101_Weights", _VOC, "fcn_resnet101_coco-7ecb50ca.pth"),
    ("deeplabv3", "resnet50"): ("DeepLabV3_ResNet50_Weights", _VOC, "deeplabv3_resnet50_coco-cd0a2569.pth"),
    ("deeplabv3", "resnet101"): (
        "DeepLabV3_ResNet101_Weights",
        _VOC,
        "deeplabv3_resnet101_coco-586e9e4e.pth",
    ),
    ("deeplabv3", "mobilenet_v3_large"): (
        "DeepLabV3_MobileNet_V3_Large_Weights",
        _VOC,
        "deeplabv3_mobilenet_v3_large-fc3c493d.pth",
    ),
}
#: the COCO models' 21 classes (torchvision's VOC categories, background first)
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip
IMAGENET_NORMALIZATION = {
    "method": "meanstd", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 255.0
}  # fmt: skip


def weights_for(kind: str, arch: str, backbone: str) -> WeightsEnum:
    """torchvision weights: ``kind="coco"`` (whole model) or ``"imagenet"`` (the backbone)."""
    table: dict[Any, tuple[str, ...]] = COCO if kind == "coco" else IMAGENET
    key = (arch, backbone) if kind == "coco" else backbone
    if kind not in ("coco", "imagenet") or key not in table:
        have = sorted(f"{a}/{b}" for a, b in COCO) if kind == "coco" else sorted(IMAGENET)
        raise DeepsegError(
            f"no {kind!r} pretrained weights for {arch} with backbone {backbone}; available: "
            f"{', '.join(have)} (pretrained='coco' or 'imagenet')"
        )
    from torchvision import models as tvm  # here: only pretrained weights need torchvision

    enum, member = table[key][:2]
    return getattr(getattr(tvm.segmentation if kind == "coco" else tvm, enum), member)


def coco_checkpoint_path(arch: str, backbone: str) -> Path:
    """Where the COCO weights of ``arch``/``backbone`` are cached (:func:`checkpoint_path`'s
    answer for them, without importing torchvision)."""
    if (arch, backbone) not in COCO:
        weights_for("coco", arch, backbone)  # raises the error that names the weights there are
    return _hub_checkpoint(COCO[(arch, backbone)][2])


def checkpoint_path(weights: WeightsEnum) -> Path:
    """Where torch's hub cache keeps ``weights``: ``$TORCH_HOME/hub/checkpoints/<file name>``."""
    return _hub_checkpoint(os.path.basename(urlparse(weights.url).path))


def _hub_checkpoint(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def fetch_state_dict(
    weights: WeightsEnum, weights_file: str | os.PathLike | None = None, progress: bool = True
) -> dict[str, torch.Tensor]:
    """The state dict of ``weights``: from ``weights_file``, the hub cache, or downloaded into it."""
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise ModelFileError(
                f"weights file {path} not found; give the path of {checkpoint_path(weights).name}"
            )
        return read_weights(path)
    return read_weights(ensure_cached(weights, progress))


def ensure_cached(weights: WeightsEnum, progress: bool = True) -> Path:
    """The hub-cache path of ``weights``, downloading the file there first if it is missing."""
    path = checkpoint_path(weights)
    if not path.is_file():
        _download(weights, path, progress)
    return path


def _download(weights: WeightsEnum, path: Path, progress: bool) -> None:
    fix = (
        f"place {path.name} in {path.parent} (or set TORCH_HOME) or pass it with --weights FILE "
        "(weights_file=...)"
    )
    if os.environ.get("DEEPSEG_OFFLINE", "").strip() not in ("", "0"):
        raise DeepsegError(f"pretrained weights {weights} are not cached and DEEPSEG_OFFLINE is set: {fix}")
    match = re.search(r"-([a-f0-9]*)\.", path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(path), match.group(1) if match else None, progress)
    except (OSError, RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise DeepsegError(f"cannot download pretrained weights {weights} ({reason}): {fix}") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file (a state dict) with ``weights_only=True``; one-line errors naming it."""
    from .._torchfile import load_torch_file

    state = load_torch_file(path, "weights file", "replace it with the torchvision weights file")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"weights file {path} holds no state dict of tensors; replace it")
    return state


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB first-conv weight (C_out, 3, k, k) for ``in_channels`` inputs (see module doc)."""
    if in_channels == weight.shape[1]:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    idx = torch.arange(in_channels) % weight.shape[1]
    return weight[:, idx] * (weight.shape[1] / in_channels)


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str, *,
              optional: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Copy ``state`` into ``module``; every parameter must be provided and fit.

    Checkpoint keys the module lacks are ignored; first convs are adapted to the input channels;
    module keys starting with one of ``optional`` may be missing or mis-shaped (then kept).
    """
    own = module.state_dict()
    new = {}
    for key, target in own.items():
        value = state.get(key)
        rgb = value is not None and value.ndim == 4 and value.shape[1] == 3 and target.shape[1] != 3
        if rgb and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            value = adapt_input_conv(value, target.shape[1])
        if value is not None and value.shape == target.shape:
            new[key] = value.to(target.dtype)
        elif not key.startswith(optional):
            got = "missing" if value is None else f"shape {tuple(value.shape)}"
            raise ModelFileError(
                f"weights {source} do not fit this model: {key} is {got}, the model needs "
                f"{tuple(target.shape)} (pretrained weights need width=1 and the published options)"
            )
    module.load_state_dict(new, strict=False)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys starting with ``prefix``, with it removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
