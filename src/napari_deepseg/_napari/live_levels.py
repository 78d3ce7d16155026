"""What a "(running)" layer shows of a large plane while its blocks land: display levels."""

from __future__ import annotations

import numpy as np

#: a "(running)" layer of a 2D plane over this many pixels shows levels (views every 2nd, 4th,
#: ... pixel of the run's own array) so napari converts and draws only about a screenful of
#: pixels as blocks land (a plain 8192x8192 layer took 0.5-2.5 s of the GUI thread per refresh)
LIVE_LEVELS_ABOVE = 4096 * 4096
#: the coarsest level's longest side
LIVE_LEVEL_SIDE = 1024


def live_levels(data: np.ndarray) -> np.ndarray | list[np.ndarray]:
    """What a "(running)" layer shows of ``data``: itself, or for a 2D plane over
    :data:`LIVE_LEVELS_ABOVE` pixels a multiscale list of strided views of it (no copies: they
    show each block as it lands). napari does not paint multiscale labels, so such a layer is
    display-only and the finished result is placed as a new, editable layer."""
    if data.ndim != 2 or data.size <= LIVE_LEVELS_ABOVE:
        return data
    levels, step = [data], 2
    while max(data.shape) / step >= LIVE_LEVEL_SIDE:
        levels.append(data[::step, ::step])
        step *= 2
    return levels
