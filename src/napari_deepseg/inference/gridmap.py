"""A rescaled run's two grids: the resampled plane the model runs on, and the image's own.

:class:`GridMap` maps labels computed on the resampled (run) grid back to the image's grid, a
block at a time: a block's core and region on the run grid become the original-grid rows and
columns whose nearest source pixel lies in them, so a rescaled plane's instances are joined
across block borders (:class:`~.blocks.BlockLabels`) and stored on the image's grid directly,
never held at the (possibly larger) run grid. Classes are mapped by nearest neighbour into a
preallocated array in row bands (:meth:`GridMap.fill`).

Instances keep their ids from the nearest run-grid pixel, but their outlines follow the
foreground probability resampled bilinearly to the image's grid (:meth:`GridMap.labels`): a
pixel whose ``P(foreground)`` is at most the threshold is background, and a foreground pixel
the nearest mapping left empty takes the largest id within half a run-grid pixel. Nearest
neighbour alone draws an enlarged object as blocks of ``1/scale`` pixels; on the DSB2018
selection split (bundled model) the smooth outline raised the per-image mean accuracy from
0.595 to 0.612 (fluorescence) and AP@0.75 from 0.311 to 0.331 (histology).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .blocks import Block
from .postprocess import foreground_probability
from .scale import nearest_indices, row_taps

_BAND_ROWS = 256


@dataclass(frozen=True)
class GridMap:
    """Map from a run grid of ``small`` (h, w) to an image grid of ``full`` (H, W).

    Attributes:
        rows: (H,) int64, the run-grid row each image row takes its id from (nearest neighbour,
            non-decreasing).
        cols: (W,) int64, likewise for columns.
        taps_y, taps_x: the bilinear resampling's (source rows (H, T) int64, weights (H, T)
            float32) per image row, and likewise per column (:func:`.scale.row_taps`).
        reach: how far (image pixels) an outline may grow past the nearest map's: half a
            run-grid pixel, at least 1.
    """

    small: tuple[int, int]
    full: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    taps_y: tuple[np.ndarray, np.ndarray]
    taps_x: tuple[np.ndarray, np.ndarray]
    reach: int = 1

    @classmethod
    def between(cls, small: tuple[int, int], full: tuple[int, int]) -> GridMap:
        rows, cols = nearest_indices(small[0], full[0]), nearest_indices(small[1], full[1])
        taps = [row_taps(small[a], full[a], full[a] < small[a]) for a in (0, 1)]
        reach = max(1, math.ceil(max(full[0] / small[0], full[1] / small[1]) / 2))
        return cls(small, full, rows, cols, *taps, reach)

    def window(self, source: tuple[slice, slice], region: tuple[slice, slice]) -> GridMap:
        """The map of a window: run-grid ``source`` (which holds every source pixel and tap of
        ``region``) onto image-grid ``region``, both seen from their own origin; the same ids
        and outlines as the whole map gives there."""
        (sy, sx), (ry, rx) = source, region
        size = (sy.stop - sy.start, sx.stop - sx.start)
        full = (ry.stop - ry.start, rx.stop - rx.start)
        taps = (_local(self.taps_y, ry, sy.start, size[0]), _local(self.taps_x, rx, sx.start, size[1]))
        return GridMap(size, full, self.rows[ry] - sy.start, self.cols[rx] - sx.start, *taps, self.reach)

    def span(self, y: slice, x: slice) -> tuple[slice, slice]:
        """The image-grid rows and columns whose source lies in run-grid rows ``y``, columns ``x``."""

        def one(src: np.ndarray, s: slice) -> slice:
            lo, hi = np.searchsorted(src, [s.start, s.stop], side="left")
            return slice(int(lo), int(hi))

        return one(self.rows, y), one(self.cols, x)

    def block_labels(
        self, block: Block, labels: np.ndarray, prob: np.ndarray | None = None, threshold: float = 0.5
    ) -> tuple[Block, np.ndarray]:
        """A run-grid ``block`` and its region's (h, w) labels, both on the image grid (cores
        still tile the plane without gaps); ``prob``: the region's (K, h, w) probabilities, for
        the outlines (:meth:`labels`)."""
        ry, rx = self.span(block.read_y, block.read_x)
        origin = (block.read_y.start, block.read_x.start)
        mapped = self.labels(labels, prob, threshold, origin, (ry, rx))
        return Block(block.index, *self.span(block.y, block.x), ry, rx), mapped

    def labels(
        self,
        labels: np.ndarray,
        prob: np.ndarray | None = None,
        threshold: float = 0.5,
        origin: tuple[int, int] = (0, 0),
        window: tuple[slice, slice] | None = None,
        seen: np.ndarray | None = None,
    ) -> np.ndarray:
        """(h, w) run-grid labels of a region starting at run-grid ``origin`` -> the image-grid
        ``window`` (rows, cols; default the whole plane) of them, in row bands.

        Without ``prob`` each pixel takes its nearest source's id. With the region's (K, h, w)
        class probabilities, outlines follow ``foreground_probability`` resampled bilinearly
        (see the module docstring); no id is made, and an object loses the pixels where the
        resampled probability is at most ``threshold`` (its run-grid pixels were above it, so
        it keeps most of them; no object of the DSB2018 selection split lost all). The
        probability is resampled only at the pixels within ``reach`` of an object (the others
        stay background whatever it is), with the same arithmetic as a whole-plane resampling.
        ``seen``: a bool array over the ids, set True for each id that the output holds.
        """
        ry, rx = window or (slice(0, self.full[0]), slice(0, self.full[1]))
        src_r = self.rows[ry] - origin[0]
        src_c = self.cols[rx] - origin[1]
        out = np.empty((len(src_r), len(src_c)), labels.dtype)
        if prob is None:
            for r in range(0, len(src_r), _BAND_ROWS):
                out[r : r + _BAND_ROWS] = labels.take(src_r[r : r + _BAND_ROWS], 0).take(src_c, 1)
            if seen is not None:
                seen[out.reshape(-1)] = True
            return out
        taps_y = _local(self.taps_y, ry, origin[0], labels.shape[0])
        taps_x = _local(self.taps_x, rx, origin[1], labels.shape[1])
        reach = self.reach
        for r in range(0, len(src_r), _BAND_ROWS):
            lo, hi = max(0, r - reach), min(len(src_r), r + _BAND_ROWS + reach)
            near = labels.take(src_r[lo:hi], 0).take(src_c, 1)
            rows = slice(r - lo, min(hi, r + _BAND_ROWS) - lo)
            band_taps = (taps_y[0][r : r + _BAND_ROWS], taps_y[1][r : r + _BAND_ROWS])
            out[r : r + _BAND_ROWS] = _outlined(near, rows, reach, prob, band_taps, taps_x, threshold, seen)
        return out

    def instances(
        self, labels: np.ndarray, prob: np.ndarray | None = None, threshold: float = 0.5
    ) -> np.ndarray:
        """A whole plane's (h, w) run-grid instances 1..N -> (H, W) image-grid instances 1..M
        (:meth:`labels`, then renumbered without gaps if an object lost all its pixels)."""
        seen = np.zeros(int(labels.max(initial=0)) + 1, bool)
        out = self.labels(labels, prob, threshold, seen=seen)
        seen[0] = False
        if seen[1:].all():
            return out
        lut = np.zeros(len(seen), out.dtype)
        lut[seen] = np.arange(1, int(seen.sum()) + 1, dtype=out.dtype)
        return lut[out]

    def fill(self, out: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Write (..., h, w) run-grid labels into (..., H, W) ``out`` in row bands; returns ``out``."""
        for r in range(0, self.full[0], _BAND_ROWS):
            rows = self.rows[r : r + _BAND_ROWS]
            out[..., r : r + len(rows), :] = src[..., rows[:, None], self.cols[None, :]]
        return out


