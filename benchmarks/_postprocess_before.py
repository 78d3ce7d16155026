"""The post-processing as it was before issue 36's speed work (commit 4c0dca3), kept verbatim as
the reference that ``benchmarks/postprocess_speed.py`` times and compares against, and that
``tests/inference/test_postprocess_fast.py`` checks the labels of the product code with.

Functions: :func:`instances_from_probabilities` (seeded watershed, h-maxima seeds in
:func:`dynamic_maxima`), :func:`grid_labels` (``GridMap.labels``: instances mapped to the
image grid with outlines from the resampled foreground probability), :func:`finalize_softmax`
(``Job._finalize_rows``' softmax of the blended logits) and :func:`class_map`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima
from skimage.segmentation import watershed

_STRUCT = ndi.generate_binary_structure(2, 1)
_STRUCT8 = ndi.generate_binary_structure(2, 2)
_BAND_ROWS = 128
_GRID_BAND_ROWS = 256


def class_map(prob_or_logits: np.ndarray) -> np.ndarray:
    """Argmax over the first axis of a (K, ...) array -> uint8 (K <= 256) or uint16 class map."""
    k = prob_or_logits.shape[0]
    dtype = np.uint8 if k <= 256 else np.uint16
    return np.argmax(prob_or_logits, axis=0).astype(dtype, copy=False)


def finalize_softmax(sums: np.ndarray, wsum: np.ndarray) -> np.ndarray:
    """(K, n, W) float32 softmax of the blended logits ``sums / wsum`` (``Job._finalize_rows``)."""
    logits = sums / wsum
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits


def write_rows(out: np.ndarray, values: np.ndarray) -> None:
    """``out[...] = values``: the float16 rows kept for instances (numpy's conversion, as Job did)."""
    out[...] = values


def instances_from_probabilities(
    prob: np.ndarray,
    min_size: int = 16,
    seed_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    seed_method: str = "threshold",
    seed_sigma: float = 2.0,
    seed_h: float = 0.01,
) -> np.ndarray:
    """(K, H, W) probabilities -> (H, W) uint32 instance labels 1..N (see ``inference.postprocess``)."""
    prob = np.asarray(prob)
    labels = np.zeros(prob.shape[1:], np.uint32)
    mask = _foreground(prob, foreground_threshold)
    if not mask.any():
        return labels
    relief = _relief(prob, seed_method, seed_sigma)
    groups, _ = ndi.label(mask, structure=_STRUCT8)
    del mask
    keep = np.bincount(groups.ravel()) >= max(1, min_size)
    keep[0] = False
    boxes = ndi.find_objects(groups)
    tops = np.array([b[0].start for b in boxes])
    next_id = 1
    for lo, hi in _bands(tops, _BAND_ROWS):
        box = _union_box(boxes[lo - 1 : hi])
        sub = groups[box]
        part = (sub >= lo) & (sub <= hi) & keep[sub]
        if not part.any():
            continue
        confident = relief[box] > seed_threshold if seed_method == "threshold" else None
        local = _remove_small(_group_instances(relief[box], part, confident, float(seed_h)), min_size)
        found = local > 0
        labels[box][found] = local[found] + np.uint32(next_id - 1)
        next_id += int(local.max())
    return labels


def _bands(tops: np.ndarray, rows: int) -> list[tuple[int, int]]:
    band = tops // rows
    starts = np.flatnonzero(np.r_[True, band[1:] != band[:-1]])
    stops = np.r_[starts[1:], len(tops)]
    return [(int(a) + 1, int(b)) for a, b in zip(starts, stops)]


def _union_box(boxes: list[tuple[slice, slice]]) -> tuple[slice, slice]:
    ys = slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes))
    return ys, slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes))


def foreground_probability(prob: np.ndarray) -> np.ndarray:
    if prob.shape[0] < 3:
        return prob[1].astype(np.float32, copy=False)
    return np.add(prob[1], prob[2], dtype=np.float32)


def _foreground(prob: np.ndarray, threshold: float) -> np.ndarray:
    if prob.shape[0] < 3:
        return prob[1] > threshold
    total = foreground_probability(prob)
    return np.greater(total, threshold, out=np.empty(total.shape, bool))


def _relief(prob: np.ndarray, seed_method: str, seed_sigma: float) -> np.ndarray:
    if seed_method == "threshold":
        return prob[1].astype(np.float32, copy=False)
    if prob.shape[0] >= 3:
        diff = np.subtract(prob[1], prob[2], dtype=np.float32)
    else:
        diff = prob[1].astype(np.float32)
    if seed_sigma <= 0:
        return diff
    return ndi.gaussian_filter(diff, float(seed_sigma), output=np.empty(diff.shape, np.float32))


