"""Model registry: keyword-only builders registered by name (as torchvision does).

``build_model`` records the architecture (name, channels, classes, options) on the module as
``model.deepseg_arch`` so that :func:`save_model` can write a self-describing file. The built-in
architectures (:mod:`.zoo`) are registered when this module is imported; every registered
builder returns a :class:`~.contract.SegmentationNet` (the model contract).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import _checks
from ..errors import DeepsegError
from . import zoo
from .contract import SegmentationNet
from .pretrained import COCO, IMAGENET


@dataclass(frozen=True)
class ArchSpec:
    """What rebuilds a model: registered name, input channels, classes and builder options."""

    name: str
    in_channels: int
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    pretrained: tuple[str, ...] = ()
    variants: tuple[dict[str, Any], ...] = ()  # notable non-default options (model table rows)


_REGISTRY: dict[str, ModelEntry] = {}
# options that choose initial weights only: not recorded in ``deepseg_arch`` (files hold weights)
LOAD_ONLY_OPTIONS = ("pretrained", "weights_file", "progress")


def register_model(
    name: str,
    description: str,
    pretrained: tuple[str, ...] = (),
    variants: tuple[dict[str, Any], ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a keyword-only builder ``fn(*, in_channels, num_classes, **opts)``.

    ``pretrained`` lists the weights that exist (for the model table); ``variants`` lists
    notable option sets (e.g. other backbones) shown as extra rows by ``deepseg models --all``.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, fn, description, tuple(pretrained), tuple(variants))
        return fn

    return decorator


def registered_models() -> dict[str, ModelEntry]:
    """All registered architectures by name (a copy)."""
    return dict(_REGISTRY)


def pretrained_kinds(name: str, options: dict[str, Any]) -> list[str]:
    """Which pretrained weights exist for ``build_model(name, **options)``: "coco", "imagenet"."""
    params = inspect.signature(_REGISTRY[name].builder).parameters
    default = params["backbone"].default if "backbone" in params else None
    backbone = options.get("backbone", options.get("encoder", default))
    if name.startswith("fcn_"):
        backbone = name[4:]
    kinds = ["coco"] if (name, backbone) in COCO else []
    return [*kinds, "imagenet"] if backbone in IMAGENET else kinds


MAX_PARAMETERS = 2**31  # 8 GB of float32 weights: no segmentation network needs more


def build_model(name: str, *, in_channels: int = 1, num_classes: int = 2, **options: Any) -> nn.Module:
    """Build a registered architecture.

    Args:
        name: registered name, e.g. ``"unet"``; see :func:`list_models`.
        in_channels: input channels C_in.
        num_classes: output classes K.
        **options: architecture options (e.g. ``base=32`` for the U-Net); ``pretrained``,
            ``weights_file`` and ``progress`` pick initial weights and are not recorded.

    Returns:
        A :class:`~.contract.SegmentationNet` module mapping (N, C_in, H, W) to logits
        (N, K, H, W) (smaller by ``model.output_margin`` on every side for valid-padding models).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        if not isinstance(name, str):
            raise _checks.ArgumentTypeError(f"build_model needs an architecture name ({known}), not {name!r}")
        raise ValueError(f"unknown model {name!r}; choose one of: {known}")
    in_channels = _checks.integer(in_channels, "in_channels", minimum=1)
    num_classes = _checks.integer(num_classes, "num_classes")
    if num_classes < 1:
        raise DeepsegError(f"num_classes={num_classes} is too small; use num_classes=2 or more")
    if num_classes == 1:
        raise DeepsegError(
            "num_classes=1 would give an all-background result (one class is background); "
            "use num_classes=2 (background and foreground) or more"
        )
    entry = _REGISTRY[name]
    _check_options(entry, options)
    _check_size(entry, in_channels, num_classes, options)
    model = entry.builder(in_channels=in_channels, num_classes=num_classes, **options)
    recorded = {k: v for k, v in options.items() if k not in LOAD_ONLY_OPTIONS}
    if not isinstance(model, SegmentationNet):
        raise TypeError(f"builder of {name!r} must return a SegmentationNet (the model contract)")
    model.deepseg_arch = ArchSpec(name, in_channels, num_classes, recorded)
    return model


def _check_size(entry: ModelEntry, in_channels: int, num_classes: int, options: dict[str, Any]) -> None:
    """Refuse, before any memory is taken, a network whose weights alone would not fit in memory.

    The network is first built on PyTorch's ``meta`` device (shapes only, no storage) and its
    parameters counted; more than a quarter of the free memory (or 2^31 parameters) is refused.
    """
    import psutil

    if options.get("pretrained") is not None:
        return  # pretrained builders read weight files; their architectures are the published ones
    try:
        with torch.device("meta"):
            count = sum(p.numel() for p in entry.builder(in_channels=in_channels, num_classes=num_classes,
                                                         **options).parameters())  # fmt: skip
    except (RuntimeError, OverflowError, MemoryError):
        count = None  # too large to describe even without storage
    spare = psutil.virtual_memory().available // 4
    if count is not None and count <= MAX_PARAMETERS and 4 * count <= spare:
        return
    size = "more than 2^63 bytes" if count is None else f"{4 * count / 1e9:.1f} GB ({count:,} parameters)"
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    raise DeepsegError(
        f"build_model({entry.name!r}{', ' if shown else ''}{shown}) would need {size} for its weights alone, "
        f"more than this machine can spare ({spare / 1e9:.1f} GB); use smaller values of {', '.join(options)}"
    )


def _check_options(entry: ModelEntry, options: dict[str, Any]) -> None:
    params = inspect.signature(entry.builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(params))
    if unknown:
        allowed = sorted(set(params) - {"in_channels", "num_classes"})
        raise ValueError(
            f"model {entry.name!r} has no option {', '.join(unknown)}; options: {', '.join(allowed)}"
        )


for _name, _builder, _text, _weights, _variants in zoo.BUILTIN:
    register_model(_name, _text, pretrained=_weights, variants=_variants)(_builder)
