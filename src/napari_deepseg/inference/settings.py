"""Checked options of a segmentation run: post-processing settings, stitching, block, model."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from .. import _checks
from ..errors import DeepsegError
from ..models.modelfile import described
from . import memory
from .postprocess import DEFAULT_MIN_SIZE, SEED_METHODS

POSTPROCESS_KEYS = (
    "seed_threshold",
    "foreground_threshold",
    "min_size",
    "seed_method",
    "seed_sigma",
    "seed_h",
)


def postprocess_settings(
    model: nn.Module, min_size: int | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Instance post-processing keywords: the model file's settings, then ``overrides`` (keys
    of ``POSTPROCESS_KEYS``), then ``min_size``; one-line DeepsegError for unknown keys or values
    out of range."""
    meta = described(model)
    settings = {k: v for k, v in (meta.postprocess if meta else {}).items() if k in POSTPROCESS_KEYS}
    settings.update(checked_overrides(overrides or {}))
    settings.setdefault("min_size", DEFAULT_MIN_SIZE)
    if settings.get("seed_method", SEED_METHODS[0]) not in SEED_METHODS:
        raise DeepsegError(
            f"the model file's post-processing seed_method {settings['seed_method']!r} is unknown "
            f"(use one of {SEED_METHODS}); upgrade napari-deepseg or fix the model file"
        )
    if min_size is not None:
        if int(min_size) < 0:
            raise DeepsegError(f"min_size must be 0 or more, not {min_size}")
        settings["min_size"] = int(min_size)
    return settings


def checked_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(POSTPROCESS_KEYS))
    if unknown:
        raise DeepsegError(
            f"unknown post-processing setting(s) {', '.join(unknown)}; use {', '.join(POSTPROCESS_KEYS)}"
        )
    for key in ("seed_threshold", "foreground_threshold"):
        if key in overrides and not 0 < float(overrides[key]) < 1:
            raise DeepsegError(f"{key} must be between 0 and 1, not {overrides[key]}")
    for key in ("seed_sigma", "seed_h"):
        if key in overrides and float(overrides[key]) < 0:
            raise DeepsegError(f"{key} must be 0 or more, not {overrides[key]}")
    return dict(overrides)


def stitch_threshold(stitch_3d: bool | float) -> float | None:
    if stitch_3d is False or stitch_3d is None:
        return None
    value = 0.5 if stitch_3d is True else float(stitch_3d)
    if not 0 < value <= 1:
        raise DeepsegError(f"stitch_3d IoU threshold must be in (0, 1], not {stitch_3d}")
    return value


def check_block(block: int | None) -> int | None:
    if block is not None and int(block) < memory.BLOCK_STEP // 2:
        raise DeepsegError(f"block must be at least {memory.BLOCK_STEP // 2} pixels, not {block}")
    return None if block is None else int(block)


def as_model(model: Any) -> nn.Module:
    """A module as given, or the model loaded from a file path or model name (e.g. ``"nuclei"``)."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, (str, os.PathLike)):
        from ..models import load_model

        return load_model(model)
    raise _checks.ArgumentTypeError(
        f"model must be a torch module, a model file or a model name such as 'nuclei', not {model!r}"
    )