def _group_instances(
    relief: np.ndarray, part: np.ndarray, confident: np.ndarray | None, seed_h: float = 0.0
) -> np.ndarray:
    if confident is not None:
        seeds, n_seeds = ndi.label(confident & part, structure=_STRUCT)
    else:
        seeds, n_seeds = dynamic_maxima(relief, part, seed_h)
    pieces, n_pieces = ndi.label(part, structure=_STRUCT)
    if n_seeds <= 1:
        return pieces
    seeded = np.zeros(n_pieces + 1, bool)
    seeded[np.unique(pieces[seeds > 0])] = True
    orphan = ~seeded[pieces] & part
    if orphan.any():
        orphans, _ = ndi.label(orphan, structure=_STRUCT)
        seeds = np.where(orphan, orphans + n_seeds, seeds)
    return watershed(-relief, markers=seeds, mask=part)


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    keep = np.bincount(labels.ravel()) >= max(1, min_size)
    keep[0] = False
    return _renumber(labels, keep)


def _renumber(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    lut = np.zeros(len(keep), np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return lut[labels]


def consecutive(labels: np.ndarray) -> np.ndarray:
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    return labels if present[1:].all() else _renumber(labels, present)


_NEIGHBOURS = (
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
)


def dynamic_maxima(relief: np.ndarray, mask: np.ndarray, h: float) -> tuple[np.ndarray, int]:
    """Maxima of ``relief`` in ``mask`` with dynamic >= ``h`` (``inference.maxima`` before)."""
    if not mask.any():
        return np.zeros(mask.shape, np.int32), 0
    floor = np.float32(relief[mask].min()) - np.float32(1)
    r = np.where(mask, relief, floor).astype(np.float32, copy=False)
    markers, n = ndi.label(local_maxima(r, connectivity=2, allow_borders=True) & mask, structure=_STRUCT8)
    if n <= 1:
        return markers.astype(np.int32, copy=False), n
    basins = watershed(-r, markers, connectivity=2, mask=mask)
    top = np.full(n + 1, -np.inf, np.float64)
    on = markers > 0
    top[markers[on]] = r[on]
    dynamic = _dynamics(_passes(basins, r, n), top, n)
    keep = dynamic >= h
    keep[0] = False
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[markers], int(keep.sum())


def _passes(basins: np.ndarray, r: np.ndarray, n: int) -> list[tuple[float, int, int]]:
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
    parent = np.arange(n + 1)
    highest = np.arange(n + 1)
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


def grid_labels(
    grid, labels: np.ndarray, prob: np.ndarray | None = None, threshold: float = 0.5
) -> np.ndarray:
    """``GridMap.labels(labels, prob, threshold)`` of a whole plane as it was (``grid``: a GridMap)."""
    ry, rx = slice(0, grid.full[0]), slice(0, grid.full[1])
    src_r, src_c = grid.rows[ry], grid.cols[rx]
    out = np.empty((len(src_r), len(src_c)), labels.dtype)
    if prob is None:
        for r in range(0, len(src_r), _GRID_BAND_ROWS):
            out[r : r + _GRID_BAND_ROWS] = labels[src_r[r : r + _GRID_BAND_ROWS, None], src_c[None, :]]
        return out
    taps_y = _local(grid.taps_y, ry, 0, labels.shape[0])
    taps_x = _local(grid.taps_x, rx, 0, labels.shape[1])
    reach = grid.reach
    for r in range(0, len(src_r), _GRID_BAND_ROWS):
        lo, hi = max(0, r - reach), min(len(src_r), r + _GRID_BAND_ROWS + reach)
        near = labels[src_r[lo:hi, None], src_c[None, :]]
        fg = _resample(prob, (taps_y[0][lo:hi], taps_y[1][lo:hi]), taps_x) > threshold
        grown = ndi.grey_dilation(near, size=(2 * reach + 1, 2 * reach + 1))
        near = np.where(near > 0, near, grown)
        near[~fg] = 0
        out[r : r + _GRID_BAND_ROWS] = near[r - lo : r - lo + _GRID_BAND_ROWS]
    return out


def _local(taps: tuple[np.ndarray, np.ndarray], span: slice, origin: int, size: int) -> tuple:
    return np.clip(taps[0][span] - origin, 0, size - 1), taps[1][span]


def _resample(prob: np.ndarray, taps_y: tuple, taps_x: tuple) -> np.ndarray:
    (ry, wy), (rx, wx) = taps_y, taps_x
    lo, hi = int(ry.min()), int(ry.max()) + 1
    x0, x1 = int(rx.min()), int(rx.max()) + 1
    fg = foreground_probability(prob[:, lo:hi, x0:x1])
    return apply_taps(fg, (ry - lo, wy), (rx - x0, wx))


def apply_taps(part: np.ndarray, taps_y: tuple, taps_x: tuple) -> np.ndarray:
    """``inference.scale.apply_taps`` as it was."""
    (ry, wy), (rx, wx) = taps_y, taps_x
    rows = sum(wy[:, k, None] * part[..., ry[:, k], :] for k in range(wy.shape[1]))
    return sum(wx[:, k] * rows[..., rx[:, k]] for k in range(wx.shape[1]))