def _local(taps: tuple[np.ndarray, np.ndarray], span: slice, origin: int, size: int) -> tuple:
    """Bilinear taps of the image-grid ``span``, relative to a region starting at run-grid
    ``origin`` with ``size`` pixels (clipped to it)."""
    return np.clip(taps[0][span] - origin, 0, size - 1), taps[1][span]


def _outlined(
    near: np.ndarray,
    rows: slice,
    reach: int,
    prob: np.ndarray,
    taps_y: tuple[np.ndarray, np.ndarray],
    taps_x: tuple[np.ndarray, np.ndarray],
    threshold: float,
    seen: np.ndarray | None,
) -> np.ndarray:
    """The ``rows`` of (n, W) nearest-neighbour ids ``near`` with outlines from ``prob``: a pixel
    takes its own id or else the largest id within ``reach`` (``grey_dilation``), and keeps it
    where the bilinearly resampled foreground probability (``taps_y`` of these rows) is above
    ``threshold``. Only the pixels within ``reach`` of an id are looked at."""
    spots = np.flatnonzero(_dilated(near > 0, reach)[rows])
    width = near.shape[1]
    y, x = np.divmod(spots, width)
    y += rows.start
    ids = near[y, x]
    empty = np.flatnonzero(ids == 0)
    if len(empty):  # the largest id within reach (max over the window, clipped at the edges)
        ey, ex = y[empty], x[empty]
        grown = ids[empty]
        for dy in range(-reach, reach + 1):
            yy = np.clip(ey + dy, 0, near.shape[0] - 1)
            for dx in range(-reach, reach + 1):
                np.maximum(grown, near[yy, np.clip(ex + dx, 0, width - 1)], out=grown)
        ids[empty] = grown
    fg = _resample_at(prob, taps_y, taps_x, y - rows.start, x) > threshold
    out = np.zeros((rows.stop - rows.start, width), near.dtype)
    out.reshape(-1)[spots[fg]] = ids[fg]
    if seen is not None:
        seen[ids[fg]] = True
    return out


