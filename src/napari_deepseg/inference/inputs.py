"""Input preparation: the one path from image data to model input, for inference and training.

Everything that turns user data into what a network sees is reached through this module:

- axes: :class:`AxesPlan` (an axes string such as ``"TZCYX"`` over a shape, planes read as
  (C, H, W)), :func:`guess_axes`, :func:`to_channels_last`;
- channels: :func:`check_channels` (``channels=`` picking), :func:`channel_mapping` /
  :func:`map_channels` / :func:`model_channels` (the one channel rule: RGB averaged to gray, or
  hematoxylin for ``"gray-hed"`` models; gray replicated for RGB models; alpha dropped; any
  other mismatch refused), :func:`hematoxylin_or_gray`;
- values: :func:`finite_plane` (the NaN/inf policy), :func:`check_normalization`,
  :func:`percentile_normalizer` / :func:`fixed_normalizer`;
- the whole path: :func:`model_plane` (a raw plane to the model's channels, finite),
  :func:`to_model_input` (a training image to the same), :func:`normalize_plane`.

The engine (tile by tile, one normalizer per plane or stack) and the training data (whole
planes) both call these functions, so a rule changes in one place. The implementations live in
:mod:`.axes` and :mod:`.normalization`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .axes import (
    AxesPlan,
    channel_mapping,
    check_channels,
    guess_axes,
    hematoxylin_or_gray,
    map_channels,
    model_channels,
    to_channels_last,
)
from .normalization import (
    Normalizer,
    banded_percentile_normalizer,
    check_float32_range,
    check_normalization,
    finite_plane,
    fixed_normalizer,
    percentile_normalizer,
)


def model_plane(raw: np.ndarray, mapping: str, where: str, warn: bool = True) -> np.ndarray:
    """A raw (C, H, W) plane (channels already picked) -> the model's input channels by a
    :func:`channel_mapping` result, NaN/inf replaced (:func:`finite_plane`); float64 values
    beyond float32 are refused before the mapping casts them."""
    if mapping != "same":
        check_float32_range(raw, where)
    return finite_plane(map_channels(raw, mapping), where, warn)


def to_model_input(
    image: np.ndarray, in_channels: int, channel_mode: str, channels: Sequence[int] | None = None
) -> np.ndarray:
    """(H, W) or (H, W, C) image -> float32 (in_channels, H, W) before normalization, by the
    channel rule inference uses (:func:`model_channels`)."""
    image = np.asarray(image, dtype=np.float32)
    planes = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    return np.ascontiguousarray(model_channels(planes, in_channels, channel_mode, channels), np.float32)


def normalize_plane(plane: np.ndarray, spec: dict[str, Any], where: str = "training image") -> np.ndarray:
    """Normalize a (C, H, W) plane exactly as inference does (per channel, per plane).

    Includes the NaN/inf policy (:func:`finite_plane`; ``where`` names the plane in its warning
    or error); a percentile ``scope="stack"`` is applied per plane here (training planes are
    normalized independently).
    """
    plane = finite_plane(plane, where)
    channels = plane.shape[0]
    spec = check_normalization(spec, channels)
    norm = fixed_normalizer(spec, channels) or percentile_normalizer([plane], spec["low"], spec["high"])
    return np.asarray(norm(plane), dtype=np.float32)


__all__ = [
    "AxesPlan",
    "Normalizer",
    "banded_percentile_normalizer",
    "channel_mapping",
    "check_channels",
    "check_normalization",
    "finite_plane",
    "fixed_normalizer",
    "guess_axes",
    "hematoxylin_or_gray",
    "map_channels",
    "model_channels",
    "model_plane",
    "normalize_plane",
    "percentile_normalizer",
    "to_channels_last",
    "to_model_input",
]
