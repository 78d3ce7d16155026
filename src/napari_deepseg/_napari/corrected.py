"""Which pixels of a result a person corrected: the model's own output, kept beside the layer.

When Segment places an instances or classes layer (up to ``KEEP_PIXELS``), the layer's original
data is kept in its metadata. Whatever the user then merges, splits, deletes, draws or paints
differs from it, so :func:`corrected_mask_for` is exactly the corrected pixels; the Fine-tune
widget hands them to the core as ``emphasis`` (weighed ``correction_weight`` times).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ORIGINAL_KEY = "deepseg_original"
#: results up to this many pixels keep their original data (a uint32 copy: 4 bytes per pixel)
KEEP_PIXELS = 16 * 2**20


def keep_original(layer: Any) -> None:
    """Keep a copy of ``layer``'s data as the model made it (small enough layers only)."""
    data = np.asarray(layer.data)
    if data.size <= KEEP_PIXELS:
        layer.metadata[ORIGINAL_KEY] = data.copy()
    else:
        layer.metadata.pop(ORIGINAL_KEY, None)


def corrected_mask_for(layer: Any) -> np.ndarray | None:
    """Pixels that differ from the model's output (bool, the layer's shape), or None when the
    layer has no kept original (not a Segment result, too large, or reshaped)."""
    original = layer.metadata.get(ORIGINAL_KEY)
    data = np.asarray(layer.data)
    if original is None or original.shape != data.shape:
        return None
    return data != original
