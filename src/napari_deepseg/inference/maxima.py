"""Regional maxima of a 2D relief that stand at least ``h`` above their saddle (h-maxima).

``skimage.morphology.h_maxima`` computes the same seeds by grayscale reconstruction, whose sort
over every pixel costs about 1.5 s per megapixel on a laptop core. Here the dynamic of each
maximum is computed on the basin graph instead: one watershed from all regional maxima, the
highest pass between each pair of 8-neighbouring basins, then a Kruskal sweep over the passes from
the highest down. When two components meet, the lower one's highest maximum gets its dynamic
(its height minus the pass); maxima whose dynamic is below ``h`` are dropped. About 4x faster
than the reconstruction, with the same seeds up to ties between equal peaks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima
from skimage.segmentation import watershed

_STRUCT8 = ndi.generate_binary_structure(2, 2)
_ALL, _HEAD, _TAIL = slice(None), slice(None, -1), slice(1, None)
# (slice of a pixel, slice of its neighbour): right, down, down-right, down-left.
_NEIGHBOURS = (
    ((_ALL, _HEAD), (_ALL, _TAIL)),
    ((_HEAD, _ALL), (_TAIL, _ALL)),
    ((_HEAD, _HEAD), (_TAIL, _TAIL)),
    ((_HEAD, _TAIL), (_TAIL, _HEAD)),
)


def dynamic_maxima(relief: np.ndarray, mask: np.ndarray, h: float) -> tuple[np.ndarray, int]:
    """Label the maxima of ``relief`` inside ``mask`` whose dynamic is at least ``h``.

    Args:
        relief: (H, W) float heights.
        mask: (H, W) bool; maxima, basins and passes are taken inside it only. The highest maximum
            of each connected part of the mask always survives (its dynamic is infinite).
        h: minimum height of a maximum above the highest pass to a higher maximum.

    Returns:
        ((H, W) int32 markers 0 or 1..N, one id per surviving maximum plateau, N).

    Only the parts of ``mask`` that hold two maxima or more are flooded (on nuclei, about half
    the foreground pixels).
    """
    if not mask.any():
        return np.zeros(mask.shape, np.int32), 0
    floor = np.float32(relief[mask].min()) - np.float32(1)
    r = np.where(mask, relief, floor).astype(np.float32, copy=False)
    markers, n = ndi.label(local_maxima(r, connectivity=2, allow_borders=True) & mask, structure=_STRUCT8)
    shared = _shared(markers, n, mask)
    if shared is None:  # no part holds two maxima: every maximum is its part's highest
        return markers.astype(np.int32, copy=False), n
    basins = watershed(-r, markers, connectivity=2, mask=shared)
    top = np.full(n + 1, -np.inf, np.float64)
    on = markers > 0  # a maximum is a plateau of one height: any of its pixels gives its top
    top[markers[on]] = r[on]
    dynamic = _dynamics(_passes(basins, r, n), top, n)
    keep = dynamic >= h
    keep[0] = False
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[markers], int(keep.sum())


def _shared(markers: np.ndarray, n: int, mask: np.ndarray) -> np.ndarray | None:
    """The pixels of the 8-connected parts of ``mask`` holding two maxima or more (bool), or None
    when there are none. Basins, passes and dynamics never cross between parts, and a part's
    single maximum keeps an infinite dynamic, so only these parts need flooding."""
    if n <= 1:
        return None
    parts, n_parts = ndi.label(mask, structure=_STRUCT8)
    on = markers > 0
    part_of = np.zeros(n + 1, parts.dtype)
    part_of[markers[on]] = parts[on]  # a maximum is a connected plateau: one part
    several = np.bincount(part_of[1:], minlength=n_parts + 1) >= 2
    return several[parts] if several.any() else None


def _passes(basins: np.ndarray, r: np.ndarray, n: int) -> list[tuple[float, int, int]]:
    """(pass height, basin a, basin b) for each pair of 8-neighbouring basins, highest pass first."""
    keys, heights = [], []
    for sa, sb in _NEIGHBOURS:
        a, b, va, vb = basins[sa], basins[sb], r[sa], r[sb]
        sel = (a != b) & (a > 0) & (b > 0)
        lo = np.minimum(a[sel], b[sel]).astype(np.int64)
        hi = np.maximum(a[sel], b[sel]).astype(np.int64)
        keys.append(lo * (n + 1) + hi)
        heights.append(np.minimum(va[sel], vb[sel]))
    key, height = np.concatenate(keys), np.concatenate(heights)
    if key.size == 0:
        return []
    order = np.argsort(key, kind="stable")
    key, height = key[order], height[order]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    unique_key, best = key[start], np.maximum.reduceat(height, start)
    edges = zip(best.tolist(), (unique_key // (n + 1)).tolist(), (unique_key % (n + 1)).tolist())
    return sorted(edges, key=lambda e: -e[0])


def _dynamics(passes: list[tuple[float, int, int]], top: np.ndarray, n: int) -> np.ndarray:
    """Dynamic of each maximum 1..N (index 0 unused) from the passes, highest first."""
    parent = np.arange(n + 1)
    highest = np.arange(n + 1)  # the highest maximum of each component, kept at its root
    dynamic = np.full(n + 1, np.inf)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for height, a, b in passes:
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        wa, wb = highest[ra], highest[rb]
        winner, loser = (wa, wb) if top[wa] >= top[wb] else (wb, wa)
        dynamic[loser] = top[loser] - height
        parent[rb] = ra
        highest[ra] = winner
    return dynamic