def _dilated(on: np.ndarray, reach: int) -> np.ndarray:
    """(n, W) bool ``on`` dilated by a (2 reach + 1) square (``grey_dilation`` of a mask; pixels
    past the edges count as False, which gives a maximum what reflecting them does)."""
    out = on.copy()
    for d in range(1, reach + 1):
        out[:, d:] |= on[:, :-d]
        out[:, :-d] |= on[:, d:]
    across = out.copy()
    for d in range(1, reach + 1):
        out[d:] |= across[:-d]
        out[:-d] |= across[d:]
    return out


def _resample_at(
    prob: np.ndarray,
    taps_y: tuple[np.ndarray, np.ndarray],
    taps_x: tuple[np.ndarray, np.ndarray],
    y: np.ndarray,
    x: np.ndarray,
) -> np.ndarray:
    """(N,) float32 ``foreground_probability`` of (K, h, w) ``prob`` resampled at the output
    pixels (``y``: rows of ``taps_y``, ``x``: columns of ``taps_x``), bit for bit what resampling
    the whole region (``scale.apply_taps``) gives there: rows first (dense, on the source columns
    the pixels need), then columns, summed in the same order."""
    (ry, wy), (rx, wx) = taps_y, taps_x
    if len(y) == 0:
        return np.zeros(0, np.float32)
    lo, hi = int(ry.min()), int(ry.max()) + 1
    needed = np.zeros(prob.shape[2], bool)
    needed[rx[x]] = True
    cols = np.flatnonzero(needed)
    part = prob[:, lo:hi] if len(cols) > prob.shape[2] // 2 else prob[:, lo:hi][:, :, cols]
    fg = foreground_probability(part)  # (hi - lo, all columns or ``cols``) float32
    if part.shape[2] != len(cols):
        fg = fg[:, cols]
    rows = sum(wy[:, k, None] * fg[ry[:, k] - lo] for k in range(wy.shape[1]))  # (band, len(cols))
    where = np.searchsorted(cols, rx)  # each output column's taps among ``cols``
    return sum(wx[x, k] * rows[y, where[x, k]] for k in range(wx.shape[1]))
