"""The "(running)" layers of a run: what they show of a large plane while its blocks land."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from napari.layers import Labels

from .gui_steps import visible_overlays
from .layers import SourceSnapshot, labels_kwargs, mark_result

#: a "(running)" layer of a 2D plane over this many pixels shows levels (views every 2nd, 4th,
#: ... pixel of the run's own array) so napari converts and draws only about a screenful of
#: pixels as blocks land (a plain 8192x8192 layer took 0.5-2.5 s of the GUI thread per refresh)
LIVE_LEVELS_ABOVE = 4096 * 4096
#: the coarsest level's longest side
LIVE_LEVEL_SIDE = 1024


def shows_levels(shape: tuple[int, ...]) -> bool:
    """Whether a running layer of this shape shows levels: a 2D plane over
    :data:`LIVE_LEVELS_ABOVE` pixels."""
    return len(shape) == 2 and math.prod(shape) > LIVE_LEVELS_ABOVE


def live_levels(data: np.ndarray) -> np.ndarray | list[np.ndarray]:
    """What a "(running)" layer shows of ``data``: itself, or for a 2D plane over
    :data:`LIVE_LEVELS_ABOVE` pixels a multiscale list of strided views of it (no copies: they
    show each block as it lands). napari does not paint multiscale labels, so such a layer is
    display-only and the finished result is placed as a new, editable layer."""
    if not shows_levels(data.shape):
        return data
    levels, step = [data], 2
    while max(data.shape) / step >= LIVE_LEVEL_SIDE:
        levels.append(data[::step, ::step])
        step *= 2
    return levels


#: the content digest recorded for a running layer (hashing a large plane took 0.25 s of the GUI
#: thread; a running layer is replaced or discarded when its run ends, never reused)
PARTIAL = "partial"


def early_data(shape: tuple[int, ...], out: str) -> np.ndarray | None:
    """For a 2D plane over :data:`LIVE_LEVELS_ABOVE` pixels, zeros of ``out``'s label dtype that
    take no memory (a zero-stride view), for a running layer made before the run's arrays exist
    (while the model loads and the object size is estimated, the CPU still free); else None."""
    if not shows_levels(shape):
        return None
    zero = np.zeros(1, np.uint32 if out == "instances" else np.uint8)
    # writeable (compiled colouring code refuses read-only buffers); nothing writes to it: the
    # first block replaces it before anything is copied in
    return np.lib.stride_tricks.as_strided(zero, shape, strides=(0, 0), writeable=True)


def running_layer(
    viewer: Any, snapshot: SourceSnapshot, name: str, out: str, data: np.ndarray, visible: bool = True
) -> Labels:
    """Add the running Labels layer ``name`` of output ``out`` showing ``data`` (its levels for
    a large plane: display only, so napari builds no painting overlays for it); ``visible``
    False adds it hidden (napari then neither converts nor draws it)."""
    layer = Labels(live_levels(data), **{**labels_kwargs(snapshot, name), "visible": visible})
    if layer.multiscale:
        for overlay in visible_overlays(layer):
            overlay.visible = False
    viewer.layers.append(layer)
    mark_result(layer, PARTIAL, output=out, partial=True)  # never hashed: replaced when the run ends
    return layer
