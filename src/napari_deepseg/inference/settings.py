"""What a run's options become for one model and image: the model's post-processing settings
with the options' overrides, the tile that fits the model, the image and model arguments.
(The options themselves and their checks: :mod:`.options`.)"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from torch import nn

from .. import _checks
from ..errors import DeepsegError
from ..models.contract import contract_of
from ..models.modelfile import described, has_distance
from .options import DEFAULT_TILE, MIN_TILE, POSTPROCESS_KEYS, checked_postprocess
from .postprocess import DEFAULT_MIN_SIZE, SEED_METHODS


def postprocess_settings(
    model: nn.Module, min_size: int | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Instance post-processing keywords: the model file's settings, then ``overrides`` (keys
    of ``POSTPROCESS_KEYS``), then ``min_size``; one-line DeepsegError for unknown keys or values
    out of range."""
    meta = described(model)
    settings = {k: v for k, v in (meta.postprocess if meta else {}).items() if k in POSTPROCESS_KEYS}
    settings.update(checked_postprocess(overrides) or {})
    settings.setdefault("min_size", DEFAULT_MIN_SIZE)
    if settings.get("seed_method", SEED_METHODS[0]) not in SEED_METHODS:
        raise DeepsegError(
            f"the model file's post-processing seed_method {settings['seed_method']!r} is unknown "
            f"(use one of {SEED_METHODS}); upgrade napari-deepseg or fix the model file"
        )
    if settings.get("seed_method") == "distance" and not has_distance(meta):
        raise DeepsegError(
            "seed_method 'distance' needs a model with a distance output; this model has none, "
            "use seed_method 'maxima' or 'threshold'"
        )
    if min_size is not None:
        settings["min_size"] = int(min_size)
    return settings


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


def as_array(image: Any) -> Any:
    if isinstance(image, (str, os.PathLike)) or image is None:
        raise _checks.ArgumentTypeError(
            f"image must be an array (numpy, dask or zarr), not {image!r}; "
            "read files with napari_deepseg.io.read_image"
        )
    if not all(hasattr(image, a) for a in ("shape", "dtype", "__getitem__")):
        image = np.asarray(image)
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "biuf":
        raise DeepsegError(f"images must be numeric (bool, int, uint or float), not {dtype}")
    if len(image.shape) < 2:
        raise DeepsegError(f"the image needs at least 2 dimensions (Y, X), got shape {tuple(image.shape)}")
    if any(n == 0 for n in image.shape):
        raise DeepsegError(f"the image is empty (shape {tuple(image.shape)}); give an image with pixels")
    return image


def check_tile(model: nn.Module, tile: int | None, overlap: int | None) -> tuple[int, int]:
    """``(tile, overlap)`` with defaults filled; a one-line DeepsegError when they do not fit the model."""
    multiple = int(contract_of(model).size_multiple)
    smallest = max(MIN_TILE, multiple)
    tile = DEFAULT_TILE if tile is None else int(tile)
    if tile < smallest:
        raise DeepsegError(f"tile={tile} is smaller than this model allows; use tile={smallest} or more")
    overlap = tile // 8 if overlap is None else int(overlap)  # SegmentOptions.tile_overlap
    if not 0 <= overlap < tile:
        raise DeepsegError(
            f"overlap={overlap} must be 0 or more and less than tile={tile}; lower the overlap"
        )
    return tile, overlap
